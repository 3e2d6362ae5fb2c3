"""Embedded synthetic Sentinel-1 / WorldCover source: a stand-in for the Earth Engine export.

It writes exactly what the export writes (geetiles layout, band names, float32 dB, EPSG:4326),
so every downstream rule is the same for synthetic and real data.

The scenes are meant to be as hard as real SAR, for physical reasons, each argued with its
source in the module that models it:
- `signatures`: each class is a distribution over objects, not one signature. Every field,
  forest stand, city block and water body draws a subtype (crop types with their own cycles,
  mown or grazed grassland, broadleaf or conifer, dense or residential built-up, calm or
  wind-roughened water) and its own offsets, so classes overlap per pixel;
- `physics`: the incidence angle across the IW swaths, terrain seen by a sensor that looks
  east (foreshortening, layover, shadow: GRD in Earth Engine is not terrain-flattened), and
  the speckle of a seasonal mean, spatially correlated as in GRD-HR;
- `scene`: land cover with objects (Voronoi parcels and blocks, ragged stands, meandering
  rivers of varying width), texture within objects, persistent bright scatterers in towns,
  and season-level events over whole regions (soil moisture, wet snow, floods, harvest dates);
- `worldcover_map`: the labels are a map with WorldCover's own errors (whole objects
  labelled as a neighbouring class), not the land cover the radar sees;
- here: what is drawn per tile (speckle of n acquisitions per season, swath gaps) and the
  files.

Everything but speckle, acquisitions and gaps is a pure function of the coordinates and the
seed, so land cover and backscatter are continuous across tile edges.
"""

from dataclasses import dataclass
from pathlib import Path

import dask
import numpy as np
import pandas as pd
from rasterio.transform import Affine, from_bounds

from ..bands import EXPORT_BANDS, LABEL_BAND, SEASONS
from ..geotiff import write_geotiff
from ..grid import tile_bounds
from ..sources import shard_manifest, write_csv
from ..worldcover import WORLDCOVER_NODATA
from .physics import (
    METRES_PER_DEGREE_LAT,
    METRES_PER_DEGREE_LON_EQUATOR,
    speckle_of_seasonal_mean,
)
from .scene import backscatter
from .worldcover_map import worldcover_labels

# Acquisitions per season and track: Sentinel-1A and 1B together revisited every 6 days in
# 2020 (15 per season); fewer where one satellite's plan skipped the area.
ACQUISITIONS = (8, 20)


def pixel_coordinates(
    transform: Affine, shape: tuple[int, int], pad: int = 0
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Pixel-centre (x, y) in metres, equirectangular (continuous across tiles), and (lon,
    lat) in degrees, on the tile's grid extended by `pad` pixels on each side."""
    rows, cols = np.meshgrid(
        np.arange(-pad, shape[0] + pad) + 0.5, np.arange(-pad, shape[1] + pad) + 0.5, indexing="ij"
    )
    lon, lat = transform @ (cols, rows)
    x = lon * METRES_PER_DEGREE_LON_EQUATOR * np.cos(np.radians(lat))
    return x, lat * METRES_PER_DEGREE_LAT, lon, lat


def swath_gaps(shape: tuple[int, int], rng: np.random.Generator, probability: float) -> np.ndarray:
    """(season, row, col) True where a season has no acquisition: a straight swath edge
    cutting off 5-30 % of the tile, in a fraction `probability` of tile-seasons."""
    rows, cols = np.meshgrid(
        np.linspace(-1, 1, shape[0]), np.linspace(-1, 1, shape[1]), indexing="ij"
    )
    gaps = np.zeros((len(SEASONS), *shape), dtype=bool)
    for season in range(len(SEASONS)):
        if rng.random() < probability:
            angle = rng.uniform(0, 2 * np.pi)
            distance = np.cos(angle) * cols + np.sin(angle) * rows
            gaps[season] = distance > np.quantile(distance, 1 - rng.uniform(0.05, 0.3))
    return gaps


@dataclass(frozen=True)
class SyntheticTile:
    s1: np.ndarray  # (8, row, col) float32 dB, bands EXPORT_BANDS, NaN = no data
    labels: np.ndarray  # (row, col) uint8 WorldCover codes
    transform: Affine


def synthetic_tile(
    bounds: tuple[float, float, float, float],
    tile_px: int,
    tile: str,
    seed: int,
    gap_probability: float = 0.05,
) -> SyntheticTile:
    """The scene of one tile: a pure function of its bounds, size, identifier and the seed."""
    transform = from_bounds(*bounds, tile_px, tile_px)
    sigma0, scene = backscatter(*pixel_coordinates(transform, (tile_px, tile_px), pad=1), seed)
    rng = np.random.default_rng([seed, int(tile, 16)])
    acquisitions = rng.integers(*ACQUISITIONS, size=(len(SEASONS), 1, 1, 1), endpoint=True)
    sigma0 += speckle_of_seasonal_mean(sigma0.shape, acquisitions, rng)
    gaps = swath_gaps(scene.codes.shape, rng, gap_probability)
    sigma0[np.broadcast_to(gaps[:, None], sigma0.shape)] = np.nan
    labels = worldcover_labels(scene.codes, scene.objects)
    return SyntheticTile(sigma0.reshape(len(EXPORT_BANDS), tile_px, tile_px), labels, transform)


def write_synthetic_tile(
    s1_path: Path,
    label_path: Path,
    bounds: tuple[float, float, float, float],
    tile_px: int,
    tile: str,
    seed: int,
) -> None:
    """Write one tile as the export would, unless both files exist (atomic writes make an
    existing file a complete one)."""
    if s1_path.is_file() and label_path.is_file():
        return
    scene = synthetic_tile(bounds, tile_px, tile, seed)
    write_geotiff(s1_path, scene.s1, EXPORT_BANDS, "EPSG:4326", scene.transform, nodata=np.nan)
    write_geotiff(
        label_path,
        scene.labels[None],
        (LABEL_BAND,),
        "EPSG:4326",
        scene.transform,
        nodata=WORLDCOVER_NODATA,
    )


def write_synthetic_shard(
    tiles_file: str | Path,
    shard: int,
    n_shards: int,
    s1_dataset: str,
    labels_dataset: str,
    tile_px: int,
    seed: int,
    manifest_path: str | Path,
    threads: int,
) -> pd.DataFrame:
    """Write every tile of one shard in the geetiles layout, then the shard's manifest."""
    manifest, rows = shard_manifest(tiles_file, shard, n_shards, s1_dataset, labels_dataset)
    tasks = [
        dask.delayed(write_synthetic_tile)(
            Path(m.s1_path), Path(m.label_path), tuple(bounds), tile_px, m.tile, seed
        )
        for m, bounds in zip(manifest.itertuples(), tile_bounds(rows), strict=True)
    ]
    dask.compute(*tasks, scheduler="threads", num_workers=threads)
    write_csv(manifest, manifest_path)
    return manifest
