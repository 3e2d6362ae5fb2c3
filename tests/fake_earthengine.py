"""FakeEarthEngine: a test double of the earthengine-api client (`ee`), named as one.

Earth Engine cannot be reached from the machines this project is built and tested on, so
the export is tested at its boundary: this double records the expressions built with it,
answers `ee.data.computePixels` (our export) and `Image.getDownloadURL` with the HTTP
download (geetiles' download, through `FakeDownloads` in place of `requests`) with real
GeoTIFFs on the requested grid, and can be told to fail like the real service does (an
EEException raised while handling an HttpError, as `ee.data._execute_cloud_call` does; a
size-limit refusal).

Like the service, it reduces a collection without acquisitions (see `empty`) to an image
without bands, whose rename then fails when the pixels are computed; a collection merged with
a fully masked image (`ee.Image.constant(...).updateMask(0)`) reduces to masked bands there.
"""

import io
import json
from collections import defaultdict
from dataclasses import dataclass, field, replace
from typing import Any, Literal

import googleapiclient.errors
import httplib2
import numpy as np
import rasterio
from ee.ee_exception import EEException
from rasterio.io import MemoryFile
from rasterio.transform import Affine, from_bounds

SIZE_LIMIT_MESSAGE = (
    "Total request size (70000000 bytes) must be less than or equal to 50331648 bytes."
)
# The nodata value Earth Engine tags and writes for masked pixels in the GeoTIFF of a
# float32 or uint8 image (geedim's integration test `test_ee_geotiff_nodata` checks these
# against the service's computePixels GeoTIFF).
EE_NODATA = {"float32": float("-inf"), "uint8": 0}


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


def season_of(ops: tuple) -> str | None:
    """The season of a collection's filterDate by its start month (winter starts in
    December)."""
    starts = [op[1] for op in ops if op[0] == "filterDate"]
    if not starts:
        return None
    month = int(starts[0].split("-")[1])
    return {12: "winter", 3: "spring", 6: "summer", 9: "autumn"}[month]


def orbit_pass_of(ops: tuple) -> str | None:
    """'ascending' or 'descending' where a collection is filtered on its orbit pass."""
    for op in ops:
        if op[0] == "filter" and op[1][:2] == ("eq", "orbitProperties_pass"):
            return op[1][2].lower()
    return None


@dataclass(frozen=True)
class BandSource:
    """Where one band of an expression comes from: what `FakeEarthEngine` serves for it."""

    collection: str
    ops: tuple  # the collection's filters, in order
    reducer: str  # mean, median or first
    band: str  # the band selected from the collection (VV, VH, Map)
    acquired: bool = True  # False: no acquisition, the band is masked everywhere

    @property
    def season(self) -> str | None:
        return season_of(self.ops)

    @property
    def orbit_pass(self) -> str | None:
        return orbit_pass_of(self.ops)


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
    # What the service reports when it computes this image's pixels: the client builds an
    # expression without knowing band counts, so errors such as a rename of an image without
    # bands come back from computePixels.
    error: str | None = None
    fully_masked: bool = False  # updateMask(0)

    def _with(self, bands, op, sources):
        return replace(self, bands=tuple(bands), ops=(*self.ops, op), sources=tuple(sources))

    def rename(self, names):
        names = (names,) if isinstance(names, str) else tuple(names)
        renamed = self._with(names, ("rename", names), self.sources)
        if len(names) != len(self.bands) and not self.error:
            # The service's message (seen in an HttpError 400 of value:compute).
            error = (
                f"Image.rename: The number of names ({len(names)}) must match the number "
                f"of bands ({len(self.bands)})."
            )
            return replace(renamed, error=error)
        return renamed

    def updateMask(self, mask):
        return replace(
            self._with(self.bands, ("updateMask", mask), self.sources),
            fully_masked=self.fully_masked or mask == 0,
        )

    def select(self, names):
        names = tuple(names)
        if self.error:  # the service stops at the first error: nothing else is checked
            return self._with(names, ("select", names), ())
        missing = set(names) - set(self.bands)
        if missing:
            raise EEException(
                f"Image.select: Pattern '{sorted(missing)[0]}' did not match any bands."
            )
        picked = [self.bands.index(n) for n in names]
        sources = [self.sources[i] for i in picked] if self.sources else ()
        return self._with(names, ("select", names), sources)

    def addBands(self, other):
        combined = self._with(
            (*self.bands, *other.bands), ("addBands", other.ops), (*self.sources, *other.sources)
        )
        return replace(combined, error=self.error or other.error)

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
    name: str | None  # None: built from a list of images
    ops: tuple = ()
    selected: tuple[str, ...] = ()
    owner: "FakeEarthEngine | None" = None
    images: tuple[FakeImage, ...] = ()  # of a collection built from a list, or merged in

    def _with(self, *op, selected=None):
        return replace(
            self,
            ops=(*self.ops, op),
            selected=selected if selected is not None else self.selected,
        )

    def filterBounds(self, region):
        return self._with("filterBounds", region)

    def filterDate(self, start, end):
        return self._with("filterDate", start, end)

    def filter(self, f):
        return self._with("filter", f)

    def select(self, bands):
        return self._with("select", tuple(bands), selected=tuple(bands))

    def merge(self, other):
        if other.name is not None:
            raise NotImplementedError("the double merges only collections built from images")
        merged = self._with("merge", tuple(image.ops for image in other.images))
        return replace(merged, images=(*self.images, *other.images))

    def _reduce(self, reducer, bands):
        """Reducers skip masked pixels: with merged images fully masked, a band is the
        reduction of the acquisitions, masked everywhere without any. Without any image at
        all, the result has no bands, as on the service."""
        acquired = self.name is not None and not self.owner.without_acquisitions(self.ops)
        members = [tuple(bands)] if acquired else []
        members += [image.bands for image in self.images]
        ops = ((self.name, self.ops), (reducer,))
        if not members:
            return FakeImage((), ops, (), self.owner)
        if len(set(members)) > 1 or not all(image.fully_masked for image in self.images):
            raise NotImplementedError(
                "the double reduces merged images only when fully masked, with the same bands"
            )
        sources = tuple(BandSource(self.name, self.ops, reducer, b, acquired) for b in members[0])
        return FakeImage(members[0], ops, sources, self.owner)

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
        error = next((image.error for image in images if image.error), None)
        ops = (("cat", tuple(i.ops for i in images)),)
        return FakeImage(bands, ops, sources, owner, error)

    @staticmethod
    def constant(values: list):
        """An integer image, one band per value, named as the service names them."""
        bands = tuple(f"constant_{i}" for i in range(len(values)))
        return FakeImage(bands, (("constant", tuple(values)),))


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
    `scene`, pixels come from `scene.values(source, lon, lat)` (see tests/real_scene.py;
    NaN where masked), else each band is the constant `band_value`.

    `empty` holds (season, orbit pass) pairs whose collections have no acquisition, at
    every tile: ("winter", None) for every pass, ("winter", "ascending") for one.

    computePixels marks masked pixels in its GeoTIFF as the service does: tagged nodata that
    the masked pixels hold (`payload_mask` "nodata"), the values `masked_values` per dtype
    (by default Earth Engine's, EE_NODATA). With `payload_mask` "internal" it marks them
    with a GDAL internal mask instead (one for all bands) and no nodata, `masked_values`
    under it: a reader that reads the mask does not depend on those values.
    getDownloadURL downloads keep masked pixels as zeros without nodata, which the tests of
    geetiles' download code are written against."""

    failures: dict = field(default_factory=lambda: defaultdict(list))
    max_bands: int = 64
    requests: list = field(default_factory=list)
    initialized_with: dict | None = None
    scene: Any = None
    downloads: FakeDownloads = field(default_factory=FakeDownloads)
    empty: set = field(default_factory=set)
    payload_mask: Literal["nodata", "internal"] = "nodata"
    masked_values: dict = field(default_factory=lambda: dict(EE_NODATA))

    def __post_init__(self):
        self.Filter, self.Geometry, self.Image = FakeFilter, FakeGeometry, FakeImageNamespace
        self.data = FakeData(self)

    def ImageCollection(self, source):
        if isinstance(source, str):
            return FakeImageCollection(source, owner=self)
        return FakeImageCollection(None, owner=self, images=tuple(source))

    def without_acquisitions(self, ops: tuple) -> bool:
        season, orbit_pass = season_of(ops), orbit_pass_of(ops)
        return (season, None) in self.empty or (season, orbit_pass) in self.empty

    def Initialize(self, credentials=None, project=None, url=None):
        self.initialized_with = {"credentials": credentials, "project": project, "url": url}

    def Authenticate(self, auth_mode=None):
        pass

    def ServiceAccountCredentials(self, email=None, key_file=None):
        return ("service account credentials", key_file)

    def pixels(self, image: FakeImage, transform: Affine, width: int, height: int) -> np.ndarray:
        """(band, row, col) float64 of `image` on a grid, NaN where masked."""
        lon, lat = transform @ tuple(np.meshgrid(np.arange(width) + 0.5, np.arange(height) + 0.5))
        bands = []
        for band, source in zip(image.bands, image.sources, strict=True):
            if not source.acquired:
                bands.append(np.full((height, width), np.nan))
            elif self.scene is not None:
                bands.append(self.scene.values(source, lon, lat))
            else:
                value = 40.0 if band == "Map" else band_value(band, transform.c)
                bands.append(np.full((height, width), value))
        return np.stack(bands)

    def payload(self, values: np.ndarray, dtype: str, crs: str, transform: Affine) -> bytes:
        """computePixels' GeoTIFF of `values` (NaN where masked), masked pixels marked as
        `payload_mask` says."""
        masked = np.isnan(values)
        fill = self.masked_values[dtype]
        data = np.where(masked, fill, values).astype(dtype)
        if self.payload_mask == "nodata":
            return geotiff_bytes(data, crs, transform, nodata=fill)
        if (masked != masked[0]).any():
            raise NotImplementedError("a GeoTIFF internal mask is one mask for all bands")
        return geotiff_bytes(data, crs, transform, masked=masked[0])

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
        values = self.pixels(image, transform, width, height)
        data = np.nan_to_num(values, nan=0.0).astype(image_dtype(image))
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
        if image.error:
            raise http_failure(400, image.error)
        if len(image.bands) > self.max_bands:
            raise EEException(SIZE_LIMIT_MESSAGE)
        height, width = grid["dimensions"]["height"], grid["dimensions"]["width"]
        values = self.pixels(image, transform, width, height)
        return self.payload(values, image_dtype(image), grid["crsCode"], transform)


def image_dtype(image: FakeImage) -> str:
    """WorldCover codes as uint8 (the export's toUint8), anything else float32."""
    return "uint8" if image.bands == ("Map",) else "float32"


def geotiff_bytes(
    data: np.ndarray,
    crs: str,
    transform: Affine,
    nodata: float | None = None,
    masked: np.ndarray | None = None,
) -> bytes:
    """A GeoTIFF of (band, row, col) `data`, with `nodata` tagged if given and, if given,
    `masked` (row, col; True where masked) as a GDAL internal mask of all bands."""
    count, height, width = data.shape
    profile = {"driver": "GTiff", "width": width, "height": height, "count": count}
    # Internal: a mask beside the file (.msk) would not be in the bytes returned.
    with rasterio.Env(GDAL_TIFF_INTERNAL_MASK=True), MemoryFile() as memory:
        with memory.open(
            **profile, dtype=data.dtype, crs=crs, transform=transform, nodata=nodata
        ) as dst:
            dst.write(data)
            if masked is not None:
                dst.write_mask(np.where(masked, 0, 255).astype("uint8"))
        return memory.read()
