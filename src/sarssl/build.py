"""Building the Zarr store of an AOI: init, one job per shard, finalise.

Each shard job writes only its own chunk-aligned tiles (one chunk per tile), so any number of
jobs can write one store in parallel without locks. Within a job, tiles are processed by a
dask thread pool; only `threads` tiles are in memory at any time, whatever the AOI's size.
Each job records every tile's outcome (kept or rejected, with the reason) and its statistics
in a report; finalisation combines the reports, so the pixels are never read twice.
"""

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import dask
import numpy as np
import pandas as pd
import zarr

from .atomic import write_text_atomic
from .bands import CHANNELS
from .errors import SarsslError, TileError
from .geotiff import read_raster
from .grid import SPLITS
from .seasonal import stack_tile, tile_labels
from .sources import read_manifest, write_csv
from .stats import Moments
from .store import finalise_store, mark_incomplete, open_arrays
from .worldcover import CLASSES, IGNORE_INDEX, NUM_CLASSES

log = logging.getLogger(__name__)

BadTilePolicy = Literal["record", "fail"]
MOMENT_FIELDS = ("count", "mean", "m2")
TILES_PER_THREAD_PER_BATCH = 16


@dataclass(frozen=True)
class BuildSettings:
    tile_px: int
    max_nodata_fraction: float
    bad_tile_policy: BadTilePolicy
    threads: int


def _report_columns() -> list[str]:
    moments = [f"{field}_{c}" for field in MOMENT_FIELDS for c in CHANNELS]
    classes = [f"pixels_class{i}" for i in range(NUM_CLASSES)]
    return [
        "index",
        "tile",
        "status",
        "reason",
        "crs",
        *[f"t{i}" for i in range(6)],
        "nodata_fraction",
        *moments,
        *classes,
    ]


def process_tile(
    index: int,
    tile: str,
    s1_path: str,
    label_path: str,
    s1grd: zarr.Array,
    labels: zarr.Array,
    settings: BuildSettings,
    source_error: str = "",
) -> dict:
    """Read, check and stack one tile, write its chunks and return its report row.
    `source_error` is why the source could not deliver the tile (e.g. a failed export)."""
    row: dict = {"index": index, "tile": tile}
    try:
        if source_error:
            raise TileError(tile, f"source failed: {source_error}")
        s1 = read_raster(s1_path, tile)
        stacked = stack_tile(s1, tile, settings.tile_px, settings.max_nodata_fraction)
        label_raster = read_raster(label_path, tile, as_float=False)
        classes = tile_labels(label_raster, s1, tile, stacked.valid)
        stored = stacked.channels.astype(s1grd.dtype)
        if not np.isfinite(stored).all():
            raise TileError(tile, f"values overflow the store dtype {s1grd.dtype}")
    except TileError as err:
        if settings.bad_tile_policy == "fail":
            raise
        log.warning("rejected %s", err)
        # Rejected tiles hold zeros and ignored labels: no NaN anywhere in a finished store.
        s1grd[index] = np.zeros(s1grd.shape[1:], dtype=s1grd.dtype)
        labels[index] = np.full(labels.shape[1:], IGNORE_INDEX, dtype=np.uint8)
        return {**row, "status": "rejected", "reason": err.reason}
    s1grd[index] = stored
    labels[index] = classes
    moments = Moments.of_pixels(stored, stacked.valid)
    row.update(status="ok", reason="", crs=s1.crs, nodata_fraction=stacked.nodata_fraction)
    row.update({f"t{i}": v for i, v in enumerate(tuple(s1.transform)[:6])})
    for field in MOMENT_FIELDS:
        row.update(
            {f"{field}_{c}": v for c, v in zip(CHANNELS, getattr(moments, field), strict=True)}
        )
    counts = np.bincount(classes[classes != IGNORE_INDEX], minlength=NUM_CLASSES)
    row.update({f"pixels_class{i}": int(v) for i, v in enumerate(counts)})
    return row


def build_shard(
    store: str | Path, manifest: str | Path, report: str | Path, settings: BuildSettings
) -> pd.DataFrame:
    """Write the tiles of one shard's manifest into the store; write its report last."""
    mark_incomplete(store)
    tiles = read_manifest(manifest)
    s1grd, labels = open_arrays(store)
    if len(tiles) and tiles["index"].max() >= s1grd.shape[0]:
        raise SarsslError(
            f"manifest {manifest} has tile index {tiles['index'].max()}, "
            f"beyond the store's {s1grd.shape[0]} tiles"
        )
    # Bounded batches: the task graph and the tiles in flight stay the same size whatever the
    # number of tiles in the shard.
    batch = settings.threads * TILES_PER_THREAD_PER_BATCH
    rows: list[dict] = []
    for start in range(0, len(tiles), batch):
        tasks = [
            dask.delayed(process_tile)(
                t.index, t.tile, t.s1_path, t.label_path, s1grd, labels, settings, t.error
            )
            for t in tiles.iloc[start : start + batch].itertuples()
        ]
        rows.extend(dask.compute(*tasks, scheduler="threads", num_workers=settings.threads))
    frame = pd.DataFrame(list(rows), columns=_report_columns())
    write_csv(frame, report)
    return frame


def _moments_of(rows: pd.DataFrame) -> Moments:
    fields = (rows[[f"{f}_{c}" for c in CHANNELS]].to_numpy(np.float64) for f in MOMENT_FIELDS)
    return Moments.pooled(*fields)


def finalise(
    store: str | Path,
    tile_ids: list[str],
    splits: pd.DataFrame,
    reports: list[str | Path],
    stats_path: str | Path,
    rejected_path: str | Path,
) -> dict:
    """Check every tile was processed, write coordinates and train-only statistics, and mark
    the store complete."""
    frame = pd.concat(
        [pd.read_csv(p, dtype={"tile": str, "reason": str, "crs": str}) for p in reports],
        ignore_index=True,
    )
    n = len(tile_ids)
    seen = frame["index"].to_numpy()
    missing = sorted(set(range(n)) - set(seen))
    if missing or len(seen) != n:
        raise SarsslError(
            f"{store}: tiles {missing[:10]} have no shard report (or some are reported twice)"
        )
    frame = frame.sort_values("index").reset_index(drop=True)
    if frame.tile.tolist() != list(tile_ids):
        raise SarsslError(f"{store}: shard reports do not list the store's tiles in order")
    split_of = dict(zip(splits.identifier, splits.split, strict=True))
    unknown = [t for t in tile_ids if t not in split_of]
    if unknown:
        raise SarsslError(f"tiles {unknown[:5]} have no split")
    frame["split"] = [split_of[t] for t in tile_ids]
    valid = (frame.status == "ok").to_numpy()
    train = frame[valid & (frame.split == "train").to_numpy()]
    if train.empty:
        raise SarsslError(f"{store}: no valid tile in the train split; see {rejected_path}")
    moments = _moments_of(train)
    stats = {
        "channels": list(CHANNELS),
        "mean": moments.mean.tolist(),
        "std": moments.std.tolist(),
        "pixels": int(moments.count[0]),
        "computed_on": "valid pixels of valid train tiles, as stored",
    }
    class_pixels = {
        name: frame.loc[
            valid & (frame.split == name).to_numpy(),
            [f"pixels_class{i}" for i in range(NUM_CLASSES)],
        ]
        .sum()
        .astype(int)
        .tolist()
        for name in SPLITS
    }
    tiles_per_split = {
        name: {
            "valid": int((valid & (frame.split == name)).sum()),
            "rejected": int((~valid & (frame.split == name)).sum()),
        }
        for name in SPLITS
    }
    transform = frame[[f"t{i}" for i in range(6)]].to_numpy(np.float64)
    finalise_store(
        store,
        split=frame.split.to_numpy(),
        valid=valid,
        crs=frame.crs.fillna("").to_numpy(),
        transform=np.nan_to_num(transform, nan=0.0),
        nodata_fraction=frame.nodata_fraction.fillna(1.0).to_numpy(),
        stats=stats,
    )
    summary = {
        "normalisation": stats,
        "tiles": tiles_per_split,
        "class_pixels": class_pixels,
        "classes": [c.name for c in CLASSES],
    }
    write_text_atomic(stats_path, json.dumps(summary, indent=2))
    rejected = frame.loc[~valid, ["index", "tile", "split", "reason"]]
    write_csv(rejected, rejected_path)
    return summary
