"""S1 layouts: recognition from band names and dtype, decoding to dB against values worked
out from the encoders' formulas, orbit-pass selection and the checks that values are dB."""

import numpy as np
import pytest

from sarssl.dataset.bands import BandKey, parse_band
from sarssl.dataset.geotiff import Raster
from sarssl.dataset.s1layout import (
    UINT8_STEP_DB,
    LayoutError,
    decode,
    detect_format,
    implausible_db,
    pass_groups,
    read_s1_bands,
)

GEETILES_BANDS = tuple(
    f"{season}_{pol}{orbit}"
    for season in ("winter", "spring", "summer", "fall")
    for pol in ("vv", "vh")
    for orbit in ("asc", "des")
)


def test_band_names_of_every_layout_are_parsed_to_season_polarisation_and_pass():
    assert parse_band("fall_vhdes") == BandKey("autumn", "VH", "descending")
    assert parse_band("winter_vvasc") == BandKey("winter", "VV", "ascending")
    assert parse_band("winter_VV") == BandKey("winter", "VV", None)
    assert parse_band("summer_VH_asc") == BandKey("summer", "VH", "ascending")
    assert parse_band("spring_VV_2") == BandKey("spring", "VV", None)
    assert parse_band("B4") is None and parse_band("winter_vv") is None


def test_geetiles_uint8_codes_decode_to_the_centre_of_their_bin_and_0_255_are_nodata():
    raw = np.array([[[0, 1, 127, 254, 255]]], dtype=np.uint8)
    db, casts = decode(raw, None, "geetiles_uint8")
    # dB = -30 + (code + 0.5) * 30 / 255
    np.testing.assert_allclose(db[0, 0, 1:4], [-29.823529, -15.0, -0.058824], atol=1e-5)
    assert np.isnan(db[0, 0, 0]) and np.isnan(db[0, 0, 4])
    assert (casts.at_min, casts.at_max) == (1, 1)
    assert pytest.approx(0.117647, abs=1e-6) == UINT8_STEP_DB


def test_geetiles_uint8_decoding_is_within_half_a_step_of_what_geetiles_encoded():
    db_true = np.linspace(-29.8, -0.2, 1001, dtype=np.float32)
    codes = (255 * (db_true + 30) / 30).astype(np.uint8)  # geetiles 0.1.7's cast
    db, _ = decode(codes[None, None], None, "geetiles_uint8")
    assert np.abs(db[0, 0] - db_true).max() <= UINT8_STEP_DB / 2 + 1e-5


def test_geetiles_uint16_whole_db_unwrap_and_decode_to_the_bin_centre():
    # uint16(-12.7) wraps to 65524 (trunc towards zero: -12); 3.2 -> 3; NaN -> 0.
    raw = np.array([[[65524, 3, 0, 65535]]], dtype=np.uint16)
    db, casts = decode(raw, None, "geetiles_uint16")
    np.testing.assert_array_equal(db[0, 0, [0, 1, 3]], [-12.5, 3.5, -1.5])
    assert np.isnan(db[0, 0, 2]) and casts.at_min == 1
    as_int16, _ = decode(raw.view(np.int16), None, "geetiles_uint16")  # M3LEO's reading
    np.testing.assert_array_equal(as_int16, db)


def test_float_db_masks_nan_zero_fill_and_the_files_own_mask():
    raw = np.array([[[0.0, np.nan, -12.25, -8.5]]], dtype=np.float32)
    valid = np.array([[[True, True, True, False]]])
    db, casts = decode(raw, valid, "float_db")
    assert np.isnan(db[0, 0, [0, 1, 3]]).all() and db[0, 0, 2] == -12.25
    assert raw[0, 0, 0] == 0.0  # the caller's array is untouched
    assert casts.note() == ""


def test_the_layout_comes_from_the_dtype_unless_forced():
    assert detect_format(GEETILES_BANDS, "uint8") == "geetiles_uint8"
    assert detect_format(GEETILES_BANDS, "uint16") == "geetiles_uint16"
    assert detect_format(GEETILES_BANDS, "int16") == "geetiles_uint16"
    assert detect_format(("winter_VV", "winter_VH"), "float32") == "float_db"
    assert detect_format(GEETILES_BANDS, "float32", forced="geetiles_uint8") == "geetiles_uint8"
    with pytest.raises(LayoutError, match=r"bands .*\(int32\); accepted"):
        detect_format(GEETILES_BANDS, "int32")


def test_an_unknown_layout_is_named_with_its_bands_dtype_and_the_layouts_accepted():
    with pytest.raises(LayoutError) as err:
        detect_format(("B2", "B3", "B4"), "uint16")
    message = str(err.value)
    assert "unknown S1 layout: bands ['B2', 'B3', 'B4'] (uint16)" in message
    assert "geetiles s1grd" in message and "float dB" in message


def test_the_orbit_pass_picks_the_bands_of_that_pass():
    keys = [parse_band(b) for b in GEETILES_BANDS]
    ascending, used = pass_groups(keys, GEETILES_BANDS, "ascending")
    assert used == "ascending"
    assert [GEETILES_BANDS[i] for i in ascending["autumn", "VH"]] == ["fall_vhasc"]
    descending, _ = pass_groups(keys, GEETILES_BANDS, "descending")
    assert [GEETILES_BANDS[i] for i in descending["winter", "VV"]] == ["winter_vvdes"]
    both, _ = pass_groups(keys, GEETILES_BANDS, "both")
    assert [GEETILES_BANDS[i] for i in both["spring", "VV"]] == ["spring_vvasc", "spring_vvdes"]


def test_a_band_missing_in_the_chosen_pass_is_named_as_the_file_would_name_it():
    names = tuple(b for b in GEETILES_BANDS if b != "spring_vhasc")
    keys = [parse_band(b) for b in names]
    with pytest.raises(KeyError, match=r"bands \['spring_vhasc'\] missing"):
        pass_groups(keys, names, "ascending")
    pass_groups(keys, names, "descending")  # that pass is whole


def test_single_pass_files_are_used_whatever_the_orbit_pass():
    names = ("winter_VV", "winter_VH", "spring_VV", "spring_VH", "summer_VV", "summer_VH",
             "autumn_VV", "autumn_VH")  # fmt: skip
    groups, used = pass_groups([parse_band(b) for b in names], names, "descending")
    assert used == "" and groups["summer", "VH"] == [5]


def test_both_passes_average_in_db():
    codes = np.full((16, 2, 2), 0, np.uint16)
    for i, name in enumerate(GEETILES_BANDS):
        codes[i] = 2**16 - (10 if name.endswith("asc") else 14)  # -10 and -14 whole dB
    raster = Raster(codes, GEETILES_BANDS, "EPSG:4326", None)
    bands = read_s1_bands(raster, "auto", "both")
    np.testing.assert_array_equal(bands.means, -12.5)  # mean of -10.5 and -14.5
    assert bands.orbit_pass == "both" and bands.casts.fmt == "geetiles_uint16"


def seasonal(values: np.ndarray) -> np.ndarray:
    """(season, pol, row, col) filled with `values` (row, col) for every channel."""
    return np.broadcast_to(values, (4, 2, *values.shape)).astype(np.float32)


def test_values_that_cannot_be_db_are_named():
    rng = np.random.default_rng(0)
    db = rng.normal(-14, 4, (16, 16))
    assert implausible_db(seasonal(db)) is None
    power = 10 ** (db / 10)
    assert "linear power" in implausible_db(seasonal(power))
    codes = rng.integers(100, 200, (16, 16)).astype(np.float32)  # uint8 codes read as dB
    assert implausible_db(seasonal(codes)).startswith("values are not dB: 100% lie outside -50..")
    assert implausible_db(seasonal(codes)).endswith("set the AOI's s1_format: geetiles_uint8")
    amplitudes = rng.uniform(60, 900, (16, 16)).astype(np.float32)
    assert implausible_db(seasonal(amplitudes)).endswith("another product?")
    assert implausible_db(seasonal(np.full((8, 8), np.nan))) is None  # for the gap rules


def geetiles_uint8_cast(db: np.ndarray) -> np.ndarray:
    """geetiles 0.1.7's cast (defs/s1grd.py post_process_tilefile), as it is written."""
    return (255 * (db - -30) / (0 - -30)).astype(np.uint8)


def test_extreme_codes_are_nodata_only_as_a_vv_vh_pair_and_a_lone_one_is_its_bin():
    # Pixels: masked (255, 255), NaN before the cast (0, 0), calm-water VH (lone 0),
    # VV just above 0 dB (lone 255).
    raw = np.array([[[255, 0, 100, 255]], [[255, 0, 0, 120]]], dtype=np.uint8)
    db, casts = decode(raw, None, "geetiles_uint8", [(0, 1)])
    assert np.isnan(db[:, 0, :2]).all()
    assert db[1, 0, 2] == pytest.approx(-30 + 0.5 * UINT8_STEP_DB)  # -29.94 dB
    assert db[0, 0, 3] == pytest.approx(-0.5 * UINT8_STEP_DB + UINT8_STEP_DB)  # +0.06 dB
    assert (casts.at_min, casts.at_max, casts.extreme_nodata) == (3, 3, 2)
    codes = np.array([[[0, 0, 65524]], [[0, 65526, 65524]]], dtype=np.uint16)
    db, casts = decode(codes, None, "geetiles_uint16", [(0, 1)])
    # uint16 code 0 alone is a mean in (-1, 1) dB: 0 dB (bright built-up VV).
    assert np.isnan(db[:, 0, 0]).all() and db[0, 0, 1] == 0.0 and db[1, 0, 1] == -10.5
    assert casts.extreme_nodata == 1


def test_single_uint8_wraps_are_undone_in_the_polarisation_that_wrapped():
    # (VV, VH) true dB: calm water with VH below -30; built-up VV above 0; a normal pixel;
    # a double wrap (both below -30), which keeps VV - VH and cannot be seen.
    vv = np.array([-22.0, 3.0, -12.0, -31.0])
    vh = np.array([-32.5, -9.0, -18.0, -36.0])
    raw = geetiles_uint8_cast(np.stack([vv, vh])[:, None])
    db, casts = decode(raw, None, "geetiles_uint8", [(0, 1)])
    np.testing.assert_allclose(db[0, 0, :3], vv[:3], atol=UINT8_STEP_DB / 2 + 1e-5)
    np.testing.assert_allclose(db[1, 0, :3], vh[:3], atol=UINT8_STEP_DB / 2 + 1e-5)
    assert db[0, 0, 3] > -1 and db[1, 0, 3] > -6  # read as bright: undetectable
    assert (casts.wraps_unwrapped, casts.wraps_nodata) == (2, 0)
    # Both excursions alike (VH 1.5 dB below -30 or VV 1.5 dB above 0): marked nodata.
    raw = np.array([[[int((-28.5 + 30) / UINT8_STEP_DB)]], [[int((-1.5 + 30) / UINT8_STEP_DB)]]])
    db, casts = decode(raw.astype(np.uint8), None, "geetiles_uint8", [(0, 1)])
    assert np.isnan(db).all() and casts.wraps_nodata == 1


def test_a_forced_integer_layout_is_checked_against_the_values():
    float_db = np.array([[[-12.25, -8.5], [-20.0, np.nan]]], dtype=np.float32)
    raster = Raster(np.repeat(float_db, 16, axis=0), GEETILES_BANDS, "EPSG:4326", None)
    with pytest.raises(LayoutError) as err:
        read_s1_bands(raster, "geetiles_uint8", "ascending")
    message = str(err.value)
    assert message.startswith("s1_format geetiles_uint8 is forced, but the file holds float32")
    assert "(whole numbers in 0..255): 66.7% not whole, 100.0% outside, 25.0% not finite" in message
    with pytest.raises(LayoutError, match=r"geetiles_uint16 is forced.*66\.7% not whole"):
        read_s1_bands(raster, "geetiles_uint16", "ascending")
    codes = Raster(np.full((16, 2, 2), 100.0, np.float32), GEETILES_BANDS, "EPSG:4326", None)
    assert read_s1_bands(codes, "geetiles_uint8", "ascending").casts.fmt == "geetiles_uint8"


def test_unnamed_uint16_bands_are_read_in_m3leo_order_only_when_set():
    codes = np.zeros((16, 1, 1), np.uint16)
    for i in range(16):  # M3LEO's order is GEETILES_BANDS, geetiles' 2023 order
        codes[i] = 2**16 - (i + 2)  # a different whole dB per band
    names = tuple(f"band{i + 1}" for i in range(16))
    with pytest.raises(LayoutError, match="unknown S1 layout"):
        read_s1_bands(Raster(codes, names, "EPSG:4326", None), "auto", "ascending")
    bands = read_s1_bands(Raster(codes, names, "EPSG:4326", None), "geetiles_uint16_unnamed",
                          "descending")  # fmt: skip
    # fall_vhdes is band 16: -(15 + 2) whole dB -> -17.5
    assert bands.means[3, 1, 0, 0] == -17.5 and bands.means[0, 0, 0, 0] == -3.5
    with pytest.raises(LayoutError, match=r"reads 16 bands by position.*the file has 8"):
        detect_format(names[:8], "uint16", "geetiles_uint16_unnamed")


def test_both_passes_with_one_pass_missing_in_a_season_use_the_other_and_say_so():
    data = np.full((16, 2, 2), -12.0, np.float32)
    for i, name in enumerate(GEETILES_BANDS):
        if name.endswith("asc") and name.startswith(("winter", "spring")):
            data[i] = np.nan  # no ascending acquisition in winter and spring
        elif name.endswith("des"):
            data[i] = -14.0
    bands = read_s1_bands(Raster(data, GEETILES_BANDS, "EPSG:4326", None), "auto", "both")
    assert bands.orbit_pass == "both; ascending missing in winter, spring"
    np.testing.assert_array_equal(bands.means[:2], -14.0)
    np.testing.assert_array_equal(bands.means[2:], -13.0)
