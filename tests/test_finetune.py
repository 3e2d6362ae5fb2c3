"""Fine-tuning: MIoU from one confusion matrix (against hand values and torchmetrics),
nested subsets, model output shapes, frozen backbones unchanged, gradients reaching a
fine-tuned backbone, reproducible runs, clear errors."""

from pathlib import Path

import numpy as np
import pytest
import timm
import torch
import zarr
from conftest import TEST_TILE_PX
from torchmetrics.classification import MulticlassJaccardIndex

from sarssl.backbone import load_checkpoint
from sarssl.data import StoreTiles, TileRef, split_tiles
from sarssl.errors import ConfigError
from sarssl.finetune import (
    SegmentationTiles,
    build_model,
    finetune,
    fraction_subset,
    loader,
    make_optimizer,
    train_epoch,
)
from sarssl.metrics import ConfusionMatrix, mean_iou, per_class_iou
from sarssl.runs import FinetuneSettings, check_run, settings_from_config, subset_size
from sarssl.segmentation import AttentionMapsUNet, Backbone, S1AttentionUNet, TokenDecoder
from sarssl.worldcover import IGNORE_INDEX, NUM_CLASSES


def test_iou_from_a_hand_made_confusion_matrix():
    # truth:     0 0 1 1 2 255      predicted: 0 1 1 1 0 2
    confusion = ConfusionMatrix(4, IGNORE_INDEX)
    confusion.update(torch.tensor([0, 1, 1, 1, 0, 2]), torch.tensor([0, 0, 1, 1, 2, 255]))
    counts = confusion.numpy()
    assert counts.tolist() == [[1, 1, 0, 0], [0, 2, 0, 0], [1, 0, 0, 0], [0, 0, 0, 0]]
    iou = per_class_iou(counts)
    # class 0: TP 1, FP 1, FN 1 -> 1/3; class 1: TP 2, FP 1 -> 2/3; class 2: TP 0, FN 1 -> 0;
    # class 3: absent from truth and predictions -> no IoU, left out of the mean.
    np.testing.assert_allclose(iou[:3], [1 / 3, 2 / 3, 0.0])
    assert np.isnan(iou[3])
    assert mean_iou(counts) == pytest.approx((1 / 3 + 2 / 3 + 0) / 3)


def test_miou_over_batches_equals_torchmetrics_on_the_whole_split():
    rng = np.random.default_rng(0)
    truth = torch.from_numpy(rng.integers(0, NUM_CLASSES - 2, size=(6, 16, 16)))  # 2 absent
    truth[:, :3] = IGNORE_INDEX
    predicted = torch.where(
        torch.from_numpy(rng.random((6, 16, 16)) < 0.6),
        truth.clamp_max(NUM_CLASSES - 1),
        torch.from_numpy(rng.integers(0, NUM_CLASSES - 1, size=(6, 16, 16))),
    )
    ours = ConfusionMatrix(NUM_CLASSES, IGNORE_INDEX)
    for batch in range(0, 6, 2):
        ours.update(predicted[batch : batch + 2], truth[batch : batch + 2])
    reference = MulticlassJaccardIndex(NUM_CLASSES, average="macro", ignore_index=IGNORE_INDEX)
    expected = reference(predicted, truth).item()
    assert mean_iou(ours.numpy()) == pytest.approx(expected, abs=1e-6)
    scores = []
    for batch in range(0, 6, 2):
        single = ConfusionMatrix(NUM_CLASSES, IGNORE_INDEX)
        single.update(predicted[batch : batch + 2], truth[batch : batch + 2])
        scores.append(mean_iou(single.numpy()))
    assert np.mean(scores) != pytest.approx(expected, abs=1e-4)  # why one matrix, not a mean


def test_subsets_are_nested_deterministic_and_never_empty():
    tiles = [TileRef("s", i) for i in range(1000)]
    small, medium, large = (fraction_subset(tiles, f, seed=7) for f in (0.1, 1, 10))
    assert (len(small), len(medium), len(large)) == (1, 10, 100)
    assert set(small) <= set(medium) <= set(large)
    assert fraction_subset(tiles, 1, seed=7) == medium
    assert fraction_subset(tiles, 1, seed=8) != medium
    assert subset_size(0.05, 1000) == 1  # 0.5 tiles rounds half up
    with pytest.raises(ConfigError, match=r"fraction 0.1 % of 29 .* less than one"):
        subset_size(0.1, 29)


def test_unknown_models_and_initialisations_are_named():
    with pytest.raises(ConfigError, match="'segformer'"):
        check_run("segformer", "scratch")
    with pytest.raises(ConfigError, match="s1grd-unet has no initialisation 'frozen'"):
        check_run("s1grd-unet", "frozen")


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


@pytest.fixture(scope="module")
def pretrained(tiny_store, tiny_checkpoint):
    """A built tiny store and a ViT-Tiny pre-trained on it for one epoch."""
    return tiny_store, tiny_checkpoint


def run_settings(pretrained, model: str, init: str, **overrides) -> FinetuneSettings:
    store, checkpoint = pretrained
    config = {"epochs": 2, "batch_size": 4, "width": 4, "loader_workers": 0, **overrides}
    return settings_from_config(
        config, "tiny-vit", model, init, 50.0, str(store), str(checkpoint), "", "student"
    )


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


@pytest.mark.parametrize("model_name", ["attention-unet", "tokens-decoder", "s1grd-attention-unet"])
def test_gradients_reach_a_finetuned_backbone(pretrained, model_name):
    model = one_epoch(run_settings(pretrained, model_name, "finetuned"))
    grads = [p.grad for p in model.backbone.vit.parameters() if p.grad is not None]
    assert grads and any(bool(g.abs().sum() > 0) for g in grads)
    qkv = model.backbone.vit.blocks[-1].attn.qkv.weight
    assert not torch.equal(qkv, backbone_weights(pretrained[1])["blocks.11.attn.qkv.weight"])


def test_a_run_is_reproducible_on_the_cpu(pretrained):
    settings = run_settings(pretrained, "s1grd-unet", "scratch")
    (first, _), (second, _) = finetune(settings), finetune(settings)
    assert first["confusion_matrix"] == second["confusion_matrix"]
    assert first["miou"] == second["miou"] and first["history"] == second["history"]
    n_train = len(split_tiles(settings.store, ["train"]))
    assert first["tiles"]["train"] == subset_size(50, n_train)
    assert sum(map(sum, first["confusion_matrix"])) > 0


def test_a_stored_map_run_rejects_maps_of_other_tiles(pretrained, tmp_path):
    from sarssl.attention_maps import extract_attention_maps

    store, checkpoint = pretrained
    maps = tmp_path / "maps.zarr"
    extract_attention_maps(checkpoint, store, maps, tmp_path / "tifs", geotiff_tiles=0)
    config = {"epochs": 1, "batch_size": 4, "width": 4, "loader_workers": 0}
    settings = settings_from_config(
        config, "tiny-vit", "attention-unet", "frozen", 50.0, str(store), str(checkpoint),
        str(maps), "student",
    )  # fmt: skip
    record, examples = finetune(settings)
    assert examples["predicted"].shape == (4, TEST_TILE_PX, TEST_TILE_PX)
    assert record["miou"] is not None and len(record["per_class_iou"]) == NUM_CLASSES
    zarr.open_group(maps, mode="r+")["tile"][0] = "not-a-tile"
    with pytest.raises(ConfigError, match="its tiles are not those of"):
        finetune(settings)
