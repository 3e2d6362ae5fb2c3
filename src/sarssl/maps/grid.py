"""The one north-up EPSG:4326 pixel grid of an AOI's mosaic: where each tile lies
(Footprint, read from a store's per-tile coordinates by TileFootprints), the grid at the
finest pixel size among the tiles (MosaicGrid), and the part of it a shard of the tiles
writes (MosaicGrid.cover), so that the parts align pixel for pixel."""

import math
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import numpy as np
import zarr
from rasterio.transform import Affine, array_bounds, from_bounds

from ..dataset.store import check_complete

# A tile to place: its pixel-to-lon/lat transform and its (band, row, col) values.
Tile = tuple[Affine, np.ndarray]

# A tile edge within this fraction of a pixel of a grid line lies on it (degrees in floats).
EDGE_TOLERANCE_PX = 1e-6


class Footprint(NamedTuple):
    """Where a tile's pixels lie: its pixel-to-lon/lat transform and its size."""

    transform: Affine
    height: int
    width: int

    @property
    def bounds(self) -> tuple[float, float, float, float]:
        """(west, south, east, north)."""
        return array_bounds(self.height, self.width, self.transform)


@dataclass(frozen=True)
class MosaicGrid:
    """A part of one north-up EPSG:4326 pixel grid: the whole mosaic, or the share of one
    shard. Every part of a grid keeps the grid's `origin`, so that tiles land on the same
    pixels in whichever part they are written."""

    origin: Affine  # pixel (0, 0) of the whole grid -> lon/lat
    col_off: int
    row_off: int
    width: int
    height: int

    @property
    def transform(self) -> Affine:
        """Pixel (0, 0) of this part -> lon/lat."""
        return self.origin @ Affine.translation(self.col_off, self.row_off)

    def span(self, footprint: Footprint) -> tuple[int, int, int, int] | None:
        """Columns and rows (start, start, stop, stop) of the whole grid that the tile
        touches, within this part; None if it lies outside."""
        west, south, east, north = footprint.bounds
        col_start, row_start = ~self.origin @ (west, north)
        col_stop, row_stop = ~self.origin @ (east, south)
        col_start = max(math.floor(col_start + EDGE_TOLERANCE_PX), self.col_off)
        row_start = max(math.floor(row_start + EDGE_TOLERANCE_PX), self.row_off)
        col_stop = min(math.ceil(col_stop - EDGE_TOLERANCE_PX), self.col_off + self.width)
        row_stop = min(math.ceil(row_stop - EDGE_TOLERANCE_PX), self.row_off + self.height)
        if col_start >= col_stop or row_start >= row_stop:
            return None
        return col_start, row_start, col_stop, row_stop

    def cover(self, footprints: Iterable[Footprint]) -> "MosaicGrid":
        """The smallest part of this grid that holds the tiles (a shard's part)."""
        spans = [s for s in map(self.span, footprints) if s is not None]
        if not spans:
            raise ValueError("no tile lies on the grid: a shard needs at least one tile")
        col_start, row_start = min(s[0] for s in spans), min(s[1] for s in spans)
        col_stop, row_stop = max(s[2] for s in spans), max(s[3] for s in spans)
        return MosaicGrid(
            self.origin, col_start, row_start, col_stop - col_start, row_stop - row_start
        )


def mosaic_grid(footprints: Iterable[Footprint]) -> MosaicGrid:
    """The grid over the tiles' bounds at the finest pixel size among them (per axis)."""
    footprints = list(footprints)
    if not footprints:
        raise ValueError("a mosaic needs at least one tile")
    for footprint in footprints:
        t = footprint.transform
        if t.b != 0 or t.d != 0 or t.a <= 0 or t.e >= 0:
            raise ValueError(f"tile transform {tuple(t)[:6]} is not north-up")
    bounds = np.array([f.bounds for f in footprints])
    west, north = bounds[:, 0].min(), bounds[:, 3].max()
    pixel_x = min(f.transform.a for f in footprints)
    pixel_y = min(-f.transform.e for f in footprints)
    width = math.ceil((bounds[:, 2].max() - west) / pixel_x - EDGE_TOLERANCE_PX)
    height = math.ceil((north - bounds[:, 1].min()) / pixel_y - EDGE_TOLERANCE_PX)
    return MosaicGrid(Affine(pixel_x, 0, west, 0, -pixel_y, north), 0, 0, width, height)


@dataclass(frozen=True)
class TileFootprints:
    """Where the tiles of a Zarr store of per-tile rasters lie (the dataset store, or an
    attention-map store on the ViT's token grid), which are valid and their splits: read
    from the small per-tile coordinates, never the pixels."""

    footprints: tuple[Footprint, ...]
    valid: np.ndarray
    split: np.ndarray

    @classmethod
    def of_store(cls, path: str | Path) -> "TileFootprints":
        """The tiles of a finished dataset store (their pixel grid: the labels')."""
        check_complete(path)
        return cls._of_group(zarr.open_group(path, mode="r", zarr_format=3), "labels")

    @classmethod
    def of_attention_maps(cls, path: str | Path) -> "TileFootprints":
        """The tiles of an attention-map store (sarssl.evaluation.attention_maps): token grids."""
        return cls._of_group(zarr.open_group(path, mode="r", zarr_format=3), "attention")

    @classmethod
    def _of_group(cls, group: zarr.Group, array: str) -> "TileFootprints":
        height, width = group[array].shape[-2:]
        transforms, bounds = group["transform"][...], group["bounds"][...]
        # A rejected tile records no transform: its grid is the one its bounds define.
        footprints = tuple(
            Footprint(
                Affine(*t) if t.any() else from_bounds(*b, width, height),
                height,
                width,
            )
            for t, b in zip(transforms, bounds, strict=True)
        )
        return cls(footprints, group["valid"][...].astype(bool), group["split"][...])

    def positions(self, splits: Sequence[str]) -> np.ndarray:
        """Every tile of `splits`, valid or rejected, in store order: the tiles whose
        bounds the mosaic covers (rejected ones as nodata)."""
        return np.flatnonzero(np.isin(self.split, list(splits)))

    def grid(self, positions: Sequence[int]) -> MosaicGrid:
        """The mosaic grid of the tiles at `positions`."""
        return mosaic_grid(self.footprints[p] for p in positions)

    def cover(self, grid: MosaicGrid, positions: Sequence[int]) -> MosaicGrid:
        """The part of `grid` that a shard of the tiles at `positions` writes."""
        return grid.cover(self.footprints[p] for p in positions)

    def tiles(self, positions: Sequence[int], read: Callable[[int], np.ndarray]) -> Iterator[Tile]:
        """(transform, read(position)) of each valid tile at `positions`, one at a time."""
        for position in positions:
            if self.valid[position]:
                yield self.footprints[position].transform, read(int(position))
