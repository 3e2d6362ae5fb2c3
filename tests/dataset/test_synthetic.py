"""The embedded synthetic source: deterministic, continuous, realistic levels, learnable,
and written exactly as the export writes it."""

import numpy as np
import pytest
import rasterio

from sarssl.dataset.bands import EXPORT_BANDS
from sarssl.dataset.seasonal import stack_tile
from sarssl.dataset.synthetic import SIGMA0_DB, synthetic_tile, write_synthetic_tile
from sarssl.dataset.worldcover import CODES

BOUNDS = (-1.0, 41.70, -0.99, 41.71)


def scene(bounds=BOUNDS, tile="00000000000a1", seed=39, px=64):
    return synthetic_tile(bounds, px, tile, seed)


def test_every_worldcover_class_has_a_backscatter_signature():
    assert set(SIGMA0_DB) == set(CODES)


def test_same_seed_same_scene_other_seed_other_scene():
    a, b, c = scene(), scene(), scene(seed=40)
    np.testing.assert_array_equal(a.s1, b.s1)
    np.testing.assert_array_equal(a.labels, b.labels)
    assert not np.array_equal(a.labels, c.labels)


def test_land_cover_is_continuous_across_tile_edges():
    west = scene((-1.0, 41.70, -0.99, 41.71), px=100)
    east = scene((-0.99, 41.70, -0.98, 41.71), tile="00000000000b2", px=100)
    # Adjacent columns one pixel apart: the same land cover almost everywhere.
    assert (west.labels[:, -1] == east.labels[:, 0]).mean() > 0.9


def stacked_scenes(n=12, px=128):
    channels, labels = [], []
    for i in range(n):
        w, s = -1.0 + 0.06 * (i % 4), 41.6 + 0.045 * (i // 4)
        t = synthetic_tile((w, s, w + 0.054, s + 0.04), px, f"{i + 1:013x}", 39)
        # The bands are season-major VV, VH: (season, pol, row, col) by reshaping.
        stacked = stack_tile(t.s1.reshape(4, 2, px, px), "t", 1.0)
        channels.append(stacked.channels.reshape(12, -1).T)
        labels.append(t.labels.ravel())
    return np.concatenate(channels), np.concatenate(labels)


@pytest.fixture(scope="module")
def pixels():
    return stacked_scenes()


@pytest.mark.parametrize(
    ("code", "channel", "low", "high"),
    [
        (80, 0, -23.0, -17.0),  # open water, winter VV: near -20 dB
        (50, 0, -3.0, 2.0),  # built-up VV: near 0 dB
        (10, 0, -9.0, -5.5),  # forest VV: about -7 dB
        (10, 1, -15.0, -11.5),  # forest VH: about -13 dB
    ],
)
def test_class_levels_are_those_of_c_band_sar(pixels, code, channel, low, high):
    channels, labels = pixels
    assert low < channels[labels == code, channel].mean() < high


def test_cropland_has_a_seasonal_cycle_and_forest_does_not(pixels):
    channels, labels = pixels
    vh = channels[:, [1, 4, 7, 10]]  # VH of winter, spring, summer, autumn
    crop, forest = vh[labels == 40].mean(axis=0), vh[labels == 10].mean(axis=0)
    assert crop[2] - crop[3] > 6.0  # summer canopy vs autumn bare soil
    assert np.ptp(forest) < 1.5


def test_classes_are_separable_from_the_seasonal_signal(pixels):
    """A nearest-centroid classifier of the 12 channels, fitted on half of the pixels,
    labels the other half far better than the majority class would."""
    channels, labels = pixels
    rng = np.random.default_rng(0)
    fit = rng.random(len(labels)) < 0.5
    present = [c for c in CODES if (labels[fit] == c).sum() > 100]
    centroids = np.stack([channels[fit & (labels == c)].mean(axis=0) for c in present])
    held = ~fit & np.isin(labels, present)
    nearest = np.argmin(((channels[held, None, :] - centroids[None]) ** 2).sum(-1), axis=1)
    accuracy = (np.array(present)[nearest] == labels[held]).mean()
    majority = np.bincount(labels[held]).max() / held.sum()
    assert accuracy > 0.75 and accuracy > majority + 0.3


def test_speckle_and_swath_gaps_are_present():
    scenes = [scene(tile=f"{i + 1:013x}") for i in range(60)]
    assert any(np.isnan(s.s1).any() for s in scenes)  # swath edges
    assert sum(np.isnan(s.s1).any() for s in scenes) < 30
    built = scene(px=64)
    assert np.nanstd(np.diff(built.s1[0], axis=1)) > 0.5  # pixel-to-pixel speckle


def test_files_are_written_as_the_earth_engine_export_writes_them(tmp_path):
    s1_path, label_path = tmp_path / "s1" / "t.tif", tmp_path / "wc" / "t.tif"
    write_synthetic_tile(s1_path, label_path, BOUNDS, 64, "00000000000a1", 39)
    with rasterio.open(s1_path) as src:
        assert src.descriptions == EXPORT_BANDS
        assert src.dtypes == ("float32",) * 8 and (src.width, src.height) == (64, 64)
        assert src.crs.to_string() == "EPSG:4326" and np.isnan(src.nodata)
        assert src.bounds == pytest.approx(BOUNDS)
    with rasterio.open(label_path) as src:
        assert src.descriptions == ("Map",) and src.dtypes == ("uint8",) and src.nodata == 0
        assert set(np.unique(src.read(1))) <= set(CODES)
    mtime = s1_path.stat().st_mtime_ns
    write_synthetic_tile(s1_path, label_path, BOUNDS, 64, "00000000000a1", 39)
    assert s1_path.stat().st_mtime_ns == mtime  # a rerun keeps complete tiles
