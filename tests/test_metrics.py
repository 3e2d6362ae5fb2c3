"""MIoU from one confusion matrix (sarssl.metrics), against hand values and torchmetrics."""

import numpy as np
import pytest
import torch
from torchmetrics.classification import MulticlassJaccardIndex

from sarssl.dataset.worldcover import IGNORE_INDEX, NUM_CLASSES
from sarssl.metrics import ConfusionMatrix, mean_iou, per_class_iou


def test_iou_from_a_hand_made_confusion_matrix():
    # truth:     0 0 1 1 2 255      predicted: 0 1 1 1 0 2
    confusion = ConfusionMatrix(4, IGNORE_INDEX)
    confusion.update(torch.tensor([0, 1, 1, 1, 0, 2]), torch.tensor([0, 0, 1, 1, 2, 255]))
    counts = confusion.numpy()
    assert counts.tolist() == [[1, 1, 0, 0], [0, 2, 0, 0], [1, 0, 0, 0], [0, 0, 0, 0]]
    iou = per_class_iou(counts)
    # class 0: TP 1, FP 1, FN 1 -> 1/3; class 1: TP 2, FP 1 -> 2/3; class 2: TP 0, FN 1 -> 0;
    # class 3: absent from truth and predictions -> no IoU, left out of the mean.
    np.testing.assert_allclose(iou[:3], [1 / 3, 2 / 3, 0.0])
    assert np.isnan(iou[3])
    assert mean_iou(counts) == pytest.approx((1 / 3 + 2 / 3 + 0) / 3)


def test_miou_over_batches_equals_torchmetrics_on_the_whole_split():
    rng = np.random.default_rng(0)
    truth = torch.from_numpy(rng.integers(0, NUM_CLASSES - 2, size=(6, 16, 16)))  # 2 absent
    truth[:, :3] = IGNORE_INDEX
    predicted = torch.where(
        torch.from_numpy(rng.random((6, 16, 16)) < 0.6),
        truth.clamp_max(NUM_CLASSES - 1),
        torch.from_numpy(rng.integers(0, NUM_CLASSES - 1, size=(6, 16, 16))),
    )
    ours = ConfusionMatrix(NUM_CLASSES, IGNORE_INDEX)
    for batch in range(0, 6, 2):
        ours.update(predicted[batch : batch + 2], truth[batch : batch + 2])
    reference = MulticlassJaccardIndex(NUM_CLASSES, average="macro", ignore_index=IGNORE_INDEX)
    expected = reference(predicted, truth).item()
    assert mean_iou(ours.numpy()) == pytest.approx(expected, abs=1e-6)
    scores = []
    for batch in range(0, 6, 2):
        single = ConfusionMatrix(NUM_CLASSES, IGNORE_INDEX)
        single.update(predicted[batch : batch + 2], truth[batch : batch + 2])
        scores.append(mean_iou(single.numpy()))
    assert np.mean(scores) != pytest.approx(expected, abs=1e-4)  # why one matrix, not a mean
