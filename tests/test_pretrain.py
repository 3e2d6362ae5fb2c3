"""DINO pre-training (sarssl.training.pretrain): schedules, the training loop's metrics, collapse
verdict and frozen last layer, checkpoints that resume after kill -9, DDP (gloo, two
processes) and two nodes against one process, non-finite loss, bf16 and compile on the CPU.
Small tiles and a small head keep each run to seconds."""

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
import torch
from conftest import tiny_settings

from sarssl.dataset.quantise import ChannelCoding
from sarssl.dataset.storeinfo import StoreInfo
from sarssl.devices import PEAK_ENVIRONMENT
from sarssl.errors import ConfigError
from sarssl.launch import RENDEZVOUS_PORT, launcher_commands
from sarssl.models.backbone import load_checkpoint
from sarssl.models.dino import DINOLoss
from sarssl.settings.pretrain import CHECKPOINT_NAME, COLLAPSE_NAME, PretrainSettings
from sarssl.tiles.loader import (
    MultiCropTiles,
    Normalisation,
    Standardiser,
    StepBatches,
    StoreTiles,
    make_loader,
    split_tiles,
)
from sarssl.training.pretrain import (
    DINOTrainer,
    NonFiniteLossError,
    Schedules,
    check_tile_size,
    create_network,
    device_views,
    train,
)
from sarssl.training.utils import CollapseVerdict, collapse_verdict


def test_learning_rate_is_scaled_by_the_batch_and_the_teacher_temperature_warms_up(tiny_store):
    settings = tiny_settings(
        tiny_store, lr=1e-3, batch_size=64, epochs=4, warmup_epochs=2, warmup_teacher_temp_epochs=3
    )
    schedules = Schedules.of(settings, steps_per_epoch=5)
    # Peak 1e-3 * 64 / 256 = 2.5e-4, reached at the first step after the 10 warm-up steps.
    assert schedules.lr[0] == 0.0 and schedules.lr[10] == pytest.approx(2.5e-4)
    np.testing.assert_allclose(schedules.teacher_temp, [0.01, 0.0055, 0.001, 0.001])
    assert schedules.weight_decay[0] == pytest.approx(0.04)
    assert schedules.teacher_momentum[0] == pytest.approx(0.996)


def state_of(run_dir: Path) -> dict:
    return load_checkpoint(run_dir / CHECKPOINT_NAME)


def test_training_logs_metrics_and_keeps_the_last_layer_frozen_as_configured(
    tiny_store, tmp_path, monkeypatch
):
    settings = tiny_settings(tiny_store, freeze_last_layer_epochs=2, loader_workers=1)
    monkeypatch.setenv(PEAK_ENVIRONMENT, "0.2")  # the CPU has no known peak: one given
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
    # Telemetry: MFU against the configured peak, no GPU memory on the CPU, the share of
    # the time waited on the loader (its worker's start in the first row).
    assert metrics.mfu.between(0, 1, inclusive="right").all()
    assert metrics.peak_memory_gb.isna().all()
    assert metrics.data_wait_share.between(0, 1).all()
    # The verdict of the finished run, from its metric rows and the 4 tiles per batch.
    verdict = CollapseVerdict.read(tmp_path / COLLAPSE_NAME)
    assert verdict == collapse_verdict(metrics, settings.out_dim, 4)
    assert verdict.last_step == 12 and verdict.first_step == 11
    assert list((tmp_path / "tensorboard").glob("events.out.tfevents.*"))
    torch.manual_seed(settings.seed)
    initial = create_network(settings, settings.drop_path_rate).state_dict()
    last_layer = "head.last_layer.parametrizations.weight.original1"
    torch.testing.assert_close(state["student"][last_layer], initial[last_layer])
    block = "backbone.blocks.0.attn.qkv.weight"
    assert not torch.allclose(state["student"][block], initial[block])
    # The teacher is an average of students, not the student.
    assert not torch.equal(state["teacher"][block], state["student"][block])
    # The file holds tensors, numbers and strings only, no object of a sarssl class: it
    # loads without sarssl's modules, so moving a module never orphans a checkpoint.
    plain = torch.load(tmp_path / CHECKPOINT_NAME, map_location="cpu", weights_only=True)
    assert plain.keys() == state.keys()


def test_a_teacher_made_uniform_by_its_temperature_is_flagged_as_full_collapse(
    tiny_store, tmp_path, caplog
):
    settings = tiny_settings(tiny_store, epochs=1, warmup_teacher_temp=100.0, teacher_temp=100.0)
    with caplog.at_level("WARNING"):
        train(settings, tmp_path)
    verdict = CollapseVerdict.read(tmp_path / COLLAPSE_NAME)
    assert (verdict.verdict, verdict.kind) == ("full collapse", "uniform")
    assert f"collapse verdict: {verdict.sentence}" in caplog.text


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


def test_a_run_killed_with_sigkill_resumes_to_the_uninterrupted_result(tiny_store, tmp_path):
    """Killed at its first checkpoint, then its rerun killed at a later one, the last rerun
    resumes to the very weights of an uninterrupted run: bitwise, as everything it restores
    is exact."""
    settings = tiny_settings(tiny_store, epochs=8, checkpoint_every=2, log_every=2)
    killed = tmp_path / "killed"
    for kill_after_step in (2, 30):
        process = subprocess.Popen(
            pretrain_command(settings, killed, []),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and last_logged_step(killed) < kill_after_step:
            time.sleep(0.02)
        os.kill(process.pid, signal.SIGKILL)
        assert process.wait(timeout=60) == -signal.SIGKILL
        # The last checkpoint written before the kill: the metric row comes just before it.
        assert kill_after_step - 4 <= state_of(killed)["step"] < 48

    train(settings, killed)  # the last rerun
    train(settings, tmp_path / "uninterrupted")
    resumed, uninterrupted = state_of(killed), state_of(tmp_path / "uninterrupted")
    assert resumed["step"] == uninterrupted["step"] == 48
    for network in ("student", "teacher"):
        for key, value in resumed[network].items():
            assert torch.equal(value, uninterrupted[network][key]), (network, key)
    assert torch.equal(resumed["loss"]["center"], uninterrupted["loss"]["center"])
    steps = pd.read_csv(killed / "metrics.csv").step.tolist()
    assert steps == list(range(2, 49, 2))  # no row lost or repeated across the kills


def last_logged_step(run_dir: Path) -> int:
    """The step of the run's last checkpoint, from its metric rows (one per checkpoint
    here); 0 before the first."""
    if not (run_dir / CHECKPOINT_NAME).exists():
        return 0
    rows = (run_dir / "metrics.csv").read_text().splitlines()[1:]
    return int(rows[-1].split(",")[0]) if rows else 0


def test_two_ddp_processes_give_the_single_process_result(tiny_store, tmp_path):
    # Stochastic depth draws differ between one and two processes by design: off here.
    settings = tiny_settings(tiny_store, drop_path_rate=0.0, epochs=1)
    launcher = ["-m", "torch.distributed.run", "--standalone", "--nproc-per-node=2"]
    subprocess.run(
        pretrain_command(settings, tmp_path / "ddp", launcher),
        check=True,
        capture_output=True,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
        timeout=600,
    )
    train(settings, tmp_path / "single")
    ddp, single = state_of(tmp_path / "ddp"), state_of(tmp_path / "single")
    assert ddp["step"] == single["step"] == 6
    assert_same_run(without_key_bias(ddp), without_key_bias(single), rtol=1e-4, atol=1e-6)
    losses = [pd.read_csv(tmp_path / r / "metrics.csv").loss for r in ("ddp", "single")]
    np.testing.assert_allclose(losses[0], losses[1], rtol=1e-4)


def test_a_non_finite_loss_stops_the_run_and_keeps_the_last_good_checkpoint(
    tiny_store, tmp_path, monkeypatch
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
        train(tiny_settings(tiny_store), tmp_path)
    assert state_of(tmp_path)["step"] == 4
    for tensor in state_of(tmp_path)["student"].values():
        assert torch.isfinite(tensor).all()


def test_a_checkpoint_of_other_settings_is_not_resumed(tiny_store, tmp_path, caplog):
    train(tiny_settings(tiny_store, epochs=1), tmp_path)
    first = state_of(tmp_path)
    with caplog.at_level("WARNING"):
        train(tiny_settings(tiny_store, epochs=1, lr=0.01), tmp_path)
    assert "other settings (lr): starting afresh" in caplog.text
    again = state_of(tmp_path)
    assert again["step"] == first["step"] == 6 and again["settings"]["lr"] == 0.01
    block = "backbone.blocks.0.attn.qkv.weight"
    assert not torch.equal(again["student"][block], first["student"][block])


def first_batch(
    store: Path, settings: PretrainSettings
) -> tuple[tuple[torch.Tensor, ...], Standardiser]:
    """The loader's first batch of a store, as stored, and the store's standardiser."""
    tiles = split_tiles(store, ["train"])
    reader = StoreTiles(tiles, Normalisation.of_stores([store]))
    dataset = MultiCropTiles(reader, settings.crops, settings.seed)
    batches = StepBatches(len(tiles), settings.batch_size, settings.epochs, settings.seed)
    return next(iter(make_loader(dataset, batches, 0, False))), reader.standardise


# oneDNN's bf16 on a CPU: native where the CPU has AMX or AVX512-BF16 (as a GPU computes
# bf16), emulated in float32 with ONEDNN_MAX_CPU_ISA=AVX512_CORE. Native bf16 once put one
# step's loss 28 % off float32 (sarssl.models.backbone.Float32PatchEmbed says why).
ONEDNN_ISAS = {"native": None, "emulated": "AVX512_CORE"}


@pytest.mark.parametrize("isa", list(ONEDNN_ISAS))
def test_bf16_runs_the_backbone_in_bf16_on_the_cpu_and_the_loss_matches_fp32(tiny_store, isa):
    """bf16 rounds the backbone's activations to 8 bits of mantissa (2^-8 = 0.4 %); the
    patch embedding, the head and the loss stay in float32. Noise of 2^-8 relative to the
    backbone's output features moved this step's loss by at most 0.25 % (5 draws, paper's
    temperatures), so 1 % holds bf16 rounding with room and fails a wrong kernel."""
    environment = {key: value for key, value in os.environ.items() if key != "ONEDNN_MAX_CPU_ISA"}
    if ONEDNN_ISAS[isa]:
        environment["ONEDNN_MAX_CPU_ISA"] = ONEDNN_ISAS[isa]
    child = subprocess.run(
        [sys.executable, str(Path(__file__).with_name("bf16_step.py")), str(tiny_store)],
        env=environment | {"PYTHONPATH": str(Path(__file__).parent)},
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )
    result = json.loads(child.stdout.splitlines()[-1])
    assert result["qkv_dtypes"] == {"fp32": "torch.float32", "bf16": "torch.bfloat16"}
    assert result["losses"]["bf16"] == pytest.approx(result["losses"]["fp32"], rel=1e-2)


def test_compile_gives_the_eager_step(tiny_store):
    """compile: true (torch.compile, inductor; on the CPU here) computes the eager step's
    loss. timm's small test ViT keeps the compilation short."""
    cpu = torch.device("cpu")
    losses = {}
    for compiled in (False, True):
        settings = tiny_settings(tiny_store, architecture="test_vit", compile=compiled)
        torch.manual_seed(0)
        trainer = DINOTrainer(settings, cpu)
        batch, standardise = first_batch(tiny_store, settings)
        crops = device_views(batch, cpu, standardise, settings.crops, torch.float32)
        losses[compiled] = trainer.step(crops, 1e-3, 0.04, 0.996, 0.04, False)[0].item()
    assert losses[True] == pytest.approx(losses[False], rel=1e-4)


# DINO's own temperatures (0.1 student, 0.04 teacher): the paper's teacher at 0.001 makes its
# outputs one-hot, so that a 0.1 % change of one input flips prototypes and the loss jumps.
DINO_TEMPERATURES = {"student_temp": 0.1, "warmup_teacher_temp": 0.04, "teacher_temp": 0.04}


def test_pretraining_on_a_uint8_store_equals_the_float16_store_within_the_quantisation_error(
    tiny_store, tiny_store_uint8, tmp_path
):
    """The same tiles packed as uint8 (1/3 dB steps) and as float16. Loader workers ship
    the stored values; decoded and standardised on the device they differ by at most half
    a step plus float16's own rounding (at most 2^-7 dB below 32 dB), over the channel's
    std. The losses of a whole run (6 steps, DINO's temperatures) stay within 3 %; measured
    0.1-1.5 %, growing with the steps as two runs of different inputs drift apart. A
    decoding scale 5 % off fails the first check by 14 x its bound."""
    settings = tiny_settings(tiny_store)
    (f16, _), (u8, u8_standardise) = (
        first_batch(store, settings) for store in (tiny_store, tiny_store_uint8)
    )
    assert f16[0].dtype == torch.float16 and u8[0].dtype == torch.uint8  # shipped as stored
    for boxes_or_flips, other in zip(f16[1:], u8[1:], strict=True):
        torch.testing.assert_close(boxes_or_flips, other)
    normalisation = Normalisation.of_stores([tiny_store])
    as_float16, as_uint8 = (
        Standardiser.of(normalisation, ChannelCoding.of_dtype(dtype))(batch[0])
        for dtype, batch in (("float16", f16), ("uint8", u8))
    )
    bound = (1 / 6 + 2**-7) / normalisation.std.min() + 1e-5
    assert 0 < (as_float16 - as_uint8).abs().max() <= bound
    # The uint8 store's own standardiser: its statistics, of its decoded values.
    own = Standardiser.of(
        Normalisation.of_stores([tiny_store_uint8]), ChannelCoding.of_dtype("uint8")
    )
    np.testing.assert_allclose(u8_standardise.gain, own.gain)
    metrics = {}
    for name, store in (("float16", tiny_store), ("uint8", tiny_store_uint8)):
        run = tiny_settings(store, epochs=1, probe_every=-1, **DINO_TEMPERATURES)
        train(run, tmp_path / name)
        metrics[name] = pd.read_csv(tmp_path / name / "metrics.csv")
    np.testing.assert_allclose(metrics["uint8"].loss, metrics["float16"].loss, rtol=3e-2)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_two_nodes_meeting_at_a_rendezvous_give_the_single_process_result(tiny_store, tmp_path):
    """Two torchrun launchers, as srun starts one per node, each with one gloo process,
    meeting at a c10d rendezvous on 127.0.0.1: the global batch of 4 is split over them."""
    settings = tiny_settings(tiny_store, drop_path_rate=0.0, epochs=1, probe_every=-1)
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


def test_a_run_whose_tile_size_is_not_its_stores_fails_naming_the_store(tiny_store):
    store = StoreInfo.read(tiny_store)
    check_tile_size(tiny_settings(tiny_store), [store])
    with pytest.raises(ConfigError, match=rf"store {tiny_store} holds tiles of 32 px, .* is 64"):
        check_tile_size(tiny_settings(tiny_store, tile_px=64), [store])
