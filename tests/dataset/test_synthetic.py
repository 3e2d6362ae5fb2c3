"""The embedded synthetic source: each physical effect against a known answer, determinism,
continuity, classes that overlap per pixel as in real SAR, and files written exactly as the
export writes them."""

import numpy as np
import pytest
import rasterio
from rasterio.transform import from_bounds

from sarssl.dataset.bands import EXPORT_BANDS
from sarssl.dataset.seasonal import stack_tile
from sarssl.dataset.synthetic import pixel_coordinates, synthetic_tile, write_synthetic_tile
from sarssl.dataset.synthetic.noise import value_noise, voronoi_objects
from sarssl.dataset.synthetic.physics import (
    GRD_LOOKS,
    incidence_angle,
    local_incidence,
    speckle_of_seasonal_mean,
    terrain_db,
)
from sarssl.dataset.synthetic.scene import (
    LAYERS,
    OBJECT_SALT,
    VALUE_NOISE_STD,
    backscatter,
    landscape,
    season_events,
    seasonal_levels,
)
from sarssl.dataset.synthetic.signatures import CLASS_MODELS
from sarssl.dataset.synthetic.worldcover_map import CONFUSIONS, worldcover_labels
from sarssl.dataset.worldcover import CODES

BOUNDS = (-1.0, 41.70, -0.99, 41.71)
EQUATOR_TRACK_SPACING_M = 360 / 175 * 111_320.0  # 229 km between ascending tracks at 0 N


def scene(bounds=BOUNDS, tile="00000000000a1", seed=39, px=64):
    return synthetic_tile(bounds, px, tile, seed)


def test_every_worldcover_class_has_a_model_and_known_confusions():
    assert set(CLASS_MODELS) == set(CODES) == set(CONFUSIONS)
    for model in CLASS_MODELS.values():
        assert sum(s.share for s in model.subtypes) == pytest.approx(1.0)


def test_same_seed_same_scene_other_seed_other_scene():
    a, b, c = scene(), scene(), scene(seed=40)
    np.testing.assert_array_equal(a.s1, b.s1)
    np.testing.assert_array_equal(a.labels, b.labels)
    assert not np.array_equal(a.labels, c.labels)


def test_land_cover_and_backscatter_are_continuous_across_tile_edges():
    west = scene((-1.0, 41.70, -0.99, 41.71), px=100)
    east = scene((-0.99, 41.70, -0.98, 41.71), tile="00000000000b2", px=100)
    # Adjacent columns one pixel apart: the same land cover almost everywhere.
    assert (west.labels[:, -1] == east.labels[:, 0]).mean() > 0.9
    # Before speckle (drawn per tile), backscatter steps across the edge no more than
    # between two neighbouring columns inside a tile: no seam, slopes included.
    west_db, east_db = (
        backscatter(*pixel_coordinates(from_bounds(*b, 100, 100), (100, 100), pad=1), 39)[0]
        for b in ((-1.0, 41.70, -0.99, 41.71), (-0.99, 41.70, -0.98, 41.71))
    )
    across = np.abs(west_db[..., -1] - east_db[..., 0]).mean()
    inside = np.abs(west_db[..., -2] - west_db[..., -1]).mean()
    assert across < 1.3 * inside


def test_value_noise_has_the_std_worked_out_for_smoothstep_interpolation():
    rng = np.random.default_rng(0)
    x, y = rng.uniform(0, 1e6, 200_000), rng.uniform(0, 1e6, 200_000)
    assert value_noise(x, y, 100.0, 1, 2).std() == pytest.approx(VALUE_NOISE_STD, rel=0.02)


def test_incidence_angle_grows_across_the_swath_and_overlaps_average():
    lat = np.zeros(3)
    # At the equator tracks are 229 km apart, so only the first 21 km east of a track are
    # also seen, at the far edge, by the track before it.
    east_m = np.array([100_000.0, 200_000.0, 10_000.0])
    theta = incidence_angle(east_m / 111_320.0, lat, track_offset_deg=0.0)
    single = 29.1 + 16.9 * east_m[:2] / 250_000
    overlap = (29.1 + 16.9 * 10_000 / 250_000 + 29.1 + 16.9 * (10_000 + 229_097) / 250_000) / 2
    np.testing.assert_allclose(theta, [*single, overlap], atol=0.01)


@pytest.mark.parametrize("code", [10, 30, 80])
def test_farther_across_the_swath_is_darker_by_the_class_slope(code):
    """On flat ground only the class's incidence slope acts: 100 km farther east is 6.76
    degrees steeper, i.e. 0.41 dB darker for cropland's -0.06 dB/degree forest, ..."""
    slope = np.float32(CLASS_MODELS[code].incidence_slope)
    theta = np.array([33.0, 33.0 + 16.9 * 100 / 250])
    flat = local_incidence(theta, np.zeros(2), np.zeros(2))
    gain, shadow = terrain_db(theta, flat, np.full(2, slope))
    assert not shadow.any()
    assert gain[1] - gain[0] == pytest.approx(slope * 6.76, abs=1e-4)
    assert gain[1] < gain[0]


def test_a_slope_facing_the_sensor_is_brighter_than_one_facing_away():
    """The sensor looks east. A 10 degree slope rising to the east faces it: local incidence
    27.5 instead of 37.5 degrees, area gain 10 log10(sin 37.5 / sin 27.5) = +1.20 dB, and
    -0.2 dB/degree of cropland gives +2.0 dB; facing away: 47.5 degrees, -0.83 and -2.0 dB."""
    theta = np.full(2, 37.5)
    rise = np.tan(np.radians(10.0))
    local = local_incidence(theta, np.array([rise, -rise]), np.zeros(2))
    np.testing.assert_allclose(local, [27.5, 47.5], atol=1e-6)
    gain, _ = terrain_db(theta, local, np.full(2, -0.2))
    np.testing.assert_allclose(gain, [1.199 + 2.0, -0.832 - 2.0], atol=2e-3)
    # North- and south-facing slopes of the same steepness are in between.
    sideways = local_incidence(theta, np.zeros(2), np.array([rise, -rise]))
    assert np.all((sideways > 27.5) & (sideways < 47.5))


def test_steep_slopes_fall_into_layover_and_shadow():
    theta = np.full(2, 37.5)
    local = local_incidence(theta, np.tan(np.radians([45.0, -60.0])), np.zeros(2))
    gain, shadow = terrain_db(theta, local, np.zeros(2))
    assert list(shadow) == [False, True]  # facing away steeper than 90 - 37.5 degrees
    # Facing the sensor steeper than theta: layover, held at 3 degrees of local incidence.
    assert gain[0] == pytest.approx(10 * np.log10(np.sin(np.radians(37.5)) / np.sin(np.radians(3))))


def test_objects_have_one_signature_each_and_differ_within_a_class():
    codes = np.full((2, 500), 40, dtype=np.uint8)
    objects = np.tile(np.arange(1, 501, dtype=np.uint64), (2, 1))  # two pixels per object
    levels = seasonal_levels(codes, objects, np.zeros(codes.shape))
    np.testing.assert_array_equal(levels[:, :, 0], levels[:, :, 1])  # one object, one value
    per_object = levels[:, :, 0]  # (season, pol, object)
    # Between objects of one class the spread is that of the subtypes and the object
    # offsets (1.0 dB, then 0.8 dB per season), far more than one signature would have.
    assert per_object.std(axis=-1).min() > 1.2
    # The mean over objects is the share-weighted mean of the subtypes' levels.
    expected = sum(s.share * np.array([s.vv, s.vh]).T for s in CLASS_MODELS[40].subtypes)
    np.testing.assert_allclose(per_object.mean(axis=-1), expected, atol=0.35)


def test_a_flood_darkens_fields_and_brightens_forest_and_wet_snow_darkens_high_ground():
    codes = np.array([[40, 10, 40]], dtype=np.uint8)
    levels = np.full((4, 2, 1, 3), -12.0, dtype=np.float32)
    x = np.array([[0.0, 10.0, 20.0]]) + 5e6
    y = np.zeros((1, 3))
    low, high = np.zeros((1, 3)), np.full((1, 3), 5000.0)  # metres; terrain field
    shifts = {
        name: season_events(x, y, codes, elevation, terrain, levels, seed=3)
        for name, elevation, terrain in (
            ("dry lowland", low, np.ones((1, 3))),
            ("floodable", low, np.zeros((1, 3))),
            ("mountain", high, np.ones((1, 3))),
        )
    }
    flood = shifts["floodable"] - shifts["dry lowland"]
    flooded = np.abs(flood).sum(axis=(1, 2, 3)) > 0
    assert not flooded[2]  # no floods in the dry summer
    for season in np.flatnonzero(flooded):
        # Cropland: a quarter of the season under calm water (-21.5 VV, -28 VH).
        np.testing.assert_allclose(flood[season, :, 0, 0], [0.25 * -9.5, 0.25 * -16.0])
        np.testing.assert_allclose(flood[season, :, 0, 1], [1.0, 1.0])  # double bounce
    snow = shifts["mountain"] - shifts["dry lowland"]
    np.testing.assert_allclose(snow[:, 0, 0, 0], [-0.9, -1.8, -0.9, -0.6])


def test_seasonal_mean_speckle_has_the_log_gamma_statistics_and_grd_correlation():
    rng = np.random.default_rng(0)
    n = np.full((1, 1, 1, 1), 12)
    speckle = speckle_of_seasonal_mean((1, 1, 400, 400), n, rng)[0, 0]
    from scipy.special import digamma, polygamma

    db = 10 / np.log(10)
    assert speckle.mean() == pytest.approx(db * (digamma(GRD_LOOKS) - np.log(GRD_LOOKS)), abs=0.01)
    assert speckle.std() == pytest.approx(db * np.sqrt(polygamma(1, GRD_LOOKS) / 12), rel=0.03)
    centred = speckle - speckle.mean()
    lag1 = (centred[:, 1:] * centred[:, :-1]).mean() / centred.var()
    assert lag1 == pytest.approx(np.exp(-1 / 4), abs=0.02)  # Gaussian of 1 px, smoothed twice


def test_mislabelled_objects_are_whole_and_about_as_frequent_as_stated():
    codes = np.full((2, 4000), 40, dtype=np.uint8)
    objects = np.tile(np.arange(1, 4001, dtype=np.uint64), (2, 1))
    labels = worldcover_labels(codes, objects)
    np.testing.assert_array_equal(labels[0], labels[1])
    wrong = labels[0] != 40
    assert wrong.mean() == pytest.approx(CONFUSIONS[40][0], abs=0.03)
    assert set(np.unique(labels[0][wrong])) == {30, 60}
    assert (labels[0][wrong] == 30).mean() == pytest.approx(0.8, abs=0.05)


def stacked_scenes(n=12, px=128):
    channels, labels = [], []
    for i in range(n):
        w, s = -1.0 + 0.06 * (i % 4), 41.6 + 0.045 * (i // 4)
        t = synthetic_tile((w, s, w + 0.054, s + 0.04), px, f"{i + 1:013x}", 39)
        # The bands are season-major VV, VH: (season, pol, row, col) by reshaping.
        stacked = stack_tile(t.s1.reshape(4, 2, px, px), "t", 1.0, 1.0)
        channels.append(stacked.channels.reshape(12, -1).T)
        labels.append(t.labels.ravel())
    return np.concatenate(channels), np.concatenate(labels)


@pytest.fixture(scope="module")
def pixels():
    return stacked_scenes()


@pytest.mark.parametrize(
    ("code", "channel", "low", "high"),
    [
        (80, 0, -23.0, -14.0),  # open water, winter VV: calm to wind-roughened
        (50, 0, -7.0, 2.0),  # built-up VV: residential to dense
        (10, 0, -9.5, -6.0),  # forest VV: about -7.5 dB
        (10, 1, -16.0, -12.0),  # forest VH: about -13.5 dB
    ],
)
def test_class_levels_are_those_of_c_band_sar(pixels, code, channel, low, high):
    channels, labels = pixels
    assert low < channels[labels == code, channel].mean() < high


def test_classes_overlap_per_pixel_but_carry_signal(pixels):
    """A nearest-centroid classifier of one pixel's 12 channels, fitted on half of the
    pixels, beats the majority class on the other half, but far from the 0.9+ of scenes
    with one signature per class."""
    channels, labels = pixels
    rng = np.random.default_rng(0)
    fit = rng.random(len(labels)) < 0.5
    present = [c for c in CODES if (labels[fit] == c).sum() > 100]
    mean, std = channels[fit].mean(axis=0), channels[fit].std(axis=0)
    z = (channels - mean) / std
    centroids = np.stack([z[fit & (labels == c)].mean(axis=0) for c in present])
    held = ~fit & np.isin(labels, present)
    nearest = np.argmin(((z[held, None, :] - centroids[None]) ** 2).sum(-1), axis=1)
    accuracy = (np.array(present)[nearest] == labels[held]).mean()
    majority = np.bincount(labels[held]).max() / held.sum()
    assert majority + 0.05 < accuracy < 0.75


def test_speckle_and_swath_gaps_are_present():
    scenes = [scene(tile=f"{i + 1:013x}") for i in range(60)]
    assert any(np.isnan(s.s1).any() for s in scenes)  # swath edges
    assert sum(np.isnan(s.s1).any() for s in scenes) < 30
    assert np.nanstd(np.diff(scenes[0].s1[0], axis=1)) > 0.3  # pixel-to-pixel speckle


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


def test_a_field_is_one_object_its_land_cover_and_signature_share_the_outline():
    transform = from_bounds(*BOUNDS, 100, 100)
    x, y, _, _ = pixel_coordinates(transform, (100, 100), pad=1)
    scene = landscape(x, y, 39)
    fields = np.isin(scene.codes, (30, 40))
    inner = (slice(1, -1), slice(1, -1))
    parcels = voronoi_objects(x[inner], y[inner], LAYERS["parcel"], 39, OBJECT_SALT)[fields]
    pairs = set(zip(parcels.tolist(), scene.objects[fields].tolist(), strict=True))
    assert fields.mean() > 0.2 and len(pairs) == len(set(parcels.tolist()))
