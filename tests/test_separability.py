"""The separability classifiers against answers known by construction, the samples of a
tile, and the table of the tiny store."""

import shutil

import numpy as np
import pandas as pd
import pytest
import torch
import zarr

from sarssl.dataset.worldcover import IGNORE_INDEX
from sarssl.evaluation.probe import scores_of
from sarssl.evaluation.separability import (
    COLUMNS,
    INPUTS,
    classifiers,
    context_row,
    goal_lines,
    separability_table,
    tile_samples,
)
from sarssl.settings.separability import SeparabilitySettings

SETTINGS = SeparabilitySettings(k=15, bank=500, seed=3)
CHANNELS = 12


def scores(predicted: np.ndarray, truth: np.ndarray) -> tuple[float, float]:
    result = scores_of(torch.from_numpy(predicted.astype(np.int64)), torch.from_numpy(truth))
    return result.accuracy, result.miou


def draw(rng: np.random.Generator, classes: np.ndarray, means: dict[int, float], spread: float):
    """(n, CHANNELS) features around each sample's class mean."""
    centres = np.array([means[c] for c in classes])[:, None]
    return (centres + spread * rng.standard_normal((len(classes), CHANNELS))).astype(np.float32)


@pytest.mark.parametrize("name", ["naive Bayes", "LDA", "k-NN"])
def test_classes_far_apart_are_classified_perfectly(name):
    rng = np.random.default_rng(0)
    means = {0: -10.0, 4: 0.0, 7: 10.0}  # class index -> mean of every channel
    train_y, test_y = (rng.choice(list(means), n, p=[0.5, 0.3, 0.2]) for n in (600, 300))
    train, test = draw(rng, train_y, means, 0.5), draw(rng, test_y, means, 0.5)
    predicted = classifiers(SETTINGS)[name](train, train_y, test)
    assert scores(predicted, test_y) == (1.0, 1.0)


@pytest.mark.parametrize("name", ["majority class", "naive Bayes", "LDA", "k-NN"])
def test_classes_alike_are_no_better_than_the_majority(name):
    """80 % class 2, 20 % class 5, the same features: every classifier falls back on the
    prior. Always predicting class 2 scores accuracy 0.8 and IoU 0.8 for class 2 (TP = 0.8 n,
    FP = 0.2 n, FN = 0), 0 for class 5 (never predicted, present in the truth): MIoU 0.4.
    The k-NN's 15 neighbours outvote the majority with probability P(Bin(15, 0.2) >= 8) =
    0.4 %."""
    rng = np.random.default_rng(1)
    train_y = np.repeat([2, 5], [1600, 400])
    test_y = np.repeat([2, 5], [800, 200])
    train, test = (
        draw(rng, train_y, {2: 0.0, 5: 0.0}, 1.0),
        draw(rng, test_y, {2: 0.0, 5: 0.0}, 1.0),
    )
    predicted = classifiers(SETTINGS)[name](train, train_y, test)
    accuracy, miou = scores(predicted, test_y)
    tolerance = 0 if name == "majority class" else 0.02
    assert accuracy == pytest.approx(0.8, abs=tolerance)
    assert miou == pytest.approx(0.4, abs=tolerance)


def test_tile_samples_keep_labelled_pixels_with_data_and_mostly_labelled_patches():
    image = np.arange(2 * 32 * 32, dtype=np.float32).reshape(2, 32, 32)
    labels = np.full((32, 32), 3, dtype=np.uint8)
    labels[:16, :16] = IGNORE_INDEX  # top left patch unlabelled: left out
    image[0, 16:, :16] = np.nan  # bottom left patch: no SAR data, labelled: left out
    image[1, :16, 16:20] = np.nan  # top right patch: its mean over 12 of 16 columns
    settings = SeparabilitySettings(pixels_per_tile=10_000, patch_px=16)
    samples = tile_samples(image, labels, settings, np.random.default_rng(0))

    pixels, pixel_classes = samples["pixel"]
    assert len(pixels) == 32 * 32 - 256 - 256 - 16 * 4  # all but the gaps and the unlabelled
    assert np.isfinite(pixels).all() and (pixel_classes == 3).all()
    patches, patch_classes = samples["patch mean"]
    assert patch_classes.tolist() == [3, 3]  # top right, bottom right
    top_right = image[:, :16, 20:32].reshape(2, -1).mean(axis=1)
    np.testing.assert_allclose(patches[0], top_right)
    np.testing.assert_allclose(patches[1], image[:, 16:, 16:].reshape(2, -1).mean(axis=1))

    fewer = tile_samples(
        image, labels, SeparabilitySettings(pixels_per_tile=50), np.random.default_rng(0)
    )
    assert len(fewer["pixel"][0]) == 50


def test_table_of_the_tiny_store(tiny_store):
    settings = SeparabilitySettings(pixels_per_tile=64, bank=400, seed=5)
    table = separability_table(tiny_store, settings)
    expected = [(name, c) for name, names in INPUTS.items() for c in names]
    assert list(zip(table["input"], table["classifier"], strict=True)) == expected
    assert table[["accuracy", "miou"]].apply(lambda v: v.between(0, 1)).all().all()
    pixels = table[table["input"] == "pixel"]
    # 26 train tiles, at most 64 pixels each; the tiny tiles hold four 16 px patches each.
    assert (pixels["train_samples"] <= 26 * 64).all() and (pixels["test_samples"] > 0).all()
    assert (table.loc[table["input"] == "patch mean", "train_samples"] <= 26 * 4).all()
    # Seeded: the same table again.
    assert separability_table(tiny_store, settings).equals(table)


def test_a_store_without_test_tiles_gives_an_empty_table_not_an_error(tiny_store, tmp_path):
    """A small AOI may have no valid test tile: nothing to score, and the DAG goes on."""
    store = tmp_path / "no-test.zarr"
    shutil.copytree(tiny_store, store)
    split = zarr.open_group(store, mode="r+")["split"]
    split[:] = np.where(split[:] == "test", "val", split[:])
    table = separability_table(store, SeparabilitySettings(pixels_per_tile=16))
    assert table.empty and list(table.columns) == COLUMNS


def test_the_context_row_scores_the_unet_from_its_confusion_matrix():
    metrics = {
        "confusion_matrix": [[3, 1], [0, 4]],
        "miou": 0.65,
        "tiles": {"train": 39, "val": 12, "test": 13},
        "epochs": 30,
    }
    row = context_row(metrics)
    assert row["accuracy"] == pytest.approx(7 / 8) and row["miou"] == 0.65
    assert row["input"] == "tile" and row["train_samples"] == 39 and row["test_samples"] == 8
    assert row["classifier"] == "U-Net on S1GRD (39 train tiles, 30 epochs)"


@pytest.mark.parametrize(
    ("pixel_miou", "unet_miou", "pixel_verdict", "context_verdict"),
    [
        (0.231, 0.292, "met (best: k-NN, 0.231)", "met (+6.1 points)"),
        (0.231, 0.260, "met (best: k-NN, 0.231)", "not met (+2.9 points)"),
        (0.320, 0.500, "not met (best: k-NN, 0.320)", "met (+18.0 points)"),
    ],
)
def test_goal_lines_compare_the_best_pixel_classifier_with_the_unet(
    pixel_miou, unet_miou, pixel_verdict, context_verdict
):
    table = pd.DataFrame(
        [
            {"input": "pixel", "classifier": "LDA", "miou": 0.2},
            {"input": "pixel", "classifier": "k-NN", "miou": pixel_miou},
            {"input": "patch mean", "classifier": "k-NN", "miou": 0.9},  # not a pixel
            {"input": "tile", "classifier": "U-Net", "miou": unet_miou},
        ]
    )
    pixels, context = goal_lines(table)
    assert pixels.endswith(f"MIoU: {pixel_verdict}.") and context.endswith(f": {context_verdict}.")
    assert goal_lines(table[table["input"] != "tile"]) == [pixels]
