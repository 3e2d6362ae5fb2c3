import numpy as np
import pytest

from sarssl.stats import Moments, combine_all


def test_combined_moments_equal_the_hand_computed_mean_and_variance():
    # Pixels {1, 2} and {3, 5}: mean 11/4 = 2.75, variance (3.0625 + 0.5625 + 0.0625 + 5.0625)/4.
    a = Moments.of_pixels(np.array([[[1.0, 2.0]]]), np.array([[True, True]]))
    b = Moments.of_pixels(np.array([[[3.0, 5.0, 99.0]]]), np.array([[True, True, False]]))
    total = combine_all([a, b], 1)
    assert total.count[0] == 4
    assert total.mean[0] == pytest.approx(2.75)
    assert total.std[0] ** 2 == pytest.approx(2.1875)


def test_many_tiles_combine_like_one_pass_over_all_pixels():
    rng = np.random.default_rng(1)
    tiles = [rng.normal(-15 + i, 1 + i / 10, (3, 8, 8)) for i in range(20)]
    masks = [rng.random((8, 8)) > 0.2 for _ in tiles]
    total = combine_all([Moments.of_pixels(t, m) for t, m in zip(tiles, masks, strict=True)], 3)
    pixels = np.concatenate([t[:, m] for t, m in zip(tiles, masks, strict=True)], axis=1)
    np.testing.assert_allclose(total.mean, pixels.mean(axis=1), rtol=1e-12)
    np.testing.assert_allclose(total.std, pixels.std(axis=1), rtol=1e-12)


def test_an_empty_tile_adds_nothing():
    a = Moments.of_pixels(np.ones((2, 2, 2)), np.ones((2, 2), bool))
    empty = Moments.of_pixels(np.ones((2, 2, 2)), np.zeros((2, 2), bool))
    combined = a.combine(empty)
    np.testing.assert_array_equal(combined.count, a.count)
    np.testing.assert_array_equal(combined.mean, a.mean)
    np.testing.assert_array_equal(combined.m2, a.m2)
