"""Deterministic random fields over geographic coordinates.

Every value is a pure function of (coordinates, seed, salt), never of the tile that asks for
it, so scenes are continuous across tile edges. Lattice values are hashed (splitmix64) once per
lattice point of the tile's window and then gathered, which keeps a 448 px tile fast.
"""

from typing import TypeVar

import numpy as np
from scipy.special import ndtri

GOLDEN_GAMMA = np.uint64(0x9E3779B97F4A7C15)
# uint64 arrays, or one uint64 (a salt).
Keys = TypeVar("Keys", np.ndarray, np.uint64)


def splitmix(values: Keys) -> Keys:
    """splitmix64's finaliser: a well-mixed uint64 of each uint64."""
    with np.errstate(over="ignore"):
        z = values + GOLDEN_GAMMA
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


def to_uniform(keys: np.ndarray) -> np.ndarray:
    """uint64 hashes -> uniform [0, 1) floats (the top 53 bits)."""
    return (keys >> np.uint64(11)).astype(np.float64) / float(1 << 53)


def lattice_key(ix: np.ndarray, iy: np.ndarray, seed: int, salt: int) -> np.ndarray:
    """A uint64 hash of integer lattice points, a pure function of (ix, iy, seed, salt)."""
    with np.errstate(over="ignore"):
        key = splitmix(ix.astype(np.int64).astype(np.uint64) + np.uint64(seed * 1_000_003 + salt))
        return splitmix(key ^ iy.astype(np.int64).astype(np.uint64))


def lattice_uniform(ix: np.ndarray, iy: np.ndarray, seed: int, salt: int) -> np.ndarray:
    """Uniform [0, 1) value of integer lattice points."""
    return to_uniform(lattice_key(ix, iy, seed, salt))


def keyed_uniform(keys: np.ndarray, salt: int) -> np.ndarray:
    """Uniform [0, 1) draw number `salt` of objects identified by uint64 keys."""
    with np.errstate(over="ignore"):
        return to_uniform(splitmix(keys ^ splitmix(np.uint64(salt))))


def keyed_normal(keys: np.ndarray, salt: int) -> np.ndarray:
    """Standard normal draw number `salt` of objects identified by uint64 keys."""
    # Kept inside (0, 1) so that the inverse normal stays finite.
    return ndtri(np.clip(keyed_uniform(keys, salt), 1e-12, 1 - 1e-12))


class LatticeWindow:
    """Hashed lattice values over the box of lattice points that a tile's coordinates touch,
    gathered by flat index: one hash per lattice point instead of one per pixel and corner."""

    def __init__(self, gx: np.ndarray, gy: np.ndarray, seed: int, salt: int, margin: int = 1):
        self.x0 = int(np.floor(gx.min())) - margin
        self.y0 = int(np.floor(gy.min())) - margin
        self.width = int(np.floor(gx.max())) + margin + 1 - self.x0 + 1
        height = int(np.floor(gy.max())) + margin + 1 - self.y0 + 1
        iy, ix = np.meshgrid(
            np.arange(self.y0, self.y0 + height),
            np.arange(self.x0, self.x0 + self.width),
            indexing="ij",
        )
        self.keys = lattice_key(ix, iy, seed, salt).ravel()
        self.values = to_uniform(self.keys)

    def index(self, ix: np.ndarray, iy: np.ndarray) -> np.ndarray:
        """Flat index of lattice points (ix, iy); neighbours are at +1 (east), +width (north)."""
        return (iy - self.y0) * self.width + (ix - self.x0)


def value_noise(x: np.ndarray, y: np.ndarray, scale_m: float, seed: int, salt: int) -> np.ndarray:
    """Smooth noise in [0, 1] with features of about `scale_m` metres."""
    gx, gy = x / scale_m, y / scale_m
    window = LatticeWindow(gx, gy, seed, salt)
    ix, iy = np.floor(gx), np.floor(gy)
    fx, fy = (gx - ix).astype(np.float32), (gy - iy).astype(np.float32)
    fx, fy = fx * fx * (3 - 2 * fx), fy * fy * (3 - 2 * fy)
    corner = window.index(ix.astype(np.int64), iy.astype(np.int64))
    values = window.values.astype(np.float32)
    bottom = values.take(corner) * (1 - fx) + values.take(corner + 1) * fx
    top = (
        values.take(corner + window.width) * (1 - fx) + values.take(corner + window.width + 1) * fx
    )
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


def warp(
    x: np.ndarray, y: np.ndarray, amplitude_m: float, scale_m: float, seed: int, salt: int
) -> tuple[np.ndarray, np.ndarray]:
    """Coordinates displaced by smooth noise: ragged, meandering outlines instead of the
    smooth blobs and clean curves of undisplaced noise."""
    dx = (value_noise(x, y, scale_m, seed, salt) - 0.5) * 2 * amplitude_m
    dy = (value_noise(x, y, scale_m, seed, salt + 1) - 0.5) * 2 * amplitude_m
    return x + dx, y + dy


def voronoi_objects(
    x: np.ndarray, y: np.ndarray, cell_m: float, seed: int, salt: int
) -> np.ndarray:
    """uint64 key of the Voronoi cell of each point: one jittered site per lattice cell of
    `cell_m` metres; the nearest site among the 3 x 3 neighbouring cells wins. The cells are
    convex polygons with straight edges, like field parcels and city blocks."""
    gx, gy = x / cell_m, y / cell_m
    window = LatticeWindow(gx, gy, seed, salt, margin=2)
    site_x = keyed_uniform(window.keys, 1)
    site_y = keyed_uniform(window.keys, 2)
    ix, iy = np.floor(gx), np.floor(gy)
    fx, fy = gx - ix, gy - iy  # position within the point's own cell
    here = window.index(ix.astype(np.int64), iy.astype(np.int64))
    best = np.full(gx.shape, np.inf)
    nearest = here
    for dx in (-1, 0, 1):
        for dy in (-1, 0, 1):
            cell = here + dx + dy * window.width
            distance = (fx - dx - site_x.take(cell)) ** 2 + (fy - dy - site_y.take(cell)) ** 2
            nearer = distance < best
            best = np.where(nearer, distance, best)
            nearest = np.where(nearer, cell, nearest)
    return window.keys.take(nearest)
