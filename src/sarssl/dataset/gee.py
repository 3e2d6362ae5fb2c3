"""What the `gee` source asks of Earth Engine: per tile, seasonal Sentinel-1 GRD composites
and ESA WorldCover on the tile's exact pixel grid, and the service endpoints.

Every request is described first as plain data (`describe`), and the Earth Engine objects are
built from that description, so the dry run prints exactly what is sent. This module needs no
earthengine-api: `image` takes the `ee` module from its caller. The session (authentication,
retries) is `sarssl.dataset.gee_session`; the download of a shard `sarssl.dataset.gee_shard`.
"""

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from ..errors import SarsslError
from .bands import (
    ASCENDING,
    BAND_ORBITS,
    BOTH,
    LABEL_BAND,
    POLARISATIONS,
    SEASONS,
    band_name,
    export_spelling,
)

S1_COLLECTION = "COPERNICUS/S1_GRD"
WORLDCOVER_COLLECTIONS = {2020: "ESA/WorldCover/v100", 2021: "ESA/WorldCover/v200"}
Reducer = Literal["mean", "median"]

ENDPOINTS = {
    # Google recommends the high-volume endpoint for automated, parallel requests such as
    # computePixels of many tiles; the standard one suits interactive use.
    "high_volume": "https://earthengine-highvolume.googleapis.com",
    "standard": "https://earthengine.googleapis.com",
}


def season_dates(year: int) -> dict[str, tuple[str, str]]:
    """Start (inclusive) and end (exclusive, as ee's filterDate) of each season of `year`.
    Winter runs from 1 December of the previous year to the end of February."""
    # (year, month) where each season starts, SEASONS order, and where the last one ends.
    starts = [(year - 1, 12), (year, 3), (year, 6), (year, 9), (year, 12)]
    dates = [f"{y}-{m:02d}-01" for y, m in starts]
    return {season: (dates[i], dates[i + 1]) for i, season in enumerate(SEASONS)}


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


# Our product: per season the mean of the dB images (the 2023 geetiles definition, which
# made the paper's data and M3LEO), VV and VH of the ascending pass by default, in float32 dB
# (no cast). geetiles 0.1.7 exports the median per season and pass, both passes kept:
# `composite: median, orbit_pass: BOTH` gives that product, without its uint8 cast.
@dataclass(frozen=True)
class S1Request:
    """Seasonal composites of COPERNICUS/S1_GRD (already in dB), IW mode, VV and VH; with
    orbit_pass BOTH one composite per pass (bands `{season}_{pol}_asc` and `_des`)."""

    year: int
    # An OrbitPass in the export spelling, as the config's gee.orbit_pass gives it.
    orbit_pass: str = export_spelling(ASCENDING)
    reducer: Reducer = "mean"
    dataset: str = "s1grd-2020"
    dtype: str = "float32"  # dB values are negative: never an unsigned type
    nodata: float = float("nan")

    @property
    def passes(self) -> dict[str, str | None]:
        """Earth Engine's orbitProperties_pass of each composite -> the orbit pass its band
        names carry (None for a single pass: bands `{season}_{pol}`)."""
        if self.orbit_pass == export_spelling(BOTH):
            return {export_spelling(orbit): orbit for orbit in BAND_ORBITS}
        return {self.orbit_pass: None}

    @property
    def bands(self) -> tuple[str, ...]:
        return tuple(
            band_name(s, p, orbit)
            for s in SEASONS
            for orbit in self.passes.values()
            for p in POLARISATIONS
        )

    def describe(self, bounds: tuple[float, float, float, float], tile_px: int) -> dict:
        filters = [
            {"property": "instrumentMode", "eq": "IW"},
            *(
                {"property": "transmitterReceiverPolarisation", "contains": p}
                for p in POLARISATIONS
            ),
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
            for ee_pass, pass_filter in description["orbit_passes"].items():
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
                orbit = self.passes[ee_pass]
                composites.append(composite.rename([band_name(season, p, orbit) for p in select]))
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
        return (LABEL_BAND,)

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


def export_requests(
    year: int, orbit_pass: str, composite: Reducer, datasets: Mapping[str, str]
) -> tuple[S1Request, WorldCoverRequest]:
    """The requests of every tile; `orbit_pass` is the config's gee.orbit_pass."""
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
