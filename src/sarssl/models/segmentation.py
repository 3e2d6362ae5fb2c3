"""Segmentation models of the fine-tuning grid (the paper's Table 1 and SI Table 2).

- `UNet`: 3 down blocks (max pooling, then a double convolution: Conv2d, BatchNorm, ReLU,
  twice) and 4 up blocks (bilinear upsampling, then a double convolution; the first three
  join the encoder's skip connections), then a 1x1 convolution to the classes at the
  output size. On 28 x 28 attention maps the last up block upsamples x16 to 448; on 448 px
  inputs it keeps the size.
- `AttentionMapsUNet`: the last block's per-head CLS attention of a ViT (28 x 28) into a
  U-Net on that grid (finetune.attention_input `native`). Gradients flow through the
  attention maps when the backbone is trained.
- `TokenDecoder`: the patch-token embeddings (CLS dropped) as a 28 x 28 x D map, decoded by
  4 blocks of Conv2d, BatchNorm, ReLU and bilinear x2 upsampling to 448, then a 1x1
  convolution.
- `TileUNet`: SI Table 2's U-Net at the tile's resolution, on the 12 S1GRD channels, on a
  ViT's attention maps upsampled (bilinear) to the tile, or on both stacked as channels.
  On the maps alone it is the attention-map U-Net of finetune.attention_input `upsampled`.

Attention maps enter every model multiplied by their number of tokens (mean 1 instead of
about 1/784), so that they are on the scale of the standardised SAR channels they join.
Frozen backbones stay in eval mode and out of autograd; maps of a frozen backbone may also
be given precomputed (the attention_maps rule's Zarr), which skips the ViT altogether.
"""

import itertools
from collections.abc import Mapping

import torch
import torch.nn.functional as F
from torch import nn

from sarssl.models.attention import cls_attention


class DoubleConv(nn.Sequential):
    def __init__(self, in_channels: int, out_channels: int):
        super().__init__(
            nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=False),
            nn.BatchNorm2d(out_channels),
            nn.ReLU(inplace=True),
            nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=False),
            nn.BatchNorm2d(out_channels),
            nn.ReLU(inplace=True),
        )


def upsample(x: torch.Tensor, size: tuple[int, int] | int) -> torch.Tensor:
    return F.interpolate(x, size=size, mode="bilinear", align_corners=False)


class UNet(nn.Module):
    def __init__(self, in_channels: int, num_classes: int, tile_px: int, width: int = 64):
        super().__init__()
        self.tile_px = tile_px
        widths = [width, 2 * width, 4 * width, 8 * width]
        self.stem = DoubleConv(in_channels, widths[0])
        self.down = nn.ModuleList(DoubleConv(a, b) for a, b in itertools.pairwise(widths))
        self.up = nn.ModuleList(
            [
                DoubleConv(widths[3] + widths[2], widths[2]),
                DoubleConv(widths[2] + widths[1], widths[1]),
                DoubleConv(widths[1] + widths[0], widths[0]),
                DoubleConv(widths[0], widths[0]),
            ]
        )
        self.classify = nn.Conv2d(widths[0], num_classes, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skips = [self.stem(x)]
        for block in self.down:
            # ceil_mode: odd sizes round up (28 -> 14 -> 7 -> 4), and tiny grids still pool.
            skips.append(block(F.max_pool2d(skips[-1], 2, ceil_mode=True)))
        x = skips.pop()
        for block in self.up[:-1]:
            skip = skips.pop()
            x = block(torch.cat([upsample(x, skip.shape[-2:]), skip], dim=1))
        x = self.up[-1](upsample(x, self.tile_px))
        return self.classify(x)


def scaled(maps: torch.Tensor) -> torch.Tensor:
    """Attention maps relative to uniform attention (mean about 1)."""
    return maps * (maps.shape[-1] * maps.shape[-2])


class Backbone(nn.Module):
    """A timm ViT that is trained, or frozen (eval mode, no gradients) when `frozen`."""

    def __init__(self, vit: nn.Module, frozen: bool):
        super().__init__()
        self.vit, self.frozen = vit, frozen
        if frozen:
            vit.requires_grad_(False)
            vit.eval()

    def train(self, mode: bool = True) -> "Backbone":
        super().train(mode)
        if self.frozen:
            self.vit.eval()
        return self

    def attention_maps(self, images: torch.Tensor) -> torch.Tensor:
        with torch.set_grad_enabled(torch.is_grad_enabled() and not self.frozen):
            return cls_attention(self.vit, images)

    def patch_tokens(self, images: torch.Tensor) -> torch.Tensor:
        """(batch, dim, grid_h, grid_w) final-norm patch embeddings, prefix tokens dropped."""
        with torch.set_grad_enabled(torch.is_grad_enabled() and not self.frozen):
            tokens = self.vit.forward_features(images)[:, self.vit.num_prefix_tokens :]
        grid_h, grid_w = self.vit.patch_embed.dynamic_feat_size(images.shape[-2:])
        return tokens.transpose(1, 2).reshape(len(images), -1, grid_h, grid_w)


class AttentionMapsUNet(nn.Module):
    def __init__(
        self, backbone: Backbone | None, heads: int, num_classes: int, tile_px: int, width: int
    ):
        super().__init__()
        self.backbone = backbone
        self.unet = UNet(heads, num_classes, tile_px, width)

    def forward(self, images: torch.Tensor, maps: torch.Tensor | None = None) -> torch.Tensor:
        if maps is None:
            maps = self.backbone.attention_maps(images)
        return self.unet(scaled(maps))


class TokenDecoder(nn.Module):
    def __init__(self, backbone: Backbone, num_classes: int, width: int):
        super().__init__()
        self.backbone = backbone
        widths = [backbone.vit.num_features, 8 * width, 4 * width, 2 * width, width]
        self.decode = nn.Sequential(
            *(
                nn.Sequential(
                    nn.Conv2d(a, b, 3, padding=1, bias=False),
                    nn.BatchNorm2d(b),
                    nn.ReLU(inplace=True),
                    nn.Upsample(scale_factor=2, mode="bilinear", align_corners=False),
                )
                for a, b in itertools.pairwise(widths)
            )
        )
        self.classify = nn.Conv2d(width, num_classes, 1)

    def forward(self, images: torch.Tensor, maps: torch.Tensor | None = None) -> torch.Tensor:
        return self.classify(self.decode(self.backbone.patch_tokens(images)))


# Where a TokenDecoder's state dict keeps its ViT (its `backbone`'s `vit`).
TOKEN_DECODER_VIT = "backbone.vit."


def token_decoder_vit(state: Mapping[str, torch.Tensor], vit: nn.Module) -> nn.Module:
    """`vit`, of the run's architecture, with the ViT weights of a TokenDecoder's state
    dict (a fine-tuning run's model.pt), in eval mode."""
    weights = {
        key.removeprefix(TOKEN_DECODER_VIT): value
        for key, value in state.items()
        if key.startswith(TOKEN_DECODER_VIT)
    }
    vit.load_state_dict(weights)
    return vit.eval()


class TileUNet(nn.Module):
    """U-Net at the tile's resolution on `channels` S1GRD channels and `heads` attention
    maps upsampled to the tile (either may be 0)."""

    def __init__(
        self,
        backbone: Backbone | None,
        channels: int,
        heads: int,
        num_classes: int,
        tile_px: int,
        width: int,
    ):
        super().__init__()
        self.backbone, self.channels, self.heads = backbone, channels, heads
        self.unet = UNet(channels + heads, num_classes, tile_px, width)

    def unet_input(self, images: torch.Tensor | None, maps: torch.Tensor | None) -> torch.Tensor:
        """The S1GRD channels, then the maps upsampled to the tile (stored maps on the maps
        alone need no images)."""
        if not self.heads:
            return images
        if maps is None:
            maps = self.backbone.attention_maps(images)
        maps = upsample(scaled(maps), self.unet.tile_px)
        return torch.cat([images, maps], dim=1) if self.channels else maps

    def forward(
        self, images: torch.Tensor | None, maps: torch.Tensor | None = None
    ) -> torch.Tensor:
        return self.unet(self.unet_input(images, maps))
