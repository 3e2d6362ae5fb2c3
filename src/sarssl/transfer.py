"""The transfer benchmark: an exported backbone fine-tuned on a public Sentinel-1 segmentation
task in its dataset's own layout (sarssl.settings.transfer.TRANSFER_TASKS: Sen1Floods11's
water / not water, Copernicus-Bench's DFC2020-S1 land cover), against a U-Net from scratch
on the same input.

The chips are found and split as their layout says (sarssl.dataset.transfer_task): the
dataset's split files when present, else a seeded 60/20/20 draw. Every chip reaches the
models through the export's own `prepare` (sarssl.weights), as a user's input would: one
date replicated to the four seasons (`seasons="replicate"`), in dB, standardised by the
export's statistics; bands by their names where the file has them, else in the layout's
order. The runs are those of sarssl.settings.transfer, each trained as a run of the grid
(train_and_select: best epoch on val MIoU), each scored on every test chip; a finished
run's record is kept and read again when the benchmark is rerun.

The table, per model, initialisation and fraction: MIoU (and the IoU of the task's focus
class, Sen1Floods11's water), the mean over the seeds, with a 95 % interval from a
bootstrap of the test chips (the same resampled chips for every seed and model, so that the
gain over the U-Net from scratch is paired).
"""

import hashlib
import json
import logging
import socket
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import rasterio
import rioxarray
import torch
import xarray as xr
from torch import nn
from torch.utils.data import DataLoader, Dataset

from sarssl.atomic import write_text_atomic
from sarssl.dataset.bands import CHANNELS
from sarssl.dataset.transfer_task import Chip, TransferTask
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
from sarssl.settings.transfer import REFERENCE, TransferSettings, transfer_runs, transfer_task
from sarssl.training.finetune import RunData, fraction_subset, train_and_select
from sarssl.weights import Prepare, load

log = logging.getLogger(__name__)

BOOTSTRAP_RESAMPLES = 1000
CONFIDENCE = 0.95


def task_scores(task: TransferTask) -> dict[str, Callable[[np.ndarray], float]]:
    """The table's scores of a confusion matrix: the MIoU, and the IoU of the task's focus
    class where it has one (`<class>_iou`)."""
    scores: dict[str, Callable[[np.ndarray], float]] = {"miou": mean_iou}
    if task.focus_class is not None:
        focus = task.focus_index
        scores[f"{task.focus_class}_iou"] = lambda confusion: float(per_class_iou(confusion)[focus])
    return scores


def chip_image(chip: Chip, task: TransferTask) -> Path | xr.DataArray:
    """What `prepare` reads of a chip: its file where the bands are named (descriptions),
    else its bands named in the layout's order; an error names a file with another count."""
    with rasterio.open(chip.image) as source:
        if all(source.descriptions):
            return chip.image
        count = source.count
    if count != len(task.band_order):
        raise InputError(
            f"{chip.image}: {count} unnamed bands; {task.title}'s layout has {task.band_order}"
        )
    data = rioxarray.open_rasterio(chip.image, masked=True)
    data.attrs.pop("long_name", None)
    return data.assign_coords(band=list(task.band_order))


class ChipTiles(Dataset):
    """Item i -> {"image": (12, y, x) as `prepare` makes it, "labels": (y, x)}."""

    def __init__(self, chips: Sequence[Chip], prepare: Prepare, task: TransferTask):
        self.chips, self.prepare, self.task = chips, prepare, task

    def __len__(self) -> int:
        return len(self.chips)

    def __getitem__(self, position: int) -> dict[str, torch.Tensor]:
        chip = self.chips[position]
        image = self.prepare(chip_image(chip, self.task), units="dB", seasons="replicate")[0]
        labels = torch.from_numpy(self.task.read_classes(chip))
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


def build_model(
    settings: TransferSettings, export: str | Path, tile_px: int, classes: int
) -> nn.Module:
    """The run's network, initialised with its seed: the export's ViT with a grid decoder,
    or the U-Net on the 12 channels from scratch."""
    torch.manual_seed(settings.seed)
    if settings.model == Model.S1GRD_UNET:
        return TileUNet(None, len(CHANNELS), 0, classes, tile_px, settings.width)
    vit = load_backbone(export).network
    backbone = Backbone(vit, frozen=settings.init == Init.FROZEN)
    if settings.model == Model.TOKENS_DECODER:
        return TokenDecoder(backbone, classes, settings.width)
    heads = vit.blocks[-1].attn.num_heads
    return AttentionMapsUNet(backbone, heads, classes, tile_px, settings.width)


@torch.no_grad()
def chip_confusions(
    model: nn.Module, data: Dataset, device: torch.device, precision: str, classes: int
) -> np.ndarray:
    """(chips, class, class): the confusion matrix of each chip, in the data's order."""
    model.eval()
    confusions = []
    for batch in DataLoader(data, batch_size=1):
        with autocast(device.type, autocast_dtype(precision, device)):
            logits = model(batch["image"].to(device, memory_format=torch.channels_last))
        confusion = ConfusionMatrix(classes, IGNORE_INDEX)
        confusion.update(logits.argmax(dim=1), batch["labels"].to(device))
        confusions.append(confusion.numpy())
    return np.stack(confusions)


def run_transfer(
    settings: TransferSettings,
    task: TransferTask,
    export: str | Path,
    splits: dict[str, list[Chip]],
    prepare: Prepare,
    tile_px: int,
) -> dict:
    """Train one run, select its epoch on val, score every test chip: its record. `prepare`:
    the export's; `tile_px`: the chips' size (chip_px)."""
    started = time.perf_counter()
    device = default_device()
    classes = len(task.classes)
    subset_size(settings.fraction, len(splits["train"]))  # an error if not one chip
    chosen = {**splits, "train": fraction_subset(splits["train"], settings.fraction, settings.seed)}
    datasets = {split: ChipTiles(chips, prepare, task) for split, chips in chosen.items()}
    data = RunData(chosen, datasets)
    model = build_model(settings, export, tile_px, classes)
    model = model.to(device, memory_format=torch.channels_last)
    selected, history = train_and_select(model, data, settings, device, classes)
    assert selected.state is not None  # the schema asks for at least one epoch
    model.load_state_dict(selected.state)
    confusions = chip_confusions(model, data.datasets["test"], device, settings.precision, classes)
    total = confusions.sum(axis=0)
    wall_s = time.perf_counter() - started
    return {
        **settings.as_dict(),
        **{name: score(total) for name, score in task_scores(task).items()},
        "best_epoch": selected.epoch,
        "val_miou": selected.val_miou,
        "history": history,
        "chips": {split: [chip.name for chip in chips] for split, chips in chosen.items()},
        "test_chip_confusions": confusions.tolist(),
        "task": task.name,
        "classes": list(task.classes),
        "wall_time_s": wall_s,
        "device": device_description(device),
        "host": socket.gethostname(),
    }


def run_file(out: str | Path, settings: TransferSettings) -> Path:
    return Path(out) / settings.name / "metrics.json"


def run_benchmark(
    runs: Sequence[TransferSettings],
    task: TransferTask,
    export: str | Path,
    data: str | Path,
    out: str | Path,
    seed: int,
) -> list[dict]:
    """Every run's record, trained now or read from `out` where a finished run of the same
    task, settings, weights (their SHA-256) and chips left it."""
    chips = task.find_chips(data)
    splits = task.read_splits(data, chips, seed)
    log.info("%s: %s chips", data, {split: len(members) for split, members in splits.items()})
    weights = hashlib.sha256((Path(export) / WEIGHTS_NAME).read_bytes()).hexdigest()
    _, prepare = load(export)  # checks the export's contract once, before any training
    tile_px = chip_px(list(chips.values()))
    names = {split: [chip.name for chip in members] for split, members in splits.items()}
    records = []
    for settings in runs:
        path = run_file(out, settings)
        key = {
            "task": task.name,
            "settings": settings.as_dict(),
            "weights_sha256": weights,
            "splits": names,
        }
        if path.is_file():
            kept = json.loads(path.read_text())
            if {name: kept.get(name) for name in key} == key:
                records.append(kept["record"])
                continue
        record = run_transfer(settings, task, export, splits, prepare, tile_px)
        scores = ", ".join(f"{name} {record[name]:.4f}" for name in task_scores(task))
        log.info("%s: %s", settings.name, scores)
        write_text_atomic(path, json.dumps(key | {"record": record}, indent=1))
        records.append(record)
    return records


def cell_samples(
    records: Sequence[dict], task: TransferTask, seed: int
) -> tuple[dict[str, float], dict[str, np.ndarray]]:
    """The cell's scores (the mean over its seeds) and their bootstrap samples: each seed's
    score on each resample of the test chips, averaged over the seeds."""
    scores = task_scores(task)
    confusions = np.stack([np.asarray(r["test_chip_confusions"]) for r in records])
    samples = tile_bootstrap(confusions, BOOTSTRAP_RESAMPLES, seed, scores)
    points = {name: float(np.mean([r[name] for r in records])) for name in scores}
    return points, {name: draws.mean(axis=0) for name, draws in samples.items()}


def transfer_table(records: Sequence[dict], task: TransferTask, seed: int = 0) -> pd.DataFrame:
    """Per model, initialisation and fraction: the task's scores (mean over the seeds) with
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
        points, draws = cell_samples(cell.to_dict("records"), task, seed)
        base_points, base_draws = cell_samples(reference.to_dict("records"), task, seed)
        row = {"model": model, "init": init, "fraction": fraction, "seeds": len(cell)}
        for name in task_scores(task):
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


def score_title(name: str) -> str:
    """`MIoU`, `water IoU`: a score's column title."""
    return "MIoU" if name == "miou" else f"{name.removesuffix('_iou')} IoU"


def table_summary(table: pd.DataFrame, task: TransferTask) -> pd.DataFrame:
    """The table to read: each score with its interval in one cell, gains in points."""
    summary = table[["model", "init"]].copy()
    summary["fraction %"] = table["fraction"].map(format_fraction)
    summary["seeds"] = table["seeds"]
    interval = f"[{CONFIDENCE:.0%} CI]"
    for name in task_scores(task):
        title = score_title(name)
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
    """Run (or read) every run of a transfer section on its task and write the table: the
    csv at `table_path`, the summary as markdown at `markdown_path`."""
    task = transfer_task(section)
    runs = transfer_runs(section)
    seed = runs[0].seed
    table = transfer_table(run_benchmark(runs, task, export, data, out, seed), task, seed)
    write_text_atomic(table_path, table.to_csv(index=False))
    if markdown_path is not None:
        title = f"Transfer of {export} to {Path(data).name} ({task.title})"
        write_text_atomic(markdown_path, frame_markdown(table_summary(table, task), title))
    return table
