"""Earth Engine export of the `gee` source: seasonal Sentinel-1 GRD composites and ESA
WorldCover per tile, written in the geetiles layout that the rest of the pipeline reads.

Why earthengine-api directly (``ee.data.computePixels``) rather than geetiles' download:
computePixels takes the exact pixel grid (dimensions and affine transform in EPSG:4326), so
every tile comes back with exactly tile_px x tile_px pixels on the tile's bounds, with no
second HTTP request and no crop; and the retries, resume and quota handling are ours.
geetiles still defines the grid and the identifiers.

Every request is described first as plain data (`describe`), and the Earth Engine objects are
built from that description, so the dry run prints exactly what is sent.
"""

import json
import logging
import os
import random
import re
import time
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
from rasterio.io import MemoryFile
from rasterio.transform import Affine

from ..atomic import write_text_atomic
from ..errors import SarsslError
from .bands import POLARISATIONS, SEASONS
from .geotiff import write_geotiff
from .grid import tile_bounds
from .sources import ERROR_COLUMN, shard_manifest, write_csv

log = logging.getLogger(__name__)

S1_COLLECTION = "COPERNICUS/S1_GRD"
WORLDCOVER_COLLECTIONS = {2020: "ESA/WorldCover/v100", 2021: "ESA/WorldCover/v200"}
OrbitPass = Literal["ASCENDING", "DESCENDING", "BOTH"]
Reducer = Literal["mean", "median"]


class GeeAuthError(SarsslError):
    """Earth Engine credentials or project are missing or unusable."""


# --------------------------------------------------------------------------------------
# Requests, as data


def season_dates(year: int) -> dict[str, tuple[str, str]]:
    """Start (inclusive) and end (exclusive, as ee's filterDate) of each season of `year`.
    Winter runs from 1 December of the previous year to the end of February."""
    return {
        "winter": (f"{year - 1}-12-01", f"{year}-03-01"),
        "spring": (f"{year}-03-01", f"{year}-06-01"),
        "summer": (f"{year}-06-01", f"{year}-09-01"),
        "autumn": (f"{year}-09-01", f"{year}-12-01"),
    }


def pixel_grid(bounds: tuple[float, float, float, float], tile_px: int) -> dict:
    """computePixels grid: tile_px x tile_px pixels exactly on the tile's bounds, EPSG:4326."""
    west, south, east, north = bounds
    return {
        "dimensions": {"width": tile_px, "height": tile_px},
        "affineTransform": {
            "scaleX": (east - west) / tile_px,
            "shearX": 0.0,
            "translateX": west,
            "shearY": 0.0,
            "scaleY": -(north - south) / tile_px,
            "translateY": north,
        },
        "crsCode": "EPSG:4326",
    }


def grid_transform(grid: dict) -> Affine:
    a = grid["affineTransform"]
    return Affine(
        a["scaleX"], a["shearX"], a["translateX"], a["shearY"], a["scaleY"], a["translateY"]
    )


# Our product: per season the mean of the dB images (the 2023 geetiles definition, which
# made the paper's data and M3LEO), VV and VH of the ascending pass by default, in float32 dB
# (no cast). geetiles 0.1.7 exports the median per season and pass, both passes kept:
# `composite: median, orbit_pass: BOTH` gives that product, without its uint8 cast.
PASS_SUFFIXES = {"ASCENDING": "asc", "DESCENDING": "des"}


@dataclass(frozen=True)
class S1Request:
    """Seasonal composites of COPERNICUS/S1_GRD (already in dB), IW mode, VV and VH; with
    orbit_pass BOTH one composite per pass (bands `{season}_{pol}_asc` and `_des`)."""

    year: int
    orbit_pass: OrbitPass = "ASCENDING"
    reducer: Reducer = "mean"
    dataset: str = "s1grd-2020"
    dtype: str = "float32"  # dB values are negative: never an unsigned type
    nodata: float = float("nan")

    @property
    def passes(self) -> dict[str, str]:
        """Orbit pass -> band-name suffix ('' for a single pass: bands `{season}_{pol}`)."""
        if self.orbit_pass == "BOTH":
            return {p: f"_{suffix}" for p, suffix in PASS_SUFFIXES.items()}
        return {self.orbit_pass: ""}

    @property
    def bands(self) -> tuple[str, ...]:
        return tuple(
            f"{s}_{p}{suffix}"
            for s in SEASONS
            for suffix in self.passes.values()
            for p in POLARISATIONS
        )

    def describe(self, bounds: tuple[float, float, float, float], tile_px: int) -> dict:
        filters = [
            {"property": "instrumentMode", "eq": "IW"},
            {"property": "transmitterReceiverPolarisation", "contains": "VV"},
            {"property": "transmitterReceiverPolarisation", "contains": "VH"},
        ]
        return {
            "collection": S1_COLLECTION,
            "filters": filters,
            "orbit_passes": {p: {"property": "orbitProperties_pass", "eq": p} for p in self.passes},
            "seasons": {
                s: {"start": a, "end_exclusive": b} for s, (a, b) in season_dates(self.year).items()
            },
            "composite": self.reducer,
            "composite_of": "the dB images of each season and orbit pass",
            "empty_season": "a fully masked float image of the selected bands is merged into "
            "the collection of each season and pass: without acquisitions the bands of the "
            "composite are masked (NaN in the file) rather than missing",
            "select": list(POLARISATIONS),
            "bands": list(self.bands),
            "dtype": self.dtype,
            **_grid_description(bounds, tile_px),
        }

    def image(self, ee: Any, description: dict) -> Any:
        region = ee.Geometry.Rectangle(list(description["region"]), "EPSG:4326", False)
        select = description["select"]
        # A season (or pass: Gabon has no ascending one) without acquisitions would reduce to
        # an image without bands, whose rename fails on the service and loses the whole tile.
        # Merged into each collection, this image gives the composite its bands, masked where
        # nothing was acquired; reducers skip masked pixels, so elsewhere it changes nothing.
        # Float like the dB bands (a constant is an integer image).
        no_acquisition = ee.ImageCollection(
            [ee.Image.constant([0] * len(select)).toFloat().rename(select).updateMask(0)]
        )
        composites = []
        for season, dates in description["seasons"].items():
            for orbit_pass, pass_filter in description["orbit_passes"].items():
                collection = ee.ImageCollection(description["collection"]).filterBounds(region)
                collection = collection.filterDate(dates["start"], dates["end_exclusive"])
                for f in [*description["filters"], pass_filter]:
                    if "eq" in f:
                        collection = collection.filter(ee.Filter.eq(f["property"], f["eq"]))
                    else:
                        collection = collection.filter(
                            ee.Filter.listContains(f["property"], f["contains"])
                        )
                composite = getattr(
                    collection.select(select).merge(no_acquisition), description["composite"]
                )()
                suffix = self.passes[orbit_pass]
                composites.append(composite.rename([f"{season}_{p}{suffix}" for p in select]))
        return ee.Image.cat(composites).toFloat()


@dataclass(frozen=True)
class WorldCoverRequest:
    """ESA WorldCover (v100 for 2020, v200 for 2021), band Map, original class codes."""

    year: int
    dataset: str = "esaworldcover-2020"
    dtype: str = "uint8"
    nodata: int = 0

    @property
    def bands(self) -> tuple[str, ...]:
        return ("Map",)

    def describe(self, bounds: tuple[float, float, float, float], tile_px: int) -> dict:
        if self.year not in WORLDCOVER_COLLECTIONS:
            raise SarsslError(
                f"ESA WorldCover exists for {sorted(WORLDCOVER_COLLECTIONS)}, not {self.year}"
            )
        return {
            "collection": WORLDCOVER_COLLECTIONS[self.year],
            "image": "first",
            "bands": list(self.bands),
            "dtype": self.dtype,
            **_grid_description(bounds, tile_px),
        }

    def image(self, ee: Any, description: dict) -> Any:
        return (
            ee.ImageCollection(description["collection"])
            .first()
            .select(description["bands"])
            .toUint8()
        )


def _grid_description(bounds: tuple[float, float, float, float], tile_px: int) -> dict:
    grid = pixel_grid(bounds, tile_px)
    west, south, east, north = bounds
    metres = (north - south) * 110_574.0 / tile_px
    return {
        "region": list(bounds),
        "crs": "EPSG:4326",
        "scale": {
            "degrees": [(east - west) / tile_px, (north - south) / tile_px],
            "metres_approx": round(metres, 2),
        },
        "grid": grid,
        "file_format": "GEO_TIFF",
    }


DatasetRequest = S1Request | WorldCoverRequest


# --------------------------------------------------------------------------------------
# Authentication: unattended, never interactive, no secret in any message


SECRET_PATTERNS = (
    re.compile(r"ya29\.[0-9A-Za-z_\-.]+"),  # OAuth access tokens
    re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----.*?-----END [A-Z ]*PRIVATE KEY-----", re.S),
    re.compile(
        r'("?(?:private_key|access_token|refresh_token|client_secret|id_token)"?\s*[:=]\s*)"?[^",\s}]+'
    ),
    re.compile(r"(Bearer\s+)[0-9A-Za-z_\-.]+"),
)


def redact(text: str) -> str:
    """Remove anything that looks like a credential from `text`."""
    for pattern in SECRET_PATTERNS:
        text = pattern.sub(lambda m: (m.group(1) if m.groups() else "") + "[REDACTED]", text)
    return text


AUTH_HELP = (
    "Earth Engine needs unattended credentials: set gee.key_file in the config (or "
    "GOOGLE_APPLICATION_CREDENTIALS) to a service-account key file, or create application "
    "default credentials once with `gcloud auth application-default login`; and set the "
    "Cloud project with gee.project (or SARSSL_GEE_PROJECT)."
)


@dataclass(frozen=True)
class GeeAuth:
    project: str | None
    key_file: str | None


def resolve_auth(
    project: str | None, key_file: str | None, environ: Mapping[str, str] = os.environ
) -> GeeAuth:
    """Config values first, then the environment."""
    return GeeAuth(
        project=project or environ.get("SARSSL_GEE_PROJECT") or environ.get("GOOGLE_CLOUD_PROJECT"),
        key_file=key_file or environ.get("GOOGLE_APPLICATION_CREDENTIALS"),
    )


def adc_file(environ: Mapping[str, str] = os.environ) -> Path:
    config_dir = environ.get("CLOUDSDK_CONFIG") or Path.home() / ".config" / "gcloud"
    return Path(config_dir) / "application_default_credentials.json"


def credentials_available(auth: GeeAuth, environ: Mapping[str, str] = os.environ) -> bool:
    return bool(auth.key_file) or adc_file(environ).is_file()


ENDPOINTS = {
    # Google recommends the high-volume endpoint for automated, parallel requests such as
    # computePixels of many tiles; the standard one suits interactive use.
    "high_volume": "https://earthengine-highvolume.googleapis.com",
    "standard": "https://earthengine.googleapis.com",
}


def initialize(
    ee: Any,
    auth: GeeAuth,
    environ: Mapping[str, str] = os.environ,
    endpoint: str = "high_volume",
) -> None:
    """Initialise Earth Engine from a service-account key file or application default
    credentials, on `endpoint` (see ENDPOINTS). Fails at once, saying what to set, when
    neither is there: it never prompts (jobs run under SLURM) and never probes a metadata
    server."""
    if not auth.project:
        raise GeeAuthError(f"no Cloud project. {AUTH_HELP}")
    try:
        if auth.key_file:
            if not Path(auth.key_file).is_file():
                raise GeeAuthError(
                    f"service-account key file {auth.key_file} does not exist. {AUTH_HELP}"
                )
            credentials = ee.ServiceAccountCredentials(key_file=auth.key_file)
        elif adc_file(environ).is_file():
            import google.auth

            credentials, _ = google.auth.default(scopes=ee.oauth.SCOPES)
        else:
            raise GeeAuthError(f"no credentials found. {AUTH_HELP}")
        ee.Initialize(credentials=credentials, project=auth.project, url=ENDPOINTS[endpoint])
    except GeeAuthError:
        raise
    except Exception as err:  # whatever the auth libraries raise: keep secrets out
        raise GeeAuthError(
            f"Earth Engine initialisation failed: {redact(str(err))}. {AUTH_HELP}"
        ) from None


# --------------------------------------------------------------------------------------
# Faults: classification, retries with backoff and jitter

TRANSIENT_STATUS = {429, 500, 502, 503, 504}
TRANSIENT_MESSAGES = re.compile(
    r"too many (concurrent )?requests|quota exceeded|rate limit|resource exhausted|"
    r"internal error|service unavailable|backend error|deadline exceeded|timed out|"
    r"temporarily unavailable|connection (reset|aborted|refused)",
    re.I,
)
TOO_LARGE = re.compile(
    r"(total )?request size .* must be less than or equal to|response size exceeds", re.I
)


def http_status(err: BaseException) -> int | None:
    """The HTTP status of an error or of the error it was raised from (ee wraps HttpError)."""
    for candidate in (err, err.__cause__, err.__context__):
        resp = getattr(candidate, "resp", None)
        status = getattr(resp, "status", None) or getattr(candidate, "status_code", None)
        if status is not None:
            return int(status)
    return None


def classify(err: BaseException) -> Literal["transient", "too_large", "permanent"]:
    message = str(err)
    if TOO_LARGE.search(message):
        return "too_large"
    status = http_status(err)
    if status is not None:
        return "transient" if status in TRANSIENT_STATUS else "permanent"
    if isinstance(err, ConnectionError | TimeoutError) or TRANSIENT_MESSAGES.search(message):
        return "transient"
    if type(err).__module__.startswith(("requests", "urllib3", "http.client", "socket")):
        return "transient"
    return "permanent"


@dataclass(frozen=True)
class RetryPolicy:
    max_attempts: int = 8
    base_delay_s: float = 2.0
    max_delay_s: float = 120.0

    def delay(self, attempt: int, draw: float) -> float:
        """Exponential backoff with equal jitter: half the capped delay plus a random half."""
        cap = min(self.max_delay_s, self.base_delay_s * 2**attempt)
        return cap / 2 + draw * cap / 2


def with_retries(
    call: Callable[[], Any],
    policy: RetryPolicy,
    sleep: Callable[[float], None] = time.sleep,
    draw: Callable[[], float] = random.random,
) -> Any:
    """Run `call`, retrying transient faults; other faults are raised at once."""
    for attempt in range(policy.max_attempts):
        try:
            return call()
        except Exception as err:
            if classify(err) != "transient" or attempt == policy.max_attempts - 1:
                raise
            wait = policy.delay(attempt, draw())
            log.warning(
                "transient error (attempt %d), retrying in %.1f s: %s",
                attempt + 1,
                wait,
                redact(str(err)),
            )
            sleep(wait)
    raise AssertionError("unreachable")


# --------------------------------------------------------------------------------------
# Download of one tile


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
    policy: RetryPolicy = RetryPolicy(),
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


def export_requests(
    year: int, orbit_pass: OrbitPass, composite: Reducer, datasets: Mapping[str, str]
) -> tuple[S1Request, WorldCoverRequest]:
    return (
        S1Request(year, orbit_pass, composite, dataset=datasets["s1"]),
        WorldCoverRequest(year, dataset=datasets["labels"]),
    )


def request_summary(requests: tuple[DatasetRequest, ...], tile_px: int) -> str:
    """One line per dataset: what every tile's request is, region aside (shown by the
    export rule in `snakemake --dry-run`)."""
    lines = []
    for request in requests:
        d = request.describe((0.0, 0.0, 1.0, 1.0), tile_px)
        d = {k: v for k, v in d.items() if k not in ("region", "grid", "scale")}
        lines.append(
            f"{request.dataset}: {json.dumps(d)}; "
            f"region: each tile's bounds at {tile_px}x{tile_px} px, EPSG:4326"
        )
    return "\n".join(lines)
