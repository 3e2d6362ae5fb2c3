"""Everything a first GPU hour must answer, in one command (planned for at most 8 minutes
on one GPU; not yet run on one):

    dino_step         the DINO step of ViT-Tiny and ViT-Base with the paper's crops (2 x 448 +
                      8 x 192 px), bf16 autocast, eager and torch.compile: tiles/s, TFLOP/s,
                      MFU against the device's dense bf16 peak, peak memory; the largest
                      batch that fits (eager, doubling until out of memory)
    device_views      the device crop transform per batch, fp32 and bf16 (bf16 on a GPU only)
    loader            loader -> device -> DINO step, end to end, with 2, 4 and 8 workers:
                      tiles/s and the share of the wall time blocked on the loader
    resume            a pre-training (`sarssl pretrain`) of about 30 s, killed with SIGKILL at
                      its first checkpoint half way and resumed, its teacher against that of
                      an uninterrupted run of about 30 s
    attention_maps    attention-map extraction from the resumed run's checkpoint, tiles/s
    finetune_step     one fine-tuning step of every model kind, its ViT trained, tiles/s
    learning          ViT-Tiny pre-trained with DINO's recipe (sarssl.settings.recipes,
                      scaled to the run) on >= 5,000 synthetic 224 px tiles generated on the
                      host's own cores, for at most `learning_seconds`; then the k-NN probe
                      (CLS and patch, val and test) of its teacher against its random-init
                      twin, with tile-bootstrap 95 % intervals, and its collapse verdict
    environment       device, driver, torch, CUDA, cuDNN, NCCL

Each part runs on its own: one that fails leaves its values null and its error text, and
the others run. The result is `device_check.json` (every key always present, part_keys)
and `device_check.md`, a section for benchmarks/RESULTS.md, in --out.

The store is built on the spot as benchmarks/loader.py builds one (a 448 px synthetic AOI),
or given with --store; the loader part repeats its tiles to fill its batches. MFU is null
where the device's peak is unknown (the CPU, a GPU missing from sarssl.devices'
BF16_PEAK_FLOPS) unless --peak-tflops gives one.

`--cpu --quick` runs the same code on the CPU with tiny sizes (timm's test ViT, 32 px
tiles, a small head, workers 0, 1, 2, seconds of training, one thread), in float32 as
precision `auto` runs on a CPU, and without torch.compile (minutes on a CPU;
tests/test_pretrain.py checks the compiled step): about 40 s with --store, so that the
check cannot rot unnoticed (tests/test_device_check.py).

    python benchmarks/device_check.py --out /tmp/device-check
    python benchmarks/device_check.py --cpu --quick --store STORE --out /tmp/device-check
"""

import argparse
import json
import math
import os
import shutil
import signal
import subprocess
import sys
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import torch
from dino_step import crops_for, make_trainer, step_settings, synchronize, time_steps
from loader import AOI_WKT, build_store, device_ms

from sarssl.dataset.bands import CHANNELS
from sarssl.dataset.storeinfo import StoreInfo
from sarssl.dataset.worldcover import NUM_CLASSES
from sarssl.devices import PEAK_ENVIRONMENT, device_description, mfu, peak_flops, peak_memory_gb
from sarssl.evaluation.attention_maps import extract_attention_maps
from sarssl.evaluation.probe import PATCH_MEANS, RANDOM_INIT, READINGS, probe_table
from sarssl.models.backbone import create_backbone, read_checkpoint
from sarssl.settings.finetune import (
    MODEL_ATTENTION_INPUTS,
    MODEL_INITS,
    FinetuneSettings,
    Init,
    uses_vit,
)
from sarssl.settings.pretrain import (
    CHECKPOINT_NAME,
    COLLAPSE_NAME,
    SETTINGS_NAME,
    PretrainSettings,
)
from sarssl.settings.probe import ProbeSettings
from sarssl.settings.recipes import DINO, DINO_RECIPE, scaled_to_run
from sarssl.tiles.loader import MultiCropTiles, Normalisation, StepBatches, StoreTiles, make_loader
from sarssl.tiles.loader import split_tiles as store_tiles
from sarssl.training.finetune import make_optimizer, segmentation_model, train_epoch
from sarssl.training.pretrain import device_views, pretrain_flops_per_tile, train
from sarssl.training.utils import DataWait

SPLITS = ["train", "val", "test"]
VARIANTS = {"eager": False, "compile": True}
WARMUP_STEPS = 2  # a compiled step may compile again at its second call
STEP_ARGUMENTS = dict(lr=1e-4, weight_decay=0.04, teacher_momentum=0.996, teacher_temp=0.01)


@dataclass(frozen=True)
class Sizes:
    architectures: tuple[str, ...]
    batch: int  # tiles per DINO step, in the step and loader parts
    steps: int  # timed steps after WARMUP_STEPS
    max_batch: int  # where the doubling search stops (the CPU has no out-of-memory error)
    workers: tuple[int, ...]
    loader_seconds: float  # timed per worker count, after a warm-up of 2 x workers steps
    train_seconds: float  # each of the uninterrupted and the killed-and-resumed runs
    train_batch: int
    train_workers: int
    finetune_batch: int
    tile_px: int  # of the store built when none is given
    variants: tuple[str, ...]  # of VARIANTS
    learning_architecture: str
    learning_batch: int
    learning_seconds: float  # of training, the steps from the measured step time
    learning_workers: int
    dino: dict = field(default_factory=dict)  # PretrainSettings overrides: head and crops
    # The learning part's overrides of DINO's recipe (its crops at the store's tile size).
    learning_dino: dict = field(default_factory=dict)


FULL = Sizes(
    architectures=("vit_tiny_patch16_224", "vit_base_patch16_224"),
    batch=64,
    steps=5,
    max_batch=4096,
    workers=(2, 4, 8),
    loader_seconds=15,
    train_seconds=30,
    train_batch=8,
    train_workers=4,
    finetune_batch=16,
    tile_px=448,
    variants=tuple(VARIANTS),
    learning_architecture="vit_tiny_patch16_224",
    learning_batch=256,  # DINO's --lr is per 256 images: the recipe's lr as it stands
    learning_seconds=240,
    learning_workers=12,
    learning_dino={"local_px": 96},  # DINO's local crops at 224 px
)
QUICK = Sizes(
    architectures=("test_vit",),
    batch=2,
    steps=1,
    max_batch=4,
    workers=(0, 1, 2),
    loader_seconds=0.5,
    train_seconds=2,
    train_batch=4,
    train_workers=0,
    finetune_batch=2,
    tile_px=32,
    # Compiling takes minutes on a CPU; tests/test_pretrain.py checks the compiled step.
    variants=("eager",),
    learning_architecture="test_vit",
    learning_batch=8,
    learning_seconds=2,
    learning_workers=0,
    dino={
        "out_dim": 128,
        "head_hidden_dim": 64,
        "bottleneck_dim": 32,
        "local_px": 16,
        "local_crops": 2,
    },
    learning_dino={
        "out_dim": 128,
        "head_hidden_dim": 64,
        "bottleneck_dim": 32,
        "local_px": 16,
        "local_crops": 2,
    },
)
# The learning part's AOI: about 150 x 167 km in north-east Spain, some 5,000 tiles of
# 224 px (2.24 km).
LEARNING_AOI_WKT = "POLYGON ((-2.0 41.0, -0.2 41.0, -0.2 42.5, -2.0 42.5, -2.0 41.0))"
LEARNING_TILE_PX = 224
# A small AOI for --quick without --store: a few dozen tiles of 32 px.
QUICK_AOI_WKT = "POLYGON ((-1.0 41.70, -0.97 41.70, -0.97 41.717, -1.0 41.717, -1.0 41.70))"
FINETUNE_MODELS = tuple(MODEL_INITS)


def model_init(model: str) -> str:
    """The initialisation whose step costs most: the ViT trained on where there is one."""
    return Init.FINETUNED if Init.FINETUNED in MODEL_INITS[model] else Init.SCRATCH


def part_keys(sizes: Sizes) -> dict[str, dict]:
    """Every key of the JSON, part by part, all None: what a part that fails leaves."""
    step = ("batch", "s_per_step", "tiles_per_s", "tflops_per_s", "mfu", "peak_memory_gb")
    return {
        "environment": dict.fromkeys(
            ("device", "peak_tflops", "driver", "torch", "cuda", "cudnn", "nccl", "cpu_count")
        ),
        "dino_step": {
            arch: {
                "tflop_per_tile": None,
                "max_batch": None,
                "max_batch_capped": None,
                **{variant: dict.fromkeys(step) for variant in VARIANTS},
            }
            for arch in sizes.architectures
        },
        "device_views": dict.fromkeys(("batch", "fp32_ms_per_batch", "bf16_ms_per_batch")),
        "loader": {
            str(workers): dict.fromkeys(("steps", "tiles_per_s", "data_wait_share"))
            for workers in sizes.workers
        },
        "resume": dict.fromkeys(
            ("steps", "killed_at_step", "resumed_step", "teacher_max_abs_diff", "teacher_rel_diff")
        ),
        "attention_maps": dict.fromkeys(("tiles", "tiles_per_s")),
        "finetune_step": {
            arch: {
                model: dict.fromkeys(("init", "batch", "tiles_per_s")) for model in FINETUNE_MODELS
            }
            for arch in sizes.architectures
        },
        "learning": {
            **dict.fromkeys(
                (
                    "architecture",
                    "train_tiles",
                    "val_tiles",
                    "test_tiles",
                    "batch",
                    "epochs",
                    "steps",
                    "s_per_step",
                    "train_seconds",
                    "collapse",
                )
            ),
            "probe": {
                split: {reading: dict.fromkeys(LEARNING_SCORES) for reading in READINGS}
                for split in ("val", "test")
            },
        },
    }


# What the learning part keeps of the probe table, per split and reading: the teacher's MIoU
# and its gain over random init with the paired interval, and the no-network reference's.
LEARNING_SCORES = ("miou", "random_miou", "gain", "gain_low", "gain_high", "patch_means_miou")


def run_part(name: str, keys: dict, measure: Callable[[], dict]) -> dict:
    """`measure()`'s values over the part's keys, with its seconds and error (or None)."""
    print(f"device check: {name}", file=sys.stderr, flush=True)
    start, error = time.perf_counter(), None
    try:
        values = measure()
    except Exception as failure:  # one part's failure must not lose the others
        traceback.print_exc()
        values, error = {}, f"{type(failure).__name__}: {failure}"
    return merged(keys, values) | {"error": error, "seconds": time.perf_counter() - start}


def merged(keys: dict, values: dict) -> dict:
    """The keys' template filled with the values found (nested alike), None elsewhere."""
    return {
        key: merged(default, values.get(key, {})) if isinstance(default, dict) else values.get(key)
        for key, default in keys.items()
    }


def command_output(command: list[str]) -> str | None:
    try:
        return subprocess.run(command, capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None


def environment(device: torch.device) -> dict:
    peak = peak_flops(device)
    nccl = torch.distributed.is_available() and torch.distributed.is_nccl_available()
    return {
        "device": device_description(device),
        "peak_tflops": peak / 1e12 if peak else None,
        "driver": command_output(
            ["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"]
        ),
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "cudnn": torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None,
        "nccl": ".".join(map(str, torch.cuda.nccl.version())) if nccl else None,
        "cpu_count": os.cpu_count(),
    }


def is_out_of_memory(error: Exception) -> bool:
    return isinstance(error, torch.cuda.OutOfMemoryError)


def max_batch(settings: PretrainSettings, device: torch.device, start: int, cap: int) -> dict:
    """The largest batch (start x 2^k, at most `cap`) whose eager step fits in memory."""
    trainer, fits, batch = make_trainer(settings, device, baseline=False), None, start
    while batch <= cap:
        try:
            time_steps(trainer, crops_for(settings, batch, device), 1, 0, sync_each_step=False)
        except Exception as error:
            if not is_out_of_memory(error):
                raise
            break
        finally:
            trainer.optimizer.zero_grad(set_to_none=True)
            if device.type == "cuda":
                torch.cuda.empty_cache()
        fits, batch = batch, batch * 2
    return {"max_batch": fits, "max_batch_capped": batch > cap}


def step_throughput(
    settings: PretrainSettings, device: torch.device, sizes: Sizes, flops_per_tile: float
) -> dict:
    trainer = make_trainer(settings, device, baseline=False)
    crops = crops_for(settings, sizes.batch, device)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    seconds = time_steps(trainer, crops, sizes.steps, WARMUP_STEPS, sync_each_step=False)
    flops = flops_per_tile * sizes.batch
    return {
        "batch": sizes.batch,
        "s_per_step": seconds,
        "tiles_per_s": sizes.batch / seconds,
        "tflops_per_s": flops / seconds / 1e12,
        "mfu": mfu(flops, 1 / seconds, peak_flops(device)),
        "peak_memory_gb": peak_memory_gb(device),
    }


def dino_step(arch: str, device: torch.device, sizes: Sizes, tile_px: int) -> dict:
    settings = {
        variant: step_settings(
            arch, sizes.batch, tile_px=tile_px, precision="auto", compile=compiled, **sizes.dino
        )
        for variant, compiled in VARIANTS.items()
        if variant in sizes.variants
    }
    per_tile = pretrain_flops_per_tile(settings["eager"])
    result = {"tflop_per_tile": per_tile / 1e12}
    for variant, variant_settings in settings.items():
        result[variant] = step_throughput(variant_settings, device, sizes, per_tile)
    # Recompiling for every batch size would take minutes: the search runs eager.
    return result | max_batch(settings["eager"], device, sizes.batch, sizes.max_batch)


def loader_to_device(store: Path, device: torch.device, sizes: Sizes, tile_px: int) -> dict:
    """The training loop's input path and step, timed after a warm-up, for each worker
    count. The store's tiles are repeated so that a step has its full batch."""
    settings = step_settings(
        sizes.architectures[0], sizes.batch, tile_px=tile_px, precision="auto", **sizes.dino
    )
    normalisation = Normalisation.of_stores([store])
    tiles = store_tiles(store, SPLITS)
    tiles = tiles * math.ceil(4 * sizes.batch / len(tiles))
    dataset = MultiCropTiles(StoreTiles(tiles, normalisation), settings.crops, settings.seed)
    trainer = make_trainer(settings, device, baseline=False)
    crop_dtype = trainer.student.autocast_dtype or torch.float32  # as pretrain.train
    results = {}
    for workers in sizes.workers:
        batches = StepBatches(len(tiles), sizes.batch, epochs=10**6, seed=0)
        loader = make_loader(dataset, batches, workers, device.type == "cuda")
        waits, warmup, steps = DataWait(), 2 * max(workers, 1), 0
        for step, batch in enumerate(waits.batches(loader)):
            crops = device_views(
                batch, device, dataset.tiles.standardise, settings.crops, crop_dtype
            )
            trainer.step(crops, freeze_last_layer=False, **STEP_ARGUMENTS)
            if step + 1 == warmup:
                synchronize(device)
                waits.take()
                start = time.perf_counter()
            elif step >= warmup:
                steps += 1
                if time.perf_counter() - start >= sizes.loader_seconds:
                    break
        synchronize(device)
        seconds = time.perf_counter() - start
        results[str(workers)] = {
            "steps": steps,
            "tiles_per_s": steps * sizes.batch / seconds,
            "data_wait_share": waits.take() / seconds,
        }
        del loader  # stops its workers
    return results


def killed_at_first_checkpoint(settings: PretrainSettings, run_dir: Path, timeout: float) -> int:
    """Run `sarssl pretrain`, SIGKILL it once its first checkpoint is written; its step."""
    run_dir.mkdir(parents=True)
    (run_dir / SETTINGS_NAME).write_text(json.dumps(settings.as_dict()))
    arguments = ["pretrain", "--settings", str(run_dir / SETTINGS_NAME), "--run-dir", str(run_dir)]
    log = run_dir.with_suffix(".log")
    with log.open("w") as stream:
        process = subprocess.Popen([sys.executable, "-m", "sarssl.cli", *arguments], stderr=stream)
    deadline = time.monotonic() + timeout
    while not (run_dir / CHECKPOINT_NAME).exists():
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            raise RuntimeError(f"no checkpoint from {run_dir}: {log.read_text()[-2000:]}")
        time.sleep(0.02)
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    return read_checkpoint(run_dir / CHECKPOINT_NAME).step


def resume(store: Path, device: torch.device, sizes: Sizes, workdir: Path) -> dict:
    """A run of about `train_seconds` (its steps from the measured step time), killed at
    its first checkpoint, half way, and resumed; its teacher against an uninterrupted
    run's. On a GPU, nondeterministic kernels alone make them differ a little."""
    shutil.rmtree(workdir, ignore_errors=True)  # a rerun must not resume the last check's
    settings = step_settings(
        sizes.architectures[0],
        sizes.train_batch,
        stores=(str(store),),
        tile_px=StoreInfo.read(store).tile_px,
        precision="auto",
        loader_workers=sizes.train_workers,
        probe_every=-1,
        lr=0.01,  # a teacher that moves, for the comparison to mean something
        # Warm-ups scaled down to the short run's epochs.
        warmup_epochs=1,
        warmup_teacher_temp_epochs=1,
        freeze_last_layer_epochs=1,
        **sizes.dino,
    )
    trainer = make_trainer(settings, device, baseline=False)
    crops = crops_for(settings, sizes.train_batch, device)
    wanted = sizes.train_seconds / time_steps(trainer, crops, 2, 1, sync_each_step=False)
    steps_per_epoch = len(store_tiles(store, ["train"])) // sizes.train_batch
    epochs = max(2, math.ceil(wanted / steps_per_epoch))
    half = epochs * steps_per_epoch // 2
    settings = PretrainSettings.from_dict(
        settings.as_dict()
        | {
            "name": "device-check",
            "epochs": epochs,
            "checkpoint_every": half,
            "log_every": max(1, half // 5),
        }
    )
    killed = workdir / "killed"
    killed_at = killed_at_first_checkpoint(settings, killed, timeout=10 * sizes.train_seconds + 300)
    train(settings, killed)
    train(settings, workdir / "uninterrupted")
    resumed, reference = (
        read_checkpoint(run / CHECKPOINT_NAME) for run in (killed, workdir / "uninterrupted")
    )
    differences = [
        (resumed.teacher[key].float() - value.float()) for key, value in reference.teacher.items()
    ]
    norm = torch.cat([v.float().flatten() for v in reference.teacher.values()]).norm()
    return {
        "steps": reference.step,
        "killed_at_step": killed_at,
        "resumed_step": resumed.step,
        "teacher_max_abs_diff": max(d.abs().max().item() for d in differences),
        "teacher_rel_diff": (torch.cat([d.flatten() for d in differences]).norm() / norm).item(),
    }


def attention_maps(store: Path, device: torch.device, workdir: Path) -> dict:
    checkpoint = workdir / "killed" / CHECKPOINT_NAME  # the resume part's run
    start = time.perf_counter()
    result = extract_attention_maps(
        checkpoint, store, workdir / "attention.zarr", workdir / "attention", device=str(device)
    )
    return {
        "tiles": result["tiles"],
        "tiles_per_s": result["tiles"] / (time.perf_counter() - start),
    }


def finetune_steps(arch: str, device: torch.device, sizes: Sizes, tile_px: int) -> dict:
    """One timed step (after a warm-up step) of each model kind, as finetune trains it."""
    batch = {
        "image": torch.randn(sizes.finetune_batch, len(CHANNELS), tile_px, tile_px),
        "labels": torch.randint(0, NUM_CLASSES, (sizes.finetune_batch, tile_px, tile_px)),
    }
    results = {}
    for model in FINETUNE_MODELS:
        init, attention_input = model_init(model), MODEL_ATTENTION_INPUTS[model][0]
        settings = FinetuneSettings(
            pretrain="device-check",
            model=model,
            init=init,
            fraction=100.0,
            store="",
            checkpoint="none",
            attention_input=attention_input,
            batch_size=sizes.finetune_batch,
            precision="auto",
        )
        vit = create_backbone(arch, tile_px) if uses_vit(model) else None
        network = segmentation_model(
            model, init, vit, tile_px, settings.width, attention_input == "upsampled"
        ).to(device, memory_format=torch.channels_last)
        optimizer = make_optimizer(network, settings)
        train_epoch(network, [batch], optimizer, device, settings)
        start = time.perf_counter()
        train_epoch(network, [batch] * sizes.steps, optimizer, device, settings)
        seconds = (time.perf_counter() - start) / sizes.steps
        results[model] = {
            "init": init,
            "batch": sizes.finetune_batch,
            "tiles_per_s": sizes.finetune_batch / seconds,
        }
    return results


def learning(store: Path, device: torch.device, sizes: Sizes, workdir: Path) -> dict:
    """A pre-training of DINO's recipe for about `learning_seconds` (its steps from the
    measured step time), then the probe of its teacher against its random-init twin."""
    shutil.rmtree(workdir, ignore_errors=True)
    info = StoreInfo.read(store)
    tiles = {split: info.tiles.get(split, {}).get("valid", 0) for split in SPLITS}
    steps_per_epoch = tiles["train"] // sizes.learning_batch

    def settings_for(epochs: int) -> PretrainSettings:
        recipe = scaled_to_run(DINO_RECIPE, epochs, epochs * steps_per_epoch)
        return PretrainSettings.from_dict(
            {
                **recipe,
                **sizes.learning_dino,
                "recipe": DINO,
                "name": "device-check-learning",
                "architecture": sizes.learning_architecture,
                "stores": [str(store)],
                "epochs": epochs,
                "batch_size": sizes.learning_batch,
                "tile_px": info.tile_px,
                "precision": "auto",
                "loader_workers": sizes.learning_workers,
                "checkpoint_every": 10**9,  # at the end only
                "log_every": max(1, steps_per_epoch),
                "probe_every": -1,
            }
        )

    trainer = make_trainer(settings_for(1), device, baseline=False)
    step_seconds = time_steps(
        trainer, crops_for(trainer.settings, sizes.learning_batch, device), 3, 2, False
    )
    del trainer
    epochs = max(1, int(sizes.learning_seconds / (step_seconds * steps_per_epoch)))
    settings = settings_for(epochs)
    start = time.perf_counter()
    checkpoint = train(settings, workdir)
    train_seconds = time.perf_counter() - start
    table = probe_table(
        checkpoint, store, ProbeSettings(train_tiles=1024, eval_tiles=1024, batch_size=64)
    )
    probe = {}
    for split, rows in table.groupby("split"):
        by_backbone = rows.set_index("backbone")
        teacher, random = by_backbone.loc["pre-trained (teacher)"], by_backbone.loc[RANDOM_INIT]
        means = by_backbone.loc[PATCH_MEANS]
        probe[split] = {
            reading: {
                "miou": teacher[f"{reading}_miou"],
                "random_miou": random[f"{reading}_miou"],
                "gain": teacher[f"{reading}_miou_gain"],
                "gain_low": teacher[f"{reading}_miou_gain_low"],
                "gain_high": teacher[f"{reading}_miou_gain_high"],
                "patch_means_miou": means[f"{reading}_miou"],
            }
            for reading in READINGS
        }
    return {
        "architecture": settings.architecture,
        **{f"{split}_tiles": count for split, count in tiles.items()},
        "batch": settings.batch_size,
        "epochs": epochs,
        "steps": epochs * steps_per_epoch,
        "s_per_step": step_seconds,
        "train_seconds": train_seconds,
        "collapse": json.loads((workdir / COLLAPSE_NAME).read_text())["verdict"],
        "probe": probe,
    }


def learning_lines(part: dict) -> list[str]:
    """The learning part's sentence and table of probe gains, in points."""
    scores = [
        {
            "split": split,
            "reading": reading,
            "teacher MIoU": values["miou"],
            "random init MIoU": values["random_miou"],
            "patch means MIoU": values["patch_means_miou"],
            "gain (points) [95 % CI]": (
                f"{100 * values['gain']:+.1f} [{100 * values['gain_low']:+.1f}, "
                f"{100 * values['gain_high']:+.1f}]"
                if values["gain"] is not None
                else None
            ),
        }
        for split, readings in part["probe"].items()
        for reading, values in readings.items()
    ]
    return [
        f"Learning: {part['architecture']}, DINO's recipe, {part['steps']} steps of "
        f"{part['batch']} ({part['epochs']} epochs of {part['train_tiles']} train tiles) in "
        f"{part['train_seconds']} s; collapse verdict: {part['collapse']}. The k-NN probe of "
        "its teacher against its random-init twin:",
        "",
        pd.DataFrame(scores).to_markdown(index=False, floatfmt=".3f"),
    ]


def markdown(record: dict) -> str:
    """The section for benchmarks/RESULTS.md."""
    env, views = record["environment"], record["device_views"]
    resumed, attention = record["resume"], record["attention_maps"]
    steps = [
        {"model": arch, "variant": variant, **part[variant], "max batch": part["max_batch"]}
        for arch, part in record["dino_step"].items()
        for variant in VARIANTS
    ]
    workers = [{"workers": n, **values} for n, values in rows(record["loader"]).items()]
    finetuning = [
        {"model": arch, "kind": kind, **values}
        for arch, part in record["finetune_step"].items()
        for kind, values in rows(part).items()
    ]
    failed = [f"- {name}: {part['error']}" for name, part in parts(record) if part["error"]]
    return (
        "\n".join(
            [
                f"## Device check: {env['device']}",
                "",
                f"torch {env['torch']}, CUDA {env['cuda']}, cuDNN {env['cudnn']}, NCCL "
                f"{env['nccl']}, driver {env['driver']}, {env['cpu_count']} CPUs; dense bf16 peak "
                f"{env['peak_tflops']} TFLOP/s. `{record['command']}`",
                "",
                "DINO step, bf16 on a GPU (fp32 on the CPU) (MFU over the dense bf16 "
                "peak; the largest batch that fits, searched eager):",
                "",
                pd.DataFrame(steps).to_markdown(index=False, floatfmt=".3g"),
                "",
                f"`device_views` per batch of {views['batch']}: fp32 {views['fp32_ms_per_batch']} "
                f"ms, bf16 {views['bf16_ms_per_batch']} ms.",
                "",
                "Loader -> device -> DINO step, end to end:",
                "",
                pd.DataFrame(workers).to_markdown(index=False, floatfmt=".3g"),
                "",
                "One fine-tuning step per model kind:",
                "",
                pd.DataFrame(finetuning).to_markdown(index=False, floatfmt=".3g"),
                "",
                f"Attention maps: {attention['tiles_per_s']} tiles/s over {attention['tiles']} "
                "tiles.",
                "",
                f"Kill and resume: {resumed['steps']} steps, killed at step "
                f"{resumed['killed_at_step']}; the resumed teacher against the uninterrupted one: "
                f"max |difference| {resumed['teacher_max_abs_diff']}, relative "
                f"{resumed['teacher_rel_diff']}.",
                "",
                *learning_lines(record["learning"]),
                *(["", "Failed parts:", "", *failed] if failed else []),
            ]
        )
        + "\n"
    )


def rows(part: dict) -> dict:
    """A part's measurements, without its error and seconds."""
    return {key: value for key, value in part.items() if key not in ("error", "seconds")}


def parts(record: dict) -> list[tuple[str, dict]]:
    """(name, part) of every part of the record, those run per model included."""
    found = []
    for name, value in record.items():
        if isinstance(value, dict) and "error" in value:
            found.append((name, value))
        elif isinstance(value, dict):
            found += [(f"{name} {key}", part) for key, part in value.items()]
    return found


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--out", type=Path, required=True, help="folder of the JSON and Markdown")
    parser.add_argument("--cpu", action="store_true", help="run on the CPU even with a GPU")
    parser.add_argument("--quick", action="store_true", help="tiny sizes: seconds, not minutes")
    parser.add_argument("--store", type=Path, help="an existing store (else one is built)")
    parser.add_argument("--workdir", type=Path, help="for the store and runs (default: --out)")
    parser.add_argument("--peak-tflops", type=float, help="the device's peak, for MFU")
    args = parser.parse_args(argv)
    if args.peak_tflops:  # read by sarssl.devices.peak_flops, here and in `sarssl pretrain`
        os.environ[PEAK_ENVIRONMENT] = str(args.peak_tflops)
    sizes = QUICK if args.quick else FULL
    if args.quick:
        # Tiny tensors gain nothing from threads, and on a loaded machine OpenMP's
        # spinning threads make a 30 ms step take seconds. The subprocesses inherit it.
        os.environ["OMP_NUM_THREADS"] = "1"
        torch.set_num_threads(1)
    device = torch.device("cpu" if args.cpu or not torch.cuda.is_available() else "cuda")
    if args.cpu:
        os.environ["CUDA_VISIBLE_DEVICES"] = ""  # the pretrain subprocess too
    torch.backends.cuda.matmul.allow_tf32 = True
    workdir = args.workdir or args.out
    workdir.mkdir(parents=True, exist_ok=True)
    keys = part_keys(sizes)
    record: dict = {
        "command": " ".join(["python benchmarks/device_check.py", *(argv or sys.argv[1:])]),
        "quick": args.quick,
        "skipped": [f"dino_step {v}" for v in VARIANTS if v not in sizes.variants],
    }
    record["environment"] = run_part(
        "environment", keys["environment"], lambda: environment(device)
    )
    store = args.store or build_store(
        workdir / "store", sizes.tile_px, QUICK_AOI_WKT if args.quick else AOI_WKT
    )
    tile_px = StoreInfo.read(store).tile_px
    record["dino_step"] = {
        arch: run_part(
            f"dino_step {arch}",
            keys["dino_step"][arch],
            lambda arch=arch: dino_step(arch, device, sizes, tile_px),
        )
        for arch in sizes.architectures
    }
    record["device_views"] = run_part(
        "device_views",
        keys["device_views"],
        lambda: views_ms(store, sizes.batch, sizes.steps, device),
    )
    record["loader"] = run_part(
        "loader", keys["loader"], lambda: loader_to_device(store, device, sizes, tile_px)
    )
    record["resume"] = run_part(
        "resume", keys["resume"], lambda: resume(store, device, sizes, workdir / "resume")
    )
    record["attention_maps"] = run_part(
        "attention_maps",
        keys["attention_maps"],
        lambda: attention_maps(store, device, workdir / "resume"),
    )
    record["finetune_step"] = {
        arch: run_part(
            f"finetune_step {arch}",
            keys["finetune_step"][arch],
            lambda arch=arch: finetune_steps(arch, device, sizes, tile_px),
        )
        for arch in sizes.architectures
    }
    learning_store = (
        store
        if args.quick
        else build_store(
            workdir / "learning-store",
            LEARNING_TILE_PX,
            LEARNING_AOI_WKT,
            cores=os.cpu_count() or 2,
        )
    )
    record["learning"] = run_part(
        "learning",
        keys["learning"],
        lambda: learning(learning_store, device, sizes, workdir / "learning"),
    )
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "device_check.json").write_text(json.dumps(record, indent=2) + "\n")
    (args.out / "device_check.md").write_text(markdown(record))
    print(markdown(record))
    return record


def views_ms(store: Path, batch: int, rounds: int, device: torch.device) -> dict:
    milliseconds = device_ms(store, batch, rounds, device)
    return {
        "batch": batch,
        "fp32_ms_per_batch": milliseconds["fp32"],
        "bf16_ms_per_batch": milliseconds.get("bf16"),
    }


if __name__ == "__main__":
    main()
