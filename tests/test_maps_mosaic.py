"""AOI-wide COG mosaics (sarssl.maps: grid, cog, vrt, products): tiles placed by their own
transforms on one EPSG:4326 grid, nodata off the valid tiles, colours, class names, band
descriptions, overviews, valid COGs, and shards mosaicked by a VRT."""

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
import rasterio
import zarr
from rasterio.enums import ColorInterp
from rasterio.transform import Affine, from_origin
from rio_cogeo.cogeo import cog_validate

from sarssl.dataset.store import write_coordinate
from sarssl.dataset.worldcover import CLASSES, IGNORE_INDEX
from sarssl.maps.grid import Footprint, TileFootprints, mosaic_grid
from sarssl.maps.products import (
    array_reader,
    class_codes,
    quicklook_rgb,
    quicklook_stretch,
    s1_db_reader,
    sample_positions,
    write_attention_mosaic,
    write_class_mosaic,
    write_quicklook_mosaic,
)
from sarssl.maps.vrt import write_vrt

BLOCK = 16  # small internal tiles, so that the tiny mosaics get overviews

# Three tiles of different pixel counts and sizes (lon/lat degrees):
#   A: 16 x 16 px of 0.01, lon 0..0.16, lat 0..0.16
#   B: 32 x 32 px of 0.005, lon 0.16..0.32, lat 0..0.16
#   C: 8 x 8 px of 0.01, lon 0.32..0.40, lat 0..0.08 (nothing north of it)
# The grid: pixels of 0.005 from (0, 0.16), 80 x 32.
A = from_origin(0.0, 0.16, 0.01, 0.01)
B = from_origin(0.16, 0.16, 0.005, 0.005)
C = from_origin(0.32, 0.08, 0.01, 0.01)
FOOTPRINTS = [Footprint(A, 16, 16), Footprint(B, 32, 32), Footprint(C, 8, 8)]


def value_at(path: Path, lon: float, lat: float, band: int = 1):
    with rasterio.open(path) as src:
        row, col = src.index(lon, lat)
        return src.read(band)[row, col]


def assert_valid_cog(path: Path) -> None:
    is_valid, errors, _ = cog_validate(str(path))
    assert is_valid and errors == []
    with rasterio.open(path) as src:
        assert src.overviews(1), "no overviews"
        assert src.crs.to_epsg() == 4326
        assert src.profile["tiled"] and src.profile["blockxsize"] == BLOCK


def class_tiles() -> list[tuple[Affine, np.ndarray]]:
    """A: Tree cover (index 0) west of its column 8, Cropland (3) east, pixel (0, 0)
    unlabelled; B: Permanent water bodies (7); C: Moss and lichen (10)."""
    a = np.zeros((16, 16), np.uint8)
    a[:, 8:] = 3
    a[0, 0] = IGNORE_INDEX
    return [
        (A, class_codes(a)),
        (B, class_codes(np.full((32, 32), 7, np.uint8))),
        (C, class_codes(np.full((8, 8), 10, np.uint8))),
    ]


def test_grid_covers_the_tiles_at_the_finest_pixel_and_a_shard_gets_its_part():
    grid = mosaic_grid(FOOTPRINTS)
    assert (grid.width, grid.height) == (80, 32)
    assert grid.transform.almost_equals(Affine(0.005, 0, 0, 0, -0.005, 0.16))
    part = grid.cover([FOOTPRINTS[2]])  # C: columns 64..80, rows 16..32
    assert (part.col_off, part.row_off, part.width, part.height) == (64, 16, 16, 16)
    assert part.transform.almost_equals(Affine(0.005, 0, 0.32, 0, -0.005, 0.08))
    with pytest.raises(ValueError, match="north-up"):
        mosaic_grid([Footprint(Affine(0.01, 0, 0, 0, 0.01, 0), 4, 4)])


def test_class_codes_of_indices():
    indices = np.array([[0, 10], [IGNORE_INDEX, 3]], np.uint8)
    assert class_codes(indices).tolist() == [[[10, 100], [0, 40]]]
    with pytest.raises(ValueError, match=r"\[11\]"):
        class_codes(np.array([[11]], np.uint8))


def test_class_mosaic_places_tiles_of_different_pixel_counts_by_their_transforms(tmp_path):
    path = tmp_path / "landcover.tif"
    placed = write_class_mosaic(path, mosaic_grid(FOOTPRINTS), class_tiles(), blocksize=BLOCK)
    assert placed == 3
    assert sorted(p.name for p in tmp_path.iterdir()) == ["landcover.tif"]  # no scratch left
    assert_valid_cog(path)
    assert value_at(path, 0.035, 0.125) == 10  # A, column 3
    assert value_at(path, 0.125, 0.125) == 40  # A, column 12
    assert value_at(path, 0.005, 0.155) == 0  # A's unlabelled pixel
    assert value_at(path, 0.2, 0.1) == 80  # B
    assert value_at(path, 0.36, 0.04) == 100  # C
    assert value_at(path, 0.36, 0.12) == 0  # north of C: no tile
    with rasterio.open(path) as src:
        assert (src.width, src.height, src.nodata, src.dtypes[0]) == (80, 32, 0, "uint8")
        codes, counts = np.unique(src.read(1), return_counts=True)
        # A's 2 x 2 grid pixels per tile pixel; its unlabelled one and C's north are nodata.
        assert dict(zip(codes.tolist(), counts.tolist(), strict=True)) == {
            0: 4 + 16 * 16,
            10: 16 * 32 - 4,
            40: 16 * 32,
            80: 32 * 32,
            100: 16 * 16,
        }
        assert src.colorinterp == (ColorInterp.palette,)
        assert src.colormap(1)[10] == (0, 100, 0, 255)  # #006400
        assert src.colormap(1)[40] == (240, 150, 255, 255)  # #f096ff
        classes = json.loads(src.tags()["classes"])
        assert classes["80"] == "Permanent water bodies" and len(classes) == 11
        assert src.descriptions == ("land cover (ESA WorldCover code)",)


def test_invalid_tiles_are_nodata(tmp_path):
    footprints = TileFootprints(
        tuple(FOOTPRINTS), np.array([True, False, True]), np.array(["test"] * 3)
    )
    tiles = class_tiles()
    path = tmp_path / "landcover.tif"
    positions = footprints.positions(["test"])
    write_class_mosaic(
        path,
        footprints.grid(positions),
        footprints.tiles(positions, lambda i: tiles[i][1]),
        blocksize=BLOCK,
    )
    assert value_at(path, 0.2, 0.1) == 0  # B, rejected
    assert value_at(path, 0.36, 0.04) == 100


def attention_tiles() -> list[tuple[Affine, np.ndarray]]:
    """Two heads. A: 0.25 and 0.5; B: 0.75 and row * 32 + col; C: 1 and 2."""
    b = np.stack([np.full((32, 32), 0.75), np.arange(32 * 32).reshape(32, 32)])
    return [
        (A, np.stack([np.full((16, 16), 0.25), np.full((16, 16), 0.5)])),
        (B, b),
        (C, np.stack([np.ones((8, 8)), np.full((8, 8), 2.0)])),
    ]


def test_attention_mosaic_one_band_per_head_nan_outside(tmp_path):
    path = tmp_path / "attention.tif"
    write_attention_mosaic(
        path, mosaic_grid(FOOTPRINTS), attention_tiles(), 2, "teacher", blocksize=BLOCK
    )
    assert_valid_cog(path)
    assert value_at(path, 0.05, 0.05, band=1) == 0.25
    assert value_at(path, 0.05, 0.05, band=2) == 0.5
    # B lies on the grid's own pixels: bilinear gives its values back; row 5, column 7.
    assert value_at(path, 0.16 + 7.5 * 0.005, 0.16 - 5.5 * 0.005, band=2) == 5 * 32 + 7
    assert value_at(path, 0.36, 0.04, band=2) == 2.0
    for band in (1, 2):  # nodata in every band, also within the blocks tiles wrote to
        assert np.isnan(value_at(path, 0.36, 0.12, band=band))
    with rasterio.open(path) as src:
        assert src.descriptions == ("head 0 (teacher)", "head 1 (teacher)")
        assert src.dtypes == ("float32", "float32") and np.isnan(src.nodata)


def test_vrt_over_two_shards_reads_as_the_single_mosaic(tmp_path):
    grid = mosaic_grid(FOOTPRINTS)
    tiles = attention_tiles()
    write_attention_mosaic(tmp_path / "all.tif", grid, tiles, 2, "student", blocksize=BLOCK)
    shards = [tmp_path / "shards" / "0.tif", tmp_path / "shards" / "1.tif"]
    for shard, positions in zip(shards, ([0, 1], [2]), strict=True):
        part = grid.cover(FOOTPRINTS[i] for i in positions)
        write_attention_mosaic(
            shard, part, [tiles[i] for i in positions], 2, "student", blocksize=BLOCK
        )
    vrt = tmp_path / "all.vrt"
    write_vrt(vrt, shards)
    with rasterio.open(tmp_path / "all.tif") as single, rasterio.open(vrt) as mosaic:
        np.testing.assert_array_equal(mosaic.read(), single.read())
        assert mosaic.transform.almost_equals(single.transform)
        assert mosaic.crs == single.crs and np.isnan(mosaic.nodata)
        assert mosaic.descriptions == single.descriptions


def test_quicklook_stretch_and_rgb():
    # VV 0..100 in every season, VH its negative, VV-VH twice it.
    ramp = np.arange(101, dtype=np.float32)[None, None]
    image = np.concatenate([ramp, -ramp, 2 * ramp] * 4)
    stretch = quicklook_stretch([image], pixel_stride=1)
    np.testing.assert_allclose(stretch, [[2, 98], [-98, -2], [4, 196]])

    image = np.empty((12, 1, 2), np.float32)
    image[0::3] = np.array([-12, -10, -8, -10])[:, None, None]  # VV: mean -10
    image[1::3] = -25.0  # VH: below its stretch
    image[2::3] = 30.0  # VV-VH: above its stretch
    image[:, 0, 1] = np.nan
    rgb = quicklook_rgb(image, np.array([[-20.0, 0.0], [-20.0, 0.0], [0.0, 20.0]]))
    # 1 + 254 * (-10 - -20) / 20 = 128
    assert rgb.dtype == np.uint8 and rgb[:, 0, 0].tolist() == [128, 1, 255]
    assert rgb[:, 0, 1].tolist() == [0, 0, 0]


def test_sample_positions_spread_along_the_store():
    assert sample_positions(np.arange(10), 4).tolist() == [0, 3, 6, 9]
    assert sample_positions(np.array([5, 7]), 4).tolist() == [5, 7]


def test_quicklook_mosaic_rgb_with_its_stretch(tmp_path):
    db = np.full((12, 32, 32), -10.0, np.float32)
    path = tmp_path / "quicklook.tif"
    stretch = np.array([[-20.0, 0.0], [-30.0, -10.0], [0.0, 20.0]])
    write_quicklook_mosaic(path, mosaic_grid(FOOTPRINTS), [(B, db)], stretch, blocksize=BLOCK)
    assert_valid_cog(path)
    with rasterio.open(path) as src:
        assert src.colorinterp == (ColorInterp.red, ColorInterp.green, ColorInterp.blue)
        assert src.descriptions[0] == "VV annual mean, -20.0 to 0.0 dB -> 1 to 255"
        assert json.loads(src.tags()["stretch_db"])["VH"] == [-30.0, -10.0]
        row, col = src.index(0.2, 0.1)
        # -10 dB: half-way (128), the top (255), the bottom (1) of the three stretches.
        assert src.read()[:, row, col].tolist() == [128, 255, 1]
        assert src.read(1)[src.index(0.05, 0.05)] == 0  # A: no tile given


def test_class_mosaic_of_the_tiny_store_and_its_shards(tiny_store, tmp_path):
    footprints = TileFootprints.of_store(tiny_store)
    positions = footprints.positions(["train", "val", "test"])
    assert len(positions) == 42
    grid = footprints.grid(positions)
    labels = array_reader(tiny_store, "labels")

    def codes(position: int) -> np.ndarray:
        return class_codes(labels(position))

    path = tmp_path / "landcover.tif"
    write_class_mosaic(path, grid, footprints.tiles(positions, codes), blocksize=BLOCK)
    assert_valid_cog(path)

    # An inner pixel of a tile, labelled: its centre reads the label's WorldCover code.
    tile = 17
    tile_labels = labels(tile)
    row, col = np.argwhere(tile_labels[4:-4, 4:-4] != IGNORE_INDEX)[0] + 4
    lon, lat = footprints.footprints[tile].transform @ (col + 0.5, row + 0.5)
    assert value_at(path, lon, lat) == CLASSES[tile_labels[row, col]].code

    # The same tile rejected: nodata there.
    valid = footprints.valid.copy()
    valid[tile] = False
    rejected = dataclasses.replace(footprints, valid=valid)
    write_class_mosaic(
        tmp_path / "rejected.tif", grid, rejected.tiles(positions, codes), blocksize=BLOCK
    )
    assert value_at(tmp_path / "rejected.tif", lon, lat) == 0

    # Two shards of contiguous tiles, each on its part of the grid, read through a VRT.
    shards = [tmp_path / "shard0.tif", tmp_path / "shard1.tif"]
    for shard, part in zip(shards, np.array_split(positions, 2), strict=True):
        write_class_mosaic(
            shard, footprints.cover(grid, part), footprints.tiles(part, codes), blocksize=BLOCK
        )
    write_vrt(tmp_path / "landcover.vrt", shards)
    with rasterio.open(path) as single, rasterio.open(tmp_path / "landcover.vrt") as mosaic:
        np.testing.assert_array_equal(mosaic.read(), single.read())
        assert mosaic.colormap(1)[10] == (0, 100, 0, 255)
        assert json.loads(mosaic.tags()["classes"])["10"] == "Tree cover"
    # The VRT has the shards' overviews, so that a small-scale read (the map page) uses them.
    with rasterio.open(shards[0]) as shard, rasterio.open(tmp_path / "landcover.vrt") as mosaic:
        assert shard.overviews(1) and mosaic.overviews(1) == shard.overviews(1)


def test_quicklook_of_the_tiny_store_stretched_by_a_sample(tiny_store, tmp_path):
    footprints = TileFootprints.of_store(tiny_store)
    positions = footprints.positions(["test"])
    read = s1_db_reader(tiny_store)
    sample = sample_positions(positions[footprints.valid[positions]], 4)
    stretch = quicklook_stretch(read(int(p)) for p in sample)
    assert (stretch[:, 0] < stretch[:, 1]).all()
    path = tmp_path / "quicklook.tif"
    placed = write_quicklook_mosaic(
        path,
        footprints.grid(positions),
        footprints.tiles(positions, read),
        stretch,
        blocksize=BLOCK,
    )
    assert placed == len(positions)
    assert_valid_cog(path)
    with rasterio.open(path) as src:
        rgb = src.read()
        tile_centre = footprints.footprints[positions[0]].transform @ (16, 16)
        assert (rgb[:, *src.index(*tile_centre)] > 0).all()


def test_attention_map_store_tiles_rejected_ones_placed_by_their_bounds(tmp_path):
    """An attention-map store as sarssl.evaluation.attention_maps writes it: 2 x 2 tokens per
    tile; the rejected tile records no transform."""
    path = tmp_path / "maps.zarr"
    group = zarr.open_group(path, mode="w", zarr_format=3)
    maps = np.arange(12, dtype="float32").reshape(3, 1, 2, 2)
    write_coordinate(group, "attention", maps, ("tile", "head", "y", "x"), "float32")
    transforms = [tuple(from_origin(x, 0.2, 0.1, 0.1))[:6] for x in (0.0, 0.2, 0.4)]
    transforms[1] = (0.0,) * 6
    write_coordinate(group, "transform", np.array(transforms), ("tile", "affine"), "float64")
    bounds = np.array([[0, 0, 0.2, 0.2], [0.2, 0, 0.4, 0.2], [0.4, 0, 0.6, 0.2]])
    write_coordinate(group, "bounds", bounds, ("tile", "corner"), "float64")
    write_coordinate(group, "valid", np.array([True, False, True]), ("tile",), "bool")
    write_coordinate(group, "split", np.array(["test"] * 3, dtype=object), ("tile",), str)
    footprints = TileFootprints.of_attention_maps(path)
    assert footprints.footprints[1].transform.almost_equals(from_origin(0.2, 0.2, 0.1, 0.1))
    positions = footprints.positions(["test"])
    grid = footprints.grid(positions)
    assert (grid.width, grid.height) == (6, 2)
    out = tmp_path / "attention.tif"
    write_attention_mosaic(
        out, grid, footprints.tiles(positions, array_reader(path, "attention")), 1, "student"
    )
    with rasterio.open(out) as src:
        values = src.read(1)
    np.testing.assert_array_equal(values[:, :2], [[0, 1], [2, 3]])
    assert np.isnan(values[:, 2:4]).all()
    np.testing.assert_array_equal(values[:, 4:], [[8, 9], [10, 11]])
