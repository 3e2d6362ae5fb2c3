"""Segmentation metrics from one confusion matrix accumulated over a whole split.

MIoU is computed once from the confusion matrix of every pixel of the split, never as a
mean of per-batch or per-tile scores (which would weight small tiles and rare classes
wrongly). Pixels labelled `ignore_index` (WorldCover nodata, pixels without SAR data) are
left out.

IoU of class c = TP / (TP + FP + FN). A class absent from both the truth and the predictions
of the whole split has no IoU (NaN in `per_class_iou`) and is left out of the mean, as
torchmetrics' MulticlassJaccardIndex(average="macro") does; a class present in either one
counts, with IoU 0 if never predicted right.
"""

import numpy as np
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
