"""The realism statistics on fields of known structure, and the figure of the tiny store
with and without the real chip."""

import numpy as np
import pandas as pd
import pytest
from conftest import S1_CHIP
from rasterio.transform import from_origin

from sarssl.outputs.realism import boxcar, compare, pixel_metres, realism_figure, semivariogram

TABLE = pd.DataFrame(
    {"input": ["pixel", "pixel"], "classifier": ["majority class", "LDA"], "miou": [0.05, 0.4]}
)


def test_pixel_metres_of_degrees_shrink_with_latitude():
    degree = 1e-4
    y, x = pixel_metres("EPSG:4326", from_origin(0.0, 60.0 + 0.0032, degree, degree), 64)
    assert y == pytest.approx(11.12, abs=0.01)
    assert x == pytest.approx(y / 2, rel=1e-3)  # cos 60 degrees
    assert pixel_metres("EPSG:32630", from_origin(0, 0, 10, 20), 64) == (20, 10)


def test_white_noise_has_a_flat_semivariogram_even_with_gaps():
    noise = np.random.default_rng(0).standard_normal((128, 128))
    noise[40:70, 10:90] = np.nan
    variogram = semivariogram(noise, (10.0, 10.0), 10.0)
    assert len(variogram) == 64  # half the side, in bins of a pixel
    np.testing.assert_allclose(variogram, 1.0, atol=0.05)


def test_a_smooth_field_has_a_small_nugget_and_reaches_its_sill_later():
    rng = np.random.default_rng(1)
    smooth = boxcar(rng.standard_normal((128, 128)), 9)
    variogram = semivariogram(smooth, (10.0, 10.0), 10.0)
    assert variogram[0] < 0.3  # neighbours share 8 of 9 columns of the window
    assert variogram[0] < variogram[3] < variogram[7]
    np.testing.assert_allclose(variogram[10:], 1.0, atol=0.1)  # beyond the window: noise


def test_boxcar_averages_the_pixels_with_data_and_keeps_gaps():
    image = np.arange(25, dtype=np.float32).reshape(5, 5)
    image[0, 0] = np.nan
    filtered = boxcar(image, 3)
    assert np.isnan(filtered[0, 0])
    assert filtered[2, 2] == pytest.approx(image[1:4, 1:4].mean())
    assert filtered[1, 1] == pytest.approx(np.nanmean(image[:3, :3]))


def test_figure_without_the_real_chip_says_so(tiny_store, tmp_path):
    comparison = compare(tiny_store, tmp_path / "absent.tif", tiles=2, boxcar_px=5)
    assert "not found" in comparison.note
    summary = comparison.summary()
    assert summary["source"].str.startswith("store").tolist() == [True]
    assert summary["vv_p1"].iloc[0] < summary["vv_p50"].iloc[0] < summary["vv_p99"].iloc[0]
    realism_figure(comparison, TABLE, tmp_path / "realism.png", "tiny")
    assert (tmp_path / "realism.png").stat().st_size > 0


def test_figure_with_the_real_chip(tiny_store, tmp_path):
    comparison = compare(tiny_store, S1_CHIP, tiles=2, boxcar_px=5)
    summary = comparison.summary().set_index("source")
    assert comparison.note == "" and len(summary) == 3
    single, boxcar_row = summary.iloc[1], summary.iloc[2]
    # The chip's documented percentiles (tests/data/sen1floods11/README.md), over its windows.
    assert single["vv_p50"] == pytest.approx(-10.5, abs=0.3)
    assert single["vh_p50"] == pytest.approx(-17.7, abs=0.3)
    # The boxcar takes speckle away: narrower tails, a smaller nugget.
    assert boxcar_row["vv_p99"] - boxcar_row["vv_p1"] < single["vv_p99"] - single["vv_p1"]
    assert boxcar_row["vv_nugget"] < single["vv_nugget"]
    realism_figure(comparison, TABLE, tmp_path / "realism.png", "tiny")
    assert (tmp_path / "realism.png").stat().st_size > 0
