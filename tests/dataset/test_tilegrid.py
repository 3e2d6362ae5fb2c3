"""A file's grid against its tile's: messages that name the problem, and nearest-neighbour
regridding checked against the source pixel that contains each output centre."""

import numpy as np
from rasterio.transform import from_bounds, from_origin

from sarssl.dataset.tilegrid import TileGrid, footprint_problem, nearest_onto

# A tile of 448 px of 1e-4 degrees (about 11 m) with 10 m nominal pixels.
GRID = TileGrid((6.0, 50.0, 6.0448, 50.0448), 448, 10)
PIXEL = 1e-4


def problem(transform, shape=(448, 448), crs="EPSG:4326", what="S1"):
    return footprint_problem(crs, transform, shape, GRID, what)


def test_a_file_on_the_tile_within_a_pixel_fits():
    assert problem(GRID.transform) is None
    assert problem(from_origin(6.0 + 0.6 * PIXEL, 50.0448, PIXEL, PIXEL)) is None
    # geetiles at 50 N: 466 px of 10 m over the same bounds.
    assert problem(from_bounds(*GRID.bounds, 466, 466), (466, 466)) is None


def test_another_crs_is_named():
    assert problem(GRID.transform, crs="EPSG:32632") == "S1 CRS EPSG:32632, expected EPSG:4326"


def test_a_shifted_file_names_the_shift_and_both_positions():
    shifted = from_origin(6.0 + 50 * PIXEL, 50.0448, PIXEL, PIXEL)
    message = problem(shifted, what="label")
    assert message.startswith("label bounds are 50 px east of the tile: ")
    assert "the file covers (W 6.00500, S 50.00000, E 6.04980, N 50.04480)" in message
    assert "the tile (W 6.00000, S 50.00000, E 6.04480, N 50.04480)" in message
    neighbour = from_origin(6.0 - 448 * PIXEL, 50.0448 + 3 * PIXEL, PIXEL, PIXEL)
    assert problem(neighbour).startswith("S1 bounds are 448 px west and 3 px north of the tile")


def test_a_coarser_download_names_its_pixel_size():
    assert problem(from_bounds(*GRID.bounds, 224, 224), (224, 224)) == (
        "20 m pixels (224 px), expected 10 m (448 px)"
    )


def test_a_file_of_another_extent_lists_each_edge():
    message = problem(GRID.transform, shape=(420, 448))  # 28 rows short at the south
    assert message.startswith("S1 bounds differ from the tile's by +0 (west), +28 (south)")


def test_nearest_takes_the_source_pixel_that_contains_each_output_centre():
    grid = TileGrid((0.0, 0.0, 2.0, 2.0), 2, 10)  # output centres at 0.5 and 1.5
    data = np.arange(9, dtype=np.float32).reshape(1, 3, 3)
    # Source pixels of 2/3: centre 0.5 lies in column 0, centre 1.5 in column 2; rows from
    # the north alike.
    out = nearest_onto(data, from_bounds(0.0, 0.0, 2.0, 2.0, 3, 3), grid, np.nan)
    np.testing.assert_array_equal(out[0], [[0, 2], [6, 8]])


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
    half_east = from_origin(6.0 + 224 * PIXEL, 50.0448, PIXEL, PIXEL)
    out = nearest_onto(data, half_east, GRID, 0)
    assert (out[0, :, :224] == 0).all() and (out[0, :, 224:] == 1).all()
