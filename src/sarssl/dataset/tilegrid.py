"""The canonical pixel grid of a tile, and putting a downloaded file onto it.

Every tile is stored on one grid: tile_px x tile_px pixels on the tile's bounds in EPSG:4326,
the grid our Earth Engine export requests. Downloads made elsewhere come on other grids.
geetiles cuts an AOI into lon/lat boxes measured in the UTM zone of the AOI's centroid, then
sizes each download ceil(UTM envelope / 10 m) pixels a side in the zone of the box's own
corner. The boxes are 4.48 km only near the centroid's central meridian: with an AOI centred
at 10 E 50 N (zone 32), geetiles' own code gives 448 px tiles of 4.44 km at Lisbon (445 px
downloads), 5.03 km at 40 E 68 N (512 px), 4.87 km in Iceland (503 px) and 6.35 km at 60 E
65 N (665 px), so that a stored tile pixel is 9.9-14.2 m on the ground while the downloads'
pixels stay 9.5-10 m. Each file, S1 and labels alike, is first checked against the tile's
own geometry (CRS, pixel size on the ground, position), so that a file of another place or
resolution is rejected with what is wrong; a file that covers its tile is then resampled,
whatever its pixel count. `effective_pixel_m` says what ground resolution a tile keeps.

Resampling is nearest neighbour, for labels and for SAR, at every scale geetiles produces:
448/577 = 0.78 to 448/348 = 1.29 for tiles up to 6 UTM zones either side of the centroid's,
448/665 = 0.67 at 60 E 65 N, 8 zones east of 10 E. At 0.67 nearest skips a third of the
source pixels, but no ground detail that the grid itself could hold: the stored tile has 448
pixels of 14 m whatever fills them. The choice is what fills them, averaging (in linear
power, the physical domain of intensities, or in dB, the domain of the seasonal composites)
or nearest:
- averaging reduces the speckle's variance by the number of source pixels an output pixel
  covers, about (665/448)^2 = 2.2 at 60 E 65 N and 1 near the centroid: a texture that
  varies with a tile's distance from the AOI's central meridian, a location cue a
  self-supervised model can learn; near a scale of 1 it leaves a moire of the period
  1/(1 - scale) instead;
- nearest keeps every value an actual composite value (the decoded quantisation steps stay
  exact) and the speckle statistics the same on every tile; it takes a pixel's label and its
  SAR from the same source pixel, so that co-registered files stay co-registered; its
  geometric error is at most half a source pixel (5 m) at any scale. What it costs is
  aliasing: one source column skipped in every three at 0.67 (one doubled in every 3.5 at
  1.29) makes straight edges step, by less than a stored pixel.
"""

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from rasterio.transform import Affine, array_bounds, from_bounds

CANONICAL_CRS = "EPSG:4326"
# A file's ground pixels may be coarser than the larger of the nominal pixel_m and the tile's
# own ground pixel by at most this factor; finer pixels are kept (nearest subsamples them).
# geetiles' sizing makes pixels finer, never coarser, but for the 0.9996 scale of UTM at its
# central meridian: ceil rounds the count up, and the envelope of a lon/lat box turned by up
# to 2.8 degrees in its zone (at 70 N) is larger than the box. Running geetiles' chip and
# download sizing for 10 m over tiles at 0-70 N up to 6 zones (39 degrees) either side of the
# AOI centroid's central meridian gives downloads of 348-577 px for 448 px tiles, a file/tile
# pixel ratio of 0.78-1.29 that grows with the AOI, but ground pixels of 9.53-10.004 m, at
# most 1.0004 times max(10 m, tile pixel), for any AOI (the download is sized in the box's
# own zone). 1% leaves room for one pixel of other
# rounding (1/448 = 0.2%); a 20 m download (233 px at 50 N) is 1.9 times too coarse.
COARSE_PIXEL_TOLERANCE = 1.01
# A file's edges may lie up to this many tile pixels from the tile's edges.
POSITION_TOLERANCE_PX = 1.0
# WGS84, the ellipsoid of EPSG:4326 and of geetiles' UTM zones.
WGS84_A = 6378137.0
WGS84_E2 = 6.69437999014e-3


def metres_per_degree(latitude: float) -> tuple[float, float]:
    """Ground metres per degree of longitude and of latitude at `latitude` (WGS84: the radii
    of curvature of the parallel and of the meridian)."""
    phi = math.radians(latitude)
    w2 = 1 - WGS84_E2 * math.sin(phi) ** 2
    return (
        math.radians(WGS84_A * math.cos(phi) / math.sqrt(w2)),
        math.radians(WGS84_A * (1 - WGS84_E2) / w2**1.5),
    )


@dataclass(frozen=True)
class TileGrid:
    """tile_px x tile_px pixels on a tile's bounds (west, south, east, north), EPSG:4326."""

    bounds: tuple[float, float, float, float]
    px: int
    pixel_m: float  # nominal metres per pixel (data.pixel_m): files may not be coarser

    @property
    def transform(self) -> Affine:
        return from_bounds(*self.bounds, self.px, self.px)

    @property
    def pixel_deg(self) -> tuple[float, float]:
        west, south, east, north = self.bounds
        return (east - west) / self.px, (north - south) / self.px

    def ground_m(self, x_deg: float, y_deg: float) -> tuple[float, float]:
        """Degrees along x and y -> ground metres at the tile's central latitude: the mean
        over the tile (its north edge is 0.2% shorter than its south edge at 65 N)."""
        metres_x, metres_y = metres_per_degree((self.bounds[1] + self.bounds[3]) / 2)
        return x_deg * metres_x, y_deg * metres_y

    @property
    def ground_pixel_m(self) -> tuple[float, float]:
        return self.ground_m(*self.pixel_deg)


def effective_pixel_m(transform: Affine, grid: TileGrid) -> float:
    """Ground metres per pixel that a file put onto the tile keeps: per axis the tile's
    ground pixel or, where coarser, the file's (nearest copies a coarse file's pixels, it
    cannot add detail), averaged over x and y. For geetiles files of an AOI centred at
    10 E 50 N that is the tile's pixel, 10-14.2 m from the centroid to 60 E 65 N, or the
    file's where the tile is smaller than 448 x 10 m (Lisbon: 9.97 m, the tile 9.90 m)."""
    file_m = grid.ground_m(transform.a, -transform.e)
    return float(np.mean(np.maximum(file_m, grid.ground_pixel_m)))


def _format_bounds(bounds: tuple[float, float, float, float]) -> str:
    return "(W {:.5f}, S {:.5f}, E {:.5f}, N {:.5f})".format(*bounds)


def _format_size(size: Sequence[float], unit: str) -> str:
    """'4.48 km', or '4.48 x 4.2 km' where x and y (`size`) differ by more than 1%."""
    x, y = size
    if abs(x - y) <= 0.01 * max(x, y):
        return f"{(x + y) / 2:.3g} {unit}"
    return f"{x:.3g} x {y:.3g} {unit}"


def footprint_problem(
    crs: str, transform: Affine, shape: tuple[int, int], grid: TileGrid, what: str
) -> str | None:
    """What is wrong with a file's grid for this tile (CRS, pixel size, position), or None
    when it covers the tile and can be put onto its grid. `what` names the file ("S1",
    "label")."""
    if crs != CANONICAL_CRS:
        return f"{what} CRS {crs or 'missing'}, expected {CANONICAL_CRS}"
    if transform.b != 0 or transform.d != 0 or transform.a <= 0 or transform.e >= 0:
        return f"{what} pixel grid is rotated or flipped: transform {tuple(transform)[:6]}"
    rows, cols = shape
    file_m = grid.ground_m(transform.a, -transform.e)
    tile_m = grid.ground_pixel_m
    # The coarsest a file may be: the nominal pixel, or the tile's own where that is coarser.
    allowed_m = [max(grid.pixel_m, tile) for tile in tile_m]
    count = f"{cols} px" if cols == rows else f"{cols} x {rows} px"
    if max(f / a for f, a in zip(file_m, allowed_m, strict=True)) > COARSE_PIXEL_TOLERANCE:
        return (
            f"{what} file has {_format_size(file_m, 'm')} pixels ({count}), "
            f"expected {_format_size(allowed_m, 'm')} ({grid.px} px)"
        )
    file_bounds = array_bounds(rows, cols, transform)
    grid_dx, grid_dy = grid.pixel_deg
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
    file_w, file_s, file_e, file_n = file_bounds
    file_km = [m / 1000 for m in grid.ground_m(file_e - file_w, file_n - file_s)]
    tile_km = [m * grid.px / 1000 for m in tile_m]
    # Edges first, in the words of a shift; then what the file is, then where both lie.
    return (
        f"{what} bounds differ from the tile's by {west:+.0f} (west), {south:+.0f} (south), "
        f"{east:+.0f} (east), {north:+.0f} (north) px: the file is a "
        f"{_format_size(file_km, 'km')} chip at {_format_size(file_m, 'm')} pixels "
        f"({count}), the tile {_format_size(tile_km, 'km')} ({grid.px} px of "
        f"{_format_size(tile_m, 'm')}); {where}"
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
