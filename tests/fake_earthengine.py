"""FakeEarthEngine: a test double of the earthengine-api client (`ee`), named as one.

Earth Engine cannot be reached from the machines this project is built and tested on, so
the export is tested at its boundary: this double records the expressions built with it,
answers `ee.data.computePixels` with a real GeoTIFF on the requested grid, and can be told
to fail like the real service does (an EEException raised while handling an HttpError, as
`ee.data._execute_cloud_call` does; a size-limit refusal).
"""

import json
from collections import defaultdict
from dataclasses import dataclass, field

import googleapiclient.errors
import httplib2
import numpy as np
from ee.ee_exception import EEException
from rasterio.io import MemoryFile
from rasterio.transform import Affine

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
class FakeImage:
    bands: tuple[str, ...]
    ops: tuple = ()

    def rename(self, names):
        return FakeImage(tuple(names), (*self.ops, ("rename", tuple(names))))

    def select(self, names):
        names = tuple(names)
        missing = set(names) - set(self.bands)
        if missing:
            raise EEException(
                f"Image.select: Pattern '{sorted(missing)[0]}' did not match any bands."
            )
        return FakeImage(names, (*self.ops, ("select", names)))

    def toFloat(self):
        return FakeImage(self.bands, (*self.ops, ("toFloat",)))

    def toUint8(self):
        return FakeImage(self.bands, (*self.ops, ("toUint8",)))


@dataclass(frozen=True)
class FakeImageCollection:
    name: str
    ops: tuple = ()
    selected: tuple[str, ...] = ()

    def _with(self, *op, selected=None):
        return FakeImageCollection(
            self.name, (*self.ops, op), selected if selected is not None else self.selected
        )

    def filterBounds(self, region):
        return self._with("filterBounds", region)

    def filterDate(self, start, end):
        return self._with("filterDate", start, end)

    def filter(self, f):
        return self._with("filter", f)

    def select(self, bands):
        return self._with("select", tuple(bands), selected=tuple(bands))

    def mean(self):
        return FakeImage(self.selected, ((self.name, self.ops), ("mean",)))

    def median(self):
        return FakeImage(self.selected, ((self.name, self.ops), ("median",)))

    def first(self):
        bands = ("Map",) if "WorldCover" in self.name else self.selected
        return FakeImage(bands, ((self.name, self.ops), ("first",)))


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


class FakeImageNamespace:
    @staticmethod
    def cat(images):
        bands = tuple(b for image in images for b in image.bands)
        return FakeImage(bands, (("cat", tuple(i.ops for i in images)),))


def band_value(band: str, west: float) -> float:
    """The value the double serves for a band, distinct per band and tile (dB-like)."""
    return -10.0 - (sum(map(ord, band)) % 17) - round(west * 1000) % 5


@dataclass
class FakeData:
    owner: "FakeEarthEngine"

    def computePixels(self, params):
        return self.owner.compute_pixels(params)


@dataclass
class FakeEarthEngine:
    """Stands in for the `ee` module. `failures[(west rounded to 1e-6)]` is a list of
    exceptions raised, one per request, before requests of that tile succeed;
    `max_bands` refuses larger requests with Earth Engine's size-limit message."""

    failures: dict = field(default_factory=lambda: defaultdict(list))
    max_bands: int = 64
    requests: list = field(default_factory=list)
    initialized_with: dict | None = None

    def __post_init__(self):
        self.Filter, self.Geometry, self.Image = FakeFilter, FakeGeometry, FakeImageNamespace
        self.data = FakeData(self)

    def ImageCollection(self, name):
        return FakeImageCollection(name)

    def Initialize(self, credentials=None, project=None):
        self.initialized_with = {"credentials": credentials, "project": project}

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
        labels = image.bands == ("Map",)
        dtype = "uint8" if labels else "float32"
        data = np.stack(
            [
                np.full((height, width), 40 if labels else band_value(b, transform.c), dtype)
                for b in image.bands
            ]
        )
        profile = {"driver": "GTiff", "width": width, "height": height, "count": len(image.bands)}
        with MemoryFile() as memory:
            with memory.open(
                **profile, dtype=dtype, crs=grid["crsCode"], transform=transform
            ) as dst:
                dst.write(data)
            return memory.read()
