"""Seasonal stacking of one tile: seasonal dB means -> 12 model channels, and its labels.

Pure functions over arrays on the tile's grid; the caller does the I/O, the decoding
(`sarssl.dataset.s1layout`) and the regridding (`sarssl.dataset.tilegrid`). Every rejection
raises TileError with the tile and a reason that a person can act on.
"""

from dataclasses import dataclass

import numpy as np

from ..errors import TileError
from .bands import POLARISATIONS, SEASONS
from .s1layout import nan_mean
from .worldcover import IGNORE_INDEX, codes_to_indices


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
    # (season, pol): share of the tile's pixels observed; the rest of that channel is
    # imputed by `fill_gaps`.
    observed_fraction: np.ndarray
    # (row, col) uint8: bit s set where season s (SEASONS order) is observed in VV and VH.
    observed_seasons: np.ndarray


def observed_season_bits(observed: np.ndarray) -> np.ndarray:
    """(season, pol, row, col) bool -> (row, col) uint8 with bit s for season s observed
    in every polarisation."""
    both = observed.all(axis=1)
    weights = (1 << np.arange(both.shape[0], dtype=np.uint8))[:, None, None]
    return (both * weights).sum(axis=0, dtype=np.uint8)


def stack_tile(
    means: np.ndarray,
    tile: str,
    max_nodata_fraction: float,
    max_season_nodata_fraction: float,
    nodata_note: str = "",
) -> StackedTile:
    """Check the seasonal means (season, pol, row, col; NaN = no data) of one tile and turn
    them into the 12 channels. A season and polarisation missing at more than
    `max_season_nodata_fraction` of the pixels rejects the tile: filling would make that
    season mostly a copy of the others. `nodata_note` is added to reasons about missing
    data (what the file's codes say about them)."""
    note = f" ({nodata_note})" if nodata_note else ""
    observed = np.isfinite(means)
    if not observed.any():
        raise TileError(tile, f"all pixels are nodata{note}")
    for si, season in enumerate(SEASONS):
        for pi, pol in enumerate(POLARISATIONS):
            if not observed[si, pi].any():
                raise TileError(tile, f"season {season} has no {pol} data{note}")
    filled, valid = fill_gaps(means)
    nodata_fraction = float(1.0 - valid.mean())
    if nodata_fraction > max_nodata_fraction:
        raise TileError(
            tile,
            f"{nodata_fraction:.1%} of pixels have no SAR data "
            f"(data.max_nodata_fraction is {max_nodata_fraction:.1%}){note}",
        )
    observed_fraction = observed.mean(axis=(2, 3))
    for (si, pi), share in np.ndenumerate(observed_fraction):
        if 1.0 - share > max_season_nodata_fraction:
            raise TileError(
                tile,
                f"season {SEASONS[si]} has no {POLARISATIONS[pi]} data at {1.0 - share:.2%} "
                f"of pixels (data.max_season_nodata_fraction is "
                f"{max_season_nodata_fraction:.1%}){note}",
            )
    return StackedTile(
        to_channels(filled),
        valid,
        nodata_fraction,
        observed_fraction.astype(np.float32),
        observed_season_bits(observed),
    )


def tile_labels(codes: np.ndarray, tile: str, valid: np.ndarray) -> np.ndarray:
    """WorldCover codes (row, col) on the tile's grid -> class indices uint8, IGNORE_INDEX
    where the label is nodata or the SAR has no data."""
    try:
        indices = codes_to_indices(codes)
    except ValueError as err:
        raise TileError(tile, str(err)) from err
    indices[~valid] = IGNORE_INDEX
    return indices
