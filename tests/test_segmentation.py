"""The segmentation models (sarssl.models.segmentation): 11 classes at 448 px for every encoding;
the attention maps on their grid or upsampled (bilinear) to the tile."""

import pytest
import timm
import torch
import torch.nn.functional as F
from torch.testing import assert_close

from sarssl.dataset.worldcover import NUM_CLASSES
from sarssl.models.segmentation import AttentionMapsUNet, Backbone, TileUNet, TokenDecoder, scaled


@pytest.fixture(scope="module")
def vit():
    torch.manual_seed(0)
    return timm.create_model(
        "vit_tiny_patch16_224",
        pretrained=False,
        img_size=448,
        in_chans=12,
        num_classes=0,
        dynamic_img_size=True,
    )


@pytest.mark.parametrize("frozen", [True, False])
def test_every_model_predicts_11_classes_at_448(vit, frozen):
    images = torch.randn(1, 12, 448, 448)
    backbone = Backbone(vit, frozen=frozen)
    models = [
        AttentionMapsUNet(backbone, 3, NUM_CLASSES, 448, width=4),
        TokenDecoder(backbone, NUM_CLASSES, width=4),
        TileUNet(None, 12, 0, NUM_CLASSES, 448, width=4),
        TileUNet(backbone, 12, 3, NUM_CLASSES, 448, width=4),
    ]
    with torch.no_grad():
        for model in models:
            assert model.eval()(images).shape == (1, NUM_CLASSES, 448, 448)
        maps = torch.rand(1, 3, 28, 28)
        assert models[0](None, maps).shape == (1, NUM_CLASSES, 448, 448)
        assert models[3](images, maps).shape == (1, NUM_CLASSES, 448, 448)


def test_both_readings_of_the_maps_give_logits_at_the_tile():
    maps = torch.rand(2, 3, 4, 4)  # (batch, heads, grid, grid)
    native = AttentionMapsUNet(None, 3, NUM_CLASSES, 64, width=4)
    upsampled = TileUNet(None, 0, 3, NUM_CLASSES, 64, width=4)
    with torch.no_grad():
        seen = upsampled.unet_input(None, maps)
        assert seen.shape == (2, 3, 64, 64)
        resized = F.interpolate(scaled(maps), size=64, mode="bilinear", align_corners=False)
        assert_close(seen, resized, rtol=0, atol=0)
        for model in (native, upsampled):
            assert model.eval()(None, maps).shape == (2, NUM_CLASSES, 64, 64)


def test_the_upsampled_maps_are_the_bilinear_resize_worked_out_by_hand():
    # Scaled by their 4 tokens, the maps are x + 2y on the 2 x 2 grid. Bilinear with
    # align_corners=False samples output pixel i at (i + 0.5) / 2 - 0.5 clamped to [0, 1]:
    # 0, 0.25, 0.75, 1 along each axis, and is exact on a linear map.
    maps = torch.tensor([[0.0, 1.0], [2.0, 3.0]]).reshape(1, 1, 2, 2) / 4
    expected = torch.tensor(
        [
            [0.0, 0.25, 0.75, 1.0],
            [0.5, 0.75, 1.25, 1.5],
            [1.5, 1.75, 2.25, 2.5],
            [2.0, 2.25, 2.75, 3.0],
        ]
    ).reshape(1, 1, 4, 4)
    seen = TileUNet(None, 0, 1, NUM_CLASSES, 4, width=4).unet_input(None, maps)
    assert_close(seen, expected)
    assert_close(F.interpolate(4 * maps, size=4, mode="bilinear", align_corners=False), expected)
