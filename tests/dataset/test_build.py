"""The Zarr build: contents, train-only statistics, shards, bad tiles and interruptions."""

import json
import os
import signal
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import rasterio
import xarray as xr
import zarr
from conftest import TEST_TILE_PX, TESTS, build_all, prepare_sources, settings

from sarssl.atomic import atomic_path
from sarssl.dataset.bands import CHANNELS, EXPORT_BANDS
from sarssl.dataset.build import build_shard
from sarssl.dataset.geotiff import write_geotiff
from sarssl.dataset.store import is_complete, open_store, tile_transform
from sarssl.errors import IncompleteStoreError, TileError


@pytest.fixture
def dataset(tmp_path, tiny_aoi):
    return prepare_sources(tmp_path / "data", tiny_aoi)


def expected_channels(s1_path):
    """The 12 channels computed directly from the file (one band per season here)."""
    with rasterio.open(s1_path) as src:
        bands = {name: src.read(i + 1) for i, name in enumerate(src.descriptions)}
    out = []
    for season in ("winter", "spring", "summer", "autumn"):
        vv, vh = bands[f"{season}_VV"], bands[f"{season}_VH"]
        out += [vv, vh, vv - vh]
    return np.stack(out)


def test_store_holds_every_tile_without_nan_with_coordinates(dataset):
    summary = build_all(dataset)
    ds = open_store(dataset.store)
    manifest = pd.read_csv(dataset.manifests[0], dtype={"tile": str})
    assert ds.s1grd.dims == ("tile", "channel", "y", "x")
    assert ds.s1grd.shape == (42, 12, TEST_TILE_PX, TEST_TILE_PX) and ds.s1grd.dtype == np.float16
    assert tuple(ds.channel.values) == CHANNELS
    assert ds.tile.values.tolist() == manifest.tile.tolist()
    assert bool(np.isfinite(ds.s1grd.values).all())
    assert set(np.unique(ds.labels.values)) <= {*range(11), 255}
    assert ds.s1grd.encoding["chunks"] == (1, 12, TEST_TILE_PX, TEST_TILE_PX)
    splits = pd.read_csv(dataset.splits_file, dtype={"identifier": str})
    assert ds.split.values.tolist() == splits.split.tolist()
    assert bool(ds.valid.all()) and summary["tiles"]["train"]["rejected"] == 0
    # Any pixel can be put back on the map: the stored transform is the file's.
    with rasterio.open(manifest.s1_path[5]) as src:
        assert tuple(ds.transform.values[5]) == pytest.approx(tuple(src.transform)[:6])
        assert ds.crs.values[5] == src.crs.to_string()
        assert tuple(ds.bounds.values[5]) == pytest.approx(tuple(src.bounds), abs=1e-9)
        lon, lat = tile_transform(ds, 5) @ (10.5, 20.5)  # centre of pixel row 20, col 10
        assert (lon, lat) == pytest.approx(src.xy(20, 10))
    # Values: the file's seasonal VV, VH and VV-VH where the tile had no gap.
    direct = expected_channels(manifest.s1_path[5])
    gapless = np.isfinite(direct).all(axis=0)
    np.testing.assert_allclose(
        ds.s1grd.values[5][:, gapless], direct[:, gapless].astype(np.float16), atol=0.02
    )


def test_a_finished_store_opens_with_xarray_alone_without_a_warning(dataset):
    build_all(dataset)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        opened = xr.open_zarr(dataset.store)
    assert opened.s1grd.shape == (42, 12, TEST_TILE_PX, TEST_TILE_PX)
    assert {"split", "valid", "transform"} <= set(opened.variables)


def test_statistics_come_from_the_train_split_only(dataset):
    build_all(dataset)
    ds = open_store(dataset.store)
    stats = json.loads(dataset.stats.read_text())["normalisation"]
    assert ds.s1grd.attrs["normalisation"] == stats
    manifest = pd.read_csv(dataset.manifests[0], dtype={"tile": str})
    train_pixels = []
    for i in np.flatnonzero(ds.split.values == "train"):
        direct = expected_channels(manifest.s1_path[i])
        # Pixels observed in some season of each polarisation, as stored (float16).
        observed = np.isfinite(direct[0::3]).any(0) & np.isfinite(direct[1::3]).any(0)
        train_pixels.append(ds.s1grd.values[i][:, observed].astype(np.float64))
    pixels = np.concatenate(train_pixels, axis=1)
    np.testing.assert_allclose(stats["mean"], pixels.mean(axis=1), rtol=1e-9)
    np.testing.assert_allclose(stats["std"], pixels.std(axis=1), rtol=1e-9)
    everything = ds.s1grd.values.astype(np.float64).mean(axis=(0, 2, 3))
    assert not np.allclose(stats["mean"], everything, rtol=1e-4)  # val/test do count otherwise


def test_sharded_build_equals_the_single_job_build(tmp_path, tiny_aoi):
    single = prepare_sources(tmp_path / "one", tiny_aoi, n_shards=1)
    sharded = prepare_sources(tmp_path / "three", tiny_aoi, n_shards=3)
    build_all(single)
    build_all(sharded)
    a, b = open_store(single.store), open_store(sharded.store)
    np.testing.assert_array_equal(a.s1grd.values, b.s1grd.values)
    np.testing.assert_array_equal(a.labels.values, b.labels.values)
    one, three = (json.loads(d.stats.read_text()) for d in (single, sharded))
    for key in ("mean", "std"):  # combined in another order: equal up to rounding
        np.testing.assert_allclose(
            one["normalisation"][key], three["normalisation"][key], rtol=1e-12
        )
    assert one["tiles"] == three["tiles"] and one["class_pixels"] == three["class_pixels"]


def corrupt(dataset):
    """One tile per kind of bad input; returns {tile index: expected reason}."""
    manifest = pd.read_csv(dataset.manifests[0], dtype={"tile": str})
    s1, labels = manifest.s1_path, manifest.label_path

    def rewrite(i, change, names=EXPORT_BANDS):
        """Tile i's S1 file with its data changed, on its own grid."""
        with rasterio.open(s1[i]) as src:
            data, transform = src.read(), src.transform
        write_geotiff(s1[i], change(data), names, "EPSG:4326", transform, np.nan)

    reasons = {}
    # 0: truncated GeoTIFF
    raw = Path(s1[0]).read_bytes()
    Path(s1[0]).write_bytes(raw[: len(raw) // 3])
    reasons[0] = "cannot read S1 file"
    # 1: wrong band count
    rewrite(1, lambda d: d[:6], EXPORT_BANDS[:6])
    reasons[1] = "bands ['autumn_VV', 'autumn_VH'] missing"
    # 2: wrong size: 20 of the tile's 32 rows
    rewrite(2, lambda d: d[:, :20])
    reasons[2] = "S1 bounds differ from the tile's by +0 (west), +12 (south)"
    # 3: all nodata
    rewrite(3, lambda d: np.full_like(d, np.nan))
    reasons[3] = "all pixels are nodata"
    # 4: a season with no data
    rewrite(4, lambda d: np.where(np.isin(np.arange(8), [2, 3])[:, None, None], np.nan, d))
    reasons[4] = "season spring has no VV data"
    # 5: missing label tile
    os.remove(labels[5])
    reasons[5] = "label file missing"
    # 6: label codes outside WorldCover
    with rasterio.open(labels[6]) as src:
        codes, label_transform = src.read(), src.transform
    codes[0, :2, :2] = 33
    write_geotiff(labels[6], codes, ("Map",), "EPSG:4326", label_transform, 0)
    reasons[6] = "label codes [33] are not ESA WorldCover"
    return {manifest.tile[i]: r for i, r in reasons.items()}


def test_bad_tiles_are_recorded_with_their_reason_and_left_out(dataset):
    reasons = corrupt(dataset)
    build_all(dataset)
    rejected = pd.read_csv(dataset.rejected, dtype={"tile": str})
    assert sorted(rejected.tile) == sorted(reasons)
    for row in rejected.itertuples():
        assert reasons[row.tile] in row.reason, row
    ds = open_store(dataset.store)
    bad = np.isin(ds.tile.values, list(reasons))
    assert not ds.valid.values[bad].any() and ds.valid.values[~bad].all()
    assert bool(np.isfinite(ds.s1grd.values).all())  # rejected tiles hold zeros, not NaN
    assert (ds.labels.values[bad] == 255).all()


def test_fail_policy_stops_at_the_first_bad_tile_naming_it(dataset):
    reasons = corrupt(dataset)
    with pytest.raises(TileError) as err:
        build_shard(dataset.store, dataset.manifests[0], dataset.reports[0], settings("fail"))
    assert err.value.tile in reasons
    assert not dataset.reports[0].exists()


KILLER = """
import os, signal, sys
sys.path.insert(0, {tests!r})
import sarssl.dataset.build as build
from conftest import settings
original, calls = build.read_raster, []
def read_then_die(*args, **kwargs):
    calls.append(1)
    if len(calls) == 20:
        os.kill(os.getpid(), signal.SIGKILL)
    return original(*args, **kwargs)
build.read_raster = read_then_die
build.build_shard({store!r}, {manifest!r}, {report!r}, settings())
"""


def test_a_killed_shard_leaves_a_store_nobody_takes_for_complete(dataset):
    build_all(dataset)
    first = open_store(dataset.store).s1grd.values
    script = KILLER.format(
        tests=str(TESTS),
        store=str(dataset.store),
        manifest=str(dataset.manifests[0]),
        report=str(dataset.root / "rebuild.csv"),
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert result.returncode == -signal.SIGKILL, result.stderr
    assert not is_complete(dataset.store)
    assert not (dataset.root / "rebuild.csv").exists()
    with pytest.raises(IncompleteStoreError, match="did not finish"):
        open_store(dataset.store)
    build_all(dataset)  # the rerun completes it, with the same content
    np.testing.assert_array_equal(open_store(dataset.store).s1grd.values, first)


def test_a_store_that_was_never_finalised_is_refused(dataset):
    build_shard(dataset.store, dataset.manifests[0], dataset.reports[0], settings())
    with pytest.raises(IncompleteStoreError):
        open_store(dataset.store)
    assert zarr.open_group(dataset.store, mode="r")["s1grd"].shape[0] == 42


def test_atomic_write_leaves_nothing_when_interrupted(tmp_path):
    target = tmp_path / "out.csv"
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_text("half")
        raise RuntimeError("killed")
    assert not target.exists() and list(tmp_path.iterdir()) == []
