"""Throughput of one DINO training step at 448 px with the default multi-crop (2 global
crops of 448 px, 8 local crops of 192 px), sarssl's step against a plain baseline of the
same step, measured in the same run:

    sarssl    bf16 autocast of the backbone on a GPU (fp32 on the CPU), fused attention
              (scaled_dot_product_attention), fused AdamW on a GPU, torch._foreach EMA, no
              host sync per step, optionally torch.compile
    baseline  fp32, timm's explicit attention (fused attention off), AdamW looping per
              tensor, a per-parameter Python EMA loop, loss.item() after every step

Inputs are random crops already on the device: the step alone is timed, not data loading.
Model FLOPs per step are counted once with torch.utils.flop_counter (forward and backward
of the student, forward of the teacher); MFU is achieved FLOP/s over the device's dense bf16
peak (GPU only).

    python benchmarks/dino_step.py --arch vit_tiny_patch16_224 --batch 4 --rounds 3
"""

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

from sarssl.dataset.bands import CHANNELS
from sarssl.devices import bf16_peak, default_device, device_description
from sarssl.settings.pretrain import PretrainSettings
from sarssl.training.pretrain import DINOTrainer
from sarssl.training.utils import counted_flops


@torch.no_grad()
def python_loop_ema(teacher: list, student: list, momentum: float) -> None:
    for t, s in zip(teacher, student, strict=True):
        t.mul_(momentum).add_((1 - momentum) * s.detach())


def step_settings(architecture: str, batch: int, **overrides) -> PretrainSettings:
    """Settings of a benchmarked step: the paper's crops and head unless overridden."""
    # epochs: schedules are not used, the step gets fixed values.
    base = dict(name="benchmark", architecture=architecture, stores=(), epochs=10, batch_size=batch)
    return PretrainSettings(**(base | overrides))


def crops_for(settings: PretrainSettings, batch: int, device: torch.device) -> list:
    spec = settings.crops
    sizes = [spec.global_px] * 2 + [spec.local_px] * spec.local_crops
    return [torch.randn(batch, len(CHANNELS), px, px, device=device) for px in sizes]


def make_trainer(settings: PretrainSettings, device: torch.device, baseline: bool) -> DINOTrainer:
    torch.manual_seed(0)
    if not baseline:
        return DINOTrainer(settings, device)
    trainer = DINOTrainer(settings, device, ema=python_loop_ema, plain_optimizer=True)
    for network in (trainer.student, trainer.teacher):
        for block in network.backbone.blocks:
            block.attn.fused_attn = False
    return trainer


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_steps(
    trainer: DINOTrainer, crops: list, steps: int, warmup: int, sync_each_step: bool
) -> float:
    """Seconds per step after `warmup` steps."""
    device = crops[0].device
    arguments = dict(lr=1e-4, weight_decay=0.04, teacher_momentum=0.996, teacher_temp=0.01)
    for _ in range(warmup):
        trainer.step(crops, freeze_last_layer=False, **arguments)
    synchronize(device)
    start = time.perf_counter()
    for _ in range(steps):
        metrics = trainer.step(crops, freeze_last_layer=False, **arguments)
        if sync_each_step:
            metrics[0].item()
    synchronize(device)
    return (time.perf_counter() - start) / steps


def step_memory(trainer: DINOTrainer, crops: list, variant: str) -> float:
    """GPU memory a step takes beyond the resident weights and optimizer state (GB)."""
    device = crops[0].device
    synchronize(device)
    resident = torch.cuda.memory_allocated(device)
    torch.cuda.reset_peak_memory_stats(device)
    time_steps(trainer, crops, 1, 0, sync_each_step=variant == "baseline")
    return (torch.cuda.max_memory_allocated(device) - resident) / 1e9


def step_flops(trainer: DINOTrainer, crops: list) -> float:
    return counted_flops(
        lambda: trainer.step(
            crops,
            lr=1e-4,
            weight_decay=0.04,
            teacher_momentum=0.996,
            teacher_temp=0.01,
            freeze_last_layer=False,
        )
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--arch", default="vit_tiny_patch16_224")
    parser.add_argument("--batch", type=int, default=4, help="tiles per step")
    parser.add_argument("--steps", type=int, default=1, help="timed steps per round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--out-dim", type=int, default=65536)
    parser.add_argument("--compile", action="store_true")
    parser.add_argument("--out", type=Path, help="append the result as a JSON line")
    args = parser.parse_args()

    device = default_device()
    torch.backends.cuda.matmul.allow_tf32 = True
    fast_settings = step_settings(
        args.arch, args.batch, out_dim=args.out_dim, precision="auto", compile=args.compile
    )
    baseline_settings = step_settings(args.arch, args.batch, out_dim=args.out_dim, precision="fp32")
    crops = crops_for(fast_settings, args.batch, device)

    # Both variants live side by side and alternate round by round (medians reported), so
    # that drift in a shared machine's load falls on both alike.
    trainers = {
        "baseline": make_trainer(baseline_settings, device, baseline=True),
        "sarssl": make_trainer(fast_settings, device, baseline=False),
    }
    for variant, trainer in trainers.items():
        time_steps(trainer, crops, args.warmup, 0, sync_each_step=variant == "baseline")
    seconds = {variant: [] for variant in trainers}
    for _ in range(args.rounds):
        for variant, trainer in trainers.items():
            seconds[variant].append(
                time_steps(trainer, crops, args.steps, 0, sync_each_step=variant == "baseline")
            )
    flops = step_flops(trainers["sarssl"], crops)
    results = {
        variant: {
            "s_per_step": float(np.median(times)),
            "images_per_s": args.batch / float(np.median(times)),
        }
        for variant, times in seconds.items()
    }
    if device.type == "cuda":
        for variant, trainer in trainers.items():
            results[variant]["step_memory_gb"] = step_memory(trainer, crops, variant)
    name = device_description(device)
    peak = bf16_peak(name)
    for row in results.values():
        row["tflops_per_s"] = flops / row["s_per_step"] / 1e12
        row["mfu"] = flops / row["s_per_step"] / peak if peak else None
    record = {
        "device": name,
        "arch": args.arch,
        "batch": args.batch,
        "crops": f"2x{fast_settings.tile_px} + {fast_settings.local_crops}x"
        f"{fast_settings.local_px}",
        "out_dim": args.out_dim,
        "compile": args.compile,
        "steps": args.steps,
        "rounds": args.rounds,
        "torch": torch.__version__,
        "model_tflop_per_step": flops / 1e12,
        **{
            f"{variant}_{key}": value
            for variant, row in results.items()
            for key, value in row.items()
        },
        "speedup": results["baseline"]["s_per_step"] / results["sarssl"]["s_per_step"],
    }
    print(json.dumps(record, indent=2))
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        with args.out.open("a") as stream:
            stream.write(json.dumps(record) + "\n")


if __name__ == "__main__":
    main()
