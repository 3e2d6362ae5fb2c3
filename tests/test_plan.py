"""The cost plan: FLOP counts against the transformer formula, and the plan's arithmetic
against values worked out by hand."""

import math

import pytest
import torch

from sarssl import plan as cost
from sarssl.backbone import create_backbone
from sarssl.cli import main
from sarssl.pretrain_settings import PretrainSettings


def test_counted_vit_flops_follow_the_transformer_formula():
    """ViT-Tiny at 224 px: N = 197 tokens, D = 192, L = 12 blocks. Per block, 24 N D^2 for
    the qkv, projection and MLP matrices and 4 N^2 D for the attention; the patch embedding
    2 (N - 1) (16 x 16 x 12) D."""
    n, d, blocks = 197, 192, 12
    expected = blocks * (24 * n * d**2 + 4 * n**2 * d) + 2 * (n - 1) * (16 * 16 * 12) * d
    with torch.device("meta"):
        vit = create_backbone("vit_tiny_patch16_224", 224)
        image = torch.empty(1, 12, 224, 224)
    with torch.no_grad():
        counted = cost._counted(lambda: vit(image))
    assert counted == pytest.approx(expected, rel=1e-3)


def test_the_plan_is_the_arithmetic_of_its_inputs(monkeypatch):
    monkeypatch.setattr(cost, "pretrain_flops_per_tile", lambda settings: 1e12)
    config = {
        "aois": [{"name": "a", "n_shards": 1}],
        "data": {"tile_px": 448},
        "split": {"fractions": {"train": 0.6, "val": 0.2, "test": 0.2}},
        "gee": {"concurrency": 20},
        "pretrain": [{"name": "p", "aois": ["a"], "gpus": 2, "nodes": 1}],
        "finetune": {"aoi": None},
    }
    settings = PretrainSettings("p", "vit_tiny_patch16_224", (), epochs=10, batch_size=10)
    result = cost.plan(config, {"a": 1000}, {"p": settings})
    aoi, run = result["aois"]["a"], result["pretrain"]["p"]
    assert aoi["gee_requests"] == 2000
    assert aoi["gee_hours"] == pytest.approx(2000 * 10 / 20 / 3600)
    assert aoi["store_tb"] == pytest.approx(1000 * 448**2 * (12 * 2 * 0.66 + 0.19) / 1e12)
    assert run["train_tiles"] == 600 and run["steps"] == 10 * 60
    assert run["gpu_hours"] == pytest.approx(600 * 10 * 1e12 / (989.4e12 * 0.25) / 3600)
    assert run["wall_hours"] == pytest.approx(run["gpu_hours"] / 2)
    tiles_per_s = 989.4e12 * 0.25 / 1e12
    assert result["loader_cores"]["p"]["loader_cores_per_gpu"] == math.ceil(tiles_per_s * 0.006)


def test_the_plan_command_prints_every_section(capsys, tmp_path):
    assert main(["plan", "--results", str(tmp_path)]) == 0  # no grid built: tiles estimated
    text = capsys.readouterr().out
    for words in ("AOI demo:", "Earth Engine:", "store:", "pre-training vittiny-demo",
                  "GPU-hours", "cores per GPU", "fine-tuning grid: 30 runs",
                  "tiles of demo estimated from the AOI's area"):  # fmt: skip
        assert words in text
