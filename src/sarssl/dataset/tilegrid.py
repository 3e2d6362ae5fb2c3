"""The canonical pixel grid of a tile, and putting a downloaded file onto it.

Every tile is stored on one grid: tile_px x tile_px pixels on the tile's bounds in EPSG:4326,
the grid our Earth Engine export requests. Downloads made elsewhere come on other grids:
geetiles sizes a download from the tile's UTM envelope, ceil(envelope / 10 m) pixels a side,
which is 448 px at the equator and 449-466 px at European latitudes. Each file, S1 and labels
alike, is first checked against the tile's own geometry (CRS, pixel size, position), so that
a file of another place or resolution is rejected with what is wrong; then it is resampled.

Resampling is nearest neighbour, for labels and for SAR. For SAR the choice is between
averaging (in linear power, the physical domain of intensities, or in dB, the domain of the
seasonal composites) and nearest:
- the scale change is small (448/466 = 0.96 at 50 N, 1 at the equator): an output pixel
  overlaps at most 2 x 2 input pixels and mostly one, so there is little to average;
- averaging, in power or in dB, would smooth the speckle by an amount that varies across the
  tile (a moire with a period of 1/(1 - 0.96) = 25 px) and with latitude (no smoothing at the
  equator, most at high latitudes): a texture artefact a self-supervised model can learn as
  a latitude cue;
- nearest keeps every value an actual composite value (the decoded quantisation steps stay
  exact), keeps the speckle statistics, and takes a pixel's label and its SAR from the same
  source pixel, so that co-registered files stay co-registered; its geometric error is at
  most half a source pixel (5 m), below the 10 m resolution.
"""

from dataclasses import dataclass

import numpy as np
from rasterio.transform import Affine, array_bounds, from_bounds

CANONICAL_CRS = "EPSG:4326"
# A file's pixels may differ from the tile grid's by up to this factor (geetiles: 0.93-1).
PIXEL_SIZE_TOLERANCE = 1.25
# A file's edges may lie up to this many tile pixels from the tile's edges.
POSITION_TOLERANCE_PX = 1.0


@dataclass(frozen=True)
class TileGrid:
    """tile_px x tile_px pixels on a tile's bounds (west, south, east, north), EPSG:4326."""

    bounds: tuple[float, float, float, float]
    px: int
    pixel_m: float  # nominal metres per pixel (data.pixel_m), for messages

    @property
    def transform(self) -> Affine:
        return from_bounds(*self.bounds, self.px, self.px)

    @property
    def pixel_deg(self) -> tuple[float, float]:
        west, south, east, north = self.bounds
        return (east - west) / self.px, (north - south) / self.px


def _format_bounds(bounds: tuple[float, float, float, float]) -> str:
    return "(W {:.5f}, S {:.5f}, E {:.5f}, N {:.5f})".format(*bounds)


def footprint_problem(
    crs: str, transform: Affine, shape: tuple[int, int], grid: TileGrid, what: str
) -> str | None:
    """What is wrong with a file's grid for this tile (CRS, pixel size, position), or None
    when it can be put onto the tile's grid. `what` names the file ("S1", "label")."""
    if crs != CANONICAL_CRS:
        return f"{what} CRS {crs or 'missing'}, expected {CANONICAL_CRS}"
    if transform.b != 0 or transform.d != 0 or transform.a <= 0 or transform.e >= 0:
        return f"{what} pixel grid is rotated or flipped: transform {tuple(transform)[:6]}"
    rows, cols = shape
    grid_dx, grid_dy = grid.pixel_deg
    # (file pixel / grid pixel, file pixels) along x and along y; the worse one is reported
    ratio, count = max(
        [(transform.a / grid_dx, cols), (-transform.e / grid_dy, rows)],
        key=lambda ratio_count: abs(np.log(ratio_count[0])),
    )
    if not 1 / PIXEL_SIZE_TOLERANCE <= ratio <= PIXEL_SIZE_TOLERANCE:
        return (
            f"{grid.pixel_m * ratio:.0f} m pixels ({count} px), "
            f"expected {grid.pixel_m:g} m ({grid.px} px)"
        )
    file_bounds = array_bounds(rows, cols, transform)
    west, south, east, north = (
        (f - t) / step
        for f, t, step in zip(
            file_bounds, grid.bounds, (grid_dx, grid_dy, grid_dx, grid_dy), strict=True
        )
    )
    if max(abs(west), abs(south), abs(east), abs(north)) <= POSITION_TOLERANCE_PX:
        return None
    where = f"the file covers {_format_bounds(file_bounds)}, the tile {_format_bounds(grid.bounds)}"
    if abs(west - east) <= POSITION_TOLERANCE_PX and abs(north - south) <= POSITION_TOLERANCE_PX:
        shift_x, shift_y = (west + east) / 2, (north + south) / 2
        parts = [
            f"{abs(shift):.0f} px {positive if shift > 0 else negative}"
            for shift, positive, negative in (
                (shift_x, "east", "west"),
                (shift_y, "north", "south"),
            )
            if abs(shift) > POSITION_TOLERANCE_PX
        ]
        return f"{what} bounds are {' and '.join(parts)} of the tile: {where}"
    return (
        f"{what} bounds differ from the tile's by {west:+.0f} (west), {south:+.0f} (south), "
        f"{east:+.0f} (east), {north:+.0f} (north) px: {where}"
    )


def nearest_onto(data: np.ndarray, transform: Affine, grid: TileGrid, fill) -> np.ndarray:
    """(band, row, col) on `transform` -> (band, px, px) on the tile's grid: each output
    pixel takes the input pixel that contains its centre (see the module docstring);
    `fill` where that lies outside the file. A file already on the grid is returned as is."""
    rows, cols = data.shape[1:]
    west, _, _, north = grid.bounds
    grid_dx, grid_dy = grid.pixel_deg
    centres_x = west + (np.arange(grid.px) + 0.5) * grid_dx
    centres_y = north - (np.arange(grid.px) + 0.5) * grid_dy
    source_cols = np.floor((centres_x - transform.c) / transform.a).astype(np.int64)
    source_rows = np.floor((centres_y - transform.f) / transform.e).astype(np.int64)
    identity = np.arange(grid.px)
    if (rows, cols) == (grid.px, grid.px) and (
        np.array_equal(source_cols, identity) and np.array_equal(source_rows, identity)
    ):
        return data
    inside_cols = np.flatnonzero((source_cols >= 0) & (source_cols < cols))
    inside_rows = np.flatnonzero((source_rows >= 0) & (source_rows < rows))
    out = np.full((data.shape[0], grid.px, grid.px), fill, dtype=data.dtype)
    out[:, inside_rows[:, None], inside_cols[None, :]] = data[
        :, source_rows[inside_rows][:, None], source_cols[inside_cols][None, :]
    ]
    return out
