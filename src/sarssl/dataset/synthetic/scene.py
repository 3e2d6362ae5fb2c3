"""A scene: land cover and its objects, elevation, season-level events, and the seasonal-mean
backscatter that Sentinel-1 would record over it. Every field is a pure function of
geographic coordinates and the seed (continuous across tiles); only speckle, the number of
acquisitions and swath gaps are drawn per tile.

Season-level events shift whole areas, and a seasonal mean keeps a share of them:
- soil moisture: a wet or dry season over tens of kilometres moves the backscatter of bare
  soil and low vegetation by up to about 1.5 dB in the mean (single dates move by several dB
  per 10 % of volumetric moisture; Ulaby & Long 2014, ch. 11);
- wet snow above a seasonal snowline: -3 dB while wet (Nagler & Rott 2000), for the share of
  the season's acquisitions when it is;
- floods on low ground in the wet seasons: open floods darken fields and grassland towards
  calm water, flooded vegetation brightens (Martinis & Rieke 2015), for part of the season;
- harvest and sowing dates that vary by region (a shift of the crop cycle by up to a third of
  a season, about a month) and by field.
"""

from dataclasses import dataclass
from functools import cache

import numpy as np

from .noise import (
    fractal_noise,
    keyed_normal,
    keyed_uniform,
    lattice_uniform,
    value_noise,
    voronoi_objects,
    warp,
)
from .physics import NOISE_FLOOR_DB, incidence_angle, local_incidence, terrain_db
from .signatures import CLASS_MODELS, ClassTables, class_tables

# Object sizes (Voronoi cell spacing, metres): fields of a few hectares, forest and natural
# stands of ~15 ha, city blocks of ~1 ha, and stretches of water with one wind exposure.
LAYERS: dict[str, float] = {"parcel": 220.0, "stand": 380.0, "block": 90.0, "water": 2000.0}
# One tessellation per layer: a parcel's land cover (cropland or grassland) and its signature
# belong to the same field.
OBJECT_SALT = 60
# Std of value noise: lattice values U(0, 1) (variance 1/12) interpolated with the smoothstep
# s = 3f^2 - 2f^3, for which E[s^2 + (1 - s)^2] = 26/35 per axis.
VALUE_NOISE_STD = float(np.sqrt(1 / 12) * 26 / 35)

# Season-level events: winter, spring, summer, autumn.
SNOWLINE_M = (1100.0, 1500.0, 2800.0, 2200.0)
WET_SNOW_SHARE = (0.3, 0.6, 0.3, 0.2)  # of the season's acquisitions above the snowline
WET_SNOW_DB = -3.0
FLOOD_SEASON = (True, True, False, True)  # the Mediterranean's dry summer has none
FLOOD_SHARE = 0.25  # of the season's acquisitions during a flood
FLOODED_VEGETATION_DB = 4.0
CALM_WATER_DB = (-21.5, -28.0)  # VV, VH
REGIONAL_PHENOLOGY_SHIFT = 0.35  # seasons, at most, either way
CROSS_POL_CORRELATION = 0.7  # of an object's VV and VH offsets
# Built-up: persistent bright scatterers (corners, facades facing the sensor) and shadows,
# fixed in place from one season to the next.
BRIGHT_SCATTERER_DB = 10.0
BRIGHT_SCATTERER_SHARE = 0.2
BUILDING_SHADOW_DB = -5.0
BUILDING_SHADOW_SHARE = 0.15
BUILT_UP = 50


@cache
def tables() -> ClassTables:
    return class_tables()


@dataclass(frozen=True)
class Landscape:
    codes: np.ndarray  # (row, col) uint8 WorldCover
    objects: np.ndarray  # (row, col) uint64: the field, stand, block or water body
    terrain: np.ndarray  # (row, col) the coarse elevation field in [0, 1]
    elevation_m: np.ndarray  # (row + 2, col + 2): padded by one pixel, for slopes


def land_cover(x: np.ndarray, y: np.ndarray, terrain: np.ndarray, seed: int) -> np.ndarray:
    """WorldCover codes (uint8) of a scene; later rules override earlier ones. `terrain` in
    [0, 1] is the coarse elevation field."""
    moisture = fractal_noise(x, y, (8_000, 2_000), seed, 20)
    # Displaced coordinates give ragged edges to forest, towns and shores.
    wx, wy = warp(x, y, 150.0, 600.0, seed, 100)
    forest = fractal_noise(wx, wy, (3_000, 1_000, 300), seed, 30)
    urban = fractal_noise(wx, wy, (6_000, 1_500, 400), seed, 40)
    rx, ry = warp(x, y, 700.0, 2_500.0, seed, 110)
    river = fractal_noise(rx, ry, (15_000, 5_000), seed, 50)
    river_width = 0.002 + 0.005 * value_noise(x, y, 4_000.0, seed, 120)
    parcel = keyed_uniform(voronoi_objects(x, y, LAYERS["parcel"], seed, OBJECT_SALT), 3)

    codes = np.where(parcel < 0.6, 40, 30).astype(np.uint8)  # cropland or grassland parcels
    codes[(forest > 0.52) & (moisture < 0.45)] = 20  # shrubland
    codes[forest > 0.57] = 10  # tree cover
    codes[(terrain > 0.74) & (moisture < 0.5)] = 60  # bare / sparse vegetation
    codes[terrain > 0.86] = 100  # moss and lichen
    codes[terrain > 0.95] = 70  # snow and ice
    codes[urban > 0.9] = BUILT_UP
    shore = (terrain < 0.2) & (moisture > 0.5)
    codes[shore] = 90  # herbaceous wetland
    codes[shore & (forest > 0.55)] = 95  # mangroves
    codes[(terrain < 0.12) | (np.abs(river - 0.5) < river_width)] = 80  # lakes and rivers
    return codes


def terrain_field(x: np.ndarray, y: np.ndarray, seed: int) -> np.ndarray:
    """The coarse elevation field in [0, 1] that also places lakes, wetlands and mountains."""
    return fractal_noise(x, y, (40_000, 12_000, 4_000), seed, 10)


def elevation(x: np.ndarray, y: np.ndarray, terrain: np.ndarray, seed: int) -> np.ndarray:
    """Metres: 1500 m of relief over tens of kilometres, and hills of 500-1500 m that grow
    rougher with altitude (plains near lakes, rugged uplands)."""
    hills = fractal_noise(x, y, (1_500, 500), seed, 130)
    return 1500.0 * terrain + (40.0 + 260.0 * terrain) * hills


def object_keys(x: np.ndarray, y: np.ndarray, codes: np.ndarray, seed: int) -> np.ndarray:
    """The object of each pixel, from the layer its class belongs to."""
    keys = np.zeros(codes.shape, dtype=np.uint64)
    wx, wy = warp(x, y, 60.0, 300.0, seed, 140)  # natural stands have ragged outlines
    coordinates = {"parcel": (x, y), "stand": (wx, wy), "block": (x, y), "water": (x, y)}
    for layer, cell_m in LAYERS.items():
        members = np.isin(codes, layer_codes(layer))
        if members.any():
            lx, ly = coordinates[layer]
            keys[members] = voronoi_objects(lx[members], ly[members], cell_m, seed, OBJECT_SALT)
    # The class is part of the object: a parcel that is cropland here and grassland there is
    # two objects.
    return keys ^ (codes.astype(np.uint64) << np.uint64(56))


def layer_codes(layer: str) -> list[int]:
    return [code for code, model in CLASS_MODELS.items() if model.layer == layer]


def landscape(x: np.ndarray, y: np.ndarray, seed: int) -> Landscape:
    """Land cover, objects and elevation on a grid padded by one pixel on each side; the
    elevation keeps its padding so that slopes at tile edges match the neighbour's."""
    terrain = terrain_field(x, y, seed)
    inner = (slice(1, -1), slice(1, -1))
    codes = land_cover(x[inner], y[inner], terrain[inner], seed)
    objects = object_keys(x[inner], y[inner], codes, seed)
    return Landscape(codes, objects, terrain[inner], elevation(x, y, terrain, seed))


def slopes(x: np.ndarray, y: np.ndarray, z: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """dz/dx (east) and dz/dy (north) at the inner pixels of padded grids, by central
    differences over the padding."""
    dz_dx = (z[1:-1, 2:] - z[1:-1, :-2]) / (x[1:-1, 2:] - x[1:-1, :-2])
    dz_dy = (z[2:, 1:-1] - z[:-2, 1:-1]) / (y[2:, 1:-1] - y[:-2, 1:-1])
    return dz_dx, dz_dy


def seasonal_levels(codes: np.ndarray, objects: np.ndarray, shift: np.ndarray) -> np.ndarray:
    """(season, pol, row, col) dB of each object's subtype, its cycle shifted by `shift`
    seasons (positive: earlier), plus the object's own offsets."""
    t = tables()
    n_subtypes, seasons = t.levels.shape[1:3]
    subtype = (keyed_uniform(objects, 10)[..., None] >= t.cumulative_share[codes]).sum(axis=-1)
    row = (codes.astype(np.int64) * n_subtypes + np.minimum(subtype, n_subtypes - 1)) * seasons
    by_season = t.levels.reshape(-1, 2)  # rows (code, subtype, season), columns VV, VH
    shift = shift + t.phenology_sd[codes] * keyed_normal(objects, 13)
    out = np.empty((seasons, 2, *codes.shape), dtype=np.float32)
    for season in range(seasons):
        position = season + shift
        base = np.floor(position)
        weight = (position - base).astype(np.float32)[..., None]
        base = base.astype(np.int64)
        before = by_season[row + base % seasons]
        after = by_season[row + (base + 1) % seasons]
        out[season] = np.moveaxis((1 - weight) * before + weight * after, -1, 0)
    common, own = keyed_normal(objects, 11), keyed_normal(objects, 12)
    cross = np.sqrt(1 - CROSS_POL_CORRELATION**2)
    offsets = np.stack([common, CROSS_POL_CORRELATION * common + cross * own])
    out += t.object_sd_db[codes] * offsets[None]
    jitter = np.stack([keyed_normal(objects, 20 + s) for s in range(seasons)])
    out += (t.season_sd_db[codes] * jitter)[:, None]
    return out


def texture(x: np.ndarray, y: np.ndarray, codes: np.ndarray, seed: int) -> np.ndarray:
    """(pol, row, col) dB: heterogeneity within objects at tens of metres (canopy gaps,
    soil patches, wind streaks), the same in every season; in built-up areas also fixed
    bright scatterers and shadows at the pixel scale."""
    t = tables()
    # Two octaves (40 and 20 m) for VV; VH shares 60 % of it. Both scaled to unit std.
    octaves = value_noise(x, y, 40.0, seed, 500) + 0.5 * value_noise(x, y, 20.0, seed, 501)
    fine = (octaves - 0.75) / (VALUE_NOISE_STD * np.sqrt(1.25))
    own = (value_noise(x, y, 30.0, seed, 510) - 0.5) / VALUE_NOISE_STD
    out = np.stack([fine, 0.6 * fine + 0.8 * own])
    out *= t.texture_db[codes]
    u = lattice_uniform(np.floor(x / 10.0), np.floor(y / 10.0), seed, 520)
    points = np.where(
        u > 1 - BRIGHT_SCATTERER_SHARE,
        BRIGHT_SCATTERER_DB * (u - 1 + BRIGHT_SCATTERER_SHARE) / BRIGHT_SCATTERER_SHARE,
        np.where(u < BUILDING_SHADOW_SHARE, BUILDING_SHADOW_DB, 0.0),
    )
    out += np.where(codes == BUILT_UP, points, 0.0) * np.array([1.0, 0.6])[:, None, None]
    return out.astype(np.float32)


def season_events(
    x: np.ndarray,
    y: np.ndarray,
    codes: np.ndarray,
    elevation_m: np.ndarray,
    terrain: np.ndarray,
    levels: np.ndarray,
    seed: int,
) -> np.ndarray:
    """(season, pol, row, col) dB added by soil moisture, wet snow and floods."""
    t = tables()
    out = np.zeros_like(levels)
    land = (codes != 80) & (codes != BUILT_UP) & (codes != 70)
    # The snowline varies by region (climate), the same way in every season.
    snowline_offset = 600.0 * (value_noise(x, y, 50_000, seed, 210) - 0.5)
    for season in range(levels.shape[0]):
        anomaly = 2.0 * value_noise(x, y, 40_000, seed, 200 + season) - 1.0
        out[season] += t.moisture_db[codes] * anomaly
        wet_snow = land & (elevation_m > SNOWLINE_M[season] + snowline_offset)
        out[season] += np.where(wet_snow, WET_SNOW_SHARE[season] * WET_SNOW_DB, 0.0)
        if FLOOD_SEASON[season]:
            flooded = (value_noise(x, y, 25_000, seed, 220 + season) > 0.7) & (terrain < 0.3)
            open_flood = flooded & t.floods_open[codes]
            toward_water = np.array(CALM_WATER_DB)[:, None] - levels[season][:, open_flood]
            out[season][:, open_flood] += FLOOD_SHARE * toward_water
            out[season][:, flooded & t.floods_bright[codes]] += FLOOD_SHARE * FLOODED_VEGETATION_DB
    return out


def regional_phenology(x: np.ndarray, y: np.ndarray, seed: int) -> np.ndarray:
    """Seasons by which the crop cycle runs early (positive) or late, by region."""
    return (2.0 * value_noise(x, y, 30_000, seed, 400) - 1.0) * REGIONAL_PHENOLOGY_SHIFT


def backscatter(
    x: np.ndarray,
    y: np.ndarray,
    lon: np.ndarray,
    lat: np.ndarray,
    seed: int,
) -> tuple[np.ndarray, Landscape]:
    """Seasonal-mean sigma0 before speckle (season, pol, row, col) in dB on the inner pixels
    of padded coordinate grids, and the landscape."""
    scene = landscape(x, y, seed)
    inner = (slice(1, -1), slice(1, -1))
    xi, yi = x[inner], y[inner]
    codes, objects = scene.codes, scene.objects
    t = tables()
    has_cycle = t.phenology_sd[codes] > 0
    levels = seasonal_levels(
        codes, objects, np.where(has_cycle, regional_phenology(xi, yi, seed), 0.0)
    )
    levels += texture(xi, yi, codes, seed)[None]
    levels += season_events(xi, yi, codes, scene.elevation_m[inner], scene.terrain, levels, seed)
    track_offset = lattice_uniform(np.array([0]), np.array([0]), seed, 600)[0] * 360.0 / 175
    theta = incidence_angle(lon[inner], lat[inner], track_offset)
    theta_local = local_incidence(theta, *slopes(x, y, scene.elevation_m))
    gain, shadow = terrain_db(theta, theta_local, t.incidence_slope[codes])
    levels += gain[None, None]
    levels[:, :, shadow] = NOISE_FLOOR_DB
    return levels.astype(np.float32), scene
