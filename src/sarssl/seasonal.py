"""Seasonal stacking of one tile: export bands (dB) -> 12 model channels, and its labels.

Pure functions over arrays; the caller does the I/O. Every rejection raises TileError with
the tile and a reason that a person can act on.
"""

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from .bands import POLARISATIONS, SEASONS
from .errors import TileError
from .geotiff import Raster
from .worldcover import IGNORE_INDEX, codes_to_indices


def band_groups(band_names: Sequence[str]) -> dict[tuple[str, str], list[int]]:
    """Indices of the bands of each (season, polarisation).

    A band belongs to (season, pol) when named ``{season}_{pol}`` or ``{season}_{pol}_*``
    (several acquisitions or orbit passes of the same season). Raises KeyError naming the
    missing groups.
    """
    groups: dict[tuple[str, str], list[int]] = {}
    for season in SEASONS:
        for pol in POLARISATIONS:
            name = f"{season}_{pol}"
            groups[season, pol] = [
                i for i, b in enumerate(band_names) if b == name or b.startswith(name + "_")
            ]
    missing = [f"{s}_{p}" for (s, p), idx in groups.items() if not idx]
    if missing:
        raise KeyError(f"bands {missing} missing; the file has {list(band_names)}")
    return groups


def nan_mean(stack: np.ndarray) -> np.ndarray:
    """Mean over axis 0 ignoring NaN; NaN where nothing is finite. Unlike np.nanmean it
    warns about nothing (warning filters are not thread-safe, and tiles run in threads)."""
    finite = np.isfinite(stack)
    count = finite.sum(axis=0)
    total = np.where(finite, stack, 0.0).sum(axis=0, dtype=np.float32)
    out = np.full(total.shape, np.nan, dtype=np.float32)
    return np.divide(total, count, out=out, where=count > 0)


def seasonal_means(data: np.ndarray, band_names: Sequence[str]) -> np.ndarray:
    """(band, row, col) dB -> (season, pol, row, col) mean of the season's bands in dB.

    The mean is taken over the dB values, as Earth Engine's ``mean()`` composites the dB
    images of COPERNICUS/S1_GRD. A pixel without any value in a season stays NaN.
    """
    groups = band_groups(band_names)
    out = np.empty((len(SEASONS), len(POLARISATIONS), *data.shape[1:]), dtype=np.float32)
    for si, season in enumerate(SEASONS):
        for pi, pol in enumerate(POLARISATIONS):
            out[si, pi] = nan_mean(data[groups[season, pol]])
    return out


def fill_gaps(means: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Fill NaN of (season, pol, row, col) so that no NaN reaches the store.

    A pixel missing in some seasons takes its mean over the seasons it has (same pol). A
    pixel missing in every season of a polarisation has no SAR information: it takes the
    tile mean of that channel and is reported invalid, so that its label is ignored.
    Returns (filled, valid) with valid (row, col) True where every polarisation had data.
    """
    filled = means.copy()
    observed = np.isfinite(means)
    valid = observed.any(axis=0).all(axis=0)
    temporal = nan_mean(means)  # (pol, row, col)
    for pi in range(means.shape[1]):
        gaps = ~observed[:, pi]
        filled[:, pi][gaps] = np.broadcast_to(temporal[pi], gaps.shape)[gaps]
        for si in range(means.shape[0]):
            band = filled[si, pi]
            band[~valid] = band[valid].mean() if valid.any() else 0.0
    return filled, valid


def to_channels(filled: np.ndarray) -> np.ndarray:
    """(season, pol, row, col) -> (12, row, col): per season VV, VH and VV-VH in dB."""
    vv, vh = filled[:, 0], filled[:, 1]
    return np.stack([vv, vh, vv - vh], axis=1).reshape(-1, *filled.shape[2:])


@dataclass(frozen=True)
class StackedTile:
    channels: np.ndarray  # (12, row, col) float32 dB, finite
    valid: np.ndarray  # (row, col) bool: SAR observed in every polarisation
    nodata_fraction: float


def stack_tile(raster: Raster, tile: str, tile_px: int, max_nodata_fraction: float) -> StackedTile:
    """Validate one export tile and turn it into the 12 channels."""
    if raster.shape != (tile_px, tile_px):
        raise TileError(
            tile, f"size is {raster.shape[0]}x{raster.shape[1]} px, expected {tile_px}x{tile_px}"
        )
    try:
        means = seasonal_means(raster.data, raster.band_names)
    except KeyError as err:
        raise TileError(tile, str(err.args[0])) from err
    observed = np.isfinite(means)
    if not observed.any():
        raise TileError(tile, "all pixels are nodata")
    for si, season in enumerate(SEASONS):
        for pi, pol in enumerate(POLARISATIONS):
            if not observed[si, pi].any():
                raise TileError(tile, f"season {season} has no {pol} data (all NaN)")
    filled, valid = fill_gaps(means)
    nodata_fraction = float(1.0 - valid.mean())
    if nodata_fraction > max_nodata_fraction:
        raise TileError(
            tile,
            f"{nodata_fraction:.1%} of pixels have no SAR data "
            f"(data.max_nodata_fraction is {max_nodata_fraction:.1%})",
        )
    return StackedTile(to_channels(filled), valid, nodata_fraction)


def tile_labels(labels: Raster, s1: Raster, tile: str, valid: np.ndarray) -> np.ndarray:
    """WorldCover codes on the S1 grid -> class indices (row, col) uint8, IGNORE_INDEX where
    the label is nodata or the SAR has no data."""
    if labels.data.shape[0] != 1:
        raise TileError(tile, f"label file has {labels.data.shape[0]} bands, expected 1")
    if labels.shape != s1.shape:
        raise TileError(tile, f"label size {labels.shape} differs from the S1 size {s1.shape}")
    if labels.crs != s1.crs or not labels.transform.almost_equals(s1.transform, precision=1e-9):
        raise TileError(
            tile,
            f"label grid ({labels.crs}, {tuple(labels.transform)[:6]}) differs from the S1 grid "
            f"({s1.crs}, {tuple(s1.transform)[:6]})",
        )
    try:
        indices = codes_to_indices(labels.data[0])
    except ValueError as err:
        raise TileError(tile, str(err)) from err
    indices[~valid] = IGNORE_INDEX
    return indices
