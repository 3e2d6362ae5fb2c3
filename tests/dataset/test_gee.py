"""The Earth Engine export, tested at its boundary with FakeEarthEngine (a test double:
Earth Engine cannot be reached from here), plus an integration test that runs only where
credentials are configured."""

import json
import logging
import os
import signal
import subprocess
import sys
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import rasterio
from conftest import REPO, TEST_TILE_PX, TESTS, quiet_grid
from fake_earthengine import EEException, FakeEarthEngine, band_value, http_failure
from rasterio.io import MemoryFile

from sarssl.dataset.bands import EXPORT_BANDS, SEASONS
from sarssl.dataset.build import build_shard
from sarssl.dataset.gee import S1Request, WorldCoverRequest, export_requests, season_dates
from sarssl.dataset.gee_session import (
    GeeAuth,
    GeeAuthError,
    RetryPolicy,
    classify,
    credentials_available,
    initialize,
    redact,
    resolve_auth,
    with_retries,
)
from sarssl.dataset.gee_shard import export_shard
from sarssl.dataset.grid import read_tiles, tile_bounds, tiles_file_name, write_tiles_file
from sarssl.dataset.store import create_store
from sarssl.dataset.worldcover import WORLDCOVER_NODATA

DATASETS = {"s1": "s1grd-2020", "labels": "esaworldcover-2020"}
NO_WAIT = RetryPolicy(max_attempts=5, base_delay_s=0.0, max_delay_s=0.0)
SECRET = "ya29.a0AfH6SMBsecretTOKENvalue"


@pytest.fixture
def tiles_file(tmp_path, tiny_aoi) -> Path:
    path = tmp_path / tiles_file_name("tiny")
    write_tiles_file(quiet_grid("tiny", tiny_aoi, TEST_TILE_PX * 10).iloc[:6], path)
    return path


def export(fake, tiles_file, tmp_path, policy=NO_WAIT, **request_options):
    return export_shard(
        fake,
        tiles_file,
        0,
        1,
        export_requests(
            2020,
            request_options.get("orbit", "ASCENDING"),
            request_options.get("composite", "mean"),
            DATASETS,
        ),
        TEST_TILE_PX,
        tmp_path / "manifest.csv",
        tmp_path / "summary.json",
        concurrency=3,
        policy=policy,
    )


def west_of(tiles_file, i):
    return round(tile_bounds(read_tiles(tiles_file))[i][0], 6)


def test_s1_request_has_the_seasons_filters_and_bands_of_the_paper():
    request = S1Request(2020)
    description = request.describe((-1.0, 41.7, -0.99, 41.71), 448)
    assert description["collection"] == "COPERNICUS/S1_GRD"
    assert {"property": "instrumentMode", "eq": "IW"} in description["filters"]
    assert description["orbit_passes"] == {
        "ASCENDING": {"property": "orbitProperties_pass", "eq": "ASCENDING"}
    }
    contains = [f["contains"] for f in description["filters"] if "contains" in f]
    assert contains == ["VV", "VH"]
    assert season_dates(2020) == {
        "winter": ("2019-12-01", "2020-03-01"),
        "spring": ("2020-03-01", "2020-06-01"),
        "summer": ("2020-06-01", "2020-09-01"),
        "autumn": ("2020-09-01", "2020-12-01"),
    }
    assert description["bands"] == list(EXPORT_BANDS) and description["dtype"] == "float32"
    assert "fully masked" in description["empty_season"]
    grid = description["grid"]
    assert grid["dimensions"] == {"width": 448, "height": 448} and grid["crsCode"] == "EPSG:4326"
    assert (
        grid["affineTransform"]["translateX"] == -1.0
        and grid["affineTransform"]["translateY"] == 41.71
    )
    assert grid["affineTransform"]["scaleY"] == pytest.approx(-0.01 / 448)


def test_ee_expression_is_built_from_the_description_season_by_season():
    fake = FakeEarthEngine()
    request = S1Request(2020, reducer="median")
    image = request.image(fake, request.describe((-1.0, 41.7, -0.99, 41.71), 32))
    assert image.bands == EXPORT_BANDS
    (cat,) = [op for op in image.ops if op[0] == "cat"]
    seasons = cat[1]
    assert len(seasons) == 4
    winter_collection, winter_ops = seasons[0][0]
    assert winter_collection == "COPERNICUS/S1_GRD"
    assert ("filterDate", "2019-12-01", "2020-03-01") in winter_ops
    assert ("filter", ("eq", "instrumentMode", "IW")) in winter_ops
    assert ("filter", ("listContains", "transmitterReceiverPolarisation", "VH")) in winter_ops
    assert ("filter", ("eq", "orbitProperties_pass", "ASCENDING")) in winter_ops
    assert seasons[0][1] == ("median",) and ("rename", ("winter_VV", "winter_VH")) in seasons[0]
    # Merged into every collection: a fully masked float image of the selected bands.
    masked_float = (("constant", (0, 0)), ("toFloat",), ("rename", ("VV", "VH")), ("updateMask", 0))
    assert winter_ops[-2:] == (("select", ("VV", "VH")), ("merge", (masked_float,)))
    assert all(season[0][1][-1] == ("merge", (masked_float,)) for season in seasons)
    assert image.ops[-1] == ("toFloat",)


def test_both_orbit_passes_are_composited_apart_as_geetiles_does():
    fake = FakeEarthEngine()
    request = S1Request(2020, orbit_pass="BOTH", reducer="median")
    image = request.image(fake, request.describe((-1.0, 41.7, -0.99, 41.71), 32))
    assert image.bands[:4] == ("winter_VV_asc", "winter_VH_asc", "winter_VV_des", "winter_VH_des")
    assert len(image.bands) == 16 and request.bands == image.bands
    passes = [source.orbit_pass for source in image.sources]
    assert passes[:4] == ["ascending", "ascending", "descending", "descending"]
    assert {source.reducer for source in image.sources} == {"median"}


def test_the_export_talks_to_the_high_volume_endpoint_unless_told_otherwise(tmp_path):
    key = tmp_path / "key.json"
    key.write_text("{}")
    fake = FakeEarthEngine()
    initialize(fake, GeeAuth("my-project", str(key)), {})
    assert fake.initialized_with["url"] == "https://earthengine-highvolume.googleapis.com"
    initialize(fake, GeeAuth("my-project", str(key)), {}, endpoint="standard")
    assert fake.initialized_with["url"] == "https://earthengine.googleapis.com"


def test_worldcover_request_keeps_the_class_codes_of_the_right_version():
    fake = FakeEarthEngine()
    for year, collection in ((2020, "ESA/WorldCover/v100"), (2021, "ESA/WorldCover/v200")):
        request = WorldCoverRequest(year)
        description = request.describe((0, 0, 1, 1), 32)
        assert description["collection"] == collection and description["bands"] == ["Map"]
        image = request.image(fake, description)
        assert image.ops[0][0] == collection and image.ops[-1] == ("toUint8",)


def test_export_writes_the_geetiles_layout_with_names_dtypes_and_grid(tiles_file, tmp_path):
    fake = FakeEarthEngine()
    summary = export(fake, tiles_file, tmp_path)
    assert summary.complete == 6 and summary.downloaded == 6 and not summary.failed
    manifest = pd.read_csv(tmp_path / "manifest.csv", dtype={"tile": str})
    bounds = tile_bounds(read_tiles(tiles_file))
    with rasterio.open(manifest.s1_path[0]) as src:
        assert (
            Path(manifest.s1_path[0]).parent == tiles_file.parent / tiles_file.stem / "s1grd-2020"
        )
        assert src.descriptions == EXPORT_BANDS and src.dtypes == ("float32",) * 8
        assert (src.width, src.height) == (TEST_TILE_PX, TEST_TILE_PX)
        assert tuple(src.bounds) == pytest.approx(tuple(bounds[0]))
        assert src.read(1)[0, 0] == band_value("winter_VV", bounds[0][0])
    with rasterio.open(manifest.label_path[0]) as src:
        assert src.descriptions == ("Map",) and src.dtypes == ("uint8",) and src.nodata == 0


def test_429_then_success_retries_with_growing_jittered_waits(tiles_file, tmp_path):
    fake = FakeEarthEngine()
    fake.failures[west_of(tiles_file, 2)] = [
        http_failure(429, "Too Many Requests"),
        http_failure(503, "Service Unavailable"),
    ]
    summary = export(fake, tiles_file, tmp_path)
    assert summary.complete == 6
    assert (
        len([r for r in fake.requests if r["west"] == west_of(tiles_file, 2)]) == 4
    )  # 2 failed + S1 + labels

    waits = []
    calls = iter([http_failure(429, "Too Many Requests")] * 3 + [None])

    def flaky():
        failure = next(calls)
        if failure:
            raise failure
        return "ok"

    policy = RetryPolicy(max_attempts=5, base_delay_s=2.0, max_delay_s=5.0)
    assert with_retries(flaky, policy, sleep=waits.append, draw=lambda: 1.0) == "ok"
    assert waits == [2.0, 4.0, 5.0]  # 2 * 2^attempt, capped at 5 s
    assert policy.delay(1, 0.0) == 2.0  # equal jitter: at least half of the capped delay


def test_errors_are_classified_like_the_service_reports_them():
    assert classify(http_failure(429, "Too Many Requests")) == "transient"
    assert classify(http_failure(500, "Internal error")) == "transient"
    assert (
        classify(http_failure(400, "Image.select: Pattern 'VV' did not match any bands."))
        == "permanent"
    )
    assert classify(ConnectionError("reset")) == "transient"
    from fake_earthengine import SIZE_LIMIT_MESSAGE, EEException

    assert classify(EEException(SIZE_LIMIT_MESSAGE)) == "too_large"


def test_a_permanent_error_is_recorded_and_the_other_tiles_complete(tiles_file, tmp_path):
    fake = FakeEarthEngine()
    bad = read_tiles(tiles_file).identifier[1]
    fake.failures[west_of(tiles_file, 1)] = [
        http_failure(400, "Image.select: Pattern 'VV' did not match any bands.")
    ]
    summary = export(fake, tiles_file, tmp_path)
    assert list(summary.failed) == [bad] and summary.complete == 5
    assert "did not match any bands" in summary.failed[bad]
    report = json.loads((tmp_path / "summary.json").read_text())
    assert report["missing"] == 1 and report["complete"] == 5 and bad in report["failures"]
    # The build rejects that tile with the export's reason, and keeps the others.
    tiles = read_tiles(tiles_file)
    store = tmp_path / "store.zarr"
    create_store(store, tiles.identifier.tolist(), tile_bounds(tiles), TEST_TILE_PX, "float16", {})
    from conftest import settings

    built = build_shard(store, tmp_path / "manifest.csv", tmp_path / "report.csv", settings())
    rejected = built[built.status == "rejected"]
    assert (
        rejected.tile.tolist() == [bad] and "source failed: EEException" in rejected.reason.iloc[0]
    )


def read_tile(path):
    with rasterio.open(path) as src:
        return dict(zip(src.descriptions, src.read(), strict=True)), src


def test_a_season_without_acquisitions_is_written_masked_not_failed(tiles_file, tmp_path):
    # The double behaves as the service: a season without acquisitions reduces to an image
    # without bands, and its rename fails when the pixels are computed.
    fake = FakeEarthEngine(empty={("spring", None)})
    spring = fake.ImageCollection("COPERNICUS/S1_GRD").filterDate("2020-03-01", "2020-06-01")
    renamed = spring.select(["VV", "VH"]).mean().rename(["spring_VV", "spring_VH"])
    grid = S1Request(2020).describe((0.0, 0.0, 0.01, 0.01), 4)["grid"]
    with pytest.raises(EEException, match=r"number of names \(2\) must match .* bands \(0\)"):
        fake.data.computePixels({"expression": renamed, "fileFormat": "GEO_TIFF", "grid": grid})

    summary = export(fake, tiles_file, tmp_path)
    assert summary.complete == 6 and not summary.failed
    manifest = pd.read_csv(tmp_path / "manifest.csv", dtype={"tile": str})
    west = tile_bounds(read_tiles(tiles_file))[0][0]
    bands, src = read_tile(manifest.s1_path[0])
    assert src.descriptions == EXPORT_BANDS and np.isnan(src.nodata)
    for name, values in bands.items():
        if name.startswith("spring_"):
            assert np.isnan(values).all(), name
        else:
            assert (values == band_value(name, west)).all(), name
    # The gap rules decide, not a failed export.
    built = build_exported(tiles_file, tmp_path, "ascending")
    assert (built.status == "rejected").all()
    assert (built.reason == "season spring has no VV data").all()


def test_both_passes_without_ascending_ones_keep_every_band_ascending_masked(tiles_file, tmp_path):
    # Gabon: no ascending acquisition in any season (geefetch issue 21).
    fake = FakeEarthEngine(empty={(season, "ascending") for season in SEASONS})
    summary = export(fake, tiles_file, tmp_path, orbit="BOTH")
    assert summary.complete == 6 and not summary.failed
    manifest = pd.read_csv(tmp_path / "manifest.csv", dtype={"tile": str})
    west = tile_bounds(read_tiles(tiles_file))[0][0]
    bands, _ = read_tile(manifest.s1_path[0])
    assert tuple(bands) == S1Request(2020, orbit_pass="BOTH").bands and len(bands) == 16
    for name, values in bands.items():
        if name.endswith("_asc"):
            assert np.isnan(values).all(), name
        else:
            assert name.endswith("_des") and (values == band_value(name, west)).all(), name
    # Read with both passes, the tiles are kept from the pass present, and say so.
    built = build_exported(tiles_file, tmp_path, "both")
    assert (built.status == "ok").all()
    missing = "both; ascending missing in winter, spring, summer, autumn"
    assert (built.orbit_pass == missing).all()


def build_exported(tiles_file, folder, orbit_pass: str) -> pd.DataFrame:
    """Build a store of the tiles exported into `folder`; the shard's report."""
    from conftest import settings

    tiles = read_tiles(tiles_file)
    store = folder / "store.zarr"
    create_store(store, tiles.identifier.tolist(), tile_bounds(tiles), TEST_TILE_PX, "float16", {})
    config = replace(settings(), orbit_pass=orbit_pass)
    return build_shard(store, folder / "manifest.csv", folder / "report.csv", config)


@dataclass
class WestMasked:
    """A scene for the double: constant values (-12 dB, WorldCover code 40), masked in every
    band west of `lon`."""

    lon: float

    def values(self, source, lon, lat):
        return np.where(lon < self.lon, np.nan, 40.0 if source.band == "Map" else -12.0)


@pytest.mark.parametrize("payload_mask", ["nodata", "internal"])
def test_the_payload_mask_is_read_not_guessed_from_masked_values(
    payload_mask, tiles_file, tmp_path
):
    west, _, east, _ = tile_bounds(read_tiles(tiles_file))[0]
    garbage = {"float32": 1234.5, "uint8": 77}  # not 0, NaN or Earth Engine's nodata
    fake = FakeEarthEngine(
        scene=WestMasked((west + east) / 2), payload_mask=payload_mask, masked_values=garbage
    )
    half = TEST_TILE_PX // 2
    # What the double serves holds the garbage under the mask.
    description = S1Request(2020).describe(tuple(tile_bounds(read_tiles(tiles_file))[0]), 32)
    payload = fake.data.computePixels(
        {
            "expression": S1Request(2020).image(fake, description),
            "fileFormat": "GEO_TIFF",
            "grid": description["grid"],
        }
    )
    with MemoryFile(payload) as memory, memory.open() as src:
        raw = src.read()
    assert (raw[:, :, :half] == 1234.5).all() and (raw[:, :, half:] == -12.0).all()

    summary = export(fake, tiles_file, tmp_path)
    assert summary.complete == 6 and not summary.failed
    manifest = pd.read_csv(tmp_path / "manifest.csv", dtype={"tile": str})
    with rasterio.open(manifest.s1_path[0]) as src:
        s1 = src.read()
    assert np.isnan(s1[:, :, :half]).all() and (s1[:, :, half:] == -12.0).all()
    with rasterio.open(manifest.label_path[0]) as src:
        labels = src.read(1)
    assert src.nodata == WORLDCOVER_NODATA
    assert (labels[:, :half] == WORLDCOVER_NODATA).all() and (labels[:, half:] == 40).all()


def test_a_rerun_downloads_only_what_is_missing(tiles_file, tmp_path):
    fake = FakeEarthEngine()
    export(fake, tiles_file, tmp_path)
    first = len(fake.requests)
    summary = export(fake, tiles_file, tmp_path)
    assert len(fake.requests) == first and summary.already_present == 6
    manifest = pd.read_csv(tmp_path / "manifest.csv", dtype={"tile": str})
    os.remove(manifest.label_path[3])
    summary = export(fake, tiles_file, tmp_path)
    assert len(fake.requests) == first + 1 and summary.downloaded == 1
    assert fake.requests[-1]["bands"] == ("Map",)


def test_a_request_over_the_size_limit_is_split_by_bands_and_stitched(tiles_file, tmp_path):
    fake = FakeEarthEngine(max_bands=3)
    export(fake, tiles_file, tmp_path)
    manifest = pd.read_csv(tmp_path / "manifest.csv", dtype={"tile": str})
    west = tile_bounds(read_tiles(tiles_file))[0][0]
    with rasterio.open(manifest.s1_path[0]) as src:
        assert src.descriptions == EXPORT_BANDS
        values = [src.read(i + 1)[0, 0] for i in range(8)]
    assert values == [band_value(b, west) for b in EXPORT_BANDS]
    assert {len(r["bands"]) for r in fake.requests if r["bands"] != ("Map",)} == {8, 4, 2}


KILL_DURING_WRITE = """
import os, signal, sys
sys.path.insert(0, {tests!r})
import rasterio.io
from fake_earthengine import FakeEarthEngine
from sarssl.dataset.gee import export_requests
from sarssl.dataset.gee_session import RetryPolicy
from sarssl.dataset.gee_shard import export_shard
calls = []
original = rasterio.io.DatasetWriter.set_band_description
def die_mid_write(self, *args):
    calls.append(1)
    if len(calls) == 3:  # the data of the first tile is written, its metadata is not
        os.kill(os.getpid(), signal.SIGKILL)
    return original(self, *args)
rasterio.io.DatasetWriter.set_band_description = die_mid_write
datasets = {{"s1": "s1grd-2020", "labels": "esaworldcover-2020"}}
requests = export_requests(2020, "ASCENDING", "mean", datasets)
export_shard(FakeEarthEngine(), {tiles!r}, 0, 1, requests, {px}, {manifest!r}, {summary!r},
             concurrency=1, policy=RetryPolicy(1, 0, 0))
"""


def test_a_process_killed_during_a_write_leaves_no_file_taken_for_complete(tiles_file, tmp_path):
    script = KILL_DURING_WRITE.format(
        tests=str(TESTS),
        tiles=str(tiles_file),
        px=TEST_TILE_PX,
        manifest=str(tmp_path / "manifest.csv"),
        summary=str(tmp_path / "summary.json"),
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert result.returncode == -signal.SIGKILL, result.stderr
    s1_dir = tiles_file.parent / tiles_file.stem / "s1grd-2020"
    assert list(s1_dir.glob("*.tif")) == []  # nothing under a final name
    assert len(list(s1_dir.glob(".*.tmp"))) == 1  # the killed writer's temporary
    assert not (tmp_path / "manifest.csv").exists()
    summary = export(FakeEarthEngine(), tiles_file, tmp_path)
    assert summary.downloaded == 6 and list(s1_dir.glob(".*.tmp")) == []
    for path in s1_dir.glob("*.tif"):
        with rasterio.open(path) as src:
            assert src.descriptions == EXPORT_BANDS and np.isfinite(src.read()).all()


def test_credentials_never_reach_a_log_line_a_summary_or_an_error(tiles_file, tmp_path, caplog):
    fake = FakeEarthEngine()
    leak = f'Invalid authentication credentials. Bearer {SECRET} "access_token": "{SECRET}"'
    fake.failures[west_of(tiles_file, 0)] = [http_failure(500, leak)] * 5
    with caplog.at_level(logging.DEBUG):
        summary = export(fake, tiles_file, tmp_path)
    assert summary.failed  # the tile failed for good, after retries that were logged
    texts = [r.getMessage() for r in caplog.records]
    texts += [(tmp_path / "summary.json").read_text(), (tmp_path / "manifest.csv").read_text()]
    assert any("[REDACTED]" in t for t in texts)
    assert not any(SECRET in t for t in texts)
    assert redact("-----BEGIN PRIVATE KEY-----\nMIIabc\n-----END PRIVATE KEY-----") == "[REDACTED]"


def test_without_credentials_initialisation_fails_at_once_saying_what_to_set(tmp_path):
    environ = {"CLOUDSDK_CONFIG": str(tmp_path)}  # no ADC file there
    fake = FakeEarthEngine()
    with pytest.raises(GeeAuthError, match=r"gee\.project"):
        initialize(fake, resolve_auth(None, None, environ), environ)
    with pytest.raises(GeeAuthError, match="GOOGLE_APPLICATION_CREDENTIALS") as err:
        initialize(fake, resolve_auth("my-project", None, environ), environ)
    assert "gcloud auth application-default login" in str(err.value)
    with pytest.raises(GeeAuthError, match=r"missing\.json does not exist"):
        initialize(fake, GeeAuth("my-project", str(tmp_path / "missing.json")), environ)
    assert fake.initialized_with is None


def test_a_broken_key_file_fails_without_showing_the_key(tmp_path):
    key = tmp_path / "key.json"
    key.write_text(
        json.dumps(
            {
                "type": "service_account",
                "private_key": f"-----BEGIN PRIVATE KEY-----\n{SECRET}\n-----END PRIVATE KEY-----",
            }
        )
    )
    import ee

    with pytest.raises(GeeAuthError) as err:
        initialize(ee, GeeAuth("my-project", str(key)), {})
    assert SECRET not in str(err.value) and err.value.__cause__ is None


def test_auth_comes_from_config_then_environment():
    environ = {
        "SARSSL_GEE_PROJECT": "env-project",
        "GOOGLE_APPLICATION_CREDENTIALS": "/keys/sa.json",
    }
    assert resolve_auth(None, None, environ) == GeeAuth("env-project", "/keys/sa.json")
    assert resolve_auth("cfg", "/cfg.json", environ) == GeeAuth("cfg", "/cfg.json")


def test_dry_run_prints_tile_count_and_the_exact_request_without_network():
    command = ["gee-plan", "--configfile", "config/paper.yaml", "--aoi", "china"]
    result = subprocess.run(
        [sys.executable, "-m", "sarssl.cli", *command, "--results", "/nonexistent-results"],
        capture_output=True,
        text=True,
        cwd=REPO,
    )
    assert result.returncode == 0, result.stderr
    plan = json.loads(result.stdout)
    assert plan["aoi"] == "china" and not plan["tiles_exact"] and 400_000 < plan["tiles"] < 500_000
    s1 = plan["requests"]["s1grd-2020"]
    assert s1["collection"] == "COPERNICUS/S1_GRD" and s1["grid"]["dimensions"]["width"] == 448
    assert s1["seasons"]["winter"] == {"start": "2019-12-01", "end_exclusive": "2020-03-01"}
    assert "fully masked" in s1["empty_season"]
    assert plan["requests"]["esaworldcover-2020"]["collection"] == "ESA/WorldCover/v100"


def test_paper_config_dry_runs_the_export_for_the_three_aois():
    result = subprocess.run(
        [sys.executable, "-m", "snakemake", "-n", "--configfile", "config/paper.yaml"],
        capture_output=True, text=True, cwd=REPO,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    out = result.stdout + result.stderr
    for aoi in ("europe", "conus", "china"):
        assert f"Earth Engine export of {aoi}, shard 199" in out
    assert "COPERNICUS/S1_GRD" in out


REAL_AUTH = resolve_auth(None, None)


@pytest.mark.skipif(
    not (REAL_AUTH.project and credentials_available(REAL_AUTH)),
    reason="Earth Engine credentials are not configured (set SARSSL_GEE_PROJECT and "
    "GOOGLE_APPLICATION_CREDENTIALS, or application default credentials)",
)
def test_integration_exports_one_real_tile(tiles_file, tmp_path):
    import ee

    initialize(ee, REAL_AUTH)
    tiles = read_tiles(tiles_file).iloc[:1]
    one = tmp_path / tiles_file_name("one")
    write_tiles_file(tiles, one)
    summary = export(ee, one, tmp_path, policy=RetryPolicy())
    assert summary.complete == 1, summary.failed
    manifest = pd.read_csv(tmp_path / "manifest.csv", dtype={"tile": str})
    with rasterio.open(manifest.s1_path[0]) as src:
        assert src.descriptions == EXPORT_BANDS
        vv = src.read(1)
        assert -30 < np.nanmedian(vv) < 5
