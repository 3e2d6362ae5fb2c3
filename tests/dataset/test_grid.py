"""The tile grid and split come from geetiles: our tiles line up with a geetiles download."""

import contextlib
import io
import itertools

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
from conftest import FRACTIONS, quiet_grid
from geetiles.cmds import make_grid
from pyproj import Geod

from sarssl.dataset.grid import (
    apportion,
    cap_grid,
    capped,
    geographic_split,
    read_tiles,
    shard_range,
    split_counts,
    split_quotas,
    tiles_file_name,
    write_tiles_file,
)
from sarssl.dataset.sources import shard_manifest
from sarssl.errors import ConfigError, SarsslError


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


def split_grid(counts: dict[str, int]) -> pd.DataFrame:
    """A split grid with `counts` tiles per split, the splits interleaved as bands are."""
    names = np.array([name for name, n in counts.items() for _ in range(n)])
    names = names[np.random.default_rng(0).permutation(len(names))]
    return pd.DataFrame({"identifier": [f"t{i}" for i in range(len(names))], "split": names})


GRID_COUNTS = {"train": 613, "val": 197, "test": 211}  # the bands' shares, not 60/20/20


def test_apportion_adds_up_and_keeps_each_part_within_one_of_its_share():
    for total, weights in [(10, {"a": 1, "b": 1, "c": 1}), (167_000, GRID_COUNTS)]:
        parts = apportion(total, weights)
        assert sum(parts.values()) == total
        for name, weight in weights.items():
            assert abs(parts[name] - total * weight / sum(weights.values())) < 1
    assert apportion(10, {"a": 1, "b": 1, "c": 1}) == {"a": 4, "b": 3, "c": 3}  # ties: first


@pytest.mark.parametrize("max_tiles", [10, 250, 1020])
def test_max_tiles_keeps_exactly_that_many_each_split_within_one_of_its_share(max_tiles):
    splits = split_grid(GRID_COUNTS)
    kept = splits[capped(splits, max_tiles, seed=0)]
    assert len(kept) == max_tiles
    for name, n in split_counts(kept).items():
        assert abs(n - max_tiles * GRID_COUNTS[name] / len(splits)) < 1


def test_a_cap_that_would_leave_a_split_empty_is_a_config_error():
    with pytest.raises(ConfigError, match=r"max_tiles 3 leaves no tile in split\(s\) \['val'\]"):
        split_quotas(GRID_COUNTS, 3)  # 1.8, 0.58, 0.62 tiles


def test_no_cap_or_a_cap_above_the_grid_keeps_every_tile():
    splits = split_grid(GRID_COUNTS)
    assert capped(splits, None, seed=0).all()
    assert capped(splits, len(splits), seed=0).all()
    assert capped(splits, 10**6, seed=0).all()


def test_same_seed_same_tiles_other_seed_other_tiles_larger_cap_a_superset():
    splits = split_grid(GRID_COUNTS)
    sample = capped(splits, 300, seed=0)
    assert (capped(splits, 300, seed=0) == sample).all()
    assert (capped(splits, 300, seed=1) != sample).any()
    assert (capped(splits, 600, seed=0) >= sample).all()  # nested: a superset


def test_capped_grid_keeps_the_grid_order_and_the_tiles_splits(tiny_aoi):
    grid = quiet_grid("tiny", tiny_aoi, 320)
    splits = geographic_split(grid, nbands=5, angle=0.0, fractions=FRACTIONS)
    tiles, kept = cap_grid(grid, splits, 20, seed=3)
    assert len(tiles) == len(kept) == 20
    assert kept.identifier.tolist() == tiles.identifier.tolist()
    position = {t: i for i, t in enumerate(grid.identifier)}
    assert sorted(kept.identifier, key=position.get) == kept.identifier.tolist()
    split_of = dict(zip(splits.identifier, splits.split, strict=True))
    assert all(split_of[t] == s for t, s in zip(kept.identifier, kept.split, strict=True))
    with pytest.raises(SarsslError, match="does not list the grid's tiles"):
        cap_grid(grid, splits.iloc[::-1], 20, seed=3)


def test_kept_tiles_of_a_geetiles_download_are_read_in_its_own_layout(tmp_path, tiny_aoi):
    download = tmp_path / "download" / tiles_file_name("tiny")
    kept_file = tmp_path / "results" / tiles_file_name("tiny")
    grid = quiet_grid("tiny", tiny_aoi, 320)
    write_tiles_file(grid, download)
    write_tiles_file(grid.iloc[::4], kept_file)
    manifest, rows = shard_manifest(kept_file, 1, 2, "s1", "labels", layout_file=download)
    start, stop = shard_range(len(grid.iloc[::4]), 2, 1)
    assert manifest.tile.tolist() == grid.identifier[::4].iloc[start:stop].tolist()
    assert manifest["index"].tolist() == list(range(start, stop))
    assert manifest.s1_path[0] == str(
        download.parent / download.stem / "s1" / f"{rows.identifier.iloc[0]}.tif"
    )
