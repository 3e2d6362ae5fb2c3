"""DINO's multi-crop for SAR: random resized crops and horizontal flips only.

The paper keeps "horizontal flip and crops" and drops DINO's colour jitter, blur and
solarisation, which have no meaning for backscatter in dB. Everything else follows DINO:
two global crops of 40-100 % of the tile and several local crops of 5-40 %, aspect ratio
3/4-4/3, bicubic resampling (torchvision's RandomResizedCrop), each flipped with
probability 0.5. DINO's local crops are 96 px for 224 px inputs; at 448 px the same share is
192 px.

All randomness comes from the generator passed in, which the data set seeds from (seed,
epoch, tile): a tile's crops are the same whichever worker, process or rank draws them, so
a resumed or distributed run sees exactly the crops of an uninterrupted single one.
"""

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

ASPECT_RATIOS = (3 / 4, 4 / 3)
CROP_ATTEMPTS = 10  # as torchvision, before falling back to a central crop
FLIP_PROBABILITY = 0.5


@dataclass(frozen=True)
class CropSpec:
    global_px: int = 448
    global_scale: tuple[float, float] = (0.4, 1.0)
    local_px: int = 192
    local_scale: tuple[float, float] = (0.05, 0.4)
    local_crops: int = 8

    @property
    def n_crops(self) -> int:
        return 2 + self.local_crops


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


def resized_crop(
    image: torch.Tensor, box: tuple[int, int, int, int], size: int, flip: bool
) -> torch.Tensor:
    """The `box` of a (channel, y, x) image, resampled to size x size, optionally mirrored."""
    top, left, crop_h, crop_w = box
    patch = image[None, :, top : top + crop_h, left : left + crop_w]
    out = F.interpolate(patch, size=(size, size), mode="bicubic", antialias=True)[0]
    return out.flip(-1) if flip else out


def multi_crop(image: torch.Tensor, rng: np.random.Generator, spec: CropSpec) -> list[torch.Tensor]:
    """The two global crops, then the local crops, of one (channel, y, x) tile."""
    height, width = image.shape[-2:]
    views = [(spec.global_scale, spec.global_px)] * 2 + [
        (spec.local_scale, spec.local_px)
    ] * spec.local_crops
    return [
        resized_crop(
            image, crop_box(rng, height, width, scale), size, rng.random() < FLIP_PROBABILITY
        )
        for scale, size in views
    ]
