"""The segmentation models (sarssl.segmentation): 11 classes at 448 px for every encoding."""

import pytest
import timm
import torch

from sarssl.dataset.worldcover import NUM_CLASSES
from sarssl.segmentation import AttentionMapsUNet, Backbone, S1AttentionUNet, TokenDecoder


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
        S1AttentionUNet(None, 12, 0, NUM_CLASSES, 448, width=4),
        S1AttentionUNet(backbone, 12, 3, NUM_CLASSES, 448, width=4),
    ]
    with torch.no_grad():
        for model in models:
            assert model.eval()(images).shape == (1, NUM_CLASSES, 448, 448)
        maps = torch.rand(1, 3, 28, 28)
        assert models[0](None, maps).shape == (1, NUM_CLASSES, 448, 448)
        assert models[3](images, maps).shape == (1, NUM_CLASSES, 448, 448)
