"""Benchmark of the land-cover mosaic writer: seconds and peak memory, against a mosaic
held whole in memory.

Methods, both writing the same COG from the same tiles:
- `sarssl`: `sarssl.maps.products.write_class_mosaic`, each tile reprojected into its window
  of a scratch tiled GeoTIFF, then GDAL's COG driver (what the pipeline runs);
- `in_memory`: the whole mosaic as one array, every tile reprojected into its window of it
  (the same per-tile work), then written as a COG at once, as a first script would.

The tiles are geetiles-like: a square grid of 448-px tiles of ~10 m in EPSG:4326, each
with its own pixel size and origin jittered by up to 1 % (UTM envelopes), holding random
WorldCover codes in 16 x 16 blocks. Each measurement runs in a fresh process, so that its
peak RSS is its own. Usage:

    python benchmarks/maps.py --tiles 25 100 400 --workdir /tmp/bench-maps
"""

import argparse
import json
import platform
import resource
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import rasterio
from rasterio.enums import Resampling
from rasterio.shutil import copy as copy_dataset
from rasterio.transform import Affine
from rasterio.warp import reproject
from rio_cogeo.cogeo import cog_validate

from sarssl.dataset.worldcover import CLASSES
from sarssl.maps.cog import COG_OPTIONS
from sarssl.maps.grid import Footprint, MosaicGrid, mosaic_grid
from sarssl.maps.products import CLASS_NODATA, worldcover_colormap, write_class_mosaic

TILE_PX = 448
PIXEL_DEG = 1e-4  # ~10 m
SEED = 24


def transforms(n_tiles: int) -> list[Affine]:
    """Each tile's transform: a square grid, pixel size and origin jittered by up to 1 %."""
    rng = np.random.default_rng(SEED)
    side = int(np.ceil(np.sqrt(n_tiles)))
    made = []
    for i in range(n_tiles):
        row, col = divmod(i, side)
        size = PIXEL_DEG * (1 + rng.uniform(-0.01, 0.01))
        west = (col + rng.uniform(-0.01, 0.01)) * TILE_PX * PIXEL_DEG
        made.append(Affine(size, 0, west, 0, -size, 40 - row * TILE_PX * PIXEL_DEG))
    return made


def tiles(placed: list[Affine]) -> Iterator[tuple[Affine, np.ndarray]]:
    """The tiles one at a time (the benchmark holds no more than the writer asks for):
    random WorldCover codes in 16 x 16 blocks, seeded per tile."""
    codes = np.array([c.code for c in CLASSES], dtype=np.uint8)
    for i, transform in enumerate(placed):
        blocks = np.random.default_rng([SEED, i]).choice(codes, (TILE_PX // 16, TILE_PX // 16))
        yield transform, np.kron(blocks, np.ones((16, 16), np.uint8))[None]


def grid_of(placed: list[Affine]) -> MosaicGrid:
    return mosaic_grid(Footprint(t, TILE_PX, TILE_PX) for t in placed)


def in_memory(path: Path, grid: MosaicGrid, made: Iterator[tuple[Affine, np.ndarray]]) -> None:
    mosaic = np.full((1, grid.height, grid.width), CLASS_NODATA, dtype=np.uint8)
    for transform, values in made:
        # The same per-tile work as sarssl's: reproject into the tile's window only.
        col_start, row_start, col_stop, row_stop = grid.span(Footprint(transform, TILE_PX, TILE_PX))
        window = mosaic[:, row_start:row_stop, col_start:col_stop]
        placed = np.full_like(window, CLASS_NODATA)
        reproject(
            values,
            placed,
            src_transform=transform,
            src_crs="EPSG:4326",
            dst_transform=grid.origin @ Affine.translation(col_start, row_start),
            dst_crs="EPSG:4326",
            src_nodata=CLASS_NODATA,
            dst_nodata=CLASS_NODATA,
            resampling=Resampling.nearest,
        )
        window[placed != CLASS_NODATA] = placed[placed != CLASS_NODATA]
    profile = {
        "driver": "GTiff",
        "width": grid.width,
        "height": grid.height,
        "count": 1,
        "dtype": "uint8",
        "crs": "EPSG:4326",
        "transform": grid.transform,
        "nodata": CLASS_NODATA,
    }
    with rasterio.MemoryFile() as memory, memory.open(**profile) as dataset:
        dataset.write(mosaic)
        dataset.write_colormap(1, worldcover_colormap())
        copy_dataset(dataset, path, driver="COG", **COG_OPTIONS, OVERVIEW_RESAMPLING="MODE")


def measure(method: str, workdir: Path, n_tiles: int) -> dict:
    placed = transforms(n_tiles)
    grid = grid_of(placed)
    path = workdir / f"{method}_{n_tiles}.tif"
    started = time.perf_counter()
    if method == "sarssl":
        write_class_mosaic(path, grid, tiles(placed))
    else:
        in_memory(path, grid, tiles(placed))
    seconds = time.perf_counter() - started
    valid, errors, _ = cog_validate(path)
    if not valid:
        raise RuntimeError(f"{path} is not a valid COG: {errors}")
    return {
        "method": method,
        "tiles": n_tiles,
        "mosaic_px": f"{grid.width} x {grid.height}",
        "seconds": round(seconds, 2),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tiles", type=int, nargs="+", default=[25, 100, 400])
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/bench-maps"))
    parser.add_argument("--one", nargs=2, help=argparse.SUPPRESS)  # method, tiles: a child
    args = parser.parse_args()
    args.workdir.mkdir(parents=True, exist_ok=True)
    if args.one:
        print(json.dumps(measure(args.one[0], args.workdir, int(args.one[1]))))
        return
    rows = []
    for n_tiles in args.tiles:
        for method in ("sarssl", "in_memory"):
            command = [sys.executable, __file__, "--workdir", str(args.workdir)]
            out = subprocess.run(
                [*command, "--one", method, str(n_tiles)],
                capture_output=True,
                text=True,
                check=True,
            )
            rows.append(json.loads(out.stdout.strip().splitlines()[-1]))
    table = pd.DataFrame(rows)
    baseline = table[table.method == "in_memory"].set_index("tiles")
    table["memory_ratio_vs_in_memory"] = [
        round(row.peak_rss_mb / baseline.loc[row.tiles, "peak_rss_mb"], 2)
        for row in table.itertuples()
    ]
    table["time_ratio_vs_in_memory"] = [
        round(row.seconds / baseline.loc[row.tiles, "seconds"], 2) for row in table.itertuples()
    ]
    machine = platform.processor() or platform.machine()
    print(f"{machine}, Python {platform.python_version()}, rasterio {rasterio.__version__}")
    print(table.to_markdown(index=False))


if __name__ == "__main__":
    main()
