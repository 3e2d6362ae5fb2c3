"""The cost plan: FLOP counts against the transformer formula, and the plan's arithmetic
against values worked out by hand."""

import math

import pandas as pd
import pytest
import torch
import yaml
from conftest import REPO

from sarssl.cli import main
from sarssl.models.backbone import create_backbone
from sarssl.outputs import plan as cost
from sarssl.settings.pretrain import PretrainSettings
from sarssl.training.utils import counted_flops


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
        counted = counted_flops(lambda: vit(image))
    assert counted == pytest.approx(expected, rel=1e-3)


def test_the_plan_is_the_arithmetic_of_its_inputs(monkeypatch):
    monkeypatch.setattr(cost, "pretrain_flops_per_tile", lambda settings: 1e12)
    config = {
        "aois": [{"name": "a", "n_shards": 1, "max_tiles": None}],
        "data": {"tile_px": 448, "store_dtype": "uint8"},
        "split": {"fractions": {"train": 0.6, "val": 0.2, "test": 0.2}},
        "gee": {"concurrency": 20},
        "pretrain": [{"name": "p", "aois": ["a"], "gpus": 2, "nodes": 1}],
        "finetune": {"aoi": None},
    }
    settings = PretrainSettings("p", "vit_tiny_patch16_224", (), epochs=10, batch_size=10)
    assumptions = cost.Assumptions(
        s1_bytes_per_value={"float16": 1.2, "uint8": 0.5},
        worker_ms_per_tile={"float16": 6.0, "uint8": 3.0},
    )
    tiles = {"a": {"train": 600, "val": 200, "test": 200}}
    result = cost.plan(config, tiles, {"p": settings}, assumptions)
    aoi, run = result["aois"]["a"], result["pretrain"]["p"]
    assert aoi["gee_requests"] == 2000
    assert aoi["gee_hours"] == pytest.approx(2000 * 10 / 20 / 3600)
    assert aoi["store_tb"] == pytest.approx(1000 * 448**2 * (12 * 0.5 + 0.19) / 1e12)
    assert run["train_tiles"] == 600 and run["steps"] == 10 * 60
    assert run["gpu_hours"] == pytest.approx(600 * 10 * 1e12 / (989.4e12 * 0.25) / 3600)
    assert run["wall_hours"] == pytest.approx(run["gpu_hours"] / 2)
    tiles_per_s = 989.4e12 * 0.25 / 1e12
    assert result["loader_cores"]["p"]["loader_cores_per_gpu"] == math.ceil(tiles_per_s * 0.003)
    # I/O: 448^2 px x 12 channels x 0.5 bytes per stored uint8 value per tile read.
    read = 448**2 * 12 * 0.5
    assert aoi["mb_per_tile"] == pytest.approx((read + 448**2 * 0.19) / 1e6)
    assert run["read_mb_per_tile"] == pytest.approx(read / 1e6)
    assert run["read_gb_per_s_per_gpu"] == pytest.approx(tiles_per_s * read / 1e9)
    assert run["read_gb_per_s_per_node"] == pytest.approx(2 * tiles_per_s * read / 1e9)
    assert run["read_tb"] == pytest.approx(600 * 10 * read / 1e12)
    as_float16 = cost.plan(
        {**config, "data": {"tile_px": 448}}, tiles, {"p": settings}, assumptions
    )
    assert as_float16["pretrain"]["p"]["read_mb_per_tile"] == pytest.approx(448**2 * 12 * 1.2 / 1e6)


def test_the_plan_command_prints_every_section(capsys, tmp_path):
    assert main(["plan", "--results", str(tmp_path)]) == 0  # no grid built: tiles estimated
    text = capsys.readouterr().out
    for words in ("AOI demo:", "Earth Engine:", "store:", "pre-training vittiny-demo",
                  "GPU-hours", "cores per GPU", "GB/s per GPU", "GB/s per node",
                  "MB per tile", "fine-tuning grid: 30 runs",
                  "tiles of demo estimated from the AOI's area"):  # fmt: skip
        assert words in text


def test_max_tiles_costs_the_kept_tiles_and_the_plan_shows_them_per_split(monkeypatch):
    monkeypatch.setattr(cost, "pretrain_flops_per_tile", lambda settings: 1e12)
    config = {
        "aois": [
            {"name": "a", "n_shards": 1, "max_tiles": 500},
            {"name": "b", "n_shards": 1, "max_tiles": None},
        ],
        "data": {"tile_px": 448},
        "gee": {"concurrency": 20},
        "pretrain": [{"name": "p", "aois": ["a", "b"], "gpus": 1, "nodes": 1}],
        "finetune": {"aoi": None},
    }
    grid = {"a": {"train": 613, "val": 197, "test": 211}, "b": {"train": 6, "val": 2, "test": 2}}
    settings = PretrainSettings("p", "vit_tiny_patch16_224", (), epochs=10, batch_size=10)
    result = cost.plan(config, grid, {"p": settings})
    a = result["aois"]["a"]
    assert a["grid_tiles"] == 1021 and a["tiles"] == 500 and a["gee_requests"] == 1000
    assert a["splits"] == {"train": 300, "val": 97, "test": 103}  # 300.2, 96.5, 103.3
    assert result["aois"]["b"]["splits"] == grid["b"]
    assert result["pretrain"]["p"]["train_tiles"] == 306
    text = cost.describe(result)
    assert "AOI a: 500 of its grid's 1,021 tiles (max_tiles 500" in text
    assert "grid -> kept: train 613 -> 300, val 197 -> 97, test 211 -> 103" in text
    assert "AOI b: 10 tiles\n  tiles per split: train 6, val 2, test 2" in text


def test_the_plan_command_counts_a_split_grid_before_and_after_the_cap(capsys, tmp_path):
    config = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    config["aois"][0] |= {"wkt": str(REPO / config["aois"][0]["wkt"]), "max_tiles": 40}
    configfile = tmp_path / "config.yaml"
    configfile.write_text(yaml.safe_dump(config))
    splits = tmp_path / "results" / "demo" / "grid" / "splits.csv"
    splits.parent.mkdir(parents=True)
    names = ["train"] * 61 + ["val"] * 19 + ["test"] * 20
    pd.DataFrame({"identifier": [f"t{i}" for i in range(100)], "split": names}).to_csv(
        splits, index=False
    )
    command = ["plan", "--configfile", str(configfile), "--results", str(tmp_path / "results")]
    assert main(command) == 0
    text = capsys.readouterr().out
    assert "AOI demo: 40 of its grid's 100 tiles" in text
    assert "train 61 -> 24, val 19 -> 8, test 20 -> 8" in text  # 24.4, 7.6, 8.0
    assert "estimated" not in text
