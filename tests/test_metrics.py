"""MIoU from one confusion matrix (sarssl.evaluation.metrics), against hand values and torchmetrics;
the tile bootstrap against resamples that can be enumerated."""

import numpy as np
import pytest
import torch
from torchmetrics.classification import MulticlassJaccardIndex

from sarssl.dataset.worldcover import IGNORE_INDEX, NUM_CLASSES
from sarssl.evaluation.metrics import (
    ConfusionMatrix,
    accuracy,
    mean_iou,
    per_class_iou,
    percentile_interval,
    tile_bootstrap,
)


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


def test_the_tile_bootstrap_draws_tiles_with_replacement_and_scores_their_sum():
    # Two tiles: A, 3 patches of class 0 predicted right; B, 1 patch of class 1 predicted 0.
    # A resample is AA (probability 1/4, accuracy 1), AB or BA (1/2, 3/4) or BB (1/4, 0).
    tile_a, tile_b = np.array([[3, 0], [0, 0]]), np.array([[0, 0], [1, 0]])
    samples = tile_bootstrap(np.stack([tile_a, tile_b])[None], 4000, seed=0)["accuracy"][0]
    values, counts = np.unique(samples, return_counts=True)
    assert values.tolist() == [0.0, 0.75, 1.0]
    np.testing.assert_allclose(counts / 4000, [0.25, 0.5, 0.25], atol=0.03)
    assert percentile_interval(samples) == (0.0, 1.0)
    # MIoU of the sums: AA [[2,0],[0,0]] -> 1; AB [[1,1],[0,1]] -> (1/2 + 1/2) / 2;
    # BB [[0,2],[0,2]] -> (0 + 2/4) / 2.
    tile_a, tile_b = np.array([[1, 0], [0, 0]]), np.array([[0, 1], [0, 1]])
    miou = tile_bootstrap(np.stack([tile_a, tile_b])[None], 400, seed=0)["miou"][0]
    assert np.unique(miou).tolist() == [0.25, 0.5, 1.0]


def test_bootstrap_intervals_hold_the_estimate_and_shrink_to_it_for_identical_tiles():
    rng = np.random.default_rng(1)
    tiles = rng.integers(0, 20, size=(30, 4, 4))
    samples = tile_bootstrap(tiles[None], 500, seed=0)
    for name, score in (("accuracy", accuracy), ("miou", mean_iou)):
        low, high = percentile_interval(samples[name][0])
        assert low < score(tiles.sum(axis=0)) < high
    same = np.repeat(tiles[:1], 30, axis=0)
    samples = tile_bootstrap(same[None], 200, seed=0)
    assert percentile_interval(samples["accuracy"][0]) == pytest.approx((accuracy(same[0]),) * 2)


def test_models_are_resampled_on_the_same_tiles_so_their_difference_is_paired():
    rng = np.random.default_rng(2)
    first = rng.integers(0, 20, size=(30, 4, 4))
    better = first + np.eye(4, dtype=np.int64) * 5  # 20 more right per tile
    samples = tile_bootstrap(np.stack([first, first, better]), 300, seed=0)["accuracy"]
    assert percentile_interval(samples[1] - samples[0]) == (0.0, 0.0)
    assert (samples[2] > samples[0]).all()  # true of every paired resample
    again = tile_bootstrap(np.stack([first]), 300, seed=0)["accuracy"]
    np.testing.assert_array_equal(again[0], samples[0])  # seeded


def test_a_bootstrap_without_tiles_has_no_interval():
    samples = tile_bootstrap(np.zeros((1, 0, 3, 3), dtype=np.int64), 10, seed=0)
    assert np.isnan(samples["accuracy"]).all() and np.isnan(samples["miou"]).all()
