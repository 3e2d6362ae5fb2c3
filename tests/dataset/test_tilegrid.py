"""A file's grid against its tile's: messages that name the problem, ground sizes on WGS84,
and nearest-neighbour regridding checked against the source pixel that contains each output
centre."""

import numpy as np
import pytest
from rasterio.transform import from_bounds, from_origin

from sarssl.dataset.tilegrid import (
    TileGrid,
    effective_pixel_m,
    footprint_problem,
    metres_per_degree,
    nearest_onto,
)

# A tile of 448 px of 1.4e-4 x 0.9e-4 degrees at 50 N, with 10 m nominal pixels. At its
# central latitude 50.02016 a degree is 71665.77 m of longitude and 111229.45 m of latitude,
# so its pixels are 10.033 x 10.011 m (mean 10.022) and it is 4.495 x 4.485 km.
PIXEL_X, PIXEL_Y = 1.4e-4, 0.9e-4
WEST, SOUTH, EAST, NORTH = 6.0, 50.0, 6.06272, 50.04032
GRID = TileGrid((WEST, SOUTH, EAST, NORTH), 448, 10)
# geetiles' own chips of an AOI centred at 10 E 50 N (zone 32), bounds rounded to 1e-7 deg:
# at 60 E 65 N a 6.35 km box, downloaded as 665 px of 9.55 m (tile pixels 14.18 m); at
# 9.02 W 34.98 N a 4.41 km box, downloaded as 441 px of 10.0 m (tile pixels 9.84 m).
FAR_EAST = TileGrid((59.9267626, 64.9990589, 60.0615802, 65.0560447), 448, 10)
SOUTH_WEST = TileGrid((-9.0415931, 34.9590632, -8.993312, 34.9988019), 448, 10)


def problem(transform, shape=(448, 448), crs="EPSG:4326", what="S1", grid=GRID):
    return footprint_problem(crs, transform, shape, grid, what)


def test_metres_per_degree_on_wgs84():
    # a * pi / 180 and a * (1 - e^2) * pi / 180 at the equator
    assert metres_per_degree(0) == pytest.approx((111319.49, 110574.27), abs=0.01)
    assert metres_per_degree(50.02016) == pytest.approx((71665.77, 111229.45), abs=0.01)
    assert GRID.ground_pixel_m == pytest.approx((10.033, 10.011), abs=0.001)


def test_a_file_on_the_tile_within_a_pixel_fits():
    assert problem(GRID.transform) is None
    assert problem(from_origin(WEST + 0.6 * PIXEL_X, NORTH, PIXEL_X, PIXEL_Y)) is None
    # geetiles at 50 N with the AOI's centroid nearby: 466 px of 9.6 m over the same bounds.
    assert problem(from_bounds(*GRID.bounds, 466, 466), (466, 466)) is None


def test_another_crs_is_named():
    assert problem(GRID.transform, crs="EPSG:32632") == "S1 CRS EPSG:32632, expected EPSG:4326"


def test_a_shifted_file_names_the_shift_and_both_positions():
    shifted = from_origin(WEST + 50 * PIXEL_X, NORTH, PIXEL_X, PIXEL_Y)
    message = problem(shifted, what="label")
    assert message.startswith("label bounds are 50 px east of the tile: ")
    assert "the file covers (W 6.00700, S 50.00000, E 6.06972, N 50.04032)" in message
    assert "the tile (W 6.00000, S 50.00000, E 6.06272, N 50.04032)" in message
    neighbour = from_origin(WEST - 448 * PIXEL_X, NORTH + 3 * PIXEL_Y, PIXEL_X, PIXEL_Y)
    assert problem(neighbour).startswith("S1 bounds are 448 px west and 3 px north of the tile")


def test_a_coarser_download_names_its_pixel_size():
    # 20.066 x 20.021 m
    assert problem(from_bounds(*GRID.bounds, 224, 224), (224, 224)) == (
        "S1 file has 20 m pixels (224 px), expected 10 m (448 px)"
    )
    # 441 px over a 4.49 km tile are 10.19 x 10.17 m: 1.6% coarser, which geetiles never
    # makes (its pixels are at most 10.004 m).
    assert problem(from_bounds(*GRID.bounds, 441, 441), (441, 441)) == (
        "S1 file has 10.2 m pixels (441 px), expected 10 m (448 px)"
    )
    # Where the tile's own pixels are coarser than 10 m, those are the bound: a 20 m
    # download at 60 E 65 N (333 px of 19.08 m) against the tile's 14.18 m.
    assert problem(from_bounds(*FAR_EAST.bounds, 333, 333), (333, 333), grid=FAR_EAST) == (
        "S1 file has 19.1 m pixels (333 px), expected 14.2 m (448 px)"
    )


def test_files_of_every_size_geetiles_makes_are_accepted():
    # Our own export (448 px of 14.18 m) and geetiles' 665 px of 9.55 m at 60 E 65 N
    assert problem(FAR_EAST.transform, grid=FAR_EAST) is None
    assert problem(from_bounds(*FAR_EAST.bounds, 665, 665), (665, 665), grid=FAR_EAST) is None
    # geetiles' 441 px of 10.0 m on a tile of 9.84 m pixels
    on_441 = from_bounds(*SOUTH_WEST.bounds, 441, 441)
    assert problem(on_441, (441, 441), grid=SOUTH_WEST) is None
    # 604 px over a 4.49 km tile: 7.44 x 7.43 m
    assert problem(from_bounds(*GRID.bounds, 604, 604), (604, 604)) is None


def test_a_chip_larger_than_the_tile_says_what_it_is_and_where_it_lies():
    # 600 px of the tile's pixel size (6.02 x 6.01 km), centred: 76 px beyond every edge.
    chip = from_origin(WEST - 76 * PIXEL_X, NORTH + 76 * PIXEL_Y, PIXEL_X, PIXEL_Y)
    assert problem(chip, (600, 600)) == (
        "S1 bounds differ from the tile's by -76 (west), -76 (south), +76 (east), +76 (north) px: "
        "the file is a 6.01 km chip at 10 m pixels (600 px), "
        "the tile 4.49 km (448 px of 10 m); "
        "the file covers (W 5.98936, S 49.99316, E 6.07336, N 50.04716), "
        "the tile (W 6.00000, S 50.00000, E 6.06272, N 50.04032)"
    )


def test_a_file_of_another_extent_lists_each_edge():
    message = problem(GRID.transform, shape=(420, 448))  # 28 rows short at the south
    assert message.startswith(
        "S1 bounds differ from the tile's by +0 (west), +28 (south), +0 (east), +0 (north) px: "
        "the file is a 4.49 x 4.2 km chip at 10 m pixels (448 x 420 px), "
        "the tile 4.49 km (448 px of 10 m); the file covers "
    )


def test_effective_pixel_is_the_tile_pixel_or_the_files_where_coarser():
    assert effective_pixel_m(GRID.transform, GRID) == pytest.approx(10.022, abs=0.001)
    # 7.44 m pixels are subsampled onto the tile's 10.02 m
    assert effective_pixel_m(from_bounds(*GRID.bounds, 604, 604), GRID) == pytest.approx(
        10.022, abs=0.001
    )
    assert effective_pixel_m(from_bounds(*FAR_EAST.bounds, 665, 665), FAR_EAST) == pytest.approx(
        14.182, abs=0.001
    )
    # 441 px of 9.997 m on a tile of 9.841 m pixels: the file's
    assert effective_pixel_m(
        from_bounds(*SOUTH_WEST.bounds, 441, 441), SOUTH_WEST
    ) == pytest.approx(9.997, abs=0.001)


def test_nearest_takes_the_source_pixel_that_contains_each_output_centre():
    grid = TileGrid((0.0, 0.0, 2.0, 2.0), 2, 10)  # output centres at 0.5 and 1.5
    data = np.arange(9, dtype=np.float32).reshape(1, 3, 3)
    # Source pixels of 2/3: centre 0.5 lies in column 0, centre 1.5 in column 2; rows from
    # the north alike.
    out = nearest_onto(data, from_bounds(0.0, 0.0, 2.0, 2.0, 3, 3), grid, np.nan)
    np.testing.assert_array_equal(out[0], [[0, 2], [6, 8]])


def test_nearest_from_604_px_takes_the_source_pixel_of_each_output_centre():
    rows, cols = np.mgrid[0:604, 0:604]
    source = (rows * 1000 + cols)[None].astype(np.int32)  # each value names its pixel
    out = nearest_onto(source, from_bounds(*GRID.bounds, 604, 604), GRID, -1)
    assert out.shape == (1, 448, 448)
    # Output centre i lies at (i + 0.5) * 604 / 448 = (2i + 1) * 151 / 224 source pixels
    # from the west (north) edge: 0.67, 2.02, 3.37, 4.72, 6.07, ... 603.33 for i = 447.
    index = [0, 2, 3, 4, 6]
    np.testing.assert_array_equal(out[0, :5, :5], np.add.outer(np.multiply(index, 1000), index))
    assert out[0, 447, 447] == 603603 and out[0, 0, 447] == 603
    expected = (2 * np.arange(448) + 1) * 151 // 224  # integer arithmetic, no rounding
    np.testing.assert_array_equal(out[0], np.add.outer(expected * 1000, expected))
    # A quarter of the source columns are skipped: 156 of 604.
    assert 604 - len(np.unique(out[0, 0])) == 156


def test_nearest_on_a_geetiles_grid_matches_the_source_index_of_every_pixel():
    rng = np.random.default_rng(1)
    source = rng.exponential(1.0, (2, 466, 466)).astype(np.float32)  # speckle-like
    transform = from_bounds(*GRID.bounds, 466, 466)
    out = nearest_onto(source, transform, GRID, np.nan)
    rows, cols = np.mgrid[0:448, 0:448]
    x, y = GRID.transform @ (cols + 0.5, rows + 0.5)
    source_cols, source_rows = ~transform @ (x, y)
    expected = source[:, np.floor(source_rows).astype(int), np.floor(source_cols).astype(int)]
    np.testing.assert_array_equal(out, expected)
    # Values are copied, not averaged: the speckle's variance is kept.
    assert abs(out.var() / source.var() - 1) < 0.02


def test_pixels_outside_the_file_take_the_fill_and_a_file_on_the_grid_is_kept():
    data = np.ones((1, 448, 448), np.uint8)
    assert nearest_onto(data, GRID.transform, GRID, 0) is data
    half_east = from_origin(WEST + 224 * PIXEL_X, NORTH, PIXEL_X, PIXEL_Y)
    out = nearest_onto(data, half_east, GRID, 0)
    assert (out[0, :, :224] == 0).all() and (out[0, :, 224:] == 1).all()
