"""DINO's multi-crop for SAR: random resized crops and horizontal flips.

The paper keeps "horizontal flip and crops" and drops DINO's colour jitter, blur and
solarisation, which have no meaning for backscatter in dB (a photometric augmentation made
for SAR, off in the paper's runs, is in sarssl.tiles.augment; its blur is folded in here).
Everything else follows DINO: two global crops of 40-100 % of the tile and several local
crops of 5-40 %, aspect ratio 3/4-4/3, bicubic resampling with antialiasing (torchvision's
RandomResizedCrop), each flipped with probability 0.5. DINO's local crops are 96 px for
224 px inputs; at 448 px the same share is 192 px.

The work is split where it is cheapest: a data-loader worker only draws the crop boxes and
flips (`crop_params`, a few random numbers), and the resampling of a whole batch runs on the
training device (`crop_batch`) as two batched matrix products per view, out = Wy @ tile @
Wx^T, whose weights are PyTorch's antialiased bicubic ones (`F.interpolate(..., "bicubic",
antialias=True)` on the crop, a = -0.5, support scaled with the downsampling factor). A flip
reverses the rows of Wx.

All randomness comes from the generator passed in, which the data set seeds from (seed,
epoch, tile): a tile's crops are the same whichever worker, process or rank draws them, so
a resumed or distributed run sees exactly the crops of an uninterrupted single one.
"""

import math

import numpy as np
import torch

from sarssl.settings.crops import CropSpec
from sarssl.tiles.augment import blur_matrices

ASPECT_RATIOS = (3 / 4, 4 / 3)
CROP_ATTEMPTS = 10  # as torchvision, before falling back to a central crop
FLIP_PROBABILITY = 0.5
BICUBIC_A = -0.5  # PyTorch's (and PIL's) antialiased bicubic kernel


def crop_box(
    rng: np.random.Generator, height: int, width: int, scale: tuple[float, float]
) -> tuple[int, int, int, int]:
    """(top, left, height, width) of a crop covering a share `scale` of the area with an
    aspect ratio in ASPECT_RATIOS; a central crop if no draw fits."""
    area = height * width
    log_ratios = (math.log(ASPECT_RATIOS[0]), math.log(ASPECT_RATIOS[1]))
    for _ in range(CROP_ATTEMPTS):
        target_area = area * rng.uniform(*scale)
        ratio = math.exp(rng.uniform(*log_ratios))
        crop_w = round(math.sqrt(target_area * ratio))
        crop_h = round(math.sqrt(target_area / ratio))
        if 0 < crop_w <= width and 0 < crop_h <= height:
            top = int(rng.integers(0, height - crop_h + 1))
            left = int(rng.integers(0, width - crop_w + 1))
            return top, left, crop_h, crop_w
    # The largest central crop whose aspect ratio is in range.
    ratio = min(max(width / height, ASPECT_RATIOS[0]), ASPECT_RATIOS[1])
    crop_h, crop_w = min(height, round(width / ratio)), min(width, round(height * ratio))
    return (height - crop_h) // 2, (width - crop_w) // 2, crop_h, crop_w


def crop_params(
    rng: np.random.Generator, height: int, width: int, spec: CropSpec
) -> tuple[torch.Tensor, torch.Tensor]:
    """Boxes (n_crops, 4: top, left, height, width) and flips (n_crops,) of one tile's
    views: the two global views, then the local ones."""
    scales = [spec.global_scale] * 2 + [spec.local_scale] * spec.local_crops
    boxes, flips = [], []
    for scale in scales:
        boxes.append(crop_box(rng, height, width, scale))
        flips.append(rng.random() < FLIP_PROBABILITY)
    return torch.tensor(boxes, dtype=torch.int64), torch.tensor(flips, dtype=torch.bool)


def bicubic(x: torch.Tensor) -> torch.Tensor:
    """Keys' cubic convolution kernel with a = BICUBIC_A."""
    a, x = BICUBIC_A, x.abs()
    near = ((a + 2) * x - (a + 3)) * x * x + 1
    far = (((x - 5) * x + 8) * x - 4) * a
    return torch.where(x < 1, near, torch.where(x < 2, far, torch.zeros_like(x)))


def resize_weights(
    start: torch.Tensor, length: torch.Tensor, in_size: int, out_size: int
) -> torch.Tensor:
    """(batch, out_size, in_size) weights that resample the span [start, start + length)
    of an axis of `in_size` to `out_size`, as PyTorch's antialiased bicubic interpolation of
    that span does: output i is centred at scale * (i + 0.5) of the span, scale = length /
    out_size; the kernel is stretched by the scale when downsampling (support 2 * scale);
    taps outside the span are dropped and the rest renormalised. Float32, as PyTorch computes
    them, so that the two agree to float rounding."""
    dtype = torch.float32
    length = length.to(device=start.device, dtype=dtype)[:, None, None]
    scale = length / out_size
    support = 2.0 * scale.clamp_min(1.0)
    inverse = torch.where(scale >= 1.0, 1.0 / scale, torch.ones_like(scale))
    centre = scale * (torch.arange(out_size, device=start.device, dtype=dtype)[None, :, None] + 0.5)
    position = torch.arange(in_size, device=start.device, dtype=dtype)[None, None, :]
    offset = position - start.to(dtype)[:, None, None]  # within the span
    first = torch.trunc(centre - support + 0.5).clamp_min(0.0)
    last = torch.minimum(torch.trunc(centre + support + 0.5), length)
    weights = bicubic((offset - centre + 0.5) * inverse)
    weights = torch.where((offset >= first) & (offset < last), weights, torch.zeros_like(weights))
    return weights / weights.sum(dim=-1, keepdim=True)


def crop_batch(
    tiles: torch.Tensor,
    boxes: torch.Tensor,
    flips: torch.Tensor,
    spec: CropSpec,
    blur_sigma: torch.Tensor | None = None,
) -> list[torch.Tensor]:
    """The views of a batch of tiles (batch, channel, y, x), on their device and in their
    dtype: for each view, (batch, channel, size, size) resampled from each tile's own box
    (boxes (batch, n_crops, 4), flips (batch, n_crops)), and blurred by a Gaussian of
    `blur_sigma` (batch, n_crops) view pixels where given (sarssl.tiles.augment): the blur of
    the output along each axis, B @ (Wy @ tile @ Wx^T) @ B^T, is folded into the weights."""
    _, _, height, width = tiles.shape
    views = []
    for view in range(spec.n_crops):
        size = spec.size(view)
        top, left, crop_h, crop_w = boxes[:, view].T
        rows = resize_weights(top, crop_h, height, size)
        columns = resize_weights(left, crop_w, width, size)
        columns = torch.where(flips[:, view, None, None], columns.flip(1), columns)
        if blur_sigma is not None:
            blur = blur_matrices(blur_sigma[:, view].to(rows.device), size)
            rows, columns = blur @ rows, blur @ columns
        rows, columns = rows.to(tiles.dtype), columns.to(tiles.dtype)
        views.append(rows[:, None] @ tiles @ columns[:, None].transpose(-1, -2))
    return views
