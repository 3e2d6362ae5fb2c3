"""k-NN probe of frozen features: what a backbone's features are worth, during and after
pre-training, read twice:

- **CLS** (tile level), as DINO's own `eval_knn`: the CLS token, the one DINO's loss trains,
  against the majority WorldCover class of the tile's labelled pixels (`tile_labels`); the
  bank holds the CLS token of every sampled train tile.
- **Patch** (the 28 x 28 token grid): each patch token against the majority class of its
  16 x 16 patch; a patch less than half labelled is left out (`patch_labels`).

- Features: the last block's tokens after the final norm (timm's `forward_features`;
  DINO's k-NN uses the normed output), L2-normalised.
- Neighbours (the bank): the labelled patches of a seeded sample of train tiles, at most
  `bank_patches` per tile, so that its memory is bounded (tiles x patches x D floats).
- Queries: every labelled patch of a seeded sample of val tiles (during training) or test
  tiles (at the end).
- Votes, as DINO: the k most similar bank patches (cosine similarity), each voting for its
  class with weight exp(similarity / T), T = 0.07; the largest sum wins.
- Scores: accuracy and MIoU of each reading from one confusion matrix
  (sarssl.evaluation.metrics), as the fine-tuning metrics, kept per query tile for the tile
  bootstrap of `probe_table`.
- References (`probe_table`): a random-init ViT of the same architecture, and the probe on
  each patch's mean of the normalised channels (for CLS: the tile's mean), without any
  network (`PatchMeans`).
"""

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn

from sarssl.dataset.bands import CHANNELS
from sarssl.dataset.worldcover import IGNORE_INDEX, NUM_CLASSES
from sarssl.devices import autocast, default_device
from sarssl.evaluation.metrics import (
    ConfusionMatrix,
    accuracy,
    interval_cells,
    mean_iou,
    percentile_interval,
    tile_bootstrap,
)
from sarssl.models.backbone import backbone_of_checkpoint, load_backbone, read_checkpoint
from sarssl.models.segmentation import token_decoder_vit
from sarssl.settings.probe import ProbeSettings
from sarssl.tiles.loader import Normalisation, StoreTiles, TileRef, split_tiles


def patch_labels(labels: np.ndarray, grid: tuple[int, int], num_classes: int, ignore: int):
    """(tile, y, x) class maps -> (tile, grid_h, grid_w) majority class per patch; a patch
    with less than half of its pixels labelled is `ignore`."""
    tiles, height, width = labels.shape
    grid_h, grid_w = grid
    patch_h, patch_w = height // grid_h, width // grid_w
    patches = labels.reshape(tiles, grid_h, patch_h, grid_w, patch_w)
    counts = np.stack([(patches == c).sum(axis=(2, 4)) for c in range(num_classes)], axis=-1)
    majority = counts.argmax(axis=-1).astype(labels.dtype)
    labelled = counts.sum(axis=-1) * 2 >= patch_h * patch_w
    return np.where(labelled, majority, ignore)


def tile_labels(labels: np.ndarray, num_classes: int, ignore: int) -> np.ndarray:
    """(tile, y, x) class maps -> (tile,) majority class of each tile's labelled pixels;
    `ignore` for a tile without any."""
    counts = np.stack([(labels == c).sum(axis=(1, 2)) for c in range(num_classes)], axis=-1)
    return np.where(counts.sum(axis=-1) > 0, counts.argmax(axis=-1), ignore).astype(labels.dtype)


@torch.no_grad()
def knn_predict(
    bank: torch.Tensor,
    bank_labels: torch.Tensor,
    queries: torch.Tensor,
    k: int,
    temperature: float,
    num_classes: int,
    chunk: int = 4096,
) -> torch.Tensor:
    """Class of each query (M, D) from its k nearest bank rows (N, D) by cosine similarity
    (rows L2-normalised), votes weighted by exp(similarity / temperature)."""
    k = min(k, len(bank))
    predicted = []
    for start in range(0, len(queries), chunk):
        similarity = queries[start : start + chunk] @ bank.T
        top, index = similarity.topk(k, dim=1)
        votes = torch.zeros(len(top), num_classes, device=bank.device, dtype=torch.float32)
        votes.scatter_add_(1, bank_labels[index], (top.float() / temperature).exp())
        predicted.append(votes.argmax(dim=1))
    return torch.cat(predicted)


@dataclass(frozen=True)
class ProbeScores:
    tile_confusions: np.ndarray  # (query tile, class, class) counts[tile, true, predicted]

    @property
    def confusion(self) -> np.ndarray:
        return self.tile_confusions.sum(axis=0)

    @property
    def accuracy(self) -> float:
        return accuracy(self.confusion)

    @property
    def miou(self) -> float:
        return mean_iou(self.confusion)

    @property
    def patches(self) -> int:
        return int(self.confusion.sum())


def scores_of(
    predicted: torch.Tensor, truth: torch.Tensor, tile: torch.Tensor | None = None, tiles: int = 1
) -> ProbeScores:
    """Scores of patch predictions; `tile` (n,) is the query tile (0 to tiles - 1) of each
    patch, all in one without it. A tile without a labelled patch keeps its (empty) matrix:
    it was sampled like the others."""
    tile = torch.zeros_like(truth) if tile is None else tile
    counts = np.zeros((tiles, NUM_CLASSES, NUM_CLASSES), dtype=np.int64)
    for index in range(tiles):
        confusion = ConfusionMatrix(NUM_CLASSES, IGNORE_INDEX)
        confusion.update(predicted[tile == index], truth[tile == index])
        counts[index] = confusion.numpy()
    return ProbeScores(counts)


def sample(tiles: Sequence[TileRef], count: int, seed: int) -> list[TileRef]:
    """At most `count` tiles, a seeded sample in their order."""
    if len(tiles) <= count:
        return list(tiles)
    chosen = np.sort(np.random.default_rng(seed).choice(len(tiles), count, replace=False))
    return [tiles[i] for i in chosen]


# The probe's two readings of a backbone's features.
PATCH, CLS = "patch", "cls"
READINGS = (PATCH, CLS)


@dataclass(frozen=True)
class Features:
    """L2-normalised labelled features (n, D), their classes (n,) and query-tile positions
    (n,), on one device."""

    rows: torch.Tensor
    classes: torch.Tensor
    tiles: torch.Tensor

    @classmethod
    def of(
        cls,
        rows: list[torch.Tensor],
        classes: list[torch.Tensor],
        tiles: list[torch.Tensor],
        width: int,
        device: torch.device,
    ) -> "Features":
        if not rows:
            none = torch.zeros(0, dtype=torch.long, device=device)
            return cls(torch.zeros(0, width, device=device), none, none)
        return cls(torch.cat(rows), torch.cat(classes).to(device), torch.cat(tiles).to(device))


class PatchProbe:
    """The bank tiles and the query tiles (per split) of one probe, sampled once, scored for
    any backbone."""

    def __init__(
        self,
        train: Sequence[TileRef],
        queries: Mapping[str, Sequence[TileRef]],
        normalisation: Normalisation,
        settings: ProbeSettings,
    ):
        self.settings = settings
        self.bank_tiles = sample(train, settings.train_tiles, settings.seed)
        self.query_tiles = {
            split: sample(tiles, settings.eval_tiles, settings.seed + 1 + i)
            for i, (split, tiles) in enumerate(queries.items())
        }
        self.normalisation = normalisation

    def features(
        self,
        backbone: nn.Module,
        tiles: list[TileRef],
        per_tile: int | None,
        autocast_dtype: torch.dtype | None,
    ) -> dict[str, Features]:
        """Both readings of `tiles`: READINGS' L2-normalised features with their classes and
        tile positions in `tiles`, labelled ones only; for the patches, with `per_tile`, a
        seeded sample of at most that many per tile."""
        device = next(backbone.parameters()).device
        reader = StoreTiles(tiles, self.normalisation)
        rows: dict[str, list[list[torch.Tensor]]] = {reading: [[], [], []] for reading in READINGS}
        for start in range(0, len(tiles), self.settings.batch_size):
            positions = range(start, min(start + self.settings.batch_size, len(tiles)))
            images = torch.stack([reader.image(p) for p in positions]).to(device)
            with autocast(device.type, autocast_dtype):
                tokens = backbone.forward_features(images).float()
            patches = tokens[:, backbone.num_prefix_tokens :]
            # The CLS token; a network without one (PatchMeans) gives its patches' mean.
            cls = tokens[:, 0] if backbone.num_prefix_tokens else patches.mean(dim=1)
            grid = backbone.patch_embed.dynamic_feat_size(images.shape[-2:])
            maps = np.stack([reader.labels(p).numpy() for p in positions])
            patch_classes = patch_labels(maps, grid, NUM_CLASSES, IGNORE_INDEX)
            tile_classes = tile_labels(maps, NUM_CLASSES, IGNORE_INDEX)
            for index, position in enumerate(positions):
                keep = np.flatnonzero(patch_classes[index].reshape(-1) != IGNORE_INDEX)
                if per_tile is not None and len(keep) > per_tile:
                    rng = np.random.default_rng([self.settings.seed, position])
                    keep = np.sort(rng.choice(keep, per_tile, replace=False))
                tile_class = tile_classes[index : index + 1]
                labelled = {  # per reading: its features, classes and the labelled ones
                    PATCH: (patches[index], patch_classes[index].reshape(-1), keep),
                    CLS: (cls[index][None], tile_class, np.flatnonzero(tile_class != IGNORE_INDEX)),
                }
                for reading, (features, classes, kept) in labelled.items():
                    kept_rows = features[torch.from_numpy(kept).to(device)]
                    rows[reading][0].append(F.normalize(kept_rows, dim=-1))
                    rows[reading][1].append(torch.from_numpy(classes[kept].astype(np.int64)))
                    rows[reading][2].append(torch.full((len(kept),), position))
        return {reading: Features.of(*parts, backbone.num_features, device)
                for reading, parts in rows.items()}  # fmt: skip

    @torch.no_grad()
    def score(
        self, backbone: nn.Module, autocast_dtype: torch.dtype | None = None
    ) -> dict[str, dict[str, ProbeScores]]:
        """Scores of each split's queries against the bank of the train sample, per reading:
        {split: {reading: scores}}."""
        was_training = backbone.training
        backbone.eval()
        try:
            banks = self.features(
                backbone, self.bank_tiles, self.settings.bank_patches, autocast_dtype
            )
            scores: dict[str, dict[str, ProbeScores]] = {}
            for split, tiles in self.query_tiles.items():
                queries = self.features(backbone, tiles, None, autocast_dtype)
                scores[split] = {
                    reading: self.vote(banks[reading], queries[reading], len(tiles))
                    for reading in READINGS
                }
        finally:
            backbone.train(was_training)
        return scores

    def vote(self, bank: "Features", queries: "Features", tiles: int) -> ProbeScores:
        """The k-NN classes of the queries, scored per query tile."""
        truth, tile = queries.classes, queries.tiles
        if len(bank.classes) == 0:  # nothing to vote: no score
            truth, tile = truth[:0], tile[:0]
        k, temperature = self.settings.k, self.settings.temperature
        predicted = (
            knn_predict(bank.rows, bank.classes, queries.rows, k, temperature, NUM_CLASSES)
            if len(truth)
            else truth
        )
        return scores_of(predicted, truth, tile, tiles)


class PatchGrid:
    """What the probe asks of a ViT's patch_embed: the token grid of an image size."""

    def __init__(self, patch: int):
        self.patch = patch

    def dynamic_feat_size(self, size: tuple[int, int]) -> tuple[int, int]:
        return size[0] // self.patch, size[1] // self.patch


class PatchMeans(nn.Module):
    """The probe's reference without a network: each 16 x 16 patch's mean of the normalised
    channels, as a fixed averaging convolution shaped like a ViT for the probe."""

    num_prefix_tokens = 0

    def __init__(self, channels: int = len(CHANNELS), patch: int = 16):
        super().__init__()
        self.num_features = channels
        self.patch_embed = PatchGrid(patch)
        self.average = nn.Conv2d(channels, channels, patch, stride=patch, bias=False)
        with torch.no_grad():
            self.average.weight.copy_(
                torch.eye(channels)[:, :, None, None].expand(-1, -1, patch, patch) / patch**2
            )

    def forward_features(self, images: torch.Tensor) -> torch.Tensor:
        return self.average(images).flatten(2).transpose(1, 2)


RANDOM_INIT = "random init (reference)"
PATCH_MEANS = "patch means (no network)"
SUPERVISED = "supervised reference (labels)"
# The tile bootstrap of the probe table: resamples of the query tiles (seeded with the
# probe's seed) and the level of the percentile intervals.
BOOTSTRAP_RESAMPLES = 1000
CONFIDENCE = 0.95
# ProbeScores attribute and sarssl.evaluation.metrics.SCORES name -> column of the probe table, per
# reading.
SCORES = ("accuracy", "miou")
SCORE_COLUMNS = {f"{reading}_{score}": (reading, score) for reading in READINGS for score in SCORES}


def interval_columns(column: str, point: float, samples: np.ndarray) -> dict[str, float]:
    low, high = percentile_interval(samples, CONFIDENCE)
    return {column: point, f"{column}_low": low, f"{column}_high": high}


def bootstrap_columns(
    scores: Mapping[str, ProbeScores], reference: str, seed: int, reading: str = PATCH
) -> dict[str, dict[str, float]]:
    """Per backbone: each score of one reading with its tile-bootstrap interval (`_low`,
    `_high`), and its gain over the `reference` backbone (`_gain`) with a paired interval:
    the same resampled tiles for both. `scores`: of backbones probed on the same query
    tiles."""
    names = list(scores)
    confusions = np.stack([scores[name].tile_confusions for name in names])
    samples = tile_bootstrap(confusions, BOOTSTRAP_RESAMPLES, seed)
    base = names.index(reference)
    columns = {}
    for i, name in enumerate(names):
        columns[name] = {}
        for score in SCORES:
            column = f"{reading}_{score}"
            point, draws = getattr(scores[name], score), samples[score]
            gain = point - getattr(scores[reference], score)
            columns[name] |= interval_columns(column, point, draws[i])
            columns[name] |= interval_columns(f"{column}_gain", gain, draws[i] - draws[base])
    return columns


def probe_table(
    source: str | Path,
    store: str | Path,
    settings: ProbeSettings,
    supervised: str | Path | None = None,
) -> pd.DataFrame:
    """The pre-trained backbone (teacher and student of a checkpoint, or the one of an
    export folder) and the references, a random-init ViT of the same architecture, the
    patch means without a network and, given the model of the supervised reference run
    (`supervised`, a tokens decoder's state dict), its ViT trained on the labels, probed on
    the val and test tiles of `store` with neighbours from its train tiles: one row per
    backbone and split, each score with its tile-bootstrap interval and its gain over
    random init with a paired interval."""
    if Path(source).is_dir():
        exported = load_backbone(source)
        reference, backbones = exported, {"pre-trained (exported)": exported.network}
    else:
        checkpoint = read_checkpoint(source)  # read once for both networks
        reference = backbone_of_checkpoint(checkpoint, "teacher")
        backbones = {
            "pre-trained (teacher)": reference.network,
            "pre-trained (student)": backbone_of_checkpoint(checkpoint, "student").network,
        }
    backbones[RANDOM_INIT] = reference.random_twin(settings.seed)
    backbones[PATCH_MEANS] = PatchMeans()
    if supervised is not None:
        state = torch.load(supervised, map_location="cpu", weights_only=True)
        backbones[SUPERVISED] = token_decoder_vit(state, reference.random_twin(settings.seed))
    device = default_device()
    probe = PatchProbe(
        split_tiles(store, ["train"]),
        {split: split_tiles(store, [split]) for split in ("val", "test")},
        reference.normalisation,
        settings,
    )
    scores = {name: probe.score(network.to(device)) for name, network in backbones.items()}
    rows = []
    for split, tiles in probe.query_tiles.items():
        columns: dict[str, dict[str, float]] = {name: {} for name in backbones}
        for reading in READINGS:
            reading_scores = {name: scores[name][split][reading] for name in backbones}
            for name, values in bootstrap_columns(
                reading_scores, RANDOM_INIT, settings.seed, reading
            ).items():
                columns[name] |= values
        rows += [
            {
                "pretrain": reference.name,
                "backbone": name,
                "split": split,
                **columns[name],
                "patches": scores[name][split][PATCH].patches,
                "query_tiles": len(tiles),
                "bank_tiles": len(probe.bank_tiles),
                "k": settings.k,
            }
            for name in backbones
        ]
    return pd.DataFrame(rows)


def probe_summary(table: pd.DataFrame) -> pd.DataFrame:
    """The probe table to read: each score with its interval in one cell, the gains over
    random init in points."""

    summary = table[["backbone", "split"]].copy()
    interval = f"[{CONFIDENCE:.0%} CI]"
    for column in SCORE_COLUMNS:
        name = column.replace("_", " ").replace("miou", "MIoU").replace("cls", "CLS")
        summary[f"{name} {interval}"] = interval_cells(table, column, 1, ".3f")
        summary[f"{name} gain (points) {interval}"] = interval_cells(
            table, f"{column}_gain", 100, "+.1f"
        )
    return summary.join(table[["patches", "query_tiles"]])
