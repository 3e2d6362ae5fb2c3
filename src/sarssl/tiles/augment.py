"""SAR photometric augmentation of DINO's views: a level offset per polarisation, more
speckle and a blur, each drawn per view (the physics and the amounts:
sarssl.settings.augment).

Split as the multi-crop is (sarssl.tiles.multicrop): a loader worker draws each view's parameters
from the tile's generator (`draw_photometric`, a few numbers), and the training device
applies them to the whole batch: the blur folded into the crop's resampling weights
(`blur_matrices`, a Gaussian is linear along each axis), then level and speckle added to the
standardised views in dB scaled by each channel's 1 / std (`shift_and_speckle`).
"""

import numpy as np
import torch

from sarssl.dataset.bands import CHANNELS, QUANTITIES, RATIO, SEASONS, VH, VV
from sarssl.settings.augment import SarAugmentSpec

# The columns of a view's parameters.
PARAMETERS = ("vv_offset_db", "vh_offset_db", "speckle_db", "blur_sigma")


def draw_photometric(rng: np.random.Generator, n_crops: int, spec: SarAugmentSpec) -> torch.Tensor:
    """(n_crops, len(PARAMETERS)) float32: each view's VV and VH offsets (dB), the sd of its
    added speckle (dB) and its blur sigma (view pixels; 0 for none)."""
    rows = []
    for view in range(n_crops):
        common = rng.normal(0.0, spec.offset_db)
        vv, vh = common + rng.normal(0.0, spec.polarisation_offset_db, size=2)
        speckle = rng.uniform(0.0, spec.speckle_db)
        blurred = rng.random() < spec.blur_probability_of(view)
        sigma = rng.uniform(*spec.blur_sigma) if blurred else 0.0
        rows.append((vv, vh, speckle, sigma))
    return torch.tensor(rows, dtype=torch.float32)


def blur_matrices(sigma: torch.Tensor, size: int) -> torch.Tensor:
    """(batch, size, size) row-stochastic Gaussian blurs of an axis of `size` pixels, one per
    sigma (batch,); the identity where sigma is 0. The kernel is cut at the view's edges and
    renormalised, as the resampling's taps are."""
    positions = torch.arange(size, device=sigma.device, dtype=torch.float32)
    distance = positions[None, :, None] - positions[None, None, :]
    width = sigma.float().clamp_min(1e-6)[:, None, None]
    weights = torch.exp(-0.5 * (distance / width) ** 2)
    identity = (distance == 0).float().expand_as(weights)
    weights = torch.where(sigma[:, None, None] > 0, weights, identity)
    return weights / weights.sum(dim=-1, keepdim=True)


def channel_mixing() -> torch.Tensor:
    """(channel, 2): each channel's weights on (VV, VH) changes in dB: VV (1, 0), VH (0, 1)
    and VV-VH (1, -1)."""
    weights = {VV: (1.0, 0.0), VH: (0.0, 1.0), RATIO: (1.0, -1.0)}
    return torch.tensor([weights[channel.split("_", 1)[1]] for channel in CHANNELS])


CHANNEL_MIXING = channel_mixing()


def shift_and_speckle(
    views: torch.Tensor, parameters: torch.Tensor, channel_scale: torch.Tensor
) -> torch.Tensor:
    """Standardised views (batch, channel, y, x) of season-major CHANNELS with each view's
    VV and VH offsets and speckle (parameters (batch, len(PARAMETERS))) added: x + d_c /
    std_c, d_c the channel's change in dB (`channel_mixing` of VV's and VH's), `channel_scale`
    = 1 / std (channel,). Speckle is zero-mean Gaussian noise in dB, drawn per pixel, season
    and polarisation from the device's generator."""
    batch, channels, height, width = views.shape
    mixing = CHANNEL_MIXING.to(views.device)
    offsets = parameters[:, :2].float() @ mixing.T  # (batch, channel) dB
    noise = torch.randn(batch, len(SEASONS), 2, height, width, device=views.device)
    # Per season: VV, VH, VV-VH from the two polarisations' noise (the channel order).
    noise = torch.einsum("qp,bsphw->bsqhw", mixing[: len(QUANTITIES)], noise)
    noise = noise.reshape(batch, channels, height, width) * parameters[:, 2, None, None, None]
    change = (offsets[:, :, None, None] + noise) * channel_scale.to(views.device)[:, None, None]
    return (views.float() + change).to(views.dtype)
