"""Emergent segmentation scores (sarssl.evaluation.emergent) against values worked out by hand."""

import numpy as np
import pytest

from sarssl.dataset.worldcover import IGNORE_INDEX
from sarssl.evaluation.emergent import (
    head_scores,
    normalised_mutual_information,
    quantile_bins,
    roc_auc,
)

FRACTIONS = [0.1, 1.0]


def test_auc_and_nmi_against_hand_values():
    scores = np.array([0.1, 0.4, 0.35, 0.8])
    positive = np.array([False, False, True, True])
    # Pairs (positive > negative): 0.35>0.1, 0.8>0.1, 0.8>0.4 -> 3 of 4.
    assert roc_auc(scores, positive) == pytest.approx(0.75)
    assert roc_auc(np.array([1.0, 1.0]), np.array([True, False])) == pytest.approx(0.5)
    # Identical partitions (up to renaming): NMI 1; independent ones: 0.
    assert normalised_mutual_information(np.array([0, 0, 1, 1]), np.array([5, 5, 7, 7])) == 1.0
    assert normalised_mutual_information(
        np.array([0, 1, 0, 1]), np.array([0, 0, 1, 1])
    ) == pytest.approx(0.0)
    # a = (0,0,1,1), b = (0,0,0,1): H(a) = ln 2, H(b) = H(3/4, 1/4), H(a,b) = H(1/2,1/4,1/4).
    h = lambda *p: -sum(x * np.log(x) for x in p)  # noqa: E731
    mutual = h(0.5, 0.5) + h(0.75, 0.25) - h(0.5, 0.25, 0.25)
    expected = 2 * mutual / (h(0.5, 0.5) + h(0.75, 0.25))
    value = normalised_mutual_information(np.array([0, 0, 1, 1]), np.array([0, 0, 0, 1]))
    assert value == pytest.approx(expected)


def test_a_head_that_attends_to_one_class_scores_high_and_noise_does_not():
    rng = np.random.default_rng(0)
    classes = rng.integers(0, 3, size=(20, 8, 8))
    sharp = np.where(classes == 1, 1.0, 0.0) + 0.01 * rng.random(classes.shape)
    noise = rng.random(classes.shape)
    maps = np.stack([sharp, noise], axis=1)
    scores = head_scores(maps, classes, ["a", "b", "c"], IGNORE_INDEX)
    assert scores.loc[0, "best_class"] == "b" and scores.loc[0, "best_auc"] == pytest.approx(1.0)
    # Attention tells class b from a and c, not a from c: NMI well above the noise head's.
    assert scores.loc[0, "nmi"] > 0.3 and scores.loc[1, "nmi"] < 0.02
    assert scores.loc[1, "mean_auc"] < 0.56
    assert quantile_bins(np.arange(8.0).reshape(1, 2, 4), bins=4).tolist() == [
        [[0, 0, 1, 1], [2, 2, 3, 3]]
    ]
