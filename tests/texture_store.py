"""The learning guard's data: a store built by the project's own pipeline over a small AOI
(32 px tiles), whose pixels are then replaced by textures that tell the classes apart only
by what a view of them shares with another view of the same tile, never by their mean.

Each tile is one class, and each class a Gaussian random field in dB of its own correlation
length and amplitude around one common mean: crops of a tile at other places and scales look
alike in texture while their pixels differ, which is what DINO's crop invariance learns and
a random network's features (near a random projection of the pixels) do not hold. This is a
test of the training mechanics (the teacher's EMA, the centering, the student's gradient),
not of the SAR scenes: on those a gain needs far more than the guard's seconds
(benchmarks/RESULTS.md).
"""

from pathlib import Path

import numpy as np
import zarr
from conftest import build_all, prepare_sources
from scipy import ndimage

from sarssl.dataset.store import consolidate
from sarssl.dataset.worldcover import IGNORE_INDEX

# About 5.1 km x 5.0 km near the demo AOI: 225 tiles of 320 m (135 train, 45 val, 45 test).
GUARD_AOI_WKT = "POLYGON ((-1.0 41.70, -0.94 41.70, -0.94 41.745, -1.0 41.745, -1.0 41.70))"
MEAN_DB = -12.0
# Per class: correlation length (px, sd of the Gaussian that smooths white noise) and sd (dB).
TEXTURES = ((0.6, 1.0), (0.6, 3.0), (2.5, 1.0), (2.5, 3.0))


def texture(rng: np.random.Generator, shape: tuple[int, ...], length: float, sd: float):
    """A field of unit variance smoothed over `length` px, scaled to `sd` dB around MEAN_DB;
    the last two axes are space."""
    field = ndimage.gaussian_filter(
        rng.standard_normal(shape), (0,) * (len(shape) - 2) + (length, length)
    )
    field /= field.std(axis=(-2, -1), keepdims=True)
    return MEAN_DB + sd * field


def texture_store(root: Path, seed: int = 0) -> Path:
    """The store of GUARD_AOI_WKT built by the pipeline, with every tile made valid and its
    SAR channels and labels replaced by one class's texture; its train statistics anew."""
    (root / "guard.wkt").write_text(GUARD_AOI_WKT)
    data = prepare_sources(root, root / "guard.wkt", aoi="guard")
    build_all(data)
    group = zarr.open_group(data.store, mode="r+", zarr_format=3)
    s1grd, labels = group["s1grd"], group["labels"]
    tiles, channels, height, width = s1grd.shape
    rng = np.random.default_rng(seed)
    classes = rng.integers(0, len(TEXTURES), tiles)
    values = np.stack(
        [texture(rng, (channels, height, width), *TEXTURES[c]) for c in classes]
    ).astype(s1grd.dtype)
    s1grd[...] = values
    labels[...] = np.broadcast_to(classes[:, None, None], labels.shape).astype(labels.dtype)
    group["valid"][...] = np.ones(tiles, dtype=bool)
    train = np.asarray(group["split"][...]) == "train"
    pixels = values[train].astype(np.float64)
    statistics = dict(s1grd.attrs["normalisation"])
    statistics |= {
        "mean": pixels.mean(axis=(0, 2, 3)).tolist(),
        "std": pixels.std(axis=(0, 2, 3)).tolist(),
        "pixels": int(train.sum() * height * width),
    }
    s1grd.attrs["normalisation"] = statistics
    consolidate(data.store)
    assert IGNORE_INDEX not in classes
    return data.store
