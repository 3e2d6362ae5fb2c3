import numpy as np
import pytest

from sarssl.dataset.stats import Moments


def pool(parts: list[Moments]) -> Moments:
    return Moments.pooled(
        *(np.stack([getattr(p, f) for p in parts]) for f in ("count", "mean", "m2"))
    )


def test_pooled_moments_equal_the_hand_computed_mean_and_variance():
    # Pixels {1, 2} and {3, 5}: mean 11/4 = 2.75, variance (3.0625 + 0.5625 + 0.0625 + 5.0625)/4.
    a = Moments.of_pixels(np.array([[[1.0, 2.0]]]), np.array([[True, True]]))
    b = Moments.of_pixels(np.array([[[3.0, 5.0, 99.0]]]), np.array([[True, True, False]]))
    total = pool([a, b])
    assert total.count[0] == 4
    assert total.mean[0] == pytest.approx(2.75)
    assert total.std[0] ** 2 == pytest.approx(2.1875)


def test_many_tiles_pool_like_one_pass_over_all_pixels():
    rng = np.random.default_rng(1)
    tiles = [rng.normal(-15 + i, 1 + i / 10, (3, 8, 8)) for i in range(20)]
    masks = [rng.random((8, 8)) > 0.2 for _ in tiles]
    total = pool([Moments.of_pixels(t, m) for t, m in zip(tiles, masks, strict=True)])
    pixels = np.concatenate([t[:, m] for t, m in zip(tiles, masks, strict=True)], axis=1)
    np.testing.assert_allclose(total.mean, pixels.mean(axis=1), rtol=1e-12)
    np.testing.assert_allclose(total.std, pixels.std(axis=1), rtol=1e-12)


def test_an_empty_tile_adds_nothing():
    a = Moments.of_pixels(np.arange(8.0).reshape(2, 2, 2), np.ones((2, 2), bool))
    empty = Moments.of_pixels(np.ones((2, 2, 2)), np.zeros((2, 2), bool))
    combined = pool([a, empty])
    np.testing.assert_array_equal(combined.count, a.count)
    np.testing.assert_allclose(combined.mean, a.mean)
    np.testing.assert_allclose(combined.m2, a.m2)


def test_large_offsets_do_not_cancel():
    """Values near -1e4 with unit spread: a sum of squares in float64 would lose the variance."""
    rng = np.random.default_rng(2)
    tiles = [rng.normal(-1e4, 1.0, (1, 50, 50)) for _ in range(10)]
    total = pool([Moments.of_pixels(t, np.ones((50, 50), bool)) for t in tiles])
    np.testing.assert_allclose(
        total.std, np.concatenate([t.ravel() for t in tiles]).std(), rtol=1e-9
    )
