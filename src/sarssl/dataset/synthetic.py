"""Embedded synthetic Sentinel-1 / WorldCover source: a stand-in for the Earth Engine export.

It writes exactly what the export writes (geetiles layout, band names, float32 dB, EPSG:4326),
so every downstream rule is the same for synthetic and real data.

Scenes are built from value-noise fields defined in geographic coordinates, so land cover is
continuous across tile edges and a tile's content depends only on its position and the seed:
- terrain E: lakes at low E, wetlands and mangroves beside them, bare ground, moss and snow
  high up;
- rivers: thin lines where a smooth field crosses its median;
- forest F and urban U fields: forest patches and built-up blobs;
- parcels: a lattice of fields, each cropland or grassland.

Backscatter: per-class, per-season sigma0 (dB) from typical C-band levels (water about
-20 dB VV, built-up near 0 dB, forest about -7 dB VV / -13 dB VH, cropland with a growing
cycle), per-object offsets and texture, and speckle. An Earth Engine seasonal mean averages
the dB values of n acquisitions, each with multiplicative Gamma(L, 1/L) speckle (L = 4.4,
the ENL of IW GRD high resolution). The mean of n log-Gamma variables is, by the central
limit theorem, close to normal with
    bias = 10/ln(10) * (digamma(L) - ln L)          (about -0.51 dB)
    std  = 10/ln(10) * sqrt(trigamma(L) / n)        (about 0.63 dB for n = 12),
which is what is added. Swath edges leave some seasons without data over part of a tile.
"""

from dataclasses import dataclass
from pathlib import Path

import dask
import numpy as np
import pandas as pd
from rasterio.transform import Affine, from_bounds
from scipy.special import digamma, polygamma

from .bands import EXPORT_BANDS, LABEL_BAND, POLARISATIONS, SEASONS
from .geotiff import write_geotiff
from .grid import tile_bounds
from .sources import shard_manifest, write_csv
from .worldcover import WORLDCOVER_NODATA

# sigma0 in dB: code -> (VV per season, VH per season), seasons winter, spring, summer, autumn.
SIGMA0_DB: dict[int, tuple[tuple[float, ...], tuple[float, ...]]] = {
    10: ((-7.5, -7.0, -6.8, -7.2), (-13.5, -13.0, -12.5, -13.0)),  # tree cover
    20: ((-10.5, -10.0, -9.5, -10.2), (-17.5, -16.5, -16.0, -17.0)),  # shrubland
    30: ((-12.5, -10.5, -11.5, -12.0), (-20.0, -17.0, -18.5, -19.0)),  # grassland
    40: ((-13.0, -11.0, -8.0, -15.0), (-21.5, -17.5, -13.5, -22.5)),  # cropland: growing cycle
    50: ((-0.5, -0.5, -0.5, -0.5), (-8.5, -8.5, -8.5, -8.5)),  # built-up: double bounce
    60: ((-16.0, -16.5, -17.5, -16.5), (-24.5, -25.0, -26.0, -25.0)),  # bare / sparse
    70: ((-11.0, -15.0, -20.0, -13.0), (-19.0, -23.0, -27.0, -21.0)),  # snow: dry -> wet melt
    80: ((-19.0, -20.5, -22.0, -19.5), (-26.0, -27.0, -28.5, -26.5)),  # water: wind in winter
    90: ((-12.5, -17.0, -11.0, -12.0), (-20.0, -23.5, -16.5, -19.0)),  # wetland: spring flood
    95: ((-5.0, -5.0, -5.0, -5.0), (-11.0, -11.0, -11.0, -11.0)),  # mangroves
    100: ((-14.5, -16.0, -13.0, -14.5), (-22.5, -24.0, -20.5, -22.5)),  # moss and lichen
}
# Spatial heterogeneity (dB std of the texture field) per class.
TEXTURE_DB: dict[int, float] = {10: 1.0, 50: 3.0, 95: 1.0}
DEFAULT_TEXTURE_DB = 0.5

GRD_LOOKS = 4.4
DB = 10.0 / np.log(10.0)
METRES_PER_DEGREE_LAT = 110_574.0
METRES_PER_DEGREE_LON_EQUATOR = 111_320.0


def _splitmix(values: np.ndarray) -> np.ndarray:
    z = values + np.uint64(0x9E3779B97F4A7C15)
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


def lattice_uniform(ix: np.ndarray, iy: np.ndarray, seed: int, salt: int) -> np.ndarray:
    """Uniform [0, 1) value of integer lattice points, a pure function of (ix, iy, seed, salt)."""
    with np.errstate(over="ignore"):
        key = _splitmix(ix.astype(np.int64).astype(np.uint64) + np.uint64(seed * 1_000_003 + salt))
        key = _splitmix(key ^ iy.astype(np.int64).astype(np.uint64))
    return (key >> np.uint64(11)).astype(np.float64) / float(1 << 53)


def value_noise(x: np.ndarray, y: np.ndarray, scale_m: float, seed: int, salt: int) -> np.ndarray:
    """Smooth noise in [0, 1] with features of about `scale_m` metres."""
    gx, gy = x / scale_m, y / scale_m
    ix, iy = np.floor(gx), np.floor(gy)
    fx, fy = gx - ix, gy - iy
    fx, fy = fx * fx * (3 - 2 * fx), fy * fy * (3 - 2 * fy)
    corner = {
        (dx, dy): lattice_uniform(ix + dx, iy + dy, seed, salt) for dx in (0, 1) for dy in (0, 1)
    }
    bottom = corner[0, 0] * (1 - fx) + corner[1, 0] * fx
    top = corner[0, 1] * (1 - fx) + corner[1, 1] * fx
    return bottom * (1 - fy) + top * fy


def fractal_noise(
    x: np.ndarray, y: np.ndarray, scales_m: tuple[float, ...], seed: int, salt: int
) -> np.ndarray:
    """Octaves of value noise, amplitude halving with each finer scale; rescaled so that the
    field spans about [0, 1] (the sum of octaves concentrates around 0.5)."""
    weights = 0.5 ** np.arange(len(scales_m))
    total = sum(
        w * value_noise(x, y, s, seed, salt + i)
        for i, (w, s) in enumerate(zip(weights, scales_m, strict=True))
    )
    return np.clip(0.5 + (total / weights.sum() - 0.5) * 2.2, 0.0, 1.0)


def pixel_metres(transform: Affine, shape: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Pixel-centre coordinates in metres, equirectangular (continuous across tiles)."""
    rows, cols = np.meshgrid(np.arange(shape[0]) + 0.5, np.arange(shape[1]) + 0.5, indexing="ij")
    lon, lat = transform @ (cols, rows)
    x = lon * METRES_PER_DEGREE_LON_EQUATOR * np.cos(np.radians(lat))
    return x, lat * METRES_PER_DEGREE_LAT


def land_cover(x: np.ndarray, y: np.ndarray, seed: int) -> np.ndarray:
    """WorldCover codes (uint8) of a scene; later rules override earlier ones."""
    terrain = fractal_noise(x, y, (40_000, 12_000, 4_000), seed, 10)
    moisture = fractal_noise(x, y, (8_000, 2_000), seed, 20)
    forest = fractal_noise(x, y, (3_000, 1_000, 300), seed, 30)
    urban = fractal_noise(x, y, (6_000, 1_500, 400), seed, 40)
    river = fractal_noise(x, y, (15_000, 5_000), seed, 50)
    parcel = lattice_uniform(np.floor(x / 280.0), np.floor(y / 220.0), seed, 60)

    codes = np.where(parcel < 0.6, 40, 30).astype(np.uint8)  # cropland or grassland parcels
    codes[(forest > 0.52) & (moisture < 0.45)] = 20  # shrubland
    codes[forest > 0.57] = 10  # tree cover
    codes[(terrain > 0.74) & (moisture < 0.5)] = 60  # bare / sparse vegetation
    codes[terrain > 0.86] = 100  # moss and lichen
    codes[terrain > 0.95] = 70  # snow and ice
    codes[urban > 0.9] = 50  # built-up
    shore = (terrain < 0.2) & (moisture > 0.5)
    codes[shore] = 90  # herbaceous wetland
    codes[shore & (forest > 0.55)] = 95  # mangroves
    codes[(terrain < 0.12) | (np.abs(river - 0.5) < 0.005)] = 80  # lakes and rivers
    return codes


def backscatter(
    codes: np.ndarray, x: np.ndarray, y: np.ndarray, seed: int, rng: np.random.Generator
) -> np.ndarray:
    """(season, pol, row, col) seasonal-mean sigma0 in dB, speckle included."""
    lut = np.zeros((256, len(SEASONS), len(POLARISATIONS)), dtype=np.float32)
    texture_lut = np.full(256, DEFAULT_TEXTURE_DB, dtype=np.float32)
    for code, (vv, vh) in SIGMA0_DB.items():
        lut[code] = np.stack([vv, vh], axis=1)
        texture_lut[code] = TEXTURE_DB.get(code, DEFAULT_TEXTURE_DB)
    sigma0 = np.moveaxis(lut[codes], (2, 3), (0, 1))
    # Within-class variability: a per-object offset (management, canopy density, soil
    # moisture) of up to +-2 dB, a per-season one of up to +-1.5 dB (phenology, rain), both
    # shared by VV and VH, and fine texture.
    offset = (fractal_noise(x, y, (250.0,), seed, 70) - 0.5) * 4.0
    seasonal = np.stack([value_noise(x, y, 400.0, seed, 90 + i) for i in range(len(SEASONS))])
    texture = (value_noise(x, y, 25.0, seed, 80) - 0.5) * 3.4 * texture_lut[codes]
    variability = offset + texture + (seasonal[:, None] - 0.5) * 3.0
    sigma0 = sigma0 + variability.astype(np.float32)
    acquisitions = rng.integers(8, 20, size=(len(SEASONS), 1, 1, 1))
    bias = DB * (digamma(GRD_LOOKS) - np.log(GRD_LOOKS))
    std = DB * np.sqrt(polygamma(1, GRD_LOOKS) / acquisitions)
    return (sigma0 + bias + std * rng.standard_normal(sigma0.shape)).astype(np.float32)


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
    x, y = pixel_metres(transform, (tile_px, tile_px))
    rng = np.random.default_rng([seed, int(tile, 16)])
    codes = land_cover(x, y, seed)
    sigma0 = backscatter(codes, x, y, seed, rng)
    sigma0[
        np.broadcast_to(swath_gaps(codes.shape, rng, gap_probability)[:, None], sigma0.shape)
    ] = np.nan
    return SyntheticTile(sigma0.reshape(len(EXPORT_BANDS), tile_px, tile_px), codes, transform)


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
