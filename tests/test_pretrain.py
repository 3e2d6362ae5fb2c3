"""DINO pre-training: data order, normalisation, the step's pieces, checkpoints that resume
after kill -9, DDP (gloo, two processes) against one process, non-finite loss, attention
maps written to Zarr and GeoTIFF. Small tiles and a small head keep each run to seconds."""

import dataclasses
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import rasterio
import torch
import xarray as xr
from conftest import TEST_TILE_PX, TINY_DINO

from sarssl.attention import cls_attention
from sarssl.attention_maps import extract_attention_maps
from sarssl.backbone import load_backbone, load_checkpoint
from sarssl.data import (
    MultiCropTiles,
    Normalisation,
    StepBatches,
    StoreTiles,
    make_loader,
    split_tiles,
)
from sarssl.dino import DINOLoss
from sarssl.errors import ConfigError
from sarssl.pretrain import (
    CHECKPOINT_NAME,
    RENDEZVOUS_PORT,
    DINOTrainer,
    NonFiniteLossError,
    PretrainSettings,
    Schedules,
    clip_gradients_per_parameter,
    create_network,
    device_views,
    launcher_commands,
    parameter_groups,
    settings_from_config,
    train,
)
from sarssl.store import open_store, tile_transform


@pytest.fixture(scope="module")
def store(tiny_store) -> Path:
    return tiny_store


def tiny_settings(store: Path, **overrides) -> PretrainSettings:
    """26 train tiles of 32 px, 6 steps of 4 tiles per epoch; a small head."""
    run = {"name": "tiny", "architecture": "vit_tiny_patch16_224", "epochs": 2, "batch_size": 4}
    settings = settings_from_config(run, TINY_DINO, [str(store)], TEST_TILE_PX)
    return PretrainSettings.from_dict({**settings.as_dict(), **overrides})


def test_each_step_batch_is_split_across_ranks_and_epochs_are_permutations():
    single = StepBatches(26, 4, epochs=2, seed=3)
    assert single.steps_per_epoch == 6 and single.total_steps == 12
    batches = list(single)
    epoch0 = np.concatenate([[p for _, p in b] for b in batches[:6]])
    assert len(set(epoch0)) == 24  # no tile twice in an epoch; 2 left over (drop last)
    ranks = [list(StepBatches(26, 4, 2, 3, rank=r, world_size=2)) for r in range(2)]
    for step, batch in enumerate(batches):
        assert sorted(ranks[0][step] + ranks[1][step]) == sorted(batch)
    assert list(StepBatches(26, 4, 2, 3, start_step=7)) == batches[7:]
    assert batches[6][0][0] == 1  # the epoch travels with each item (it seeds the crops)


def test_the_tile_order_is_drawn_once_per_epoch(monkeypatch):
    seeds, default_rng = [], np.random.default_rng
    monkeypatch.setattr(
        np.random, "default_rng", lambda seed: seeds.append(seed) or default_rng(seed)
    )
    assert len(list(StepBatches(26, 4, epochs=2, seed=3))) == 12
    assert seeds == [[3, 0], [3, 1]]  # one permutation per epoch, not per step


def test_step_batches_reject_batches_that_cannot_be_formed():
    with pytest.raises(ConfigError, match="not divisible by the 3 processes"):
        StepBatches(26, 4, 1, 0, world_size=3)
    with pytest.raises(ConfigError, match="larger than the 26 training tiles"):
        StepBatches(26, 32, 1, 0)


def test_pooled_normalisation_equals_the_statistics_of_all_pixels():
    # Store A: pixels -1, 1 (mean 0, std 1); store B: 2, 2 (mean 2, std 0).
    # All four: mean 1, variance (4 + 0 + 1 + 1) / 4 = 1.5.
    pooled = Normalisation.pooled(
        [{"pixels": 2, "mean": [0.0], "std": [1.0]}, {"pixels": 2, "mean": [2.0], "std": [0.0]}]
    )
    np.testing.assert_allclose(pooled.mean, [1.0])
    np.testing.assert_allclose(pooled.std, [np.sqrt(1.5)])


def test_tiles_are_read_normalised_with_the_train_statistics(store):
    tiles = split_tiles(store, ["train"])
    dataset = open_store(store)
    assert len(tiles) == int(((dataset.split == "train") & dataset.valid).sum())
    stats = dataset["s1grd"].attrs["normalisation"]
    image = StoreTiles(tiles, Normalisation.of_stores([store])).image(0)
    raw = dataset["s1grd"].values[tiles[0].index].astype(np.float32)
    mean, std = (np.array(stats[key])[:, None, None] for key in ("mean", "std"))
    expected = (raw - mean) / std
    np.testing.assert_allclose(image.numpy(), expected, rtol=1e-5, atol=1e-5)


def test_learning_rate_is_scaled_by_the_batch_and_the_teacher_temperature_warms_up(store):
    settings = tiny_settings(
        store, lr=1e-3, batch_size=64, epochs=4, warmup_epochs=2, warmup_teacher_temp_epochs=3
    )
    schedules = Schedules.of(settings, steps_per_epoch=5)
    # Peak 1e-3 * 64 / 256 = 2.5e-4, reached at the first step after the 10 warm-up steps.
    assert schedules.lr[0] == 0.0 and schedules.lr[10] == pytest.approx(2.5e-4)
    np.testing.assert_allclose(schedules.teacher_temp, [0.01, 0.0055, 0.001, 0.001])
    assert schedules.weight_decay[0] == pytest.approx(0.04)
    assert schedules.teacher_momentum[0] == pytest.approx(0.996)


def test_config_errors_name_the_run_and_the_key(store):
    run = {"name": "r1", "architecture": "vit_tiny_patch16_224", "epochs": 2, "batch_size": 4}
    with pytest.raises(ConfigError, match=r"r1: dino overrides \['lerning_rate'\]"):
        settings_from_config({**run, "dino": {"lerning_rate": 1}}, {}, [str(store)], 32)
    with pytest.raises(ConfigError, match="'vit_tinny' is not a timm model"):
        settings_from_config({**run, "architecture": "vit_tinny"}, {}, [str(store)], 32)
    with pytest.raises(ConfigError, match=r"warmup_epochs=10 must be within 0..epochs \(2\)"):
        settings_from_config(run, {"warmup_epochs": 10}, [str(store)], 32)


def test_gradients_are_clipped_per_parameter():
    big, small = torch.zeros(2, requires_grad=True), torch.zeros(1, requires_grad=True)
    big.grad, small.grad = torch.tensor([3.0, 4.0]), torch.tensor([1.0])  # norms 5 and 1
    clip_gradients_per_parameter([big, small], max_norm=2.5)
    torch.testing.assert_close(big.grad, torch.tensor([1.5, 2.0]), rtol=1e-5, atol=0)
    torch.testing.assert_close(small.grad, torch.tensor([1.0]))


def test_weight_decay_skips_biases_and_norms(store):
    network = create_network(tiny_settings(store), 0.0)
    decayed, not_decayed = parameter_groups(network)
    names = {id(p): n for n, p in network.named_parameters()}
    assert all(p.ndim > 1 for p in decayed["params"])
    assert not_decayed["weight_decay"] == 0.0
    assert any(names[id(p)].endswith("norm.weight") for p in not_decayed["params"])


def state_of(run_dir: Path) -> dict:
    return load_checkpoint(run_dir / CHECKPOINT_NAME)


def test_training_logs_metrics_and_keeps_the_last_layer_frozen_as_configured(store, tmp_path):
    settings = tiny_settings(store, freeze_last_layer_epochs=2, loader_workers=1)
    train(settings, tmp_path)
    state = state_of(tmp_path)
    assert state["step"] == 12
    metrics = pd.read_csv(tmp_path / "metrics.csv")
    assert metrics.step.tolist() == list(range(1, 13))
    terms = ["loss", "teacher_entropy", "kl", "batch_entropy", "prototypes"]
    assert np.isfinite(metrics[terms].to_numpy()).all()
    assert metrics.prototypes.between(1, 2 * 4).all()  # at most the 2 x 4 teacher outputs
    assert (metrics.batch_entropy <= np.log(settings.out_dim) + 1e-6).all()
    # The k-NN probe of the teacher once per epoch (6 steps), in those rows only.
    probed = metrics.dropna(subset=["probe_accuracy"])
    assert probed.step.tolist() == [6, 12]
    assert probed.probe_accuracy.between(0, 1).all() and probed.probe_miou.between(0, 1).all()
    assert (probed.probe_s > 0).all()
    assert (metrics.teacher_temp.iloc[6:] == 0.001).all()
    assert list((tmp_path / "tensorboard").glob("events.out.tfevents.*"))
    torch.manual_seed(settings.seed)
    initial = create_network(settings, settings.drop_path_rate).state_dict()
    last_layer = "head.last_layer.parametrizations.weight.original1"
    torch.testing.assert_close(state["student"][last_layer], initial[last_layer])
    block = "backbone.blocks.0.attn.qkv.weight"
    assert not torch.allclose(state["student"][block], initial[block])
    # The teacher is an average of students, not the student.
    assert not torch.equal(state["teacher"][block], state["student"][block])


def assert_same_run(a: dict, b: dict, **tolerance) -> None:
    for network in ("student", "teacher"):
        for key, value in a[network].items():
            torch.testing.assert_close(value, b[network][key], **tolerance, msg=key)
    torch.testing.assert_close(a["loss"]["center"], b["loss"]["center"], **tolerance)


def without_key_bias(state: dict) -> dict:
    """The key bias's gradient is zero in exact arithmetic (a softmax over keys ignores a
    shift common to all keys), so AdamW turns its rounding noise into full-size steps: it
    differs between any two summation orders and is left out of comparisons."""
    for network in ("student", "teacher"):
        for key, value in state[network].items():
            if key.endswith("attn.qkv.bias"):
                inner = len(value) // 3
                value[inner : 2 * inner] = 0.0
    return state


def pretrain_command(settings: PretrainSettings, run_dir: Path, launcher: list[str]) -> list[str]:
    settings_file = run_dir.parent / f"{run_dir.name}.json"
    settings_file.write_text(json.dumps(settings.as_dict()))
    return [
        sys.executable,
        *launcher,
        "-m",
        "sarssl.cli",
        "pretrain",
        "--settings",
        str(settings_file),
        "--run-dir",
        str(run_dir),
    ]


def test_a_run_killed_with_sigkill_resumes_to_the_uninterrupted_result(store, tmp_path):
    settings = tiny_settings(store, epochs=8, checkpoint_every=2, log_every=2)
    killed = tmp_path / "killed"
    process = subprocess.Popen(
        pretrain_command(settings, killed, []),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 120
    while not (killed / CHECKPOINT_NAME).exists() and time.monotonic() < deadline:
        time.sleep(0.02)
    os.kill(process.pid, signal.SIGKILL)
    assert process.wait() == -signal.SIGKILL
    interrupted_at = state_of(killed)["step"]
    assert 0 < interrupted_at < 48

    train(settings, killed)  # the rerun
    train(settings, tmp_path / "uninterrupted")
    resumed, uninterrupted = state_of(killed), state_of(tmp_path / "uninterrupted")
    assert resumed["step"] == uninterrupted["step"] == 48
    assert_same_run(resumed, uninterrupted, rtol=0, atol=1e-6)
    steps = pd.read_csv(killed / "metrics.csv").step.tolist()
    assert steps == list(range(2, 49, 2))  # no row lost or repeated across the kill


def test_two_ddp_processes_give_the_single_process_result(store, tmp_path):
    # Stochastic depth draws differ between one and two processes by design: off here.
    settings = tiny_settings(store, drop_path_rate=0.0, epochs=1)
    launcher = ["-m", "torch.distributed.run", "--standalone", "--nproc-per-node=2"]
    subprocess.run(
        pretrain_command(settings, tmp_path / "ddp", launcher),
        check=True,
        capture_output=True,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    train(settings, tmp_path / "single")
    ddp, single = state_of(tmp_path / "ddp"), state_of(tmp_path / "single")
    assert ddp["step"] == single["step"] == 6
    assert_same_run(without_key_bias(ddp), without_key_bias(single), rtol=1e-4, atol=1e-6)
    losses = [pd.read_csv(tmp_path / r / "metrics.csv").loss for r in ("ddp", "single")]
    np.testing.assert_allclose(losses[0], losses[1], rtol=1e-4)


def test_a_non_finite_loss_stops_the_run_and_keeps_the_last_good_checkpoint(
    store, tmp_path, monkeypatch
):
    forward, calls = DINOLoss.forward, []

    def poisoned(self, *args):
        terms = forward(self, *args)
        calls.append(1)
        if len(calls) == 5:
            return dataclasses.replace(terms, loss=terms.loss * float("nan"))
        return terms

    monkeypatch.setattr(DINOLoss, "forward", poisoned)
    with pytest.raises(NonFiniteLossError, match="between steps 4 and 5"):
        train(tiny_settings(store), tmp_path)
    assert state_of(tmp_path)["step"] == 4
    for tensor in state_of(tmp_path)["student"].values():
        assert torch.isfinite(tensor).all()


def test_attention_maps_of_every_tile_to_zarr_and_georeferenced_geotiffs(store, tmp_path):
    train(tiny_settings(store, epochs=1), tmp_path / "run")
    checkpoint = tmp_path / "run" / CHECKPOINT_NAME
    summary = extract_attention_maps(
        checkpoint, store, tmp_path / "maps.zarr", tmp_path / "tifs", geotiff_tiles=2
    )
    dataset = open_store(store)
    maps = xr.open_zarr(tmp_path / "maps.zarr", consolidated=False)
    assert maps.attention.shape == (dataset.sizes["tile"], 3, 2, 2)
    assert (maps.tile.values == dataset.tile.values).all()
    assert (maps.split.values == dataset.split.values).all()

    pretrained = load_backbone(checkpoint)
    tile = split_tiles(store, ["test"])[0]
    image = StoreTiles([tile], pretrained.normalisation).image(0)[None]
    with torch.no_grad():
        expected = cls_attention(pretrained.network, image)[0].numpy()
    np.testing.assert_allclose(maps.attention.values[tile.index], expected, atol=1e-6)

    assert len(summary["geotiffs"]) == 2
    path = Path(summary["geotiffs"][0])
    assert path.stem == str(dataset.tile.values[tile.index])
    with rasterio.open(path) as src:
        np.testing.assert_allclose(src.read(), expected, atol=1e-6)
        assert src.descriptions == ("head0", "head1", "head2")
        assert src.crs.to_string() == str(dataset.crs.values[tile.index])
        transform = tile_transform(dataset, tile.index)
        west, north = transform @ (0, 0)
        east, south = transform @ (32, 32)  # the tile's corners: the maps lie on the tile
        np.testing.assert_allclose(tuple(src.bounds), (west, south, east, north), atol=1e-9)


def test_a_checkpoint_of_other_settings_is_not_resumed(store, tmp_path, caplog):
    train(tiny_settings(store, epochs=1), tmp_path)
    first = state_of(tmp_path)
    with caplog.at_level("WARNING"):
        train(tiny_settings(store, epochs=1, lr=0.01), tmp_path)
    assert "other settings (lr): starting afresh" in caplog.text
    again = state_of(tmp_path)
    assert again["step"] == first["step"] == 6 and again["settings"]["lr"] == 0.01
    block = "backbone.blocks.0.attn.qkv.weight"
    assert not torch.equal(again["student"][block], first["student"][block])


def first_batch(store: Path, settings: PretrainSettings) -> tuple[torch.Tensor, ...]:
    tiles = split_tiles(store, ["train"])
    reader = StoreTiles(tiles, Normalisation.of_stores([store]))
    dataset = MultiCropTiles(reader, settings.crops, settings.seed)
    batches = StepBatches(len(tiles), settings.batch_size, settings.epochs, settings.seed)
    return next(iter(make_loader(dataset, batches, 0, False)))


def test_bf16_runs_the_backbone_in_bf16_on_the_cpu_and_the_loss_matches_fp32(store):
    """bf16 rounds the backbone's activations to 8 bits of mantissa (~0.4 %); the head and
    the loss stay in float32, so one step's loss agrees with float32 within 1 %."""
    cpu = torch.device("cpu")
    normalisation = Normalisation.of_stores([store])
    losses, backbone_dtypes = {}, {}
    for precision in ("fp32", "bf16"):
        settings = tiny_settings(store, precision=precision)
        torch.manual_seed(0)
        trainer = DINOTrainer(settings, cpu)
        dtype = trainer.student.autocast_dtype or torch.float32
        crops = device_views(
            first_batch(store, settings), cpu, normalisation, settings.crops, dtype
        )

        def record(module, args, output, precision=precision):
            backbone_dtypes.setdefault(precision, output.dtype)

        # A linear layer inside the backbone (its final norm runs in float32 under autocast).
        trainer.student.backbone.blocks[0].attn.qkv.register_forward_hook(record)
        losses[precision] = trainer.step(crops, 1e-3, 0.04, 0.996, 0.04, False)[0].item()
    assert backbone_dtypes == {"fp32": torch.float32, "bf16": torch.bfloat16}
    assert losses["bf16"] == pytest.approx(losses["fp32"], rel=1e-2)


def test_compile_gives_the_eager_step(store):
    """compile: true (torch.compile, inductor; on the CPU here) computes the eager step's
    loss. timm's small test ViT keeps the compilation short."""
    cpu = torch.device("cpu")
    losses = {}
    for compiled in (False, True):
        settings = tiny_settings(store, architecture="test_vit", compile=compiled)
        torch.manual_seed(0)
        trainer = DINOTrainer(settings, cpu)
        crops = device_views(
            first_batch(store, settings), cpu, Normalisation.of_stores([store]), settings.crops,
            torch.float32,
        )  # fmt: skip
        losses[compiled] = trainer.step(crops, 1e-3, 0.04, 0.996, 0.04, False)[0].item()
    assert losses[True] == pytest.approx(losses[False], rel=1e-4)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_two_nodes_meeting_at_a_rendezvous_give_the_single_process_result(store, tmp_path):
    """Two torchrun launchers, as srun starts one per node, each with one gloo process,
    meeting at a c10d rendezvous on 127.0.0.1: the global batch of 4 is split over them."""
    settings = tiny_settings(store, drop_path_rate=0.0, epochs=1, probe_every=-1)
    _, launcher = launcher_commands(1, 2, "127.0.0.1", "two-nodes-test")
    launcher = [a.replace(f":{RENDEZVOUS_PORT}", f":{free_port()}") for a in launcher]
    command = pretrain_command(settings, tmp_path / "nodes", launcher)
    environment = {**os.environ, "OMP_NUM_THREADS": "1"}
    nodes = [
        subprocess.Popen(command, env=environment, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        for _ in range(2)
    ]
    outputs = [node.communicate(timeout=300)[0].decode() for node in nodes]
    assert [node.returncode for node in nodes] == [0, 0], outputs
    train(settings, tmp_path / "single")
    both, single = state_of(tmp_path / "nodes"), state_of(tmp_path / "single")
    assert both["step"] == single["step"] == 6
    assert_same_run(without_key_bias(both), without_key_bias(single), rtol=1e-4, atol=1e-6)


def test_several_nodes_run_one_torchrun_per_node_through_srun():
    prefix, launcher = launcher_commands(4, 2, "gpu-node-01", "12345")
    assert prefix == ["srun", "--nodes=2", "--ntasks=2", "--ntasks-per-node=1"]
    assert launcher[:2] == ["-m", "torch.distributed.run"]
    assert {"--nnodes=2", "--nproc-per-node=4", "--rdzv-backend=c10d"} <= set(launcher)
    assert f"--rdzv-endpoint=gpu-node-01:{RENDEZVOUS_PORT}" in launcher
    assert "--rdzv-id=12345" in launcher
    assert launcher_commands(1, 1, "x", "") == ([], [])
    assert launcher_commands(2, 1, "x", "")[1][2] == "--standalone"
