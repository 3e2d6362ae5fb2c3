"""FakeEarthEngine: a test double of the earthengine-api client (`ee`), named as one.

Earth Engine cannot be reached from the machines this project is built and tested on, so
the export is tested at its boundary: this double records the expressions built with it,
answers `ee.data.computePixels` (our export) and `Image.getDownloadURL` with the HTTP
download (geetiles' download, through `FakeDownloads` in place of `requests`) with real
GeoTIFFs on the requested grid, and can be told to fail like the real service does (an
EEException raised while handling an HttpError, as `ee.data._execute_cloud_call` does; a
size-limit refusal).
"""

import io
import json
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

import googleapiclient.errors
import httplib2
import numpy as np
from ee.ee_exception import EEException
from rasterio.io import MemoryFile
from rasterio.transform import Affine, from_bounds

SIZE_LIMIT_MESSAGE = (
    "Total request size (70000000 bytes) must be less than or equal to 50331648 bytes."
)


def http_failure(status: int, reason: str) -> EEException:
    """The exception ee raises for an HTTP error: EEException, with the HttpError as context."""
    http_error = googleapiclient.errors.HttpError(
        httplib2.Response({"status": status}), json.dumps({"error": {"message": reason}}).encode()
    )
    try:
        raise http_error
    except googleapiclient.errors.HttpError:
        try:
            raise EEException(reason)
        except EEException as translated:
            return translated


@dataclass(frozen=True)
class BandSource:
    """Where one band of an expression comes from: what `FakeEarthEngine` serves for it."""

    collection: str
    ops: tuple  # the collection's filters, in order
    reducer: str  # mean, median or first
    band: str  # the band selected from the collection (VV, VH, Map)

    @property
    def season(self) -> str | None:
        """The season of a filterDate by its start month (winter starts in December)."""
        starts = [op[1] for op in self.ops if op[0] == "filterDate"]
        if not starts:
            return None
        month = int(starts[0].split("-")[1])
        return {12: "winter", 3: "spring", 6: "summer", 9: "autumn"}[month]

    @property
    def orbit_pass(self) -> str | None:
        for op in self.ops:
            if op[0] == "filter" and op[1][:2] == ("eq", "orbitProperties_pass"):
                return op[1][2].lower()
        return None


class FakeList:
    def __init__(self, values):
        self.values = list(values)

    def getInfo(self):
        return self.values


@dataclass(frozen=True)
class FakeImage:
    bands: tuple[str, ...]
    ops: tuple = ()
    sources: tuple[BandSource, ...] = ()
    owner: "FakeEarthEngine | None" = None

    def _with(self, bands, op, sources):
        return FakeImage(tuple(bands), (*self.ops, op), tuple(sources), self.owner)

    def rename(self, names):
        names = (names,) if isinstance(names, str) else tuple(names)
        return self._with(names, ("rename", names), self.sources)

    def select(self, names):
        names = tuple(names)
        missing = set(names) - set(self.bands)
        if missing:
            raise EEException(
                f"Image.select: Pattern '{sorted(missing)[0]}' did not match any bands."
            )
        picked = [self.bands.index(n) for n in names]
        sources = [self.sources[i] for i in picked] if self.sources else ()
        return self._with(names, ("select", names), sources)

    def addBands(self, other):
        return self._with(
            (*self.bands, *other.bands), ("addBands", other.ops), (*self.sources, *other.sources)
        )

    def toFloat(self):
        return self._with(self.bands, ("toFloat",), self.sources)

    def toUint8(self):
        return self._with(self.bands, ("toUint8",), self.sources)

    def bandNames(self):
        return FakeList(self.bands)

    def getDownloadURL(self, params):
        return self.owner.download_url(self, params)


@dataclass(frozen=True)
class FakeImageCollection:
    name: str
    ops: tuple = ()
    selected: tuple[str, ...] = ()
    owner: "FakeEarthEngine | None" = None

    def _with(self, *op, selected=None):
        return FakeImageCollection(
            self.name,
            (*self.ops, op),
            selected if selected is not None else self.selected,
            self.owner,
        )

    def filterBounds(self, region):
        return self._with("filterBounds", region)

    def filterDate(self, start, end):
        return self._with("filterDate", start, end)

    def filter(self, f):
        return self._with("filter", f)

    def select(self, bands):
        return self._with("select", tuple(bands), selected=tuple(bands))

    def _reduce(self, reducer, bands):
        sources = tuple(BandSource(self.name, self.ops, reducer, b) for b in bands)
        return FakeImage(bands, ((self.name, self.ops), (reducer,)), sources, self.owner)

    def mean(self):
        return self._reduce("mean", self.selected)

    def median(self):
        return self._reduce("median", self.selected)

    def first(self):
        return self._reduce("first", ("Map",) if "WorldCover" in self.name else self.selected)


class FakeFilter:
    @staticmethod
    def eq(prop, value):
        return ("eq", prop, value)

    @staticmethod
    def listContains(prop, value):
        return ("listContains", prop, value)


class FakeGeometry:
    @staticmethod
    def Rectangle(coords, proj=None, geodesic=None):
        return ("Rectangle", tuple(coords), proj, geodesic)

    @staticmethod
    def Polygon(coords):
        return ("Polygon", tuple(tuple(c) for c in coords))


class FakeImageNamespace:
    @staticmethod
    def cat(images):
        bands = tuple(b for image in images for b in image.bands)
        sources = tuple(s for image in images for s in image.sources)
        owner = images[0].owner if images else None
        return FakeImage(bands, (("cat", tuple(i.ops for i in images)),), sources, owner)


def band_value(band: str, west: float) -> float:
    """The value the double serves for a band, distinct per band and tile (dB-like)."""
    return -10.0 - (sum(map(ord, band)) % 17) - round(west * 1000) % 5


@dataclass
class FakeData:
    owner: "FakeEarthEngine"

    def computePixels(self, params):
        return self.owner.compute_pixels(params)


class FakeResponse:
    """What `requests.get(url, stream=True)` returns, as far as geetiles uses it."""

    def __init__(self, payload: bytes | None):
        self.status_code = 200 if payload is not None else 404
        self.raw = io.BytesIO(payload or b"")

    def raise_for_status(self):
        if self.status_code != 200:
            raise RuntimeError(f"HTTP {self.status_code}")


@dataclass
class FakeDownloads:
    """Stands in for the `requests` module where geetiles downloads a getDownloadURL."""

    files: dict = field(default_factory=dict)

    def get(self, url, stream=False):
        return FakeResponse(self.files.pop(url, None))


@dataclass
class FakeEarthEngine:
    """Stands in for the `ee` module. `failures[(west rounded to 1e-6)]` is a list of
    exceptions raised, one per request, before requests of that tile succeed;
    `max_bands` refuses larger requests with Earth Engine's size-limit message. With a
    `scene`, pixels come from `scene.values(source, lon, lat)` (see tests/real_scene.py),
    else each band is the constant `band_value`. Masked pixels are served as zeros, as
    Earth Engine encodes them."""

    failures: dict = field(default_factory=lambda: defaultdict(list))
    max_bands: int = 64
    requests: list = field(default_factory=list)
    initialized_with: dict | None = None
    scene: Any = None
    downloads: FakeDownloads = field(default_factory=FakeDownloads)

    def __post_init__(self):
        self.Filter, self.Geometry, self.Image = FakeFilter, FakeGeometry, FakeImageNamespace
        self.data = FakeData(self)

    def ImageCollection(self, name):
        return FakeImageCollection(name, owner=self)

    def Initialize(self, credentials=None, project=None, url=None):
        self.initialized_with = {"credentials": credentials, "project": project, "url": url}

    def Authenticate(self, auth_mode=None):
        pass

    def ServiceAccountCredentials(self, email=None, key_file=None):
        return ("service account credentials", key_file)

    def pixels(self, image: FakeImage, transform: Affine, width: int, height: int) -> np.ndarray:
        """(band, row, col) of `image` on a grid: the scene's values, 0 where masked."""
        labels = image.bands == ("Map",)
        dtype = "uint8" if labels else "float32"
        if self.scene is None:
            return np.stack(
                [
                    np.full((height, width), 40 if labels else band_value(b, transform.c), dtype)
                    for b in image.bands
                ]
            )
        lon, lat = transform @ tuple(np.meshgrid(np.arange(width) + 0.5, np.arange(height) + 0.5))
        values = np.stack([self.scene.values(source, lon, lat) for source in image.sources])
        return np.nan_to_num(values, nan=0.0).astype(dtype)

    def download_url(self, image: FakeImage, params) -> str:
        """getDownloadURL: a GeoTIFF of the region's bounding box at `dimensions`, fetched
        later through `downloads` (the stand-in for the HTTP download)."""
        _, coords = params["region"]
        lons, lats = zip(*coords, strict=True)
        width, height = (int(v) for v in params["dimensions"].split("x"))
        transform = from_bounds(min(lons), min(lats), max(lons), max(lats), width, height)
        self.requests.append(
            {"west": round(transform.c, 6), "bands": image.bands, "download": params}
        )
        data = self.pixels(image, transform, width, height)
        url = f"https://fake-earthengine.test/download/{len(self.requests)}"
        self.downloads.files[url] = geotiff_bytes(data, params["crs"], transform)
        return url

    def compute_pixels(self, params):
        grid, image = params["grid"], params["expression"]
        transform = Affine(
            *(
                grid["affineTransform"][k]
                for k in ("scaleX", "shearX", "translateX", "shearY", "scaleY", "translateY")
            )
        )
        key = round(transform.c, 6)
        self.requests.append(
            {
                "west": key,
                "bands": image.bands,
                "ops": image.ops,
                "grid": grid,
                "fileFormat": params["fileFormat"],
            }
        )
        if self.failures[key]:
            raise self.failures[key].pop(0)
        if len(image.bands) > self.max_bands:
            raise EEException(SIZE_LIMIT_MESSAGE)
        height, width = grid["dimensions"]["height"], grid["dimensions"]["width"]
        return geotiff_bytes(
            self.pixels(image, transform, width, height), grid["crsCode"], transform
        )


def geotiff_bytes(data: np.ndarray, crs: str, transform: Affine) -> bytes:
    """A GeoTIFF as Earth Engine returns it: no nodata value, masked pixels as zeros."""
    count, height, width = data.shape
    profile = {"driver": "GTiff", "width": width, "height": height, "count": count}
    with MemoryFile() as memory:
        with memory.open(**profile, dtype=data.dtype, crs=crs, transform=transform) as dst:
            dst.write(data)
        return memory.read()
