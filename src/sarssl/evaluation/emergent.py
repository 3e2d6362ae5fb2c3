"""Emergent segmentation, measured: how well each attention head separates land-cover
classes, where the paper only shows it by eye.

On the test split, the WorldCover map is reduced to the 28 x 28 token grid (the majority
class of each 16 x 16 patch; a patch with less than half of its pixels labelled is
ignored). For each head:

- NMI: normalised mutual information (arithmetic mean of the entropies, as scikit-learn's
  default) between the head's attention, cut into `ATTENTION_BINS` quantile bins within
  each tile, and the class of each token;
- AUC: for each class present, the ROC AUC of the attention value for telling tokens of
  that class from the others (Mann-Whitney, ties averaged), folded as max(AUC, 1 - AUC)
  because a head may attend away from a class; the mean over classes and the best class.
  Classes with fewer than MIN_CLASS_TOKENS tokens in the sample are left out.

A randomly initialised ViT of the same architecture is the reference: its heads show what
the patch statistics alone give, without pre-training.
"""

from pathlib import Path

import numpy as np
import pandas as pd
import torch
import xarray as xr
from scipy.stats import rankdata

from sarssl.dataset.store import open_store, split_positions
from sarssl.dataset.worldcover import CLASSES, IGNORE_INDEX, NUM_CLASSES
from sarssl.evaluation.probe import patch_labels
from sarssl.models.attention import cls_attention
from sarssl.models.backbone import load_backbone
from sarssl.tiles.loader import StoreTiles, TileRef

ATTENTION_BINS = 4
MIN_CLASS_TOKENS = 50  # rarer classes give AUCs of a handful of tokens: left out


def roc_auc(scores: np.ndarray, positive: np.ndarray) -> float:
    """P(score of a positive > score of a negative), ties counted half."""
    n_pos, n_neg = int(positive.sum()), int((~positive).sum())
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    ranks = rankdata(scores)
    return float((ranks[positive].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def entropy(counts: np.ndarray) -> float:
    p = counts[counts > 0] / counts.sum()
    return float(-(p * np.log(p)).sum())


def normalised_mutual_information(a: np.ndarray, b: np.ndarray) -> float:
    """2 I(a; b) / (H(a) + H(b)) of two labelings of the same items."""
    _, a_index = np.unique(a, return_inverse=True)
    _, b_index = np.unique(b, return_inverse=True)
    joint = np.zeros((a_index.max() + 1, b_index.max() + 1))
    np.add.at(joint, (a_index, b_index), 1)
    h_a, h_b = entropy(joint.sum(axis=1)), entropy(joint.sum(axis=0))
    mutual = h_a + h_b - entropy(joint.ravel())
    return float(2 * mutual / (h_a + h_b)) if h_a + h_b > 0 else 0.0


def quantile_bins(maps: np.ndarray, bins: int = ATTENTION_BINS) -> np.ndarray:
    """(tile, y, x) attention -> bin 0..bins-1 of each token among its tile's tokens."""
    flat = maps.reshape(len(maps), -1)
    ranks = np.argsort(np.argsort(flat, axis=1, kind="stable"), axis=1)
    return (ranks * bins // flat.shape[1]).reshape(maps.shape)


def head_scores(
    maps: np.ndarray, classes: np.ndarray, class_names: list[str], ignore: int
) -> pd.DataFrame:
    """maps (tile, head, y, x), classes (tile, y, x) -> one row per head."""
    valid = classes != ignore
    rows = []
    for head in range(maps.shape[1]):
        attention = maps[:, head]
        truth = classes[valid]
        nmi = normalised_mutual_information(quantile_bins(attention)[valid], truth)
        aucs = {}
        present, counts = np.unique(truth, return_counts=True)
        for c in present[counts >= MIN_CLASS_TOKENS]:
            auc = roc_auc(attention[valid], truth == c)
            aucs[class_names[c]] = max(auc, 1 - auc)
        best = max(aucs, key=aucs.get) if aucs else None
        rows.append(
            {
                "head": head,
                "nmi": nmi,
                "mean_auc": float(np.mean(list(aucs.values()))) if aucs else float("nan"),
                "best_class": best,
                "best_auc": aucs.get(best, float("nan")),
            }
        )
    return pd.DataFrame(rows)


def sample_test_tiles(store: str | Path, max_tiles: int, seed: int) -> np.ndarray:
    """Valid test tiles, a seeded sample of at most `max_tiles`, in store order."""
    test = split_positions(store, ["test"])
    if len(test) > max_tiles:
        test = np.sort(np.random.default_rng(seed).choice(test, max_tiles, replace=False))
    return test


def measure(
    attention_store: str | Path,
    store: str | Path,
    checkpoint: str | Path,
    max_tiles: int = 2000,
    seed: int = 0,
    batch: int = 16,
) -> pd.DataFrame:
    """Head scores of the pre-trained backbone (its stored maps) and of a random ViT of the
    same architecture on the same test tiles."""
    dataset = open_store(store)
    stored = xr.open_zarr(attention_store)
    tiles = sample_test_tiles(store, max_tiles, seed)
    grid = stored.sizes["y"], stored.sizes["x"]
    classes = patch_labels(dataset["labels"].values[tiles], grid, NUM_CLASSES, IGNORE_INDEX)
    names = [c.name for c in CLASSES]
    backbone = load_backbone(checkpoint)
    random_vit = backbone.random_twin(seed)
    reader = StoreTiles([TileRef(str(store), int(i)) for i in tiles], backbone.normalisation)
    with torch.no_grad():
        random_maps = np.concatenate(
            [
                cls_attention(random_vit, torch.stack([reader.image(i) for i in chunk])).numpy()
                for chunk in np.array_split(np.arange(len(tiles)), max(1, len(tiles) // batch))
            ]
        )
    pretrained = head_scores(stored["attention"].values[tiles], classes, names, IGNORE_INDEX)
    random = head_scores(random_maps, classes, names, IGNORE_INDEX)
    which = stored.attrs["backbone"]  # the attention_maps rule records it
    pretrained.insert(0, "backbone", f"pre-trained ({which})")
    random.insert(0, "backbone", "random init (reference)")
    table = pd.concat([pretrained, random], ignore_index=True)
    table.insert(0, "pretrain", backbone.name)
    table["test_tiles"] = len(tiles)
    return table
