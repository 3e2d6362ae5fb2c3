"""Segmentation metrics from one confusion matrix accumulated over a whole split, and their
tile-bootstrap confidence intervals.

MIoU is computed once from the confusion matrix of every pixel of the split, never as a
mean of per-batch or per-tile scores (which would weight small tiles and rare classes
wrongly). Pixels labelled `ignore_index` (WorldCover nodata, pixels without SAR data) are
left out.

IoU of class c = TP / (TP + FP + FN). A class absent from both the truth and the predictions
of the whole split has no IoU (NaN in `per_class_iou`) and is left out of the mean, as
torchmetrics' MulticlassJaccardIndex(average="macro") does; a class present in either one
counts, with IoU 0 if never predicted right.

Confidence intervals resample tiles, not pixels: the pixels (or patches) of a tile are not
independent draws, the tiles of a split sample are (`tile_bootstrap`).
"""

from collections.abc import Callable, Mapping

import numpy as np
import pandas as pd
import torch


class ConfusionMatrix:
    """counts[true, predicted], accumulated on the device of the first update."""

    def __init__(self, num_classes: int, ignore_index: int):
        self.num_classes, self.ignore_index = num_classes, ignore_index
        self.counts: torch.Tensor | None = None

    def update(self, predicted: torch.Tensor, truth: torch.Tensor) -> None:
        keep = truth != self.ignore_index
        pairs = truth[keep].long() * self.num_classes + predicted[keep].long()
        counts = torch.bincount(pairs, minlength=self.num_classes**2).reshape(
            self.num_classes, self.num_classes
        )
        self.counts = counts if self.counts is None else self.counts + counts

    def numpy(self) -> np.ndarray:
        if self.counts is None:
            return np.zeros((self.num_classes, self.num_classes), dtype=np.int64)
        return self.counts.cpu().numpy().astype(np.int64)


def per_class_iou(confusion: np.ndarray) -> np.ndarray:
    """IoU per class; NaN for a class absent from both truth and predictions."""
    confusion = confusion.astype(np.float64)
    true_positive = np.diag(confusion)
    union = confusion.sum(axis=0) + confusion.sum(axis=1) - true_positive
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(union > 0, true_positive / union, np.nan)


def mean_iou(confusion: np.ndarray) -> float:
    iou = per_class_iou(confusion)
    return float(np.nanmean(iou)) if np.isfinite(iou).any() else float("nan")


def accuracy(confusion: np.ndarray) -> float:
    """Share of the counted pixels (or patches) predicted right; NaN when none is counted."""
    total = confusion.sum()
    return float(np.trace(confusion) / total) if total else float("nan")


# The scores a bootstrap resamples, as computed for the point estimates.
SCORES = {"accuracy": accuracy, "miou": mean_iou}


def tile_bootstrap(
    tile_confusions: np.ndarray,
    resamples: int,
    seed: int,
    scores: Mapping[str, Callable[[np.ndarray], float]] = SCORES,
) -> dict[str, np.ndarray]:
    """Tile-bootstrap samples of `scores` (accuracy and MIoU) of one or more models.

    `tile_confusions` (models, tiles, class, class): a confusion matrix per model and tile,
    every model over the same tiles. Each resample draws as many tiles with replacement
    (seeded), the same draw for every model so that differences between models are paired,
    sums the drawn tiles' matrices and scores the sum as the point estimate scores the sum
    over all tiles. Returns {score: (models, resamples)}; a resample without any counted
    pixel scores NaN.
    """
    tiles = tile_confusions.shape[1]
    index = np.random.default_rng(seed).integers(tiles, size=(resamples, tiles))
    drawn = np.zeros((resamples, tiles), dtype=np.int64)  # times each tile is drawn
    np.add.at(drawn, (np.arange(resamples)[:, None], index), 1)
    resampled = np.einsum("rt,mtij->mrij", drawn, tile_confusions)
    return {
        name: np.array([[score(confusion) for confusion in model] for model in resampled])
        for name, score in scores.items()
    }


def percentile_interval(samples: np.ndarray, level: float = 0.95) -> tuple[float, float]:
    """The central `level` interval of bootstrap samples (percentile method); NaN samples
    (resamples without a score) left out."""
    tail = (1 - level) / 2
    low, high = np.nanquantile(samples, [tail, 1 - tail])
    return float(low), float(high)


def interval_cells(table: pd.DataFrame, column: str, scale: float, form: str) -> pd.Series:
    """Each row's `column` with its interval (`_low`, `_high` columns) as one table cell,
    "point [low, high]", the values times `scale` in `form`."""

    def cell(row: pd.Series) -> str:
        point, low, high = (row[f"{column}{end}"] * scale for end in ("", "_low", "_high"))
        return f"{point:{form}} [{low:{form}}, {high:{form}}]"

    return table.apply(cell, axis=1)
