"""The tile grid and split come from geetiles: our tiles line up with a geetiles download."""

import contextlib
import io
import itertools

import geopandas as gpd
import numpy as np
import pytest
from conftest import FRACTIONS, quiet_grid
from geetiles.cmds import make_grid
from pyproj import Geod

from sarssl.dataset.grid import (
    geographic_split,
    read_tiles,
    shard_range,
    tiles_file_name,
    write_tiles_file,
)
from sarssl.errors import ConfigError


def test_grid_is_identical_to_geetiles_own_grid_command(tmp_path, tiny_aoi):
    ours = quiet_grid("tiny", tiny_aoi, 320)
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        make_grid(str(tiny_aoi), 320, "tiny", str(tmp_path))
    (theirs_file,) = tmp_path.glob("tiny_partitions_aschips_*.geojson")
    theirs = gpd.read_file(theirs_file)
    assert ours.identifier.tolist() == theirs.identifier.tolist()
    np.testing.assert_allclose(ours.geometry.bounds, theirs.geometry.bounds, atol=1e-9)


def test_tiles_are_chips_of_the_requested_size_in_metres(tiny_aoi, tmp_path):
    path = tmp_path / tiles_file_name("tiny")
    write_tiles_file(quiet_grid("tiny", tiny_aoi, 320), path)
    tiles = read_tiles(path)
    assert len(tiles) == 42
    b = tiles.geometry.bounds
    geod = Geod(ellps="WGS84")
    width = geod.inv(b.minx, b.miny, b.maxx, b.miny)[2]
    height = geod.inv(b.minx, b.miny, b.minx, b.maxy)[2]
    # geetiles makes sides of (chip - 1) m, measured in UTM, between constant lon/lat lines.
    np.testing.assert_allclose(width, 319, atol=1.5)
    np.testing.assert_allclose(height, 319, atol=1.5)


def test_split_bands_are_whole_rows_of_latitude_in_geetiles_order(tiny_aoi):
    tiles = quiet_grid("tiny", tiny_aoi, 320)
    splits = geographic_split(tiles, nbands=5, angle=0.0, fractions=FRACTIONS)
    latitude = ((tiles.bounds.miny + tiles.bounds.maxy) / 2).round(6)
    per_row = splits.groupby(latitude.values).split.agg(lambda s: sorted(set(s)))
    assert all(len(s) == 1 for s in per_row)  # a band never splits a row of tiles
    # 60/20/20 with 5 bands: 3 train bands, then test, then val, from south to north.
    order = [s[0] for s in per_row.sort_index()]
    runs = [order[0]] + [b for a, b in itertools.pairwise(order) if a != b]
    assert runs == ["train", "test", "val"]
    shares = splits.split.value_counts(normalize=True)
    assert shares["train"] == pytest.approx(0.6, abs=0.1)
    assert shares["val"] == pytest.approx(0.2, abs=0.1) and shares["test"] == pytest.approx(
        0.2, abs=0.1
    )


def test_too_many_bands_for_the_tiles_is_a_config_error(tiny_aoi):
    tiles = quiet_grid("tiny", tiny_aoi, 320).iloc[:3]
    with pytest.raises(ConfigError, match=r"split\.nbands"):
        geographic_split(tiles, nbands=10, angle=0.0, fractions=FRACTIONS)


def test_shards_cover_every_tile_once_in_order():
    ranges = [shard_range(103, 7, s) for s in range(7)]
    assert ranges[0][0] == 0 and ranges[-1][1] == 103
    assert all(a[1] == b[0] for a, b in itertools.pairwise(ranges))
    assert {stop - start for start, stop in ranges} <= {14, 15}


def test_tiles_file_errors_name_the_file(tmp_path):
    with pytest.raises(ConfigError, match=r"tiles file .*missing\.geojson does not exist"):
        read_tiles(tmp_path / "missing.geojson")
    bad = tmp_path / "bad.geojson"
    gpd.GeoDataFrame({"name": ["x"]}, geometry=gpd.points_from_xy([0], [0]), crs=4326).to_file(bad)
    with pytest.raises(ConfigError, match=r"bad.geojson lacks column\(s\) \['identifier'\]"):
        read_tiles(bad)
