"""One run of the fine-tuning grid: a segmentation model trained on a fraction of the
labelled train tiles of the fine-tuning AOI, selected on validation MIoU, scored on test.

The models and initialisations, and a run's settings, are sarssl.settings.finetune.

Where the paper is silent: AdamW, lr 1e-3 for the decoder and 0.1 x that for a trained ViT,
no augmentation, inputs standardised with the pre-training's statistics (the AOI's own train
statistics for the S1GRD-only U-Net), best epoch on validation MIoU.
"""

import json
import logging
import math
import socket
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import xarray as xr
from torch import nn
from torch.utils.data import DataLoader, Dataset
from tqdm import tqdm

from sarssl.atomic import atomic_path, write_text_atomic
from sarssl.dataset.bands import CHANNELS
from sarssl.dataset.store import open_store
from sarssl.dataset.storeinfo import StoreInfo
from sarssl.dataset.worldcover import CLASSES, IGNORE_INDEX, NUM_CLASSES
from sarssl.devices import autocast, autocast_dtype, default_device, device_description
from sarssl.errors import ConfigError
from sarssl.evaluation.metrics import ConfusionMatrix, mean_iou, per_class_iou
from sarssl.models.backbone import create_backbone, load_backbone
from sarssl.models.dino import cosine_schedule
from sarssl.models.segmentation import AttentionMapsUNet, Backbone, TileUNet, TokenDecoder
from sarssl.settings.finetune import (
    FinetuneSettings,
    Init,
    Model,
    format_fraction,
    runs_vit,
    subset_size,
    uses_vit,
)
from sarssl.tiles.loader import LazyArrays, Normalisation, StoreTiles, TileRef, split_tiles
from sarssl.training.utils import parameter_groups

log = logging.getLogger(__name__)


def fraction_subset(tiles: list[TileRef], percent: float, seed: int) -> list[TileRef]:
    """The first `subset_size` tiles of the seed's permutation: the same seed draws the
    same subsets, and within one seed every smaller fraction's subset lies inside every
    larger one's; each seed draws its own."""
    order = np.random.default_rng(seed).permutation(len(tiles))
    chosen = np.sort(order[: subset_size(percent, len(tiles))])
    return [tiles[i] for i in chosen]


class SegmentationTiles(Dataset):
    """Item i -> {"image": (C, y, x), "labels": (y, x), "maps": (heads, h, w)} as needed."""

    def __init__(self, tiles: StoreTiles, attention_store: str | None, with_images: bool):
        self.tiles, self.attention_store, self.with_images = tiles, attention_store, with_images
        self.arrays = LazyArrays()

    def __len__(self) -> int:
        return len(self.tiles)

    def __getitem__(self, position: int) -> dict[str, torch.Tensor]:
        item = {"labels": self.tiles.labels(position)}
        if self.with_images:
            item["image"] = self.tiles.image(position)
        if self.attention_store:
            maps = self.arrays.get(self.attention_store, "attention")
            item["maps"] = torch.from_numpy(maps[self.tiles.tiles[position].index])
        return item


def run_tiles(
    settings: FinetuneSettings, tiles: list[TileRef], normalisation: Normalisation
) -> SegmentationTiles:
    """The inputs a run's model reads, of `tiles`."""
    # Only the attention U-Net on stored maps never looks at the SAR channels.
    with_images = settings.model != Model.ATTENTION_UNET or runs_vit(settings.model, settings.init)
    return SegmentationTiles(
        StoreTiles(tiles, normalisation), settings.attention_store, with_images
    )


def check_attention_store(attention_store: str, store: str) -> None:
    """The maps must be of this store's tiles, in its order."""
    maps = xr.open_zarr(attention_store)
    tiles = open_store(store)["tile"].values
    if maps.sizes["tile"] != len(tiles) or not (maps["tile"].values == tiles).all():
        raise ConfigError(f"{attention_store}: its tiles are not those of {store}")


def segmentation_model(
    model: str, init: str, vit: nn.Module | None, tile_px: int, width: int, upsampled: bool = False
) -> nn.Module:
    """The network of a run around `vit`: its frozen or trained backbone where the run runs
    a ViT, only its head count where it reads stored maps; None for the S1GRD U-Net.
    `upsampled`: the attention-map U-Net reads the maps upsampled to the tile, through SI
    Table 2's U-Net (finetune.attention_input; by default on the token grid)."""
    if vit is None:
        return TileUNet(None, len(CHANNELS), 0, NUM_CLASSES, tile_px, width)
    heads = vit.blocks[-1].attn.num_heads
    backbone = Backbone(vit, frozen=init == Init.FROZEN) if runs_vit(model, init) else None
    if model == Model.TOKENS_DECODER:
        return TokenDecoder(backbone, NUM_CLASSES, width)
    if model == Model.ATTENTION_UNET and not upsampled:
        return AttentionMapsUNet(backbone, heads, NUM_CLASSES, tile_px, width)
    channels = len(CHANNELS) if model == Model.S1GRD_ATTENTION_UNET else 0
    return TileUNet(backbone, channels, heads, NUM_CLASSES, tile_px, width)


def build_model(settings: FinetuneSettings) -> tuple[nn.Module, Normalisation]:
    """The run's model (ViT weights loaded or random) and its input normalisation."""
    store = StoreInfo.read(settings.store)
    tile_px = store.tile_px
    if not uses_vit(settings.model):
        model = segmentation_model(settings.model, settings.init, None, tile_px, settings.width)
        return model, Normalisation.pooled([store.normalisation])
    pretrained = load_backbone(settings.checkpoint, settings.backbone)
    vit = pretrained.network
    if settings.init == Init.SCRATCH:
        vit = create_backbone(pretrained.architecture, pretrained.tile_px)
    upsampled = settings.attention_input == "upsampled"
    model = segmentation_model(
        settings.model, settings.init, vit, tile_px, settings.width, upsampled
    )
    return model, pretrained.normalisation


def loader(dataset: Dataset, settings: FinetuneSettings, order: list[int] | None) -> DataLoader:
    """In `order` for training (a short last batch is dropped when there are more tiles
    than one batch: BatchNorm needs more than one value per channel), else in store order."""
    workers = settings.loader_workers
    return DataLoader(
        dataset,
        batch_size=settings.batch_size,
        sampler=order,
        shuffle=False,
        drop_last=order is not None and len(order) > settings.batch_size,
        num_workers=workers,
        multiprocessing_context="forkserver" if workers else None,
        generator=torch.Generator(),
    )


def forward(model: nn.Module, batch: dict, device: torch.device) -> torch.Tensor:
    inputs = [batch.get("image"), batch.get("maps")]
    return model(
        *(
            None
            if x is None
            else x.to(device, non_blocking=True, memory_format=torch.channels_last)
            for x in inputs
        )
    )


def train_epoch(
    model: nn.Module,
    data: DataLoader,
    optimizer: torch.optim.Optimizer,
    device: torch.device,
    settings: FinetuneSettings,
) -> float:
    """One pass of cross-entropy training (nodata ignored); the mean loss per tile."""
    model.train()
    loss_fn = nn.CrossEntropyLoss(ignore_index=IGNORE_INDEX)
    loss_sum, tiles = torch.zeros((), device=device), 0
    for batch in data:
        with autocast(device.type, autocast_dtype(settings.precision, device)):
            logits = forward(model, batch, device)
        loss = loss_fn(logits.float(), batch["labels"].to(device))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        loss_sum += loss.detach() * len(batch["labels"])
        tiles += len(batch["labels"])
    return loss_sum.item() / tiles  # one host sync per epoch


def make_optimizer(model: nn.Module, settings: FinetuneSettings) -> torch.optim.Optimizer:
    # Weight decay on every parameter, biases and norms too (unlike DINO's pre-training).
    groups = parameter_groups(
        model, {"backbone.": settings.backbone_lr_scale}, decay_biases_and_norms=True
    )
    return torch.optim.AdamW(
        [group | {"lr": settings.lr * group["lr_scale"]} for group in groups],
        weight_decay=settings.weight_decay,
    )


@torch.no_grad()
def evaluate(
    model: nn.Module,
    data: DataLoader,
    device: torch.device,
    precision: str,
    num_classes: int = NUM_CLASSES,
) -> np.ndarray:
    """The confusion matrix of every pixel of the split (WorldCover's classes, or another
    task's `num_classes`)."""
    model.eval()
    confusion = ConfusionMatrix(num_classes, IGNORE_INDEX)
    for batch in data:
        with autocast(device.type, autocast_dtype(precision, device)):
            logits = forward(model, batch, device)
        confusion.update(logits.argmax(dim=1), batch["labels"].to(device))
    return confusion.numpy()


@dataclass
class SelectedEpoch:
    """The epoch of the highest validation MIoU so far, with the model's state then (on the
    CPU): the one a run keeps, saves and scores on test."""

    epoch: int = -1
    val_miou: float = -math.inf
    state: dict[str, torch.Tensor] | None = None

    def offer(self, epoch: int, val_miou: float, model: nn.Module) -> None:
        """Keep this epoch if it is the first or beats the kept one on validation."""
        if self.state is None or val_miou > self.val_miou:
            self.epoch, self.val_miou = epoch, val_miou
            self.state = {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()}


@dataclass
class RunData:
    """A run's tiles per split (train: its fraction) and their data sets."""

    splits: dict[str, Sequence]  # the store's TileRefs, or a transfer task's chips
    datasets: dict[str, Dataset]


def run_data(settings: FinetuneSettings, normalisation: Normalisation) -> RunData:
    splits = {split: split_tiles(settings.store, [split]) for split in ("train", "val", "test")}
    splits["train"] = fraction_subset(splits["train"], settings.fraction, settings.seed)
    datasets = {split: run_tiles(settings, tiles, normalisation) for split, tiles in splits.items()}
    return RunData(splits, datasets)


def train_and_select(
    model: nn.Module,
    data: RunData,
    settings: FinetuneSettings,
    device: torch.device,
    num_classes: int = NUM_CLASSES,
) -> tuple[SelectedEpoch, list[dict]]:
    """Train every epoch, score each on validation; the selected epoch and the history.
    `settings`: those of a grid run, or anything with their training fields (a transfer
    run's)."""
    optimizer = make_optimizer(model, settings)
    # Each group's lr annealed by a cosine to 0 over the epochs, one value per epoch (the
    # paper is silent; DINO's linear evaluation does this).
    lr_factor = cosine_schedule(1.0, 0.0, settings.epochs, 1)
    peak_lrs = [group["lr"] for group in optimizer.param_groups]
    validation = loader(data.datasets["val"], settings, None)
    history, selected = [], SelectedEpoch()
    for epoch in tqdm(range(settings.epochs), desc=settings.name, file=sys.stderr, mininterval=30):
        for group, peak in zip(optimizer.param_groups, peak_lrs, strict=True):
            group["lr"] = peak * float(lr_factor[epoch])
        order = np.random.default_rng([settings.seed, epoch]).permutation(len(data.splits["train"]))
        train_data = loader(data.datasets["train"], settings, order.tolist())
        train_loss = train_epoch(model, train_data, optimizer, device, settings)
        if not math.isfinite(train_loss):
            raise FloatingPointError(f"{settings.name}: non-finite training loss in epoch {epoch}")
        val_miou = mean_iou(evaluate(model, validation, device, settings.precision, num_classes))
        history.append({"epoch": epoch, "train_loss": train_loss, "val_miou": val_miou})
        log.info("epoch %d: train loss %.4f, val MIoU %.4f", epoch, train_loss, val_miou)
        selected.offer(epoch, val_miou, model)
    return selected, history


def metrics_record(
    settings: FinetuneSettings,
    confusion: np.ndarray,
    selected: SelectedEpoch,
    history: list[dict],
    data: RunData,
    wall_s: float,
    device: torch.device,
) -> dict:
    """The run's metrics.json: its wildcards, the test scores, the selection and its cost."""
    iou = per_class_iou(confusion)
    return {
        "pretrain": settings.pretrain,
        "model": settings.model,
        "init": settings.init,
        "fraction": settings.fraction,
        "seed": settings.seed,
        "miou": finite_or_none(mean_iou(confusion)),
        "per_class_iou": {c.name: finite_or_none(v) for c, v in zip(CLASSES, iou, strict=True)},
        "confusion_matrix": confusion.tolist(),
        "confusion_matrix_axes": "rows: true class, columns: predicted class (class order)",
        "classes": [c.name for c in CLASSES],
        "best_epoch": selected.epoch,
        "val_miou": finite_or_none(selected.val_miou),
        "epochs": settings.epochs,
        "history": history,
        "tiles": {split: len(tiles) for split, tiles in data.splits.items()},
        "wall_time_s": wall_s,
        "device": device_description(device),
        "gpu_hours": wall_s / 3600 if device.type == "cuda" else 0.0,
        "host": socket.gethostname(),
    }


def finetune(
    settings: FinetuneSettings, model_path: str | Path | None = None
) -> tuple[dict, dict[str, np.ndarray]]:
    """Train, select on validation, score on test; return the metrics record and the
    predictions of the first `prediction_tiles` test tiles. With `model_path`, the selected
    epoch's state dict is saved there (atomically), for predicting other tiles later."""
    started = time.perf_counter()
    device = default_device()
    torch.manual_seed(settings.seed)
    if settings.attention_store:
        check_attention_store(settings.attention_store, settings.store)
    model, normalisation = build_model(settings)
    # channels_last: the convolutions' fast layout on CPUs (about 1.4 x here) and GPUs.
    model = model.to(device, memory_format=torch.channels_last)
    data = run_data(settings, normalisation)
    log.info(
        "%s on %s: %d train tiles (%s %%), %d val, %d test; %d trainable parameters",
        settings.name,
        device_description(device),
        len(data.splits["train"]),
        format_fraction(settings.fraction),
        len(data.splits["val"]),
        len(data.splits["test"]),
        sum(p.numel() for p in model.parameters() if p.requires_grad),
    )
    selected, history = train_and_select(model, data, settings, device)
    assert selected.state is not None  # the schema asks for at least one epoch
    model.load_state_dict(selected.state)
    if model_path is not None:
        with atomic_path(model_path) as tmp:
            torch.save(selected.state, tmp)
    test = loader(data.datasets["test"], settings, None)
    confusion = evaluate(model, test, device, settings.precision)
    examples = predict(model, data.datasets["test"], settings.prediction_tiles, device, settings)
    shown = data.splits["test"][: len(examples["predicted"])]
    tile_ids = open_store(settings.store)["tile"].values
    examples["tile"] = np.array([str(tile_ids[t.index]) for t in shown])
    wall_s = time.perf_counter() - started
    return metrics_record(settings, confusion, selected, history, data, wall_s, device), examples


@torch.no_grad()
def predict(
    model: nn.Module, dataset: Dataset, count: int, device: torch.device, settings: FinetuneSettings
) -> dict[str, np.ndarray]:
    """Predicted classes (uint8) of the first `count` items of `dataset`."""
    model.eval()
    predicted = [
        predict_item(model, dataset[i], device, settings.precision)
        for i in range(min(count, len(dataset)))
    ]
    empty = np.zeros((0, 0, 0), dtype=np.uint8)
    return {"predicted": np.stack(predicted).astype(np.uint8) if predicted else empty}


def predict_item(
    model: nn.Module, item: dict[str, torch.Tensor], device: torch.device, precision: str
) -> np.ndarray:
    """The predicted class indices (y, x) of one item of a run's tiles (run_tiles)."""
    batch = {key: value[None] for key, value in item.items()}
    with autocast(device.type, autocast_dtype(precision, device)):
        return forward(model, batch, device).argmax(dim=1)[0].cpu().numpy()


def finite_or_none(value: float) -> float | None:
    return float(value) if math.isfinite(value) else None


def write_metrics(
    settings: FinetuneSettings,
    metrics_path: str | Path,
    predictions_path: str | Path,
    model_path: str | Path,
) -> dict:
    """Run; write the model and the example predictions, then metrics.json (each
    atomically: metrics.json exists only for a complete run)."""
    record, examples = finetune(settings, model_path)
    with atomic_path(predictions_path) as tmp, open(tmp, "wb") as stream:
        np.savez_compressed(stream, **examples)
    write_text_atomic(metrics_path, json.dumps(record, indent=2, allow_nan=False))
    return record
