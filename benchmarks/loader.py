"""Pre-training input: what a data-loader worker spends per tile, before and after the
crops moved to the training device, and what the device transform costs per batch; the CPU
cores per GPU that ViT-Tiny and ViT-Base need at their throughput goals.

- `before`: the worker of the first pipeline (read the float16 tile, standardise it to
  float32, resample the 2 + 8 multi-crop views on the CPU with torch's antialiased bicubic
  interpolation, one call per view), written out here as the baseline;
- `after`: today's worker (`sarssl.tiles.loader.MultiCropTiles`): read the stored tile and draw the
  crop boxes and flips;
- `device`: `sarssl.training.pretrain.device_views` on a batch (standardise and resample the views
  batched), on the CPU here and on a GPU when there is one;
- `sampler`: the batch sampler's cost per step at the paper's second run's 1.1 M tiles, today's
  (`sarssl.tiles.loader.StepBatches`, one permutation per epoch) against the first pipeline's, which
  drew the permutation of every tile at every step;
- `store dtypes`: the same AOI built as float32, float16, uint8 and uint16
  (`data.store_dtype`): bytes per tile on disk, the error of the dB that `xr.open_zarr`
  decodes against float32 (RMS and largest), pixels clipped, today's worker per tile and
  the device transform per batch, the dtypes alternating round by round.

Both worker variants read the same tiles in alternating rounds (medians reported), each
measured with torch on one thread, as one worker process runs. The store is built by the
pipeline itself: a synthetic AOI of 448 px tiles.

    python benchmarks/loader.py --workdir /tmp/loader
"""

import argparse
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
import xarray as xr
import yaml

from sarssl.dataset.quantise import STORE_DTYPES
from sarssl.devices import default_device
from sarssl.settings.crops import CropSpec
from sarssl.tiles.loader import MultiCropTiles, Normalisation, StepBatches, StoreTiles, split_tiles
from sarssl.tiles.multicrop import crop_params
from sarssl.training.pretrain import device_views

REPO = Path(__file__).resolve().parents[1]
AOI_WKT = "POLYGON ((-1.15 41.55, -0.88 41.55, -0.88 41.75, -1.15 41.75, -1.15 41.55))"
# Throughput goals per H100 at the MFU of the cost plan (sarssl plan): tiles per second.
GOALS = {"ViT-Tiny (25 % MFU)": 1450, "ViT-Base (40 % MFU)": 210}


def build_store(
    workdir: Path,
    tile_px: int = 448,
    aoi_wkt: str = AOI_WKT,
    store_dtype: str = "float16",
    cores: int = 2,
) -> Path:
    """The store of a synthetic AOI, built by the pipeline itself on `cores` cores (a shard
    of scenes per core)."""
    workdir.mkdir(parents=True, exist_ok=True)
    wkt = workdir / "loader.wkt"
    wkt.write_text(aoi_wkt)
    config = {
        "aois": [{"name": "loader", "source": "synthetic", "wkt": str(wkt), "n_shards": cores}],
        "data": {"tile_px": tile_px, "threads": 1 if cores > 2 else 2, "store_dtype": store_dtype},
    }
    configfile = workdir / "config.yaml"
    configfile.write_text(yaml.safe_dump(config))
    subprocess.run(
        [sys.executable, "-m", "snakemake", "results/loader/stats.json", "--snakefile",
         str(REPO / "Snakefile"), "--directory", str(workdir), "--cores", str(cores),
         "--configfile", str(configfile), "--quiet"],
        check=True,
    )  # fmt: skip
    return workdir / "results/loader/dataset.zarr"


def before(reader: StoreTiles, spec: CropSpec, seed: int, key: tuple[int, int]) -> list:
    """The first pipeline's worker: standardise, then one interpolation per view."""
    epoch, position = key
    image = reader.image(position)
    boxes, flips = crop_params(np.random.default_rng([seed, epoch, position]), 448, 448, spec)
    views = []
    for view, ((top, left, height, width), flip) in enumerate(
        zip(boxes.tolist(), flips.tolist(), strict=True)
    ):
        patch = image[None, :, top : top + height, left : left + width]
        size = spec.size(view)
        out = F.interpolate(patch, size=(size, size), mode="bicubic", antialias=True)[0]
        views.append(out.flip(-1) if flip else out)
    return views


def alternating_ms(methods: dict[str, Callable[[], None]], count: int, rounds: int) -> dict:
    """Median over `rounds` of each method's ms per call (`count` calls a round), the
    methods taking turns round by round, so that a noisy neighbour hits them alike."""
    times: dict[str, list[float]] = {name: [] for name in methods}
    for _ in range(rounds):
        for name, method in methods.items():
            start = time.perf_counter()
            method()
            times[name].append((time.perf_counter() - start) / count * 1000)
    return {name: statistics.median(values) for name, values in times.items()}


def worker_ms(store: Path, tiles: int, rounds: int) -> dict[str, float]:
    torch.set_num_threads(1)
    spec = CropSpec()
    train = split_tiles(store, ["train", "val", "test"])[:tiles]
    reader = StoreTiles(train, Normalisation.of_stores([store]))
    after = MultiCropTiles(reader, spec, seed=0)
    methods = {
        "before": lambda: [before(reader, spec, 0, (0, p)) for p in range(len(train))],
        "after": lambda: [after[(0, p)] for p in range(len(train))],
    }
    return alternating_ms(methods, len(train), rounds)


def device_ms(store: Path, batch: int, rounds: int, device: torch.device) -> dict[str, float]:
    torch.set_num_threads(torch.get_num_threads())
    spec = CropSpec()
    train = split_tiles(store, ["train", "val", "test"])
    normalisation = Normalisation.of_stores([store])
    dataset = MultiCropTiles(StoreTiles(train, normalisation), spec, seed=0)
    items = [dataset[(0, p % len(train))] for p in range(batch)]
    loaded = tuple(torch.stack(parts) for parts in zip(*items, strict=True))
    dtypes = {"fp32": torch.float32} | ({"bf16": torch.bfloat16} if device.type == "cuda" else {})
    results = {}
    for name, dtype in dtypes.items():
        samples = []
        for _ in range(rounds + 1):  # the first is a warm-up
            start = time.perf_counter()
            views = device_views(loaded, device, dataset.tiles.standardise, spec, dtype)
            if device.type == "cuda":
                torch.cuda.synchronize()
            samples.append((time.perf_counter() - start) * 1000)
            del views
        results[name] = statistics.median(samples[1:])
    return results


def chunk_bytes(store: Path) -> int:
    """Bytes of the s1grd chunks on disk."""
    return sum(f.stat().st_size for f in (store / "s1grd").rglob("*") if f.parent.name != "s1grd")


def store_dtypes(workdir: Path, tiles: int, rounds: int, batch: int) -> pd.DataFrame:
    """The AOI built with each data.store_dtype, side by side against float32."""
    stores = {dtype: build_store(workdir / dtype, store_dtype=dtype) for dtype in STORE_DTYPES}
    reference = xr.open_zarr(stores["float32"])
    valid = reference.valid.values
    truth = reference.s1grd.values[valid].astype(np.float64)
    torch.set_num_threads(1)
    spec, rows, readers = CropSpec(), {}, {}
    for dtype, store in stores.items():
        opened = xr.open_zarr(store)
        error = opened.s1grd.values[valid].astype(np.float64) - truth
        stored_bytes = chunk_bytes(store)
        positions = split_tiles(store, ["train", "val", "test"])[:tiles]
        readers[dtype] = MultiCropTiles(
            StoreTiles(positions, Normalisation.of_stores([store])), spec, seed=0
        )
        rows[dtype] = {
            "store_dtype": dtype,
            "tiles": int(valid.sum()),
            "MB per tile on disk": stored_bytes / len(valid) / 1e6,
            "bytes per value": stored_bytes / truth[0].size / len(valid),
            "RMS error (dB)": float(np.sqrt(np.mean(error**2))),
            "largest error (dB)": float(np.abs(error).max()),
            "clipped pixels": int(opened.clipped_pixels.values.sum()),
        }
    workers = alternating_ms(
        {
            dtype: lambda reader=reader: [reader[(0, p)] for p in range(len(reader.tiles))]
            for dtype, reader in readers.items()
        },
        min(tiles, len(readers["float16"].tiles)),
        rounds,
    )
    device = default_device()
    torch.set_num_threads(torch.get_num_threads())
    batches = {
        dtype: tuple(
            torch.stack(parts)
            for parts in zip(*(r[(0, p % len(r.tiles))] for p in range(batch)), strict=True)
        )
        for dtype, r in readers.items()
    }
    transform = alternating_ms(
        {
            dtype: lambda dtype=dtype: device_views(
                batches[dtype], device, readers[dtype].tiles.standardise, spec, torch.float32
            )
            for dtype in readers
        },
        1,
        max(2, rounds // 2),
    )
    float16_bytes = rows["float16"]["MB per tile on disk"]
    for dtype, row in rows.items():
        row["fewer bytes than float16"] = float16_bytes / row["MB per tile on disk"]
        row["worker ms per tile"] = workers[dtype]
        row["device transform ms per batch"] = transform[dtype]
    return pd.DataFrame(list(rows.values()))


def sampler_us(n_tiles: int, batch: int, steps: int) -> dict[str, float]:
    """Microseconds per step over the first `steps` steps of an epoch (the epoch's
    permutation included), today's sampler against a permutation drawn at every step."""
    seed = 0

    def per_step_permutation(step: int) -> np.ndarray:
        epoch, position = divmod(step, n_tiles // batch)
        order = np.random.default_rng([seed, epoch]).permutation(n_tiles)
        return order[position * batch : (position + 1) * batch]

    sampler = iter(StepBatches(n_tiles, batch, epochs=1, seed=seed))
    methods = {"before": per_step_permutation, "after": lambda step: next(sampler)}
    results = {}
    for name, method in methods.items():
        start = time.perf_counter()
        for step in range(steps):
            method(step)
        results[name] = (time.perf_counter() - start) / steps * 1e6
    return results


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/sarssl-loader"))
    parser.add_argument("--store", type=Path, help="an existing store of 448 px tiles")
    parser.add_argument("--tiles", type=int, default=24, help="tiles per worker round")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--batch", type=int, default=16, help="tiles per device batch")
    parser.add_argument("--sampler-tiles", type=int, default=1_100_000)
    parser.add_argument("--sampler-steps", type=int, default=200)
    parser.add_argument(
        "--dtypes-only", action="store_true", help="only the store dtypes' comparison"
    )
    args = parser.parse_args()
    dtypes = store_dtypes(args.workdir / "dtypes", args.tiles, args.rounds, args.batch)
    print(f"store dtypes, {len(dtypes)} builds of one AOI of 448 px tiles:")
    print(dtypes.to_markdown(index=False, floatfmt=".3f"))
    if args.dtypes_only:
        return
    sampler = sampler_us(args.sampler_tiles, 1024, args.sampler_steps)
    store = args.store or build_store(args.workdir)
    worker = worker_ms(store, args.tiles, args.rounds)
    device = default_device()
    transform = device_ms(store, args.batch, args.rounds, device)
    name = torch.cuda.get_device_name() if device.type == "cuda" else "CPU"
    print(f"machine: {platform.processor() or platform.machine()}, {platform.platform()}; "
          f"torch {torch.__version__}; crops 2 x 448 + 8 x 192")  # fmt: skip
    print(
        f"worker ms per tile (1 thread): before {worker['before']:.1f}, after "
        f"{worker['after']:.1f} ({worker['before'] / worker['after']:.1f} x less)"
    )
    for precision, ms in transform.items():
        print(f"device transform on {name}, {precision}: {ms:.1f} ms per batch of "
              f"{args.batch} ({ms / args.batch:.2f} ms per tile)")  # fmt: skip
    print(
        f"sampler at {args.sampler_tiles} tiles, global batch 1024, mean of the first "
        f"{args.sampler_steps} steps of an epoch: before {sampler['before']:.0f} us per step, "
        f"after {sampler['after']:.0f} us ({sampler['before'] / sampler['after']:.0f} x less)"
    )
    table = pd.DataFrame(
        [
            {
                "model (goal)": model,
                "tiles/s per GPU": goal,
                "cores per GPU, before": goal * worker["before"] / 1000,
                "cores per GPU, after": goal * worker["after"] / 1000,
            }
            for model, goal in GOALS.items()
        ]
    )
    print(table.to_markdown(index=False, floatfmt=".1f"))


if __name__ == "__main__":
    main()
