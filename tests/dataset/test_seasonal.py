"""Seasonal stacking: channel order, means, VV-VH arithmetic, gap filling and rejections,
checked against values worked out by hand."""

import numpy as np
import pytest

from sarssl.dataset.bands import CHANNELS, EXPORT_BANDS, parse_band
from sarssl.dataset.s1layout import pass_groups, seasonal_means
from sarssl.dataset.seasonal import fill_gaps, stack_tile, tile_labels, to_channels
from sarssl.errors import TileError


def constant_bands(values: dict[str, float], size: int = 4) -> np.ndarray:
    return np.stack([np.full((size, size), values[b], dtype=np.float32) for b in EXPORT_BANDS])


def means_of(data: np.ndarray, names=EXPORT_BANDS, orbit_pass="ascending") -> np.ndarray:
    groups, _ = pass_groups([parse_band(n) for n in names], names, orbit_pass)
    return seasonal_means(np.asarray(data, dtype=np.float32), groups)


def test_channel_order_is_season_major_vv_vh_ratio():
    assert CHANNELS == (
        "winter_VV", "winter_VH", "winter_VV-VH",
        "spring_VV", "spring_VH", "spring_VV-VH",
        "summer_VV", "summer_VH", "summer_VV-VH",
        "autumn_VV", "autumn_VH", "autumn_VV-VH",
    )  # fmt: skip


def test_channels_hold_vv_vh_and_their_difference_in_db():
    values = {
        "winter_VV": -10.0, "winter_VH": -17.0, "spring_VV": -9.0, "spring_VH": -15.5,
        "summer_VV": -7.25, "summer_VH": -14.0, "autumn_VV": -12.0, "autumn_VH": -20.0,
    }  # fmt: skip
    tile = stack_tile(means_of(constant_bands(values)), "t", 0.5, 0.5)
    expected = [-10.0, -17.0, 7.0, -9.0, -15.5, 6.5, -7.25, -14.0, 6.75, -12.0, -20.0, 8.0]
    np.testing.assert_allclose(tile.channels[:, 0, 0], expected)
    assert tile.valid.all() and tile.nodata_fraction == 0.0


def test_band_order_in_the_file_does_not_matter():
    rng = np.random.default_rng(0)
    data = rng.normal(-12, 3, (8, 5, 5)).astype(np.float32)
    order = rng.permutation(8)
    a = stack_tile(means_of(data), "t", 0.5, 0.5).channels
    b = stack_tile(means_of(data[order], [EXPORT_BANDS[i] for i in order]), "t", 0.5, 0.5).channels
    np.testing.assert_array_equal(a, b)


def test_several_acquisitions_of_a_season_are_averaged_in_db_ignoring_nan():
    names = [*EXPORT_BANDS, "winter_VV_2"]  # a suffix that names no pass: one more image
    data = np.concatenate(
        [constant_bands(dict.fromkeys(EXPORT_BANDS, -10.0), 2), np.full((1, 2, 2), -14.0)]
    )
    data[0, 0, 0] = np.nan  # winter_VV missing at one pixel
    means = means_of(data, names)
    assert means[0, 0, 0, 0] == -14.0  # only the other image
    assert means[0, 0, 1, 1] == -12.0  # (-10 + -14) / 2
    assert means[1, 0, 1, 1] == -10.0


def test_gap_in_one_season_takes_the_pixel_mean_of_its_other_seasons():
    means = np.full((4, 2, 2, 2), -10.0, dtype=np.float32)
    means[:, 0, 0, 0] = [np.nan, -8.0, -9.0, -13.0]  # VV of pixel (0, 0) missing in winter
    filled, valid = fill_gaps(means)
    assert filled[0, 0, 0, 0] == pytest.approx(-10.0)  # (-8 - 9 - 13) / 3
    assert valid.all()


def test_pixel_without_any_data_takes_the_tile_mean_and_is_invalid():
    means = np.empty((4, 2, 2, 2), dtype=np.float32)
    means[:, 0] = np.array([[-6.0, -8.0], [-10.0, np.nan]])
    means[:, 1] = np.array([[-12.0, -14.0], [-16.0, np.nan]])
    filled, valid = fill_gaps(means)
    assert valid.tolist() == [[True, True], [True, False]]
    assert filled[2, 0, 1, 1] == pytest.approx(-8.0)  # mean of -6, -8, -10
    assert filled[2, 1, 1, 1] == pytest.approx(-14.0)
    assert np.isfinite(to_channels(filled)).all()


def test_labels_are_ignored_where_the_sar_has_no_data():
    codes = np.array([[10, 80], [0, 50]], dtype=np.uint8)
    valid = np.array([[True, False], [True, True]])
    assert tile_labels(codes, "t", valid).tolist() == [[0, 255], [255, 4]]


@pytest.mark.parametrize(
    ("mutate", "reason"),
    [
        (lambda d: np.full_like(d, np.nan), "all pixels are nodata (a note)"),
        (
            lambda d: np.where(np.arange(8)[:, None, None] == 4, np.nan, d),
            "season summer has no VV data (a note)",
        ),
        (
            lambda d: np.where(np.arange(4)[None, :, None] < 3, np.nan, d),
            "75.0% of pixels have no SAR data",
        ),
    ],
    ids=["all nodata", "empty season", "too much nodata"],
)
def test_bad_tiles_are_rejected_with_the_tile_and_the_reason(mutate, reason):
    data = mutate(constant_bands(dict.fromkeys(EXPORT_BANDS, -10.0)))
    with pytest.raises(TileError, match="tile abc123: ") as err:
        stack_tile(means_of(data), "abc123", 0.5, 0.5, nodata_note="a note")
    assert reason in err.value.reason


def test_a_season_observed_at_few_pixels_is_rejected_naming_it_and_shares_are_kept():
    data = constant_bands(dict.fromkeys(EXPORT_BANDS, -10.0))
    means = means_of(data)
    px = means.shape[-1]
    means[0, :, :, : px // 4] = np.nan  # winter missing in a quarter of the tile
    tile = stack_tile(means, "t", 0.5, 0.5)
    np.testing.assert_allclose(tile.observed_fraction[0], 0.75)
    np.testing.assert_allclose(tile.observed_fraction[1:], 1.0)
    # Bit 0 (winter) is clear where winter was imputed; bits 1-3 everywhere.
    assert (tile.observed_seasons[:, : px // 4] == 0b1110).all()
    assert (tile.observed_seasons[:, px // 4 :] == 0b1111).all()
    means[0, 1] = np.nan
    means[0, 1, 0, 0] = -20.0  # winter VH observed at one pixel
    with pytest.raises(TileError) as err:
        stack_tile(means, "t", 0.5, 0.5)
    assert err.value.reason.startswith(
        f"season winter has no VH data at {1 - 1 / px**2:.2%} of pixels "
        "(data.max_season_nodata_fraction is 50.0%)"
    )
