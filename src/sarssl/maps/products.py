"""The products mapped over an AOI and their encodings, each a mosaic of per-tile rasters
(sarssl.maps.cog) on the AOI's grid (sarssl.maps.grid):
- land cover: uint8 ESA WorldCover codes (10..100) with the official colour table, nodata
  0 as in WorldCover's own rasters; warped by nearest neighbour, overviews by mode;
- attention: float32, one band per head, nodata NaN; bilinear, overviews by average;
- S1 quicklook: uint8 RGB of the annual means of VV, VH and VV-VH stretched to 1..255
  (percentiles of a sample of tiles, the same for every shard), nodata 0; bilinear,
  overviews by average.
"""

import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path

import numpy as np
import zarr
from rasterio.enums import ColorInterp, Resampling

from ..dataset.bands import CHANNELS, QUANTITIES, SEASONS, band_name
from ..dataset.store import channel_coding
from ..dataset.worldcover import CLASSES, IGNORE_INDEX, NUM_CLASSES, WORLDCOVER_NODATA
from .cog import BLOCK_PX, write_mosaic
from .grid import MosaicGrid, Tile

CLASS_NODATA = WORLDCOVER_NODATA
ATTENTION_NODATA = float("nan")
QUICKLOOK_NODATA = 0
STRETCH_PERCENTILES = (2.0, 98.0)
QUICKLOOK_SAMPLE_TILES = 64
# Every 4th pixel of a sampled tile each way: percentiles of 64 tiles of 448 px from 10 MB.
QUICKLOOK_PIXEL_STRIDE = 4

# Class index -> WorldCover code; IGNORE_INDEX -> nodata.
_CODE_OF_INDEX = np.full(256, CLASS_NODATA, dtype=np.uint8)
_CODE_OF_INDEX[:NUM_CLASSES] = [c.code for c in CLASSES]


def array_reader(path: str | Path, name: str) -> Callable[[int], np.ndarray]:
    """Position -> the values of one tile of the Zarr array `name` (e.g. labels,
    attention)."""
    array = zarr.open_group(path, mode="r", zarr_format=3)[name]
    return lambda position: array[position]


def s1_db_reader(store: str | Path) -> Callable[[int], np.ndarray]:
    """Position -> (channel, row, col) float32 dB of one tile of a dataset store, NaN where
    it holds no SAR."""
    s1grd = zarr.open_group(store, mode="r", zarr_format=3)["s1grd"]
    coding = channel_coding(s1grd)
    return lambda position: coding.decode(s1grd[position])


def worldcover_colormap() -> dict[int, tuple[int, int, int, int]]:
    """WorldCover code -> the official RGBA; nodata transparent."""
    colours = {c.code: (*bytes.fromhex(c.colour.removeprefix("#")), 255) for c in CLASSES}
    return {CLASS_NODATA: (0, 0, 0, 0), **colours}


def class_codes(indices: np.ndarray) -> np.ndarray:
    """(row, col) class indices (IGNORE_INDEX where unlabelled) -> (1, row, col) uint8
    WorldCover codes, CLASS_NODATA where unlabelled."""
    indices = np.asarray(indices)
    known = (indices < NUM_CLASSES) | (indices == IGNORE_INDEX)
    if indices.min(initial=0) < 0 or not known.all():
        raise ValueError(f"class indices {sorted(set(indices[~known].tolist()))} are no class")
    return _CODE_OF_INDEX[indices.astype(np.uint8)][None]


def write_class_mosaic(
    path: str | Path,
    grid: MosaicGrid,
    tiles: Iterable[Tile],
    *,
    description: str = "land cover (ESA WorldCover code)",
    tags: Mapping[str, str] | None = None,
    blocksize: int = BLOCK_PX,
) -> int:
    """Mosaic of (1, row, col) uint8 WorldCover codes (CLASS_NODATA where unknown), with the
    WorldCover colour table and class names."""
    return write_mosaic(
        path,
        grid,
        tiles,
        dtype="uint8",
        nodata=CLASS_NODATA,
        band_descriptions=[description],
        colormap=worldcover_colormap(),
        class_names={c.code: c.name for c in CLASSES},
        tags=tags,
        resampling=Resampling.nearest,
        overview_resampling=Resampling.mode,
        blocksize=blocksize,
    )


def write_attention_mosaic(
    path: str | Path,
    grid: MosaicGrid,
    tiles: Iterable[Tile],
    heads: int,
    backbone: str,
    *,
    tags: Mapping[str, str] | None = None,
    blocksize: int = BLOCK_PX,
) -> int:
    """Mosaic of (head, gy, gx) CLS attention maps: float32, band h+1 "head h (backbone)"."""
    return write_mosaic(
        path,
        grid,
        ((t, values.astype(np.float32, copy=False)) for t, values in tiles),
        dtype="float32",
        nodata=ATTENTION_NODATA,
        band_descriptions=[f"head {h} ({backbone})" for h in range(heads)],
        tags=tags,
        blocksize=blocksize,
    )


# (quantity, season) -> channel: the channels averaged into each quicklook band.
_COMPOSITE_CHANNELS = np.array(
    [[CHANNELS.index(band_name(season, q)) for season in SEASONS] for q in QUANTITIES]
)


def s1_composite(db: np.ndarray) -> np.ndarray:
    """(channel, row, col) dB -> (3, row, col) float32 annual means of VV, VH and VV-VH; NaN
    where a season has no SAR."""
    return db[_COMPOSITE_CHANNELS].astype(np.float32).mean(axis=1)


def sample_positions(positions: Sequence[int], n: int = QUICKLOOK_SAMPLE_TILES) -> np.ndarray:
    """At most `n` of `positions`, evenly spaced along the store order (spread over the AOI,
    and the same for every shard)."""
    positions = np.asarray(positions)
    if len(positions) <= n:
        return positions
    return positions[np.linspace(0, len(positions) - 1, n).round().astype(int)]


def quicklook_stretch(
    images: Iterable[np.ndarray],
    percentiles: tuple[float, float] = STRETCH_PERCENTILES,
    pixel_stride: int = QUICKLOOK_PIXEL_STRIDE,
) -> np.ndarray:
    """(3, 2) dB bounds (low, high) of the quicklook's bands: the `percentiles` of the
    composites of the sampled (channel, row, col) dB `images`, every `pixel_stride`-th pixel."""
    pooled = np.concatenate(
        [
            s1_composite(db)[:, ::pixel_stride, ::pixel_stride].reshape(len(QUANTITIES), -1)
            for db in images
        ],
        axis=1,
    )
    if not np.isfinite(pooled).any(axis=1).all():
        raise ValueError("the sampled tiles hold no SAR to stretch the quicklook by")
    return np.nanpercentile(pooled, percentiles, axis=1).T


def quicklook_rgb(db: np.ndarray, stretch: np.ndarray) -> np.ndarray:
    """(channel, row, col) dB -> (3, row, col) uint8: each composite band mapped linearly
    from its (low, high) stretch onto 1..255 and clipped; QUICKLOOK_NODATA without SAR."""
    composite = s1_composite(db)
    low, high = stretch[:, :1, None], stretch[:, 1:, None]
    scaled = np.clip((composite - low) / np.maximum(high - low, 1e-6), 0, 1)
    rgb = 1 + np.rint(scaled * 254)
    return np.where(np.isnan(composite), QUICKLOOK_NODATA, rgb).astype(np.uint8)


def write_quicklook_mosaic(
    path: str | Path,
    grid: MosaicGrid,
    tiles: Iterable[Tile],
    stretch: np.ndarray,
    *,
    tags: Mapping[str, str] | None = None,
    blocksize: int = BLOCK_PX,
) -> int:
    """Mosaic of the RGB quicklook of (channel, row, col) dB tiles, stretched by `stretch`
    (quicklook_stretch), which the tag `stretch_db` records."""
    bounds = {q: [round(float(v), 3) for v in stretch[i]] for i, q in enumerate(QUANTITIES)}
    return write_mosaic(
        path,
        grid,
        ((t, quicklook_rgb(db, stretch)) for t, db in tiles),
        dtype="uint8",
        nodata=QUICKLOOK_NODATA,
        band_descriptions=[
            f"{name} annual mean, {low} to {high} dB -> 1 to 255"
            for name, (low, high) in bounds.items()
        ],
        colorinterp=[ColorInterp.red, ColorInterp.green, ColorInterp.blue],
        tags={**(tags or {}), "stretch_db": json.dumps(bounds)},
        blocksize=blocksize,
    )
