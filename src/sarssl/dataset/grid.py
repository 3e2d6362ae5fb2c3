"""Tile grid and geographic split, both computed by geetiles so that our tiles and
identifiers are the ones a geetiles download of the same AOI uses."""

import warnings
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from pyproj import CRS

with warnings.catch_warnings():
    # geetiles 0.1.7 imports pkg_resources (hence setuptools<81), which warns on import.
    warnings.filterwarnings("ignore", message="pkg_resources is deprecated", category=UserWarning)
    from geetiles import cmds as geetiles_cmds
    from geetiles.partitions import PartitionSet

from ..atomic import atomic_path
from ..errors import ConfigError
from ..paths import TILES_NAME, path

SPLITS: tuple[str, ...] = ("train", "val", "test")


def tiles_file_name(aoi: str) -> str:
    """The file name of an AOI's grid (see sarssl.paths.TILES_NAME); tile ids are geetiles'."""
    return path(TILES_NAME, aoi=aoi)


def read_aoi(wkt_path: str | Path) -> shapely.Geometry:
    path = Path(wkt_path)
    if not path.is_file():
        raise ConfigError(f"AOI file {path} does not exist")
    try:
        geometry = shapely.from_wkt(path.read_text())
    except shapely.errors.ShapelyError as err:
        raise ConfigError(f"AOI file {path} is not valid WKT: {err}") from err
    minx, miny, maxx, maxy = geometry.bounds
    if not (-180 <= minx <= maxx <= 180 and -90 <= miny <= maxy <= 90):
        raise ConfigError(
            f"AOI file {path} is not in lon/lat degrees (EPSG:4326): {geometry.bounds}"
        )
    return geometry


def build_tile_grid(aoi: str, wkt_path: str | Path, chip_size_m: float) -> gpd.GeoDataFrame:
    """Square chips of `chip_size_m` covering the AOI, with geetiles' identifiers."""
    if "_" in aoi:
        raise ConfigError(f"AOI name {aoi!r}: geetiles does not allow '_' in names")
    geometry = read_aoi(wkt_path)
    grid = geetiles_cmds.build_grid(aoi=geometry, chip_size_meters=chip_size_m)
    if len(grid) == 0:
        raise ConfigError(f"AOI {aoi} ({wkt_path}) is covered by no tile of {chip_size_m} m")
    return PartitionSet(aoi, data=grid).data


def write_tiles_file(tiles: gpd.GeoDataFrame, path: str | Path) -> None:
    with atomic_path(path) as tmp:
        tiles.to_file(tmp, driver="GeoJSON")


def read_tiles(path: str | Path) -> gpd.GeoDataFrame:
    """A geetiles tiles file: columns `identifier` and `geometry` in EPSG:4326."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"tiles file {path} does not exist")
    tiles = gpd.read_file(path)
    missing = {"identifier", "geometry"} - set(tiles.columns)
    if missing:
        raise ConfigError(f"tiles file {path} lacks column(s) {sorted(missing)}")
    if tiles.crs is None or CRS(tiles.crs) != CRS.from_epsg(4326):
        raise ConfigError(f"tiles file {path} is in {tiles.crs}, expected EPSG:4326")
    duplicated = tiles.identifier[tiles.identifier.duplicated()].tolist()
    if duplicated:
        raise ConfigError(f"tiles file {path} repeats identifiers {duplicated[:5]}")
    return tiles


def shard_range(n_tiles: int, n_shards: int, shard: int) -> tuple[int, int]:
    """Contiguous [start, stop) tile indices of one shard; shards differ by at most one tile."""
    if not 0 <= shard < n_shards:
        raise ValueError(f"shard {shard} is outside 0..{n_shards - 1}")
    return n_tiles * shard // n_shards, n_tiles * (shard + 1) // n_shards


def geographic_split(
    tiles: gpd.GeoDataFrame, nbands: int, angle: float, fractions: dict[str, float]
) -> pd.DataFrame:
    """geetiles' split into parallel geographic bands at `angle` (radians, in [-pi/2, pi/2];
    0 gives bands of latitude), each band wholly train, val or test.

    Returns a frame with columns `identifier` and `split`, in the order of `tiles`.
    """
    parts = PartitionSet("split", data=tiles[["identifier", "geometry"]].copy())
    try:
        parts.split(
            nbands=nbands,
            angle=angle,
            train_pct=fractions["train"],
            val_pct=fractions["val"],
            test_pct=fractions["test"],
        )
    except ValueError as err:
        raise ConfigError(f"split: {err}") from err
    result = pd.DataFrame({"identifier": tiles.identifier.values, "split": parts.data.split.values})
    for name in SPLITS:
        if fractions[name] > 0 and not (result.split == name).any():
            raise ConfigError(
                f"split: no tile falls in {name} with split.nbands={nbands} over {len(tiles)} "
                "tiles; lower split.nbands or enlarge the AOI"
            )
    return result


def tile_bounds(tiles: gpd.GeoDataFrame) -> np.ndarray:
    """(tile, 4) west, south, east, north in degrees."""
    return np.asarray(tiles.geometry.bounds[["minx", "miny", "maxx", "maxy"]], dtype=np.float64)
