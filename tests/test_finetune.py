"""Fine-tuning (sarssl.training.finetune): frozen backbones unchanged, gradients reaching a
fine-tuned backbone, reproducible runs, stored maps of other tiles refused, the attention
maps read on their grid or upsampled through the baseline's U-Net."""

from pathlib import Path

import pytest
import torch
import zarr
from conftest import TEST_TILE_PX

from sarssl.dataset.worldcover import NUM_CLASSES
from sarssl.errors import ConfigError
from sarssl.models.backbone import create_backbone, load_checkpoint
from sarssl.models.segmentation import TileUNet
from sarssl.settings.finetune import FinetuneSettings, Run, settings_from_config, subset_size
from sarssl.tiles.loader import StoreTiles, split_tiles
from sarssl.training.finetune import (
    SegmentationTiles,
    build_model,
    finetune,
    loader,
    make_optimizer,
    segmentation_model,
    train_epoch,
)


@pytest.fixture(scope="module")
def pretrained(tiny_store, tiny_checkpoint):
    """A built tiny store and a ViT-Tiny pre-trained on it for one epoch."""
    return tiny_store, tiny_checkpoint


def run_settings(pretrained, model: str, init: str, **overrides) -> FinetuneSettings:
    store, checkpoint = pretrained
    config = {
        "epochs": 2,
        "batch_size": 4,
        "width": 4,
        "loader_workers": 0,
        "attention_input": "native",
        **overrides,
    }
    run = Run("tiny-vit", model, init, 50.0, 0)
    return settings_from_config(config, run, str(store), str(checkpoint), "", "student")


def one_epoch(settings: FinetuneSettings) -> torch.nn.Module:
    model, normalisation = build_model(settings)
    tiles = StoreTiles(split_tiles(settings.store, ["train"])[:4], normalisation)
    data = loader(SegmentationTiles(tiles, None, with_images=True), settings, None)
    train_epoch(model, data, make_optimizer(model, settings), torch.device("cpu"), settings)
    return model


def backbone_weights(checkpoint: Path) -> dict:
    state = load_checkpoint(checkpoint)["student"]
    return {k.removeprefix("backbone."): v for k, v in state.items() if k.startswith("backbone.")}


def test_a_frozen_backbone_is_unchanged_by_training(pretrained):
    model = one_epoch(run_settings(pretrained, "tokens-decoder", "frozen"))
    for name, value in model.backbone.vit.state_dict().items():
        torch.testing.assert_close(value, backbone_weights(pretrained[1])[name], rtol=0, atol=0)
    assert not model.backbone.vit.training  # frozen means eval mode too


@pytest.mark.parametrize(
    ("model_name", "attention_input"),
    [
        ("attention-unet", "native"),
        ("attention-unet", "upsampled"),
        ("tokens-decoder", "native"),
        ("s1grd-attention-unet", "native"),
    ],
)
def test_gradients_reach_a_finetuned_backbone(pretrained, model_name, attention_input):
    settings = run_settings(pretrained, model_name, "finetuned", attention_input=attention_input)
    model = one_epoch(settings)
    at_the_tile = model_name == "s1grd-attention-unet" or attention_input == "upsampled"
    assert isinstance(model, TileUNet) == at_the_tile
    grads = [p.grad for p in model.backbone.vit.parameters() if p.grad is not None]
    assert grads and any(bool(g.abs().sum() > 0) for g in grads)
    qkv = model.backbone.vit.blocks[-1].attn.qkv.weight
    assert not torch.equal(qkv, backbone_weights(pretrained[1])["blocks.11.attn.qkv.weight"])


def test_the_upsampled_attention_unet_is_the_baselines_unet_on_the_maps():
    vit = create_backbone("vit_tiny_patch16_224", 64)  # 3 heads on a 4 x 4 grid
    maps = torch.rand(2, 3, 4, 4)
    native, upsampled = (
        segmentation_model("attention-unet", "frozen", vit, 64, 4, upsampled=u)
        for u in (False, True)
    )
    baseline = segmentation_model("s1grd-unet", "scratch", None, 64, 4)
    assert type(upsampled) is type(baseline) and type(native) is not type(baseline)
    assert upsampled.unet.stem[0].in_channels == native.unet.stem[0].in_channels == 3
    with torch.no_grad():
        for model in (native, upsampled):
            assert model.eval()(None, maps).shape == (2, NUM_CLASSES, 64, 64)


def test_a_run_is_reproducible_on_the_cpu(pretrained):
    settings = run_settings(pretrained, "s1grd-unet", "scratch")
    (first, _), (second, _) = finetune(settings), finetune(settings)
    assert first["confusion_matrix"] == second["confusion_matrix"]
    assert first["miou"] == second["miou"] and first["history"] == second["history"]
    assert first["seed"] == settings.seed == 0
    n_train = len(split_tiles(settings.store, ["train"]))
    assert first["tiles"]["train"] == subset_size(50, n_train)
    assert sum(map(sum, first["confusion_matrix"])) > 0


def test_a_stored_map_run_rejects_maps_of_other_tiles(pretrained, tmp_path):
    from sarssl.evaluation.attention_maps import extract_attention_maps

    store, checkpoint = pretrained
    maps = tmp_path / "maps.zarr"
    extract_attention_maps(checkpoint, store, maps, tmp_path / "tifs", geotiff_tiles=0)
    config = {
        "epochs": 1,
        "batch_size": 4,
        "width": 4,
        "loader_workers": 0,
        "attention_input": "native",
    }
    run = Run("tiny-vit", "attention-unet", "frozen", 50.0, 0)
    settings = settings_from_config(config, run, str(store), str(checkpoint), str(maps), "student")
    record, examples = finetune(settings)
    assert examples["predicted"].shape == (4, TEST_TILE_PX, TEST_TILE_PX)
    assert record["miou"] is not None and len(record["per_class_iou"]) == NUM_CLASSES
    zarr.open_group(maps, mode="r+")["tile"][0] = "not-a-tile"
    with pytest.raises(ConfigError, match="its tiles are not those of"):
        finetune(settings)
