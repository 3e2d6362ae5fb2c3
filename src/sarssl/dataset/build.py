"""Building the Zarr store of an AOI: init, one job per shard, finalise.

Each shard job writes only its own chunk-aligned tiles (one chunk per tile), so any number of
jobs can write one store in parallel without locks. Within a job, tiles are processed by a
dask thread pool; only `threads` tiles are in memory at any time, whatever the AOI's size.
Each job records every tile's outcome (kept or rejected, with the reason) and its statistics
in a report; finalisation combines the reports, so the pixels are never read twice.
"""

import json
import logging
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import dask
import numpy as np
import pandas as pd

from ..atomic import write_text_atomic
from ..errors import SarsslError, TileError
from .bands import ASCENDING, CHANNELS, POLARISATIONS, SEASONS, OrbitPass
from .geotiff import read_raster
from .grid import SPLITS, read_tiles
from .s1layout import LayoutError, implausible_db, read_s1_bands
from .seasonal import StackedTile, stack_tile, tile_labels
from .sources import read_manifest, write_csv
from .stats import Moments
from .store import StoreArrays, finalise_store, mark_incomplete, open_arrays, store_coding
from .storeinfo import PASS_AS_IN_FILE
from .tilegrid import (
    CANONICAL_CRS,
    TileGrid,
    effective_pixel_m,
    footprint_problem,
    nearest_onto,
)
from .worldcover import CLASSES, IGNORE_INDEX, NUM_CLASSES, WORLDCOVER_NODATA

log = logging.getLogger(__name__)

BadTilePolicy = Literal["record", "fail"]
MOMENT_FIELDS = ("count", "mean", "m2")
TILES_PER_THREAD_PER_BATCH = 16
# What the report says of a tile's S1 file, kept or rejected (see sarssl.dataset.s1layout).
# Pixel counts of decoding, summed over the AOI in stats.json.
COUNT_FIELDS = (
    "cast_min_pixels",
    "cast_max_pixels",
    "extreme_nodata_pixels",
    "wraps_unwrapped",
    "wraps_nodata",
)
S1_FIELDS = ("s1_format", "orbit_pass", *COUNT_FIELDS, "effective_pixel_m")
# Share of pixels observed per season and polarisation (the rest is imputed).
OBSERVED_FIELDS = tuple(f"observed_{s}_{p}" for s in SEASONS for p in POLARISATIONS)


@dataclass(frozen=True)
class BuildSettings:
    tile_px: int
    max_nodata_fraction: float
    bad_tile_policy: BadTilePolicy
    threads: int
    max_season_nodata_fraction: float = 0.5
    pixel_m: float = 10.0
    s1_format: str = "auto"  # or one of s1layout.S1_FORMATS
    orbit_pass: OrbitPass = ASCENDING


@dataclass(frozen=True)
class ReportSchema:
    """The columns of a shard's report (one row per tile), named here only: the builder
    writes them, finalisation reads them."""

    # The tile's affine transform on its grid, as rasterio's first six coefficients.
    transform: tuple[str, ...] = tuple(f"t{i}" for i in range(6))
    # Labelled pixels per land-cover class, in class order.
    class_pixels: tuple[str, ...] = tuple(f"pixels_class{i}" for i in range(NUM_CLASSES))
    # Read as text whatever they hold (pandas would take an empty reason for a float).
    text: tuple[str, ...] = ("tile", "reason", "crs", "s1_format", "orbit_pass")

    @staticmethod
    def moments(field: str) -> list[str]:
        """One column per channel of a pooling moment (MOMENT_FIELDS) of the tile's pixels."""
        return [f"{field}_{c}" for c in CHANNELS]

    @property
    def columns(self) -> list[str]:
        return [
            "index",
            "tile",
            "status",
            "reason",
            *S1_FIELDS,
            "crs",
            *self.transform,
            "nodata_fraction",
            "clipped_pixels",
            *OBSERVED_FIELDS,
            *(column for field in MOMENT_FIELDS for column in self.moments(field)),
            *self.class_pixels,
        ]

    def read(self, path: str | Path) -> pd.DataFrame:
        return pd.read_csv(path, dtype=dict.fromkeys(self.text, str))


REPORT = ReportSchema()


@dataclass(frozen=True)
class TileData:
    """One tile on its grid, ready for the store."""

    stacked: StackedTile
    classes: np.ndarray  # (px, px) uint8 class indices, IGNORE_INDEX where unusable
    s1: dict  # S1_FIELDS


def read_tile(
    tile: str, s1_path: str, label_path: str, grid: TileGrid, settings: BuildSettings
) -> TileData:
    """Read, decode, check and regrid one tile's S1 and label files. Raises TileError with
    the reason (and, in its details, what was learnt of the S1 file before it failed)."""
    s1 = read_raster(s1_path, tile, what="S1")
    if problem := footprint_problem(s1.crs, s1.transform, s1.shape, grid, "S1"):
        raise TileError(tile, problem)
    try:
        bands = read_s1_bands(s1, settings.s1_format, settings.orbit_pass)
    except (LayoutError, KeyError) as err:
        raise TileError(tile, f"{err.args[0]} (S1 file {s1_path})") from None
    casts = bands.casts
    counts = (casts.at_min, casts.at_max, casts.extreme_nodata)
    wraps = (casts.wraps_unwrapped, casts.wraps_nodata)
    pixel_m = effective_pixel_m(s1.transform, grid)
    details = dict(
        zip(S1_FIELDS, (casts.fmt, bands.orbit_pass, *counts, *wraps, pixel_m), strict=True)
    )
    try:
        if reason := implausible_db(bands.means):
            raise TileError(tile, f"{reason} (read as {casts.fmt})")
        seasons, pols, rows, cols = bands.means.shape
        means = nearest_onto(
            bands.means.reshape(seasons * pols, rows, cols), s1.transform, grid, np.nan
        ).reshape(seasons, pols, grid.px, grid.px)
        note = "; ".join(
            n for n in (f"{bands.orbit_pass} pass" * bool(bands.orbit_pass), casts.note()) if n
        )
        stacked = stack_tile(
            means, tile, settings.max_nodata_fraction, settings.max_season_nodata_fraction, note
        )
        classes = tile_labels(read_label_codes(label_path, tile, grid), tile, stacked.valid)
    except TileError as err:
        raise TileError(tile, err.reason, details) from None
    return TileData(stacked, classes, details)


def read_label_codes(path: str, tile: str, grid: TileGrid) -> np.ndarray:
    """WorldCover codes of a label file on the tile's grid; masked pixels and pixels outside
    the file are nodata."""
    labels = read_raster(path, tile, what="label")
    if labels.data.shape[0] != 1:
        raise TileError(tile, f"label file has {labels.data.shape[0]} bands, expected 1")
    if problem := footprint_problem(labels.crs, labels.transform, labels.shape, grid, "label"):
        raise TileError(tile, problem)
    codes = labels.data
    if labels.valid is not None:
        codes = np.where(labels.valid, codes, WORLDCOVER_NODATA)
    return nearest_onto(codes, labels.transform, grid, WORLDCOVER_NODATA)[0]


def process_tile(
    index: int,
    tile: str,
    s1_path: str,
    label_path: str,
    grid: TileGrid,
    arrays: StoreArrays,
    settings: BuildSettings,
    source_error: str = "",
) -> dict:
    """Read, check and stack one tile, write its chunks and return its report row.
    `source_error` is why the source could not deliver the tile (e.g. a failed export)."""
    row: dict = {"index": index, "tile": tile}
    s1grd, labels, observed_seasons, _, coding = arrays
    try:
        if source_error:
            raise TileError(tile, f"source failed: {source_error}")
        data = read_tile(tile, s1_path, label_path, grid, settings)
        stored, clipped = coding.encode(data.stacked.channels)
        if not np.isfinite(stored).all():
            raise TileError(tile, f"values overflow the store dtype {s1grd.dtype}", data.s1)
    except TileError as err:
        if settings.bad_tile_policy == "fail":
            raise
        log.warning("rejected %s", err)
        # Rejected tiles hold 0 dB and ignored labels: no NaN anywhere in a finished store.
        s1grd[index] = coding.encode(np.zeros(s1grd.shape[1:], dtype=np.float32))[0]
        labels[index] = np.full(labels.shape[1:], IGNORE_INDEX, dtype=np.uint8)
        observed_seasons[index] = np.zeros(observed_seasons.shape[1:], dtype=np.uint8)
        return {**row, **err.details, "status": "rejected", "reason": err.reason}
    s1grd[index] = stored
    labels[index] = data.classes
    observed_seasons[index] = data.stacked.observed_seasons
    if clipped:
        log.warning(
            "%s: %d pixels beyond the %s store's range of %.1f..%.1f dB were clipped",
            tile,
            clipped,
            coding.dtype,
            coding.add_offset,
            coding.highest_db,
        )
    # The statistics of the values as a reader decodes them.
    moments = Moments.of_pixels(coding.decode(stored), data.stacked.valid)
    row.update(data.s1)
    row.update(
        status="ok",
        reason="",
        crs=CANONICAL_CRS,
        nodata_fraction=data.stacked.nodata_fraction,
        clipped_pixels=clipped,
    )
    row.update(zip(OBSERVED_FIELDS, data.stacked.observed_fraction.ravel().tolist(), strict=True))
    row.update(zip(REPORT.transform, tuple(grid.transform)[:6], strict=True))
    for field in MOMENT_FIELDS:
        row.update(zip(REPORT.moments(field), getattr(moments, field), strict=True))
    counts = np.bincount(data.classes[data.classes != IGNORE_INDEX], minlength=NUM_CLASSES)
    row.update(zip(REPORT.class_pixels, counts.tolist(), strict=True))
    return row


def build_shard(
    store: str | Path, manifest: str | Path, report: str | Path, settings: BuildSettings
) -> pd.DataFrame:
    """Write the tiles of one shard's manifest into the store; write its report last."""
    mark_incomplete(store)
    tiles = read_manifest(manifest)
    arrays = open_arrays(store)
    if len(tiles) and tiles["index"].max() >= arrays.s1grd.shape[0]:
        raise SarsslError(
            f"manifest {manifest} has tile index {tiles['index'].max()}, "
            f"beyond the store's {arrays.s1grd.shape[0]} tiles"
        )
    # Bounded batches: the task graph and the tiles in flight stay the same size whatever the
    # number of tiles in the shard.
    batch = settings.threads * TILES_PER_THREAD_PER_BATCH
    rows: list[dict] = []
    for start in range(0, len(tiles), batch):
        tasks = [
            dask.delayed(process_tile)(
                t.index,
                t.tile,
                t.s1_path,
                t.label_path,
                TileGrid(tuple(arrays.bounds[t.index]), settings.tile_px, settings.pixel_m),
                arrays,
                settings,
                t.error,
            )
            for t in tiles.iloc[start : start + batch].itertuples()
        ]
        rows.extend(dask.compute(*tasks, scheduler="threads", num_workers=settings.threads))
    frame = pd.DataFrame(list(rows), columns=REPORT.columns)
    write_csv(frame, report)
    return frame


def _moments_of(rows: pd.DataFrame) -> Moments:
    fields = (rows[REPORT.moments(f)].to_numpy(np.float64) for f in MOMENT_FIELDS)
    return Moments.pooled(*fields)


def tile_outcomes(
    store: str | Path,
    tiles_file: str | Path,
    splits_file: str | Path,
    reports: list[str | Path],
) -> pd.DataFrame:
    """Every tile's row of the shard reports, in store order, with its split; checks that
    each tile was processed exactly once."""
    tile_ids = read_tiles(tiles_file).identifier.tolist()
    splits = pd.read_csv(splits_file, dtype={"identifier": str})
    frame = pd.concat([REPORT.read(p) for p in reports], ignore_index=True)
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
    return frame


REJECTED_COLUMNS = ("index", "tile", "split", "reason", *S1_FIELDS)


def write_rejected(outcomes: pd.DataFrame, path: str | Path) -> pd.DataFrame:
    """The rejected tiles with their reasons (and what was learnt of their S1 files)."""
    rejected = outcomes.loc[outcomes.status != "ok", list(REJECTED_COLUMNS)]
    write_csv(rejected, path)
    return rejected


def _reason_kind(reason: str) -> str:
    """A reason without its paths and numbers, so that reasons of one kind count together."""
    return re.sub(r"[-+]?\d+(\.\d+)?", "#", re.sub(r"\S*/\S*", "<file>", reason))


def common_reasons(outcomes: pd.DataFrame, top: int = 3) -> list[tuple[int, str]]:
    """The most common kinds of rejection: (tiles, the first such reason), most first."""
    rejected = outcomes.loc[outcomes.status != "ok", "reason"].fillna("")
    kinds = rejected.map(_reason_kind)
    counts = kinds.value_counts()
    first: dict[str, str] = {}
    for kind, reason in zip(kinds, rejected, strict=True):
        first.setdefault(kind, reason)
    return [(int(count), first[kind]) for kind, count in counts.head(top).items()]


def s1_summary(outcomes: pd.DataFrame) -> dict:
    """What the kept tiles' S1 files were, and the pixels at the casts' extremes."""
    kept = outcomes[outcomes.status == "ok"]
    return {
        "formats": kept.s1_format.value_counts().to_dict(),
        "orbit_pass": kept.orbit_pass.fillna("")
        .replace("", PASS_AS_IN_FILE)
        .value_counts()
        .to_dict(),
        **{field: int(outcomes[field].fillna(0).sum()) for field in COUNT_FIELDS},
    }


def store_summary(store: str | Path, outcomes: pd.DataFrame) -> dict:
    """How the store holds dB, and the pixels clipped to a packed store's range."""
    coding = store_coding(store)
    return {
        "dtype": coding.dtype,
        **({"range_db": [coding.add_offset, coding.highest_db]} if coding.packed else {}),
        **coding.attributes(),
        "clipped_pixels": int(outcomes.clipped_pixels.fillna(0).sum()),
    }


def finalise(
    store: str | Path, outcomes: pd.DataFrame, stats_path: str | Path, rejected_path: str | Path
) -> dict:
    """Write coordinates and train-only statistics, and mark the store complete. With no
    valid train tile, fail quoting the most common reasons of `rejected_path` (written
    before, by `write_rejected`)."""
    frame = outcomes
    valid = (frame.status == "ok").to_numpy()
    train = frame[valid & (frame.split == "train").to_numpy()]
    if train.empty:
        reasons = "; ".join(
            f"{n} tile{'s' * (n > 1)}: {reason}" for n, reason in common_reasons(frame)
        )
        raise SarsslError(
            f"{store}: no valid tile in the train split ({(~valid).sum()} of {len(frame)} "
            f"tiles rejected; most common reasons: {reasons}); see {rejected_path}"
        )
    moments = _moments_of(train)
    stats = {
        "channels": list(CHANNELS),
        "mean": moments.mean.tolist(),
        "std": moments.std.tolist(),
        "pixels": int(moments.count[0]),
        "computed_on": "valid pixels of valid train tiles, as stored (decoded to dB)",
    }
    class_pixels = {
        name: frame.loc[
            valid & (frame.split == name).to_numpy(),
            list(REPORT.class_pixels),
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
    s1 = s1_summary(frame)
    transform = frame[list(REPORT.transform)].to_numpy(np.float64)
    observed = frame[list(OBSERVED_FIELDS)].fillna(0.0).to_numpy(np.float32)
    coordinates = {
        "split": frame.split.to_numpy(),
        "valid": valid,
        "crs": frame.crs.fillna("").to_numpy(),
        "transform": np.nan_to_num(transform, nan=0.0),
        "nodata_fraction": frame.nodata_fraction.fillna(1.0).to_numpy(),
        "observed_fraction": observed.reshape(len(frame), len(SEASONS), len(POLARISATIONS)),
        "orbit_pass": frame.orbit_pass.fillna("").to_numpy(),
        "wraps_unwrapped": frame.wraps_unwrapped.fillna(0).to_numpy(),
        "wraps_nodata": frame.wraps_nodata.fillna(0).to_numpy(),
        "effective_pixel_m": frame.effective_pixel_m.to_numpy(),
        "clipped_pixels": frame.clipped_pixels.fillna(0).to_numpy(),
    }
    finalise_store(store, coordinates, stats=stats, s1=s1)
    summary = {
        "normalisation": stats,
        "tiles": tiles_per_split,
        "class_pixels": class_pixels,
        "classes": [c.name for c in CLASSES],
        "s1": s1,
        "store": store_summary(store, frame),
    }
    write_text_atomic(stats_path, json.dumps(summary, indent=2))
    return summary
