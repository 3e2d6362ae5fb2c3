"""Multi-crop: crop geometry as torchvision's RandomResizedCrop, flips, determinism."""

import math

import numpy as np
import pytest
import torch

from sarssl.multicrop import CropSpec, crop_box, multi_crop, resized_crop


@pytest.mark.parametrize("scale", [(0.4, 1.0), (0.05, 0.4)])
def test_crop_boxes_lie_inside_and_cover_the_drawn_share(scale):
    rng = np.random.default_rng(0)
    for _ in range(500):
        top, left, h, w = crop_box(rng, 448, 448, scale)
        assert top >= 0 and top + h <= 448 and left >= 0 and left + w <= 448
        share = h * w / 448**2
        # Rounding each side to whole pixels moves the share by at most about 2/side.
        assert scale[0] - 0.02 <= share <= scale[1] + 0.02
        assert 3 / 4 - 0.05 <= w / h <= 4 / 3 + 0.05


def test_a_crop_that_cannot_fit_falls_back_to_the_central_crop():
    # A 100 x 10 strip (ratio 0.1 < 3/4), an impossible share: width 10, height 10 / (3/4).
    assert crop_box(np.random.default_rng(0), 100, 10, (2.0, 3.0)) == (43, 0, 13, 10)
    # A square image: the whole image.
    assert crop_box(np.random.default_rng(0), 20, 20, (2.0, 3.0)) == (0, 0, 20, 20)


def test_a_whole_tile_crop_at_its_size_is_the_tile_and_flips_mirror_it():
    image = torch.randn(12, 32, 32)
    torch.testing.assert_close(resized_crop(image, (0, 0, 32, 32), 32, False), image)
    torch.testing.assert_close(resized_crop(image, (0, 0, 32, 32), 32, True), image.flip(-1))


def test_a_half_size_crop_of_a_constant_image_is_constant():
    image = torch.full((12, 64, 64), -12.5)
    out = resized_crop(image, (8, 8, 40, 30), 16, False)
    assert out.shape == (12, 16, 16)
    torch.testing.assert_close(out, torch.full_like(out, -12.5))


def test_multi_crop_views_sizes_and_determinism():
    spec = CropSpec(global_px=64, local_px=32, local_crops=3)
    image = torch.randn(12, 64, 64)
    views = multi_crop(image, np.random.default_rng([1, 2, 3]), spec)
    assert [v.shape for v in views] == [(12, 64, 64)] * 2 + [(12, 32, 32)] * 3
    again = multi_crop(image, np.random.default_rng([1, 2, 3]), spec)
    assert all(torch.equal(a, b) for a, b in zip(views, again, strict=True))
    other = multi_crop(image, np.random.default_rng([1, 2, 4]), spec)
    assert not torch.equal(views[0], other[0])
    assert spec.n_crops == 5 and math.isfinite(float(views[-1].sum()))
