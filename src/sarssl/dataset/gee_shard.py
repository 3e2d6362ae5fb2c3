"""The download of one shard of the `gee` export: every tile's requests (`sarssl.dataset.gee`)
sent with ``ee.data.computePixels`` and written as GeoTIFFs in the geetiles layout that the
rest of the pipeline reads, with the shard's manifest and summary.

Why earthengine-api directly (``ee.data.computePixels``) rather than geetiles' download:
computePixels takes the exact pixel grid (dimensions and affine transform in EPSG:4326), so
every tile comes back with exactly tile_px x tile_px pixels on the tile's bounds, with no
second HTTP request and no crop; and the retries, resume and quota handling are ours.
geetiles still defines the grid and the identifiers.
"""

import json
import logging
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from rasterio.io import MemoryFile
from rasterio.transform import Affine

from ..atomic import write_text_atomic
from ..errors import SarsslError
from .gee import DatasetRequest, S1Request, WorldCoverRequest
from .gee_session import RetryPolicy, classify, redact, with_retries
from .geotiff import write_geotiff
from .grid import tile_bounds
from .sources import ERROR_COLUMN, shard_manifest, write_csv

log = logging.getLogger(__name__)
# RetryPolicy is frozen: one instance serves every call.
DEFAULT_POLICY = RetryPolicy()


# --------------------------------------------------------------------------------------
# One tile


def grid_transform(grid: dict) -> Affine:
    """The affine transform of a computePixels grid (`sarssl.dataset.gee.pixel_grid`)."""
    a = grid["affineTransform"]
    return Affine(
        a["scaleX"], a["shearX"], a["translateX"], a["shearY"], a["scaleY"], a["translateY"]
    )


def fetch_bands(
    ee: Any, image: Any, bands: list[str], grid: dict, policy: RetryPolicy
) -> np.ma.MaskedArray:
    """(band, row, col) pixels of `bands`, masked where Earth Engine masked them; a request
    over the size limit is split by bands and the parts stitched."""

    def request() -> bytes:
        return ee.data.computePixels(
            {"expression": image.select(bands), "fileFormat": "GEO_TIFF", "grid": grid}
        )

    try:
        payload = with_retries(request, policy)
    except Exception as err:
        if classify(err) != "too_large" or len(bands) == 1:
            raise
        half = len(bands) // 2
        log.info("request of %d bands too large, splitting", len(bands))
        return np.ma.concatenate(
            [
                fetch_bands(ee, image, bands[:half], grid, policy),
                fetch_bands(ee, image, bands[half:], grid, policy),
            ]
        )
    # The GeoTIFF carries Earth Engine's mask (a nodata value: -inf for float bands, 0 for
    # uint8); read it as a mask instead of guessing masked pixels from their values.
    with MemoryFile(payload) as memory, memory.open() as src:
        data = src.read(masked=True)
        crs = src.crs.to_string() if src.crs else ""
    expected = (len(bands), grid["dimensions"]["height"], grid["dimensions"]["width"])
    if data.shape != expected or crs != grid["crsCode"]:
        raise SarsslError(
            f"Earth Engine returned {data.shape} in {crs!r}, "
            f"expected {expected} in {grid['crsCode']}"
        )
    return data


def export_tile(
    ee: Any,
    request: DatasetRequest,
    path: Path,
    bounds: tuple[float, float, float, float],
    tile_px: int,
    policy: RetryPolicy,
) -> bool:
    """Download one tile of one dataset unless its file exists; False if it was there."""
    if path.is_file():  # files are written atomically: an existing one is complete
        return False
    description = request.describe(bounds, tile_px)
    pixels = fetch_bands(
        ee, request.image(ee, description), list(request.bands), description["grid"], policy
    )
    # Masked pixels become the dataset's nodata (NaN for S1, 0 for WorldCover) whatever
    # value the payload holds there.
    data = np.where(np.ma.getmaskarray(pixels), request.nodata, np.ma.getdata(pixels))
    write_geotiff(
        path,
        data.astype(request.dtype, copy=False),
        request.bands,
        "EPSG:4326",
        grid_transform(description["grid"]),
        request.nodata,
    )
    return True


# --------------------------------------------------------------------------------------
# One shard


def remove_stale_temporaries(paths: list[Path]) -> None:
    """Temporaries that killed writers of `paths` left (see sarssl.atomic: `.{name}.*.tmp`);
    only these tiles', so that jobs of other shards writing beside them are undisturbed.
    Each folder is listed once: a dataset folder holds every tile of the AOI."""
    wanted: dict[Path, set[str]] = {}
    for path in paths:
        wanted.setdefault(path.parent, set()).add(path.name)
    for folder, names in wanted.items():
        if not folder.is_dir():
            continue
        for entry in os.scandir(folder):
            if entry.name.startswith(".") and entry.name.endswith(".tmp"):
                target = entry.name[1:].removesuffix(".tmp").rsplit(".", 1)[0]
                if target in names:
                    Path(entry.path).unlink(missing_ok=True)


@dataclass
class ExportSummary:
    tiles: int = 0
    downloaded: int = 0
    already_present: int = 0
    failed: dict[str, str] = field(default_factory=dict)

    @property
    def complete(self) -> int:
        return self.tiles - len(self.failed)


def export_shard(
    ee: Any,
    tiles_file: str | Path,
    shard: int,
    n_shards: int,
    requests: tuple[S1Request, WorldCoverRequest],
    tile_px: int,
    manifest_path: str | Path,
    summary_path: str | Path,
    concurrency: int,
    policy: RetryPolicy = DEFAULT_POLICY,
) -> ExportSummary:
    """Export every tile of one shard, `concurrency` requests at a time. A tile that fails
    for good is recorded with its reason (in the manifest and the summary) and the others go
    on; a rerun downloads only the files that are missing."""
    s1_request, label_request = requests
    manifest, rows = shard_manifest(
        tiles_file, shard, n_shards, s1_request.dataset, label_request.dataset
    )
    summary = ExportSummary(tiles=len(manifest))
    remove_stale_temporaries([Path(p) for p in (*manifest.s1_path, *manifest.label_path)])

    def one(
        tile: str, s1_path: str, label_path: str, bounds: tuple
    ) -> tuple[str, list[bool] | str]:
        try:
            return tile, [
                export_tile(ee, request, Path(path), bounds, tile_px, policy)
                for request, path in ((s1_request, s1_path), (label_request, label_path))
            ]
        except Exception as err:
            return tile, f"{type(err).__name__}: {redact(str(err))}"

    with ThreadPoolExecutor(max_workers=concurrency) as pool:
        jobs = [
            pool.submit(one, m.tile, m.s1_path, m.label_path, tuple(b))
            for m, b in zip(manifest.itertuples(), tile_bounds(rows), strict=True)
        ]
        for job in jobs:
            tile, outcome = job.result()
            if isinstance(outcome, str):
                summary.failed[tile] = outcome
                log.error("tile %s failed: %s", tile, outcome)
            elif any(outcome):
                summary.downloaded += 1
            else:
                summary.already_present += 1
    manifest[ERROR_COLUMN] = [summary.failed.get(t, "") for t in manifest.tile]
    report = {
        "tiles": summary.tiles,
        "complete": summary.complete,
        "downloaded": summary.downloaded,
        "already_present": summary.already_present,
        "missing": len(summary.failed),
        "failures": summary.failed,
    }
    write_text_atomic(summary_path, json.dumps(report, indent=2))
    write_csv(manifest, manifest_path)
    log.info(
        "shard %d: %d of %d tiles complete, %d missing",
        shard,
        summary.complete,
        summary.tiles,
        len(summary.failed),
    )
    return summary
