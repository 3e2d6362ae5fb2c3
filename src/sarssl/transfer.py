"""The transfer benchmark: an exported backbone fine-tuned on a public Sentinel-1 task in
Sen1Floods11's layout (water / not water), against a U-Net from scratch on the same input.

The layout, the dataset's and PANGAEA's task's (found anywhere below the folder):

    S1Hand/<chip>_S1Hand.tif        VV and VH, float32 dB, bands named by their descriptions
    LabelHand/<chip>_LabelHand.tif  int16: -1 nodata, 0 not water, 1 water
    flood_train_data.csv, flood_valid_data.csv, flood_test_data.csv   (optional) the
        dataset's splits, rows "<chip>_S1Hand.tif,<chip>_LabelHand.tif"

Without the split files the chips are split 60/20/20 by a seeded draw. Every chip reaches
the models through the export's own `prepare` (sarssl.weights), as a user's input would:
one date replicated to the four seasons (`seasons="replicate"`), in dB, standardised by the
export's statistics. The runs are those of sarssl.settings.transfer, each trained as a run
of the grid (train_and_select: best epoch on val MIoU), each scored on every test chip; a
finished run's record is kept and read again when the benchmark is rerun.

The table, per model, initialisation and fraction: MIoU and water IoU, the mean over the
seeds, with a 95 % interval from a bootstrap of the test chips (the same resampled chips for
every seed and model, so that the gain over the U-Net from scratch is paired).
"""

import hashlib
import json
import logging
import socket
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import rasterio
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from sarssl.atomic import write_text_atomic
from sarssl.dataset.bands import CHANNELS
from sarssl.dataset.sen1floods11 import IMAGE_SUFFIX, LABEL_SUFFIX, SPLIT_FILES
from sarssl.dataset.worldcover import IGNORE_INDEX
from sarssl.devices import autocast, autocast_dtype, default_device, device_description
from sarssl.errors import InputError
from sarssl.evaluation.metrics import (
    ConfusionMatrix,
    interval_cells,
    mean_iou,
    per_class_iou,
    percentile_interval,
    tile_bootstrap,
)
from sarssl.models.backbone import load_backbone
from sarssl.models.segmentation import AttentionMapsUNet, Backbone, TileUNet, TokenDecoder
from sarssl.outputs.tables import frame_markdown
from sarssl.paths import WEIGHTS_NAME
from sarssl.settings.finetune import Init, Model, format_fraction, subset_size
from sarssl.settings.transfer import REFERENCE, WATER_CLASSES, TransferSettings, transfer_runs
from sarssl.training.finetune import RunData, fraction_subset, train_and_select
from sarssl.weights import Prepare, load

log = logging.getLogger(__name__)

NODATA_LABEL = -1
# Without the dataset's split files: the shares of a seeded draw of the chips.
DRAWN_SPLIT = {"train": 0.6, "val": 0.2, "test": 0.2}
NUM_WATER_CLASSES = len(WATER_CLASSES)
WATER = WATER_CLASSES.index("water")
BOOTSTRAP_RESAMPLES = 1000
CONFIDENCE = 0.95
SCORES = {"miou": mean_iou, "water_iou": lambda confusion: per_class_iou(confusion)[WATER]}


@dataclass(frozen=True)
class Chip:
    name: str
    image: Path
    label: Path


def chip_name(file_name: str) -> str:
    """`Spain_7370579` of `Spain_7370579_S1Hand.tif` (or of its `_LabelHand.tif`)."""
    return file_name.rsplit("_", 1)[0]


def find_chips(folder: str | Path) -> dict[str, Chip]:
    """Every chip below `folder` (in the dataset's S1Hand and LabelHand folders, or side by
    side) by name; an error names a chip that lacks its label."""
    folder = Path(folder)
    images = {chip_name(p.name): p for p in sorted(folder.rglob(f"*{IMAGE_SUFFIX}"))}
    labels = {chip_name(p.name): p for p in sorted(folder.rglob(f"*{LABEL_SUFFIX}"))}
    if not images:
        raise InputError(f"{folder}: no *{IMAGE_SUFFIX} file (Sen1Floods11's layout)")
    unlabelled = sorted(set(images) - set(labels))
    if unlabelled:
        raise InputError(
            f"{folder}: {images[unlabelled[0]]} has no {unlabelled[0]}{LABEL_SUFFIX}"
            + (f" (nor {len(unlabelled) - 1} more chips)" if len(unlabelled) > 1 else "")
        )
    return {name: Chip(name, images[name], labels[name]) for name in images}


def read_splits(folder: str | Path, chips: dict[str, Chip], seed: int) -> dict[str, list[Chip]]:
    """The dataset's split files where they are below `folder`, else a seeded draw of
    DRAWN_SPLIT; an error names a split file's chip that is missing, or an empty split."""
    folder = Path(folder)
    found = {split: sorted(folder.rglob(name)) for split, name in SPLIT_FILES.items()}
    if all(found.values()):
        splits = {}
        for split, (path, *_) in found.items():
            names = [chip_name(row.split(",")[0].strip()) for row in path.read_text().splitlines()]
            missing = [name for name in names if name and name not in chips]
            if missing:
                raise InputError(f"{path}: chip {missing[0]} is not in {folder}")
            splits[split] = [chips[name] for name in names if name]
    else:
        order = np.random.default_rng(seed).permutation(sorted(chips))
        train = round(DRAWN_SPLIT["train"] * len(order))
        val = round(DRAWN_SPLIT["val"] * len(order))
        bounds = {"train": (0, train), "val": (train, train + val), "test": (train + val, None)}
        splits = {split: [chips[n] for n in order[a:b]] for split, (a, b) in bounds.items()}
    empty = [split for split, members in splits.items() if not members]
    if empty:
        raise InputError(f"{folder}: {len(chips)} chips leave the {empty[0]} split empty")
    return splits


def read_label(chip: Chip) -> torch.Tensor:
    """The chip's classes (0 not water, 1 water) as a long tensor, nodata as IGNORE_INDEX;
    an error names a label file with any other value."""
    with rasterio.open(chip.label) as source:
        label = source.read(1)
    unknown = sorted(set(np.unique(label).tolist()) - {NODATA_LABEL, *range(NUM_WATER_CLASSES)})
    if unknown:
        raise InputError(
            f"{chip.label}: values {unknown[:5]}; expected {NODATA_LABEL} (nodata), 0 and 1"
        )
    classes = np.where(label == NODATA_LABEL, IGNORE_INDEX, label).astype(np.int64)
    return torch.from_numpy(classes)


class ChipTiles(Dataset):
    """Item i -> {"image": (12, y, x) as `prepare` makes it, "labels": (y, x)}."""

    def __init__(self, chips: Sequence[Chip], prepare: Prepare):
        self.chips, self.prepare = chips, prepare

    def __len__(self) -> int:
        return len(self.chips)

    def __getitem__(self, position: int) -> dict[str, torch.Tensor]:
        chip = self.chips[position]
        image = self.prepare(chip.image, units="dB", seasons="replicate")[0]
        labels = read_label(chip)
        if labels.shape != image.shape[-2:]:
            raise InputError(
                f"{chip.label}: {tuple(labels.shape)} px, its image {tuple(image.shape[-2:])}"
            )
        return {"image": image, "labels": labels}


def chip_px(chips: Sequence[Chip]) -> int:
    """The chips' common size (square); an error names a chip of another."""
    sizes = {}
    for chip in chips:
        with rasterio.open(chip.image) as source:
            sizes[chip.name] = (source.height, source.width)
    first = next(iter(sizes.values()))
    for name, size in sizes.items():
        if size != first or size[0] != size[1]:
            raise InputError(f"chip {name}: {size[0]} x {size[1]} px; every chip {first}")
    return first[0]


def build_model(settings: TransferSettings, export: str | Path, tile_px: int) -> nn.Module:
    """The run's network, initialised with its seed: the export's ViT with a grid decoder,
    or the U-Net on the 12 channels from scratch."""
    torch.manual_seed(settings.seed)
    if settings.model == Model.S1GRD_UNET:
        return TileUNet(None, len(CHANNELS), 0, NUM_WATER_CLASSES, tile_px, settings.width)
    vit = load_backbone(export).network
    backbone = Backbone(vit, frozen=settings.init == Init.FROZEN)
    if settings.model == Model.TOKENS_DECODER:
        return TokenDecoder(backbone, NUM_WATER_CLASSES, settings.width)
    heads = vit.blocks[-1].attn.num_heads
    return AttentionMapsUNet(backbone, heads, NUM_WATER_CLASSES, tile_px, settings.width)


@torch.no_grad()
def chip_confusions(
    model: nn.Module, data: Dataset, device: torch.device, precision: str
) -> np.ndarray:
    """(chips, class, class): the confusion matrix of each chip, in the data's order."""
    model.eval()
    confusions = []
    for batch in DataLoader(data, batch_size=1):
        with autocast(device.type, autocast_dtype(precision, device)):
            logits = model(batch["image"].to(device, memory_format=torch.channels_last))
        confusion = ConfusionMatrix(NUM_WATER_CLASSES, IGNORE_INDEX)
        confusion.update(logits.argmax(dim=1), batch["labels"].to(device))
        confusions.append(confusion.numpy())
    return np.stack(confusions)


def run_transfer(
    settings: TransferSettings,
    export: str | Path,
    splits: dict[str, list[Chip]],
    prepare: Prepare,
    tile_px: int,
) -> dict:
    """Train one run, select its epoch on val, score every test chip: its record. `prepare`:
    the export's; `tile_px`: the chips' size (chip_px)."""
    started = time.perf_counter()
    device = default_device()
    subset_size(settings.fraction, len(splits["train"]))  # an error if not one chip
    chosen = {**splits, "train": fraction_subset(splits["train"], settings.fraction, settings.seed)}
    data = RunData(chosen, {split: ChipTiles(chips, prepare) for split, chips in chosen.items()})
    model = build_model(settings, export, tile_px).to(device, memory_format=torch.channels_last)
    selected, history = train_and_select(model, data, settings, device, NUM_WATER_CLASSES)
    assert selected.state is not None  # the schema asks for at least one epoch
    model.load_state_dict(selected.state)
    confusions = chip_confusions(model, data.datasets["test"], device, settings.precision)
    total = confusions.sum(axis=0)
    wall_s = time.perf_counter() - started
    return {
        **settings.as_dict(),
        "miou": mean_iou(total),
        "water_iou": float(per_class_iou(total)[WATER]),
        "best_epoch": selected.epoch,
        "val_miou": selected.val_miou,
        "history": history,
        "chips": {split: [chip.name for chip in chips] for split, chips in chosen.items()},
        "test_chip_confusions": confusions.tolist(),
        "classes": list(WATER_CLASSES),
        "wall_time_s": wall_s,
        "device": device_description(device),
        "host": socket.gethostname(),
    }


def run_file(out: str | Path, settings: TransferSettings) -> Path:
    return Path(out) / settings.name / "metrics.json"


def run_benchmark(
    runs: Sequence[TransferSettings],
    export: str | Path,
    data: str | Path,
    out: str | Path,
    seed: int,
) -> list[dict]:
    """Every run's record, trained now or read from `out` where a finished run of the same
    settings, weights (their SHA-256) and chips left it."""
    chips = find_chips(data)
    splits = read_splits(data, chips, seed)
    log.info("%s: %s chips", data, {split: len(members) for split, members in splits.items()})
    weights = hashlib.sha256((Path(export) / WEIGHTS_NAME).read_bytes()).hexdigest()
    _, prepare = load(export)  # checks the export's contract once, before any training
    tile_px = chip_px(chips.values())
    names = {split: [chip.name for chip in members] for split, members in splits.items()}
    records = []
    for settings in runs:
        path = run_file(out, settings)
        key = {"settings": settings.as_dict(), "weights_sha256": weights, "splits": names}
        if path.is_file():
            kept = json.loads(path.read_text())
            if {name: kept.get(name) for name in key} == key:
                records.append(kept["record"])
                continue
        record = run_transfer(settings, export, splits, prepare, tile_px)
        scores = record["miou"], record["water_iou"]
        log.info("%s: MIoU %.4f, water IoU %.4f", settings.name, *scores)
        write_text_atomic(path, json.dumps(key | {"record": record}, indent=1))
        records.append(record)
    return records


def cell_samples(
    records: Sequence[dict], seed: int
) -> tuple[dict[str, float], dict[str, np.ndarray]]:
    """The cell's scores (the mean over its seeds) and their bootstrap samples: each seed's
    score on each resample of the test chips, averaged over the seeds."""
    confusions = np.stack([np.asarray(r["test_chip_confusions"]) for r in records])
    samples = tile_bootstrap(confusions, BOOTSTRAP_RESAMPLES, seed, SCORES)
    points = {name: float(np.mean([r[name] for r in records])) for name in SCORES}
    return points, {name: draws.mean(axis=0) for name, draws in samples.items()}


def transfer_table(records: Sequence[dict], seed: int = 0) -> pd.DataFrame:
    """Per model, initialisation and fraction: MIoU and water IoU (mean over the seeds) with
    their chip-bootstrap intervals, and the gain over the U-Net from scratch at the same
    fraction and seeds with a paired interval."""
    frame = pd.DataFrame(records)
    rows = []
    for (model, init, fraction), cell in frame.groupby(["model", "init", "fraction"], sort=False):
        reference = frame[
            (frame["model"] == REFERENCE[0])
            & (frame["init"] == REFERENCE[1])
            & (frame["fraction"] == fraction)
            & frame["seed"].isin(cell["seed"])
        ]
        points, draws = cell_samples(cell.to_dict("records"), seed)
        base_points, base_draws = cell_samples(reference.to_dict("records"), seed)
        row = {"model": model, "init": init, "fraction": fraction, "seeds": len(cell)}
        for name in SCORES:
            low, high = percentile_interval(draws[name], CONFIDENCE)
            gain_low, gain_high = percentile_interval(draws[name] - base_draws[name], CONFIDENCE)
            row |= {name: points[name], f"{name}_low": low, f"{name}_high": high}
            row |= {
                f"{name}_gain": points[name] - base_points[name],
                f"{name}_gain_low": gain_low,
                f"{name}_gain_high": gain_high,
            }
        row["test_chips"] = len(cell.iloc[0]["test_chip_confusions"])
        row["train_chips"] = len(cell.iloc[0]["chips"]["train"])
        rows.append(row)
    return pd.DataFrame(rows)


def table_summary(table: pd.DataFrame) -> pd.DataFrame:
    """The table to read: each score with its interval in one cell, gains in points."""

    summary = table[["model", "init"]].copy()
    summary["fraction %"] = table["fraction"].map(format_fraction)
    summary["seeds"] = table["seeds"]
    interval = f"[{CONFIDENCE:.0%} CI]"
    for name, title in (("miou", "MIoU"), ("water_iou", "water IoU")):
        summary[f"{title} {interval}"] = interval_cells(table, name, 1, ".3f")
        summary[f"{title} gain over U-Net (points) {interval}"] = interval_cells(
            table, f"{name}_gain", 100, "+.1f"
        )
    return summary.join(table[["train_chips", "test_chips"]])


def write_transfer(
    export: str | Path,
    data: str | Path,
    out: str | Path,
    section: dict,
    table_path: str | Path,
    markdown_path: str | Path | None = None,
) -> pd.DataFrame:
    """Run (or read) every run of a transfer section and write the table: the csv at
    `table_path`, the summary as markdown at `markdown_path`."""
    runs = transfer_runs(section)
    seed = runs[0].seed
    table = transfer_table(run_benchmark(runs, export, data, out, seed), seed)
    write_text_atomic(table_path, table.to_csv(index=False))
    if markdown_path is not None:
        title = f"Transfer of {export} to {Path(data).name}: water / not water"
        write_text_atomic(markdown_path, frame_markdown(table_summary(table), title))
    return table
