"""Cost plan of a configuration: tiles, the Earth Engine export, the store, pre-training and
the fine-tuning grid, from the config and per-unit figures. Each number is given with the
assumption it rests on. Every cost is that of the tiles an AOI keeps: all of its grid, or
`max_tiles` of them (sarssl.dataset.grid.split_quotas gives each split's).

Model FLOPs are counted with torch.utils.flop_counter on the `meta` device (shapes only, no
computation): one pre-training step per tile (forward and backward of the student over all
crops, forward of the teacher over the global crops), one fine-tuning step and one
evaluation per tile for every model of the grid. GPU time is FLOPs over a GPU's dense bf16
peak at a model FLOP utilisation (MFU) goal.
"""

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import torch

from sarssl.dataset.bands import CHANNELS
from sarssl.dataset.grid import split_quotas
from sarssl.devices import BF16_PEAK_FLOPS
from sarssl.models.backbone import create_backbone
from sarssl.settings.finetune import (
    FinetuneSettings,
    Run,
    grid_runs,
    subset_size,
    uses_stored_maps,
    uses_vit,
)
from sarssl.settings.pretrain import PretrainSettings, schedule_readings
from sarssl.training.finetune import segmentation_model
from sarssl.training.pretrain import pretrain_flops_per_tile
from sarssl.training.utils import counted_flops

H100_BF16_PEAK = BF16_PEAK_FLOPS["H100"]  # dense bf16 tensor-core FLOP/s, H100 SXM


# Measured side by side on one AOI of synthetic 448 px tiles built with each dtype by
# benchmarks/loader.py (RESULTS.md, "Pre-training input", 2026-11-29), rounded up. Real
# composites carry more speckle entropy than the synthetic ones: the bytes are lower bounds.
STORED_BYTES_PER_VALUE = {"float32": 3.0, "float16": 1.17, "uint16": 1.44, "uint8": 0.58}
WORKER_MS_PER_TILE = {"float32": 14.0, "float16": 8.0, "uint16": 9.0, "uint8": 4.0}


@dataclass(frozen=True)
class Assumptions:
    """Per-unit figures that cannot be counted from the config."""

    gee_seconds_per_request: float = 10.0
    gee_project_concurrency: int = 40  # Earth Engine's concurrent requests per project
    # Per data.store_dtype: bytes per stored SAR value after compression, and a loader
    # worker's CPU ms per 448 px tile (read, decompress, draw the crops; one thread).
    s1_bytes_per_value: Mapping[str, float] = field(
        default_factory=lambda: dict(STORED_BYTES_PER_VALUE)
    )
    worker_ms_per_tile: Mapping[str, float] = field(
        default_factory=lambda: dict(WORKER_MS_PER_TILE)
    )
    label_compression: float = 0.19  # measured on the demo store
    gpu_peak_flops: float = H100_BF16_PEAK
    small_vit_mfu: float = 0.25  # ViT-Tiny / Small: the compass goal
    large_vit_mfu: float = 0.40  # ViT-Base and larger
    finetune_mfu: float = 0.30  # convolutional decoders and U-Nets in bf16


def finetune_flops_per_tile(
    model: str, init: str, architecture: str, tile_px: int, width: int, upsampled: bool
) -> tuple[float, float]:
    """(training step, evaluation) model FLOPs per tile of one run of the grid; `upsampled`:
    the attention-map U-Net at the tile's resolution (finetune.attention_input)."""
    with torch.device("meta"):
        vit = create_backbone(architecture, tile_px) if uses_vit(model) else None
        network = segmentation_model(model, init, vit, tile_px, width, upsampled=upsampled)
        image = torch.empty(1, len(CHANNELS), tile_px, tile_px)
        maps = None
        if uses_stored_maps(model, init):
            grid = vit.patch_embed.dynamic_feat_size((tile_px, tile_px))
            maps = torch.empty(1, vit.blocks[-1].attn.num_heads, *grid)
    train = counted_flops(lambda: network(image, maps).sum().backward())
    with torch.no_grad():
        evaluation = counted_flops(lambda: network(image, maps))
    return train, evaluation


def mfu_of(architecture: str, assumptions: Assumptions) -> float:
    small = any(size in architecture for size in ("tiny", "small"))
    return assumptions.small_vit_mfu if small else assumptions.large_vit_mfu


def gpu_hours(flops: float, mfu: float, assumptions: Assumptions) -> float:
    return flops / (assumptions.gpu_peak_flops * mfu) / 3600


def plan(
    config: dict,
    grid_splits: dict[str, dict[str, int]],
    pretrain_settings: dict[str, PretrainSettings],
    assumptions: Assumptions = Assumptions(),
    finetune_settings: Callable[[Run], FinetuneSettings] | None = None,
) -> dict:
    """The cost plan of `config`, given the tiles per split of each AOI's whole grid
    (counted or estimated), its resolved pre-training settings and the settings of a
    fine-tuning run (sarssl.settings.config.Config.finetune) where it has a grid."""
    px, gee = config["data"]["tile_px"], config["gee"]
    dtype = config["data"].get("store_dtype", "float16")
    # Bytes of one tile as stored and as pre-training reads it (the SAR only: DINO reads
    # no labels).
    s1_bytes = px * px * len(CHANNELS) * assumptions.s1_bytes_per_value[dtype]
    tile_bytes = s1_bytes + px * px * assumptions.label_compression
    aois, pretraining, cores = {}, {}, {}
    for aoi in config["aois"]:
        name, grid = aoi["name"], grid_splits[aoi["name"]]
        kept = split_quotas(grid, aoi["max_tiles"])
        tiles = sum(kept.values())
        requests = 2 * tiles  # one computePixels for the S1 bands, one for WorldCover
        concurrency = min(gee["concurrency"] * aoi["n_shards"], assumptions.gee_project_concurrency)
        store_bytes = tiles * tile_bytes
        aois[name] = {
            "tiles": tiles,
            "splits": kept,
            "max_tiles": aoi["max_tiles"],
            "grid_tiles": sum(grid.values()),
            "grid_splits": dict(grid),
            "gee_requests": requests,
            "gee_hours": requests * assumptions.gee_seconds_per_request / concurrency / 3600,
            "gee_concurrency": concurrency,
            "store_tb": store_bytes / 1e12,
            "mb_per_tile": tile_bytes / 1e6,
        }
    for name, settings in pretrain_settings.items():
        run = next(r for r in config["pretrain"] if r["name"] == name)
        train_tiles = sum(aois[a]["splits"]["train"] for a in run["aois"])
        steps = settings.epochs * (train_tiles // settings.batch_size)
        per_tile = pretrain_flops_per_tile(settings)
        mfu = mfu_of(settings.architecture, assumptions)
        gpus = run["gpus"] * run["nodes"]
        tiles_per_gpu_s = assumptions.gpu_peak_flops * mfu / per_tile
        pretraining[name] = {
            "architecture": settings.architecture,
            "train_tiles": train_tiles,
            "steps": steps,
            "tflop_per_tile_step": per_tile / 1e12,
            "mfu": mfu,
            "gpu_hours": gpu_hours(steps * settings.batch_size * per_tile, mfu, assumptions),
            "gpus": gpus,
            "wall_hours": gpu_hours(steps * settings.batch_size * per_tile, mfu, assumptions)
            / gpus,
            "tiles_per_gpu_s": tiles_per_gpu_s,
            # Input I/O at the throughput goal: every epoch reads every train tile again.
            "read_mb_per_tile": s1_bytes / 1e6,
            "read_gb_per_s_per_gpu": tiles_per_gpu_s * s1_bytes / 1e9,
            "read_gb_per_s_per_node": tiles_per_gpu_s * s1_bytes * run["gpus"] / 1e9,
            "read_tb": steps * settings.batch_size * s1_bytes / 1e12,
            "schedules": schedule_readings(settings.as_dict()),
        }
        cores[name] = {
            "loader_cores_per_gpu": math.ceil(
                tiles_per_gpu_s * assumptions.worker_ms_per_tile[dtype] / 1000
            ),
        }
    kept_splits = {name: aoi["splits"] for name, aoi in aois.items()}
    finetuning = finetune_plan(
        config, kept_splits, pretrain_settings, assumptions, finetune_settings
    )
    return {
        "aois": aois,
        "pretrain": pretraining,
        "loader_cores": cores,
        "finetune": finetuning,
        "store_dtype": dtype,
        "assumptions": assumptions.__dict__,
    }


def finetune_plan(
    config: dict,
    splits_per_aoi: dict[str, dict[str, int]],
    pretrain_settings: dict[str, PretrainSettings],
    assumptions: Assumptions,
    finetune_settings: Callable[[Run], FinetuneSettings] | None,
) -> dict:
    """GPU-hours of every run of the grid, and their sum, over the kept tiles per split."""
    finetune, data = config["finetune"], config["data"]
    if not finetune["aoi"]:
        return {"runs": 0, "gpu_hours": 0.0}
    train, val, test = (splits_per_aoi[finetune["aoi"]][s] for s in ("train", "val", "test"))
    flops_of: dict[tuple[str, str, str], tuple[float, float]] = {}
    total = 0.0
    runs = grid_runs(finetune)
    for run in runs:
        settings = finetune_settings(run)
        architecture = pretrain_settings[run.pretrain].architecture
        key = (run.model, run.init, architecture)
        if key not in flops_of:
            flops_of[key] = finetune_flops_per_tile(
                run.model,
                run.init,
                architecture,
                data["tile_px"],
                settings.width,
                settings.attention_input == "upsampled",
            )
        step, evaluation = flops_of[key]
        epoch = subset_size(run.fraction, train) * step + val * evaluation
        total += settings.epochs * epoch + test * evaluation
    return {
        "runs": len(runs),
        "train_tiles": train,
        "gpu_hours": gpu_hours(total, assumptions.finetune_mfu, assumptions),
    }


def aoi_tile_lines(name: str, aoi: dict) -> list[str]:
    """The AOI's tiles, and per split; those of its whole grid too when max_tiles leaves
    some out."""
    if aoi["tiles"] == aoi["grid_tiles"]:
        per_split = ", ".join(f"{s} {n:,}" for s, n in aoi["splits"].items())
        return [f"AOI {name}: {aoi['tiles']:,} tiles", f"  tiles per split: {per_split}"]
    per_split = ", ".join(
        f"{s} {aoi['grid_splits'][s]:,} -> {n:,}" for s, n in aoi["splits"].items()
    )
    return [
        f"AOI {name}: {aoi['tiles']:,} of its grid's {aoi['grid_tiles']:,} tiles (max_tiles "
        f"{aoi['max_tiles']:,}: a seeded sample, each split keeping its share)",
        f"  tiles per split, grid -> kept: {per_split}",
    ]


def describe(result: dict) -> str:
    """The plan as text, each figure beside its assumption."""
    a, dtype = result["assumptions"], result["store_dtype"]
    lines = ["Cost plan", ""]
    for name, aoi in result["aois"].items():
        lines += [
            *aoi_tile_lines(name, aoi),
            f"  Earth Engine: {aoi['gee_requests']:,} requests (S1 and WorldCover per tile), "
            f"{aoi['gee_hours']:.1f} h at {aoi['gee_concurrency']} concurrent requests "
            f"(assumed {a['gee_seconds_per_request']:g} s per request; the project allows "
            f"about {a['gee_project_concurrency']})",
            f"  store: {aoi['store_tb']:.2f} TB, {aoi['mb_per_tile']:.2f} MB per tile "
            f"({dtype}, {a['s1_bytes_per_value'][dtype]:g} bytes per SAR value measured on "
            "synthetic tiles, benchmarks/loader.py; real SAR compresses less)",
        ]
    for name, run in result["pretrain"].items():
        cores = result["loader_cores"][name]["loader_cores_per_gpu"]
        lines += [
            f"pre-training {name} ({run['architecture']}): {run['train_tiles']:,} train tiles, "
            f"{run['steps']:,} steps, {run['tflop_per_tile_step']:.3f} TFLOP per tile and step "
            "(counted)",
            f"  {run['gpu_hours']:,.0f} GPU-hours at {run['mfu']:.0%} MFU of "
            f"{a['gpu_peak_flops'] / 1e12:.0f} TFLOP/s (H100 dense bf16); {run['wall_hours']:,.1f} "
            f"h on its {run['gpus']} GPUs; {run['tiles_per_gpu_s']:,.0f} tiles/s per GPU",
            f"  data loading: {cores} cores per GPU (a worker spends "
            f"{a['worker_ms_per_tile'][dtype]:g} ms per {dtype} tile, benchmarks/loader.py)",
            f"  input I/O: {run['read_mb_per_tile']:.2f} MB read per tile (the SAR as stored), "
            f"{run['read_gb_per_s_per_gpu']:.2f} GB/s per GPU and "
            f"{run['read_gb_per_s_per_node']:.2f} GB/s per node of its GPUs at that rate; "
            f"{run['read_tb']:,.0f} TB read over the run",
            *(f"  {sentence}" for sentence in run["schedules"]),
        ]
    finetune = result["finetune"]
    lines.append(
        f"fine-tuning grid: {finetune['runs']} runs, {finetune['gpu_hours']:,.1f} GPU-hours "
        f"at {a['finetune_mfu']:.0%} MFU"
    )
    return "\n".join(lines)
