"""How separable the land-cover classes of a store are without any spatial context.

If a classifier that sees one pixel's 12 standardised channels (or one 16 x 16 patch's mean
of them) scores nearly as well as a U-Net, the data set does not need what the paper's
models learn (texture, shape, context) and the comparison of pre-trainings on it says
little. This module measures that, with classifiers fitted on train samples and scored on
test samples of a store:

- majority class: every sample gets the most common train class (the floor);
- Gaussian naive Bayes: one normal per class and channel, train class priors;
- LDA: class means and one shared covariance (plus a small ridge), train class priors;
- k-NN: the k nearest train samples (Euclidean, standardised channels) vote, one vote each;
  the neighbours are a seeded sample of at most `bank` train samples, so that it runs in
  seconds.

The pixel inputs are a seeded sample of at most `pixels_per_tile` labelled pixels with SAR
data per tile; the patch inputs are the means over the pixels with SAR data of every patch
that is at least half labelled, labelled with its majority class
(sarssl.evaluation.probe.patch_labels).
Accuracy and MIoU come from one confusion matrix per classifier (sarssl.evaluation.probe.scores_of):
a class absent from both the test truth and the predictions is left out of the mean.
"""

from collections.abc import Callable
from functools import partial
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F

from sarssl.dataset.worldcover import IGNORE_INDEX, NUM_CLASSES
from sarssl.evaluation.probe import patch_labels, sample, scores_of
from sarssl.settings.separability import (
    CONTEXT_GAIN_GOAL,
    CONTEXT_INPUT,
    PIXEL_MIOU_GOAL,
    SeparabilitySettings,
)
from sarssl.tiles.loader import Normalisation, StoreTiles, split_tiles

# (train features (n, d), train classes (n,), test features (m, d)) -> test classes (m,)
Classifier = Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray]


# Samples of one input: features (n, channel) float32 and classes (n,).
Labelled = tuple[np.ndarray, np.ndarray]


def class_moments(
    features: np.ndarray, classes: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The classes present, their log prior and their mean features."""
    present, index, counts = np.unique(classes, return_inverse=True, return_counts=True)
    sums = np.zeros((len(present), features.shape[1]))
    np.add.at(sums, index, features)
    return present, np.log(counts / counts.sum()), sums / counts[:, None]


def majority(train: np.ndarray, train_classes: np.ndarray, test: np.ndarray) -> np.ndarray:
    present, log_prior, _ = class_moments(train, train_classes)
    return np.full(len(test), present[log_prior.argmax()])


def naive_bayes(train: np.ndarray, train_classes: np.ndarray, test: np.ndarray) -> np.ndarray:
    present, log_prior, means = class_moments(train, train_classes)
    squares = class_moments(train.astype(np.float64) ** 2, train_classes)[2]
    # scikit-learn's var_smoothing: a class seen once (variance 0) stays usable.
    variance = np.maximum(squares - means**2, 0) + 1e-9 * train.var(axis=0).max()
    # log N(x; m, v) summed over channels, expanded so that no (sample, class, channel)
    # array is made.
    x = test.astype(np.float64)
    log_likelihood = -0.5 * (
        x**2 @ (1 / variance).T
        - 2 * x @ (means / variance).T
        + (means**2 / variance + np.log(2 * np.pi * variance)).sum(axis=1)
    )
    return present[(log_likelihood + log_prior).argmax(axis=1)]


def lda(train: np.ndarray, train_classes: np.ndarray, test: np.ndarray, ridge: float) -> np.ndarray:
    present, log_prior, means = class_moments(train, train_classes)
    centred = train - means[np.searchsorted(present, train_classes)]
    covariance = centred.T @ centred / max(len(train) - len(present), 1)
    covariance += ridge * np.trace(covariance) / len(covariance) * np.eye(len(covariance))
    weights = np.linalg.solve(covariance, means.T)  # (channel, class)
    bias = log_prior - 0.5 * (means * weights.T).sum(axis=1)
    return present[(test @ weights + bias).argmax(axis=1)]


@torch.no_grad()
def knn(
    train: np.ndarray,
    train_classes: np.ndarray,
    test: np.ndarray,
    k: int,
    bank: int,
    seed: int,
    chunk: int = 2048,
) -> np.ndarray:
    """Majority vote of the k nearest of at most `bank` train samples; a tie goes to the
    lowest class index."""
    if len(train) > bank:
        keep = np.random.default_rng(seed).choice(len(train), bank, replace=False)
        train, train_classes = train[keep], train_classes[keep]
    neighbours = torch.from_numpy(np.ascontiguousarray(train, dtype=np.float32))
    neighbour_classes = torch.from_numpy(train_classes.astype(np.int64))
    predicted = []
    for start in range(0, len(test), chunk):
        queries = torch.from_numpy(np.ascontiguousarray(test[start : start + chunk], np.float32))
        distances = torch.cdist(queries, neighbours)
        nearest = distances.topk(min(k, len(neighbours)), largest=False).indices
        votes = F.one_hot(neighbour_classes[nearest], NUM_CLASSES).sum(dim=1)
        predicted.append(votes.argmax(dim=1))  # the first maximum: the lowest class
    return torch.cat(predicted).numpy() if predicted else np.zeros(0, dtype=np.int64)


def classifiers(settings: SeparabilitySettings) -> dict[str, Classifier]:
    return {
        "majority class": majority,
        "naive Bayes": naive_bayes,
        "LDA": partial(lda, ridge=settings.ridge),
        "k-NN": partial(knn, k=settings.k, bank=settings.bank, seed=settings.seed),
    }


# What each input is scored with: the patch means have few samples per tile, and k-NN is the
# probe's classifier; the majority is each input's floor.
INPUTS = {
    "pixel": ("majority class", "naive Bayes", "LDA", "k-NN"),
    "patch mean": ("majority class", "k-NN"),
}


def tile_samples(
    image: np.ndarray, labels: np.ndarray, settings: SeparabilitySettings, rng: np.random.Generator
) -> dict[str, Labelled]:
    """Each input's samples of one standardised (channel, y, x) tile and its labels."""
    has_data = np.isfinite(image).all(axis=0)
    candidates = np.flatnonzero((labels != IGNORE_INDEX) & has_data)
    if len(candidates) > settings.pixels_per_tile:
        candidates = np.sort(rng.choice(candidates, settings.pixels_per_tile, replace=False))
    pixels = image.reshape(len(image), -1)[:, candidates].T

    size = settings.patch_px
    grid = labels.shape[0] // size, labels.shape[1] // size
    crop = (slice(0, grid[0] * size), slice(0, grid[1] * size))
    # Sums over the pixels with data of each patch, as (channel, grid_y, patch, grid_x, patch).
    blocks = np.where(has_data, image, 0)[:, *crop].reshape(len(image), grid[0], size, grid[1], -1)
    counts = has_data[crop].reshape(grid[0], size, grid[1], size).sum(axis=(1, 3)).reshape(-1)
    sums = blocks.sum(axis=(2, 4)).reshape(len(image), -1).T
    classes = patch_labels(labels[None, *crop], grid, NUM_CLASSES, IGNORE_INDEX).reshape(-1)
    keep = (classes != IGNORE_INDEX) & (counts > 0)
    return {
        "pixel": (pixels, labels.reshape(-1)[candidates]),
        "patch mean": (sums[keep] / counts[keep, None], classes[keep]),
    }


def split_samples(
    tiles: list, normalisation: Normalisation, settings: SeparabilitySettings
) -> dict[str, Labelled]:
    """Each input's samples of the store tiles `tiles`."""
    reader = StoreTiles(tiles, normalisation)
    parts = [
        tile_samples(
            reader.image(position).numpy(),
            reader.labels(position).numpy(),
            settings,
            np.random.default_rng([settings.seed, tile.index]),
        )
        for position, tile in enumerate(tiles)
    ]
    return {
        name: tuple(
            np.concatenate(arrays) for arrays in zip(*(p[name] for p in parts), strict=True)
        )
        for name in INPUTS
    }


# train_samples and test_samples count pixels or patches; tiles for the context check's
# U-Net (it trains on whole train tiles and is scored on every labelled test pixel).
COLUMNS = ["input", "classifier", "accuracy", "miou", "train_samples", "test_samples"]


def separability_table(store: str | Path, settings: SeparabilitySettings) -> pd.DataFrame:
    """Each input's classifiers fitted on the train samples of `store` and scored on its
    test samples: accuracy, MIoU and the sample counts, one row each (COLUMNS); no row when
    the store has no valid train or test tile."""
    tiles = {
        split: sample(split_tiles(store, [split]), settings.max_tiles, settings.seed)
        for split in ("train", "test")
    }
    if not all(tiles.values()):  # e.g. a small AOI: nothing to fit or score, not an error
        return pd.DataFrame(columns=COLUMNS)
    normalisation = Normalisation.of_stores([store])
    train, test = (split_samples(tiles[s], normalisation, settings) for s in ("train", "test"))
    by_name = classifiers(settings)
    rows = []
    for name, names in INPUTS.items():
        (train_x, train_y), (test_x, test_y) = train[name], test[name]
        truth = torch.from_numpy(test_y.astype(np.int64))
        for classifier in names:
            predicted = by_name[classifier](train_x, train_y, test_x)
            scores = scores_of(torch.from_numpy(predicted.astype(np.int64)), truth)
            rows.append(
                {
                    "input": name,
                    "classifier": classifier,
                    "accuracy": scores.accuracy,
                    "miou": scores.miou,
                    "train_samples": len(train_x),
                    "test_samples": len(test_x),
                }
            )
    return pd.DataFrame(rows)


def context_row(metrics: dict) -> dict:
    """The separability table's row of the context check's U-Net, from its metrics record:
    its train tiles, and the labelled test pixels it was scored on."""
    confusion = np.asarray(metrics["confusion_matrix"])
    tiles = metrics["tiles"]["train"]
    return {
        "input": CONTEXT_INPUT,
        "classifier": f"U-Net on S1GRD ({tiles} train tiles, {metrics['epochs']} epochs)",
        "accuracy": float(np.trace(confusion) / confusion.sum()),
        "miou": metrics["miou"],
        "train_samples": tiles,
        "test_samples": int(confusion.sum()),
    }


def goal_lines(table: pd.DataFrame) -> list[str]:
    """The synthetic source's realism goals (sarssl.settings.separability) as measured in
    `table` (the context goal where it has the row)."""
    pixel = table[table["input"] == "pixel"]
    if pixel.empty:
        return []
    best = pixel.loc[pixel["miou"].idxmax()]
    verdict = "met" if pixel["miou"].max() <= PIXEL_MIOU_GOAL else "not met"
    lines = [
        f"- No per-pixel classifier above {PIXEL_MIOU_GOAL:.2f} MIoU: {verdict} (best: "
        f"{best.classifier}, {best.miou:.3f})."
    ]
    context = table[table["input"] == CONTEXT_INPUT]
    if not context.empty:
        gain = float(context["miou"].iloc[0] - best.miou)
        verdict = "met" if gain >= CONTEXT_GAIN_GOAL else "not met"
        lines.append(
            f"- Context pays, U-Net at least {CONTEXT_GAIN_GOAL * 100:.0f} points above the "
            f"best per-pixel classifier: {verdict} ({gain * 100:+.1f} points)."
        )
    return lines
