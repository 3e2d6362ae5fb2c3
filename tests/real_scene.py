"""geetiles' own download code, run offline: real SAR and real WorldCover served by
FakeEarthEngine (the test double of Earth Engine) in place of the service.

`RealScene` is what the double serves: the Sen1Floods11 Sentinel-1 chip (dB VV/VH), one of
its 8 flips and transposes per season and orbit pass, mirrored beyond its edges, and ESA
WorldCover codes of the São Tomé tile; both piecewise constant on cells of `cell_deg`
anchored at (0°, 0°), so that a test can tell which pixels of a download hold one cell's
value whatever the download's grid. Boxes of the scene can be masked (served as zeros, as
Earth Engine encodes masked pixels), served in linear power, or shifted in one
polarisation (`shifted`: water below -30 dB, built-up near 0 dB).

`geetiles_download` runs geetiles 0.1.7's `GEETile.get_tile` (download, `rasterio.mask`,
dtype cast, band names and the dataset's `post_process_tilefile`) for the tiles of a tiles
file, writing what geetiles writes where it writes it.
"""

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from unittest import mock

import geetiles.defs.esaworldcover
import geetiles.defs.s1grd
import geetiles.gee
import numpy as np
import rasterio
import shapely.affinity
from conftest import S1_CHIP, WORLDCOVER
from fake_earthengine import BandSource, FakeEarthEngine
from rasterio.windows import Window

from sarssl.dataset.bands import SEASONS
from sarssl.dataset.grid import read_tiles

# Land of São Tomé in the WorldCover tile, where labels are read (lon, lat wrap into it).
LABEL_BOX = (6.53, 0.12, 6.73, 0.36)
# geetiles' seasons of 2020 (its filterDate ranges).
GEETILES_SEASON_DATES = {
    "winter": ("2019-12-01", "2020-02-28"),
    "spring": ("2020-03-01", "2020-05-31"),
    "summer": ("2020-06-01", "2020-08-31"),
    "fall": ("2020-09-01", "2020-11-30"),
}
Box = tuple[float, float, float, float]


def _inside(box: Box, lon: np.ndarray, lat: np.ndarray) -> np.ndarray:
    west, south, east, north = box
    return (lon >= west) & (lon < east) & (lat >= south) & (lat < north)


def _dihedral(chip: np.ndarray, k: int) -> np.ndarray:
    """The k-th of the 8 flips and transposes of (band, row, col)."""
    out = chip.transpose(0, 2, 1) if k & 4 else chip
    if k & 1:
        out = out[:, ::-1]
    if k & 2:
        out = out[:, :, ::-1]
    return out


@dataclass
class RealScene:
    cell_deg: tuple[float, float] = (60 / 111_320, 60 / 111_320)  # (lon, lat): 60 m at 0°
    masked: list[tuple[Box, set[str]]] = field(default_factory=list)  # box, seasons masked
    linear: list[Box] = field(default_factory=list)  # boxes served in linear power
    # Boxes where one polarisation is served shifted by some dB (box, VV or VH, dB): darker
    # VH for calm water below geetiles' -30 dB, brighter VV for built-up near 0 dB.
    shifted: list[tuple[Box, str, float]] = field(default_factory=list)

    def __post_init__(self):
        with rasterio.open(S1_CHIP) as src:
            chip = src.read()  # (VV, VH) dB, NaN nodata
        # One dihedral variant of the chip per (season, pass): 4 x 2 = 8.
        self.variants = [_dihedral(chip, k) for k in range(8)]

    def cells(self, lon: np.ndarray, lat: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Integer cell coordinates (column, row) of points."""
        return np.floor(lon / self.cell_deg[0]), np.floor(lat / self.cell_deg[1])

    def sar_db(
        self, season: str, orbit: str | None, pol: str, lon: np.ndarray, lat: np.ndarray
    ) -> np.ndarray:
        """The dB value served at points, NaN where the chip has none (the scene itself,
        before masks)."""
        variant = self.variants[SEASONS.index(season) * 2 + (orbit == "descending")]
        size = variant.shape[1]
        col, row = (np.mod(c, 2 * size).astype(np.int64) for c in self.cells(lon, lat))
        col, row = (np.where(c < size, c, 2 * size - 1 - c) for c in (col, row))  # mirrored
        db = variant[("VV", "VH").index(pol), row, col].astype(np.float64)
        for box, shifted_pol, offset in self.shifted:
            if shifted_pol == pol:
                db[_inside(box, lon, lat)] += offset
        return db

    def label_codes(self, lon: np.ndarray, lat: np.ndarray) -> np.ndarray:
        """WorldCover codes at the centres of the points' cells, wrapped into LABEL_BOX."""
        col, row = self.cells(lon, lat)
        west, south, east, north = LABEL_BOX
        x = west + np.mod((col + 0.5) * self.cell_deg[0], east - west)
        y = south + np.mod((row + 0.5) * self.cell_deg[1], north - south)
        with rasterio.open(WORLDCOVER) as src:
            cols = np.floor((x - src.transform.c) / src.transform.a).astype(np.int64)
            rows = np.floor((y - src.transform.f) / src.transform.e).astype(np.int64)
            window = Window(cols.min(), rows.min(), np.ptp(cols) + 1, np.ptp(rows) + 1)
            codes = src.read(1, window=window)
        return codes[rows - rows.min(), cols - cols.min()]

    def values(self, source: BandSource, lon: np.ndarray, lat: np.ndarray) -> np.ndarray:
        """What the double serves for one band at points; NaN where masked."""
        if source.band == "Map":
            return self.label_codes(lon, lat).astype(np.float64)
        db = self.sar_db(source.season, source.orbit_pass, source.band, lon, lat)
        for box in self.linear:
            inside = _inside(box, lon, lat)
            db[inside] = 10 ** (db[inside] / 10)
        for box, seasons in self.masked:
            if source.season in seasons:
                db[_inside(box, lon, lat)] = np.nan
        return db


@contextlib.contextmanager
def serving(fake: FakeEarthEngine) -> Iterator[None]:
    """geetiles' modules talk to `fake` in place of Earth Engine and of `requests`."""
    with contextlib.ExitStack() as stack:
        for module in (geetiles.gee, geetiles.defs.s1grd, geetiles.defs.esaworldcover):
            stack.enter_context(mock.patch.object(module, "ee", fake))
        stack.enter_context(mock.patch.object(geetiles.gee, "requests", fake.downloads))
        yield


def geetiles_download(
    tiles_file: Path,
    definition,
    fake: FakeEarthEngine,
    *,
    identifiers: list[str] | None = None,
    meters_per_pixel: float = 10,
    bands: list[str] | None = None,
    shift_deg: tuple[float, float] = (0.0, 0.0),
    dest_name: str | None = None,
) -> Path:
    """Download `definition` (a geetiles DatasetDefinition) for the tiles of `tiles_file`
    (or `identifiers` of them) with geetiles' own GEETile.get_tile, as `geetiles download`
    does, into `<tiles file stem>/<dataset>/`. `shift_deg` moves the requested geometry
    (a download of another place under this tile's name). Returns the dataset folder."""
    dest = tiles_file.parent / tiles_file.stem / (dest_name or definition.get_dataset_name())
    dest.mkdir(parents=True, exist_ok=True)
    tiles = read_tiles(tiles_file)
    with serving(fake):
        for geometry, identifier in zip(tiles.geometry, tiles.identifier, strict=True):
            if identifiers is not None and identifier not in identifiers:
                continue
            geetiles.gee.GEETile(
                tile_geometry=shapely.affinity.translate(geometry, *shift_deg),
                dataset_definition=definition,
                dest_dir=str(dest),
                file_prefix="",
                meters_per_pixel=meters_per_pixel,
                identifier=identifier,
                dtype=definition.get_dtype(),
                skip_if_exists=False,
            ).get_tile(bands=bands)
    return dest


def geetiles_definition(name: str):
    """geetiles' own DatasetDefinition of a dataset name (s1grd-2020, esaworldcover-2020)."""
    from geetiles.utils import get_dataset_definition

    return get_dataset_definition(name)


class Geetiles2023S1:
    """The s1grd product of geetiles' 2023 versions, which made the paper's data and M3LEO:
    per season and orbit pass the mean of the dB images; geetiles' download casts it to
    uint16 (`get_dtype`). Written here from that definition, for geetiles 0.1.7's download
    code to run it."""

    def get_dataset_name(self) -> str:
        return "s1grd-2020"

    def get_dtype(self) -> str:
        return "uint16"

    def get_gee_image(self, **kwargs):
        ee = geetiles.gee.ee  # the module geetiles talks to (the double, under `serving`)
        image = None
        for season, (start, end) in GEETILES_SEASON_DATES.items():
            for pol in ("vv", "vh"):
                for orbit in ("asc", "des"):
                    band = (
                        ee.ImageCollection("COPERNICUS/S1_GRD")
                        .filterDate(start, end)
                        .filter(
                            ee.Filter.listContains("transmitterReceiverPolarisation", pol.upper())
                        )
                        .filter(
                            ee.Filter.eq(
                                "orbitProperties_pass",
                                "ASCENDING" if orbit == "asc" else "DESCENDING",
                            )
                        )
                        .select([pol.upper()])
                        .mean()
                        .rename(f"{season}_{pol}{orbit}")
                    )
                    image = band if image is None else image.addBands(band)
        return image


class FloatS1Definition:
    """geetiles' s1grd image downloaded as float32, without the uint8 post-processing of
    0.1.7 (as an edited or older definition would write it)."""

    def __init__(self):
        self.inner = geetiles_definition("s1grd-2020")

    def get_dataset_name(self) -> str:
        return self.inner.get_dataset_name()

    def get_dtype(self) -> str:
        return "float32"

    def get_gee_image(self, **kwargs):
        return self.inner.get_gee_image(**kwargs)
