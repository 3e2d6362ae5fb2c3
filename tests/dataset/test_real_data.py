"""The reading code on real files nobody here made: a Sentinel-1 GRD chip exported from Earth
Engine (Sen1Floods11) and an ESA WorldCover 2020 tile, kept in tests/data (each folder's
README.md)."""

import hashlib
import re

import numpy as np
import pandas as pd
import pytest
import rasterio
import zarr
from conftest import S1_CHIP, S1_LABELS, WORLDCOVER
from rasterio.transform import Affine

from sarssl.dataset.bands import EXPORT_BANDS
from sarssl.dataset.build import BuildSettings, build_shard, read_label_codes
from sarssl.dataset.geotiff import read_raster, write_geotiff
from sarssl.dataset.seasonal import tile_labels
from sarssl.dataset.sources import write_csv
from sarssl.dataset.store import create_store
from sarssl.dataset.tilegrid import TileGrid
from sarssl.dataset.worldcover import CODES
from sarssl.errors import TileError


def test_real_s1_chip_keeps_values_bands_and_georeferencing():
    chip = read_raster(S1_CHIP, "spain")
    assert chip.band_names == ("VV", "VH")
    assert chip.data.dtype == np.float32 and chip.shape == (512, 512)
    assert chip.crs == "EPSG:4326"
    assert chip.transform.a == pytest.approx(8.983e-5, rel=1e-3)
    assert chip.transform.c == pytest.approx(-0.78, abs=0.01) and chip.transform.f == pytest.approx(
        38.13, abs=0.01
    )
    # Percentiles published with the file (tests/data/sen1floods11/README.md).
    np.testing.assert_allclose(
        np.nanpercentile(chip.data[0], [1, 50, 99]), [-25.4, -10.5, 2.5], atol=0.05
    )
    np.testing.assert_allclose(
        np.nanpercentile(chip.data[1], [1, 50, 99]), [-36.5, -17.7, -8.9], atol=0.05
    )


def test_real_hand_labels_are_not_worldcover_codes_and_are_named():
    s1 = read_raster(S1_CHIP, "spain")
    assert read_raster(S1_LABELS, "spain").data.dtype == np.int16
    codes = read_label_codes(S1_LABELS, "spain", TileGrid(s1.bounds, 512, 10))
    with pytest.raises(
        TileError, match=r"tile spain: label codes \[-1, 1\] are not ESA WorldCover"
    ):
        tile_labels(codes, "spain", np.ones(s1.shape, bool))


def test_real_chip_goes_through_the_store_with_its_values_and_grid(tmp_path):
    """The real VV/VH as every season's composite, through the same build as any export."""
    chip = read_raster(S1_CHIP, "spain")
    seasonal = np.stack([chip.data[i % 2] for i in range(len(EXPORT_BANDS))])
    s1_path, label_path = tmp_path / "s1.tif", tmp_path / "wc.tif"
    write_geotiff(s1_path, seasonal, EXPORT_BANDS, chip.crs, chip.transform, nodata=np.nan)
    codes = np.full((1, *chip.shape), 40, np.uint8)
    write_geotiff(label_path, codes, ("Map",), chip.crs, chip.transform, nodata=0)
    write_csv(
        pd.DataFrame(
            {
                "index": [0],
                "tile": ["spain"],
                "s1_path": [str(s1_path)],
                "label_path": [str(label_path)],
            }
        ),
        tmp_path / "manifest.csv",
    )
    store = tmp_path / "store.zarr"
    create_store(store, ["spain"], np.array([chip.bounds]), 512, "float32", {})
    report = build_shard(
        store,
        tmp_path / "manifest.csv",
        tmp_path / "report.csv",
        BuildSettings(512, 0.5, "fail", 1),
    )
    stored_transform = Affine(*report.loc[0, [f"t{i}" for i in range(6)]].astype(float))
    assert stored_transform.almost_equals(chip.transform, precision=1e-12)
    assert report.crs[0] == "EPSG:4326"
    stored = zarr.open_group(store, mode="r")["s1grd"][0]
    np.testing.assert_array_equal(stored[0], chip.data[0])  # winter_VV
    np.testing.assert_array_equal(stored[7], chip.data[1])  # summer_VH
    np.testing.assert_allclose(stored[11], chip.data[0] - chip.data[1])  # autumn_VV-VH


def test_worldcover_tile_is_read_through_a_window_with_its_codes_and_grid():
    bounds = (6.60, 0.20, 6.61, 0.21)  # 120 x 120 px of São Tomé at 8.333e-5 degrees
    window = read_raster(WORLDCOVER, "stp", bounds=bounds)
    assert window.shape == (120, 120)
    assert window.bounds == pytest.approx(bounds)
    assert set(np.unique(window.data)) <= {0, *CODES}
    with rasterio.open(WORLDCOVER) as src:  # the same pixels as a plain read at that offset
        row, col = src.index(bounds[0] + 1e-7, bounds[3] - 1e-7)
        direct = src.read(1, window=((row, row + 120), (col, col + 120)))
    np.testing.assert_array_equal(window.data[0], direct)


def test_worldcover_tile_overview_is_read_without_loading_the_whole_tile():
    whole = (6.0, 0.0, 9.0, 3.0)
    overview = read_raster(WORLDCOVER, "stp", bounds=whole, out_shape=(562, 562))
    assert set(np.unique(overview.data)) - {0} <= set(CODES)
    assert overview.transform.a == pytest.approx(3.0 / 562)
    # Land (any class but water 80) lies only within 6.46-7.46 E, 0-1.70 N (README).
    rows, cols = np.nonzero((overview.data[0] != 0) & (overview.data[0] != 80))
    lon, lat = overview.transform @ (cols + 0.5, rows + 0.5)
    assert lon.min() > 6.44 and lon.max() < 7.48 and lat.min() > -0.01 and lat.max() < 1.72
    assert len(rows) > 100


@pytest.mark.parametrize("path", [S1_CHIP, S1_LABELS, WORLDCOVER], ids=lambda p: p.name)
def test_the_vendored_rasters_are_the_files_their_readme_describes(path):
    """The checksums published in each folder's README.md."""
    readme = (path.parent / "README.md").read_text()
    listed = re.search(rf"`{re.escape(path.name)}` \|.*\| `([0-9a-f]{{64}})` \|", readme)
    assert listed, f"{path.name} is not listed with its sha256"
    assert hashlib.sha256(path.read_bytes()).hexdigest() == listed.group(1)
