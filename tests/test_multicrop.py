"""Multi-crop: crop geometry as torchvision's RandomResizedCrop, flips, determinism."""

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from sarssl.settings.crops import CropSpec
from sarssl.tiles.multicrop import crop_batch, crop_box, crop_params


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


def views_of(image, boxes, flips, spec):
    """crop_batch on a batch of one tile."""
    return [view[0] for view in crop_batch(image[None], boxes[None], flips[None], spec)]


def test_a_whole_tile_crop_at_its_size_is_the_tile_and_flips_mirror_it():
    image = torch.randn(12, 32, 32)
    spec = CropSpec(global_px=32, local_px=16, local_crops=0)
    boxes = torch.tensor([[0, 0, 32, 32], [0, 0, 32, 32]])
    plain, flipped = views_of(image, boxes, torch.tensor([False, True]), spec)
    torch.testing.assert_close(plain, image)
    torch.testing.assert_close(flipped, image.flip(-1))


def test_a_crop_of_a_constant_image_is_constant():
    image = torch.full((12, 64, 64), -12.5)
    spec = CropSpec(global_px=16, local_px=16, local_crops=0)
    boxes = torch.tensor([[8, 8, 40, 30], [0, 3, 10, 12]])  # downsampled, then upsampled
    for view in views_of(image, boxes, torch.tensor([False, True]), spec):
        assert view.shape == (12, 16, 16)
        torch.testing.assert_close(view, torch.full_like(view, -12.5))


def reference_crop(image, box, size, flip):
    """Today's CPU crop, torch's own antialiased bicubic resize of the box."""
    top, left, height, width = box
    patch = image[None, :, top : top + height, left : left + width]
    out = F.interpolate(patch, size=(size, size), mode="bicubic", antialias=True)[0]
    return out.flip(-1) if flip else out


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_the_batched_crops_equal_torchs_bicubic_crops_of_the_same_boxes(dtype):
    """The device path against F.interpolate per tile and view, at the paper's sizes.
    Float32: both compute the weights in float32 and differ by summation order only (< 2e-5
    on standardised values of unit variance). bfloat16, the backbone's autocast precision,
    rounds inputs and weights to 8 bits of mantissa: within 0.05 of values up to about 4."""
    spec = CropSpec()  # 2 x 448 px views of 40-100 %, 8 x 192 px views of 5-40 %
    generator = torch.Generator().manual_seed(0)
    tiles = torch.randn(2, 12, 448, 448, generator=generator)
    params = [crop_params(np.random.default_rng([0, t]), 448, 448, spec) for t in range(2)]
    boxes, flips = (torch.stack(p) for p in zip(*params, strict=True))
    views = crop_batch(tiles.to(dtype), boxes, flips, spec)
    tolerance = 2e-5 if dtype == torch.float32 else 5e-2
    for view_index, view in enumerate(views):
        assert view.dtype == dtype and view.shape == (2, 12, *[spec.size(view_index)] * 2)
        for tile in range(2):
            expected = reference_crop(
                tiles[tile], boxes[tile, view_index].tolist(), spec.size(view_index),
                bool(flips[tile, view_index]),
            )  # fmt: skip
            torch.testing.assert_close(view[tile].float(), expected, atol=tolerance, rtol=0)
    assert flips.any() and not flips.all()  # both kinds were checked


def test_crop_parameters_are_deterministic_in_the_generator():
    spec = CropSpec(global_px=64, local_px=32, local_crops=3)
    boxes, flips = crop_params(np.random.default_rng([1, 2, 3]), 64, 64, spec)
    assert boxes.shape == (5, 4) and flips.shape == (5,) and spec.n_crops == 5
    again = crop_params(np.random.default_rng([1, 2, 3]), 64, 64, spec)
    assert torch.equal(boxes, again[0]) and torch.equal(flips, again[1])
    other = crop_params(np.random.default_rng([1, 2, 4]), 64, 64, spec)
    assert not torch.equal(boxes, other[0])
    views = views_of(torch.randn(12, 64, 64), boxes, flips, spec)
    assert [v.shape for v in views] == [(12, 64, 64)] * 2 + [(12, 32, 32)] * 3
    assert all(math.isfinite(float(v.sum())) for v in views)
