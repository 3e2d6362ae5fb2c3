"""Packed integer stores (data.store_dtype uint8 / uint16): codes from the CF formula,
rounding within half a step up to the range's ends, clipping counted and never wrapped,
xarray decoding, and a store built packed against the same tiles built as float16."""

import json

import numpy as np
import pandas as pd
import pytest
import rasterio
import xarray as xr
import zarr
from conftest import build_all, prepare_sources

from sarssl.dataset.geotiff import write_geotiff
from sarssl.dataset.quantise import ChannelCoding
from sarssl.dataset.store import create_store, open_store

STEPS = {"uint8": 1 / 3, "uint16": 1 / 500}


@pytest.mark.parametrize("dtype", ["uint8", "uint16"])
def test_codes_follow_the_cf_formula_and_round_within_half_a_step_up_to_the_ends(dtype):
    coding = ChannelCoding.of_dtype(dtype)
    step, top = STEPS[dtype], np.iinfo(dtype).max - 1
    assert coding.attributes() == pytest.approx(
        {"scale_factor": step, "add_offset": -45.0, "_FillValue": top + 1}
    )
    assert coding.highest_db == pytest.approx(-45.0 + top * step)
    # -45 dB is code 0, 0 dB code 45 / step, the highest dB the code below the fill.
    known = np.array([-45.0, 0.0, coding.highest_db], dtype=np.float32)[:, None, None]
    codes, clipped = coding.encode(known)
    assert codes.ravel().tolist() == [0, round(45 / step), top] and clipped == 0
    # Anywhere in the range, including within half a step beyond either end.
    db = np.random.default_rng(0).uniform(-45.0 - 0.49 * step, coding.highest_db + 0.49 * step)
    db = np.append(db, [-45.0 - 0.49 * step, coding.highest_db + 0.49 * step])
    db = db.astype(np.float64).reshape(1, 1, -1)
    codes, clipped = coding.encode(db)
    assert codes.dtype == np.dtype(dtype) and clipped == 0
    assert np.abs(coding.decode(codes) - db).max() <= step / 2 + 1e-4
    assert codes.max() <= top  # the fill is never a data code


def test_whole_db_values_are_stored_exactly_in_uint8():
    coding = ChannelCoding.of_dtype("uint8")
    db = np.arange(-45.0, 40.0).reshape(1, 1, -1)
    codes, _ = coding.encode(db)
    np.testing.assert_allclose(coding.decode(codes), db, atol=1e-5)


@pytest.mark.parametrize("dtype", ["uint8", "uint16"])
def test_values_beyond_the_range_are_clipped_to_its_ends_and_counted_never_wrapped(dtype):
    coding = ChannelCoding.of_dtype(dtype)
    # Three pixels of two channels: one below the range in channel 0, one above in
    # channel 1 and beyond in channel 0 as well, one inside.
    db = np.array([[[-60.0, 500.0, -10.0]], [[-20.0, 300.0, -12.0]]])
    codes, clipped = coding.encode(db)
    assert clipped == 2  # pixels, not values
    decoded = coding.decode(codes)
    np.testing.assert_allclose(decoded[:, 0, 1], coding.highest_db, rtol=1e-6)
    assert decoded[0, 0, 0] == pytest.approx(-45.0)
    np.testing.assert_allclose(decoded[:, 0, 2], [-10.0, -12.0], atol=STEPS[dtype] / 2 + 1e-5)


def test_float_stores_keep_db_and_have_no_cf_packing():
    coding = ChannelCoding.of_dtype("float16")
    db = np.array([[[-12.345, 3.5]]])
    stored, clipped = coding.encode(db)
    assert stored.dtype == np.float16 and clipped == 0 and coding.attributes() == {}
    np.testing.assert_array_equal(coding.decode(stored), db.astype(np.float16))
    with pytest.raises(ValueError, match="int8"):
        ChannelCoding.of_dtype("int8")


def test_a_uint8_store_decodes_with_xarray_to_the_tiles_db_and_counts_clipped_pixels(
    tmp_path, tiny_aoi, tiny_store
):
    data = prepare_sources(tmp_path / "u8", tiny_aoi, dtype="uint8")
    manifest = pd.read_csv(data.manifests[0], dtype={"tile": str})
    splits = pd.read_csv(data.splits_file)
    clipped_tile = int(np.flatnonzero(splits.split == "test")[0])  # train statistics as before
    # It gets a VH of -48 dB (below the range, plausible dB) at 5 pixels in every season.
    with rasterio.open(manifest.s1_path[clipped_tile]) as src:
        bands, transform, names = src.read(), src.transform, src.descriptions
    bands[1::2, 0, :5] = -48.0
    write_geotiff(manifest.s1_path[clipped_tile], bands, names, "EPSG:4326", transform, np.nan)
    summary = build_all(data)

    packed = xr.open_zarr(data.store)  # CF decoding by xarray alone
    reference = open_store(tiny_store)  # the same tiles in float16
    assert packed.s1grd.encoding["dtype"] == np.uint8
    assert packed.s1grd.attrs["units"] == "dB"
    decoded = packed.s1grd.values
    others = np.delete(np.arange(len(decoded)), clipped_tile)
    # Half a step of rounding, plus float16's 2^-7 dB (it holds values below 32 dB).
    error = np.abs(decoded[others] - reference.s1grd.values[others].astype(np.float64))
    assert error.max() <= 1 / 6 + 2**-7
    # The clipped pixels: VH at the range's bottom, counted once per pixel.
    assert decoded[clipped_tile][1::3, 0, :5] == pytest.approx(-45.0)
    assert (
        packed.clipped_pixels.values[clipped_tile] == 5 and packed.clipped_pixels.values.sum() == 5
    )
    assert summary["store"] == {
        "dtype": "uint8",
        "range_db": [-45.0, pytest.approx(39.6667, abs=1e-4)],
        "scale_factor": pytest.approx(1 / 3),
        "add_offset": -45.0,
        "_FillValue": 255,
        "clipped_pixels": 5,
    }
    assert json.loads(data.stats.read_text())["store"]["clipped_pixels"] == 5
    # The statistics are those of the decoded values, close to float16's.
    stats = packed.s1grd.attrs["normalisation"]
    for key in ("mean", "std"):
        np.testing.assert_allclose(
            stats[key], reference.s1grd.attrs["normalisation"][key], rtol=2e-3
        )


def test_a_tile_never_written_decodes_to_nan(tmp_path):
    store = tmp_path / "empty.zarr"
    create_store(store, ["a", "b"], np.zeros((2, 4)), 8, "uint16", {})
    coding = ChannelCoding.of_dtype("uint16")
    array = zarr.open_group(store, mode="r+")["s1grd"]
    array[0] = coding.encode(np.full((12, 8, 8), -7.5))[0]
    decoded = xr.open_zarr(store, consolidated=False).s1grd.values
    np.testing.assert_allclose(decoded[0], -7.5, atol=1e-3)
    assert np.isnan(decoded[1]).all()
