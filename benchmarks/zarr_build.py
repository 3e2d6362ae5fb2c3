"""Benchmark of the Zarr build: tiles/s and peak memory, against per-tile loops.

Methods, all producing the same store from the same GeoTIFFs:
- `sarssl`: `sarssl.dataset.build.build_shard`, tiles on a dask thread pool (`--threads`), direct
  chunk writes;
- `loop`: the same per-tile work in a plain sequential loop with direct zarr writes;
- `naive`: a sequential read-stack-write loop writing each tile with xarray's
  `Dataset.to_zarr(region=...)`, as a first script would.

Each measurement runs in a fresh process so that its peak RSS is its own. Usage:

    python benchmarks/zarr_build.py --tiles 50 200 800 --tile-px 448 --workdir /tmp/bench
"""

import argparse
import contextlib
import io
import json
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr

from sarssl.dataset.bands import labels_dataset_name, s1_dataset_name
from sarssl.dataset.build import BuildSettings, build_shard, process_tile, read_tile
from sarssl.dataset.grid import build_tile_grid, read_tiles, tile_bounds, write_tiles_file
from sarssl.dataset.sources import read_manifest, write_csv
from sarssl.dataset.store import create_store, open_arrays
from sarssl.dataset.synthetic import write_synthetic_shard
from sarssl.dataset.tilegrid import TileGrid

SEED = 39


def prepare(workdir: Path, n_tiles: int, tile_px: int, threads: int) -> Path:
    """A grid of at least `n_tiles` tiles and their synthetic GeoTIFFs (reused if present)."""
    tiles_file = workdir / "bench_partitions_aschips.geojson"
    if not tiles_file.exists():
        # A square of tiles near 41 N, where 4480 m is ~0.054 deg of lon and ~0.040 of lat.
        side = np.ceil(np.sqrt(n_tiles)) + 1
        east, north = -1 + 0.054 * side, 41 + 0.0405 * side
        wkt = workdir / "bench.wkt"
        wkt.write_text(f"POLYGON ((-1 41, {east} 41, {east} {north}, -1 {north}, -1 41))")
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            tiles = build_tile_grid("bench", wkt, tile_px * 10)
        write_tiles_file(tiles, tiles_file)
    manifest = workdir / f"manifest_{n_tiles}.csv"
    full = write_synthetic_shard(
        tiles_file, 0, 1, s1_dataset_name(2020), labels_dataset_name(2020),
        tile_px, SEED, workdir / "manifest_all.csv", threads,
    )  # fmt: skip
    if len(full) < n_tiles:
        raise SystemExit(f"grid has {len(full)} tiles, fewer than {n_tiles}")
    write_csv(full.iloc[:n_tiles], manifest)
    return manifest


def fresh_store(workdir: Path, method: str, n_tiles: int, tile_px: int) -> Path:
    tiles = read_tiles(workdir / "bench_partitions_aschips.geojson").iloc[:n_tiles]
    store = workdir / f"{method}_{n_tiles}.zarr"
    create_store(store, tiles.identifier.tolist(), tile_bounds(tiles), tile_px, "float16", {})
    return store


def naive(store: Path, manifest: Path, settings: BuildSettings) -> None:
    """Per tile: read, stack, and write one xarray region."""
    bounds = open_arrays(store).bounds
    for t in read_manifest(manifest).itertuples():
        grid = TileGrid(tuple(bounds[t.index]), settings.tile_px, settings.pixel_m)
        tile = read_tile(t.tile, t.s1_path, t.label_path, grid, settings)
        channels = tile.stacked.channels[None].astype(np.float16)
        region = xr.Dataset(
            {
                "s1grd": (("tile", "channel", "y", "x"), channels),
                "labels": (("tile", "y", "x"), tile.classes[None]),
            }
        )
        region.to_zarr(
            store, region={"tile": slice(t.index, t.index + 1)}, mode="r+", consolidated=False
        )


def loop(store: Path, manifest: Path, settings: BuildSettings) -> None:
    arrays = open_arrays(store)
    for t in read_manifest(manifest).itertuples():
        grid = TileGrid(tuple(arrays.bounds[t.index]), settings.tile_px, settings.pixel_m)
        process_tile(t.index, t.tile, t.s1_path, t.label_path, grid, arrays, settings)


def measure(method: str, workdir: Path, n_tiles: int, tile_px: int, threads: int) -> dict:
    manifest = workdir / f"manifest_{n_tiles}.csv"
    store = fresh_store(workdir, method, n_tiles, tile_px)
    settings = BuildSettings(tile_px, 0.5, "record", threads if method == "sarssl" else 1)
    start = time.perf_counter()
    if method == "sarssl":
        build_shard(store, manifest, workdir / f"report_{n_tiles}.csv", settings)
    else:
        {"loop": loop, "naive": naive}[method](store, manifest, settings)
    seconds = time.perf_counter() - start
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {
        "method": method,
        "tiles": n_tiles,
        "seconds": seconds,
        "tiles_per_s": n_tiles / seconds,
        "peak_rss_mb": peak_mb,
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--tiles", type=int, nargs="+", default=[50, 200, 800])
    parser.add_argument("--tile-px", type=int, default=448)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/sarssl-bench"))
    parser.add_argument("--methods", nargs="+", default=["sarssl", "loop", "naive"])
    parser.add_argument("--measure", help=argparse.SUPPRESS)
    args = parser.parse_args()
    args.workdir.mkdir(parents=True, exist_ok=True)
    if args.measure:
        method, n = args.measure.split(":")
        print(json.dumps(measure(method, args.workdir, int(n), args.tile_px, args.threads)))
        return
    results = []
    for n in args.tiles:
        prepare(args.workdir, max(args.tiles), args.tile_px, args.threads)
        prepare(args.workdir, n, args.tile_px, args.threads)
        for method in args.methods:
            options = ["--tile-px", str(args.tile_px), "--threads", str(args.threads)]
            out = subprocess.run(
                [
                    sys.executable,
                    __file__,
                    "--measure",
                    f"{method}:{n}",
                    *options,
                    "--workdir",
                    str(args.workdir),
                ],
                check=True,
                capture_output=True,
                text=True,
            )
            results.append(json.loads(out.stdout.strip().splitlines()[-1]))
            print(results[-1], file=sys.stderr)
    table = pd.DataFrame(results)
    base = table[table.method == "sarssl"].set_index("tiles").tiles_per_s
    table["sarssl_speedup"] = [
        base[n] / r for n, r in zip(table.tiles, table.tiles_per_s, strict=True)
    ]
    print(f"machine: {platform.processor() or platform.machine()}, {platform.platform()}, "
          f"tile {args.tile_px} px, threads {args.threads}")  # fmt: skip
    print(table.to_markdown(index=False, floatfmt=".2f"))


if __name__ == "__main__":
    main()
