"""Tile grid and geographic split, both computed by geetiles so that our tiles and
identifiers are the ones a geetiles download of the same AOI uses; and the AOI's tile cap
(`max_tiles`), a seeded sample of the split grid."""

import warnings
from collections.abc import Mapping
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
from ..errors import ConfigError, SarsslError
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


def read_splits(path: str | Path) -> pd.DataFrame:
    """A splits file: columns `identifier` and `split`, in the order of its tiles file."""
    return pd.read_csv(path, dtype={"identifier": str, "split": str})


def split_counts(splits: pd.DataFrame) -> dict[str, int]:
    return {name: int((splits.split == name).sum()) for name in SPLITS}


def apportion(total: int, weights: Mapping[str, float]) -> dict[str, int]:
    """`total` shared in proportion to `weights` by largest remainder (Hamilton's method):
    the parts add up to `total` and each is within one of its exact share. Ties go to the
    first in `weights`' order."""
    whole = sum(weights.values())
    exact = {name: total * weight / whole for name, weight in weights.items()}
    parts = {name: int(share) for name, share in exact.items()}
    by_remainder = sorted(exact, key=lambda name: exact[name] - parts[name], reverse=True)
    for name in by_remainder[: total - sum(parts.values())]:
        parts[name] += 1
    return parts


def split_quotas(counts: Mapping[str, int], max_tiles: int | None) -> dict[str, int]:
    """Tiles each split keeps under the cap `max_tiles`: every tile when there is no cap or
    the grid is within it, else the cap shared by the splits' counts, so that each split
    keeps its share of the grid (the band geometry's, not the nominal fractions)."""
    if max_tiles is None or max_tiles >= sum(counts.values()):
        return dict(counts)
    quotas = apportion(max_tiles, counts)
    emptied = [name for name, n in counts.items() if n and not quotas[name]]
    if emptied:
        raise ConfigError(f"max_tiles {max_tiles} leaves no tile in split(s) {emptied}")
    return quotas


def capped(splits: pd.DataFrame, max_tiles: int | None, seed: int) -> np.ndarray:
    """Mask of the tiles kept under `max_tiles`, over the split of the whole grid: each split
    keeps its quota (split_quotas) of tiles drawn uniformly at random within it.

    Uniform within the split rather than stratified by band: geetiles does not return the
    bands, and every tile of a split is kept with the same probability, so the sample is
    unbiased over the split's geography; a band of n tiles kept at rate q keeps its share
    up to a binomial spread of sqrt((1 - q) / (n q)), under 1.5 % for the paper's bands of
    4-9K tiles and caps of 42-97 %. Stratifying would only narrow that spread.

    One uniform key per tile, the lowest keys of a split kept: the sample depends only on
    the seed and the grid, and a larger cap keeps a superset of a smaller one's tiles while
    the splits' quotas grow (raising it exports only the new tiles).
    """
    keys = np.random.default_rng(seed).random(len(splits))
    names = splits.split.to_numpy()
    keep = np.zeros(len(splits), dtype=bool)
    for name, quota in split_quotas(split_counts(splits), max_tiles).items():
        members = np.flatnonzero(names == name)
        keep[members[np.argsort(keys[members], kind="stable")[:quota]]] = True
    return keep


def cap_grid(
    grid: gpd.GeoDataFrame, splits: pd.DataFrame, max_tiles: int | None, seed: int
) -> tuple[gpd.GeoDataFrame, pd.DataFrame]:
    """The kept tiles of `grid` and their splits (see `capped`), in grid order: shards stay
    contiguous runs of the grid."""
    if splits.identifier.tolist() != grid.identifier.tolist():
        raise SarsslError("the splits file does not list the grid's tiles in order")
    keep = capped(splits, max_tiles, seed)
    return grid[keep].reset_index(drop=True), splits[keep].reset_index(drop=True)
