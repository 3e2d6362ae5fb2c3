"""AOI-wide Cloud-Optimized GeoTIFF mosaics of per-tile rasters (issue 24).

Tiles are placed on one EPSG:4326 grid at the finest pixel size among them, each by its own
transform (geetiles' tiles differ in size and pixel count), by rasterio.warp.reproject. The
writer holds one tile's window at a time: it assembles a tiled, uncompressed, sparse
GeoTIFF beside the output tile by tile (a tile overrides what lies under its valid pixels;
elsewhere the file keeps what earlier tiles wrote), with GDAL's block cache bounded, and
GDAL's COG driver then copies it into a COG with overviews. The scratch file takes the
uncompressed size of the blocks the tiles touch (at most the grid's): sharding bounds it.
Pixels no valid tile covers are nodata.

At scale, shards of the tiles each write their part of the one grid (MosaicGrid.cover), so
that the parts align pixel for pixel, and `write_vrt` mosaics the parts' COGs.

Products and their encodings:
- land cover: uint8 ESA WorldCover codes (10..100) with the official colour table, nodata
  0 as in WorldCover's own rasters; warped by nearest neighbour, overviews by mode;
- attention: float32, one band per head, nodata NaN; bilinear, overviews by average;
- S1 quicklook: uint8 RGB of the annual means of VV, VH and VV-VH stretched to 1..255
  (percentiles of a sample of tiles, the same for every shard), nodata 0; bilinear,
  overviews by average.
"""

import json
import math
import os
import tempfile
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import numpy as np
import rasterio
import rasterio.shutil
import zarr
from rasterio.enums import ColorInterp, Resampling
from rasterio.transform import Affine, array_bounds, from_bounds
from rasterio.warp import reproject
from rasterio.windows import Window

from ..atomic import atomic_path, write_text_atomic
from ..dataset.bands import CHANNELS, QUANTITIES, SEASONS, band_name
from ..dataset.store import channel_coding, check_complete
from ..dataset.tilegrid import CANONICAL_CRS
from ..dataset.worldcover import CLASSES, IGNORE_INDEX, NUM_CLASSES, WORLDCOVER_NODATA

# A tile to place: its pixel-to-lon/lat transform and its (band, row, col) values.
Tile = tuple[Affine, np.ndarray]

BLOCK_PX = 512  # internal tiles of the COGs (and of the file they are assembled in)
# GDAL's block cache while assembling: the writer's memory stays this plus one tile, whatever
# the mosaic's size.
CACHE_MB = 256
# A tile edge within this fraction of a pixel of a grid line lies on it (degrees in floats).
EDGE_TOLERANCE_PX = 1e-6
COG_OPTIONS = {"COMPRESS": "DEFLATE", "PREDICTOR": "YES", "BIGTIFF": "IF_SAFER"}

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

# numpy dtype -> GDAL's name, for the VRT
GDAL_TYPES = {
    "uint8": "Byte",
    "int8": "Int8",
    "uint16": "UInt16",
    "int16": "Int16",
    "uint32": "UInt32",
    "int32": "Int32",
    "float32": "Float32",
    "float64": "Float64",
}


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


def _is_data(values: np.ndarray, nodata: float) -> np.ndarray:
    return ~np.isnan(values) if math.isnan(nodata) else values != nodata


def _place(
    dst: rasterio.io.DatasetWriter,
    grid: MosaicGrid,
    tile: Tile,
    nodata: float,
    resampling: Resampling,
) -> bool:
    """Warp one tile onto its window of the grid and write its valid pixels there."""
    transform, values = tile
    if values.ndim != 3 or values.shape[0] != dst.count:
        raise ValueError(f"tile of shape {values.shape}, expected ({dst.count}, rows, cols)")
    span = grid.span(Footprint(transform, *values.shape[1:]))
    if span is None:
        return False
    col_start, row_start, col_stop, row_stop = span
    warped = np.full((dst.count, row_stop - row_start, col_stop - col_start), nodata, dst.dtypes[0])
    reproject(
        values.astype(dst.dtypes[0], copy=False),
        warped,
        src_transform=transform,
        src_crs=CANONICAL_CRS,
        src_nodata=nodata,
        # From the whole grid's origin: the same pixels in every part of the grid.
        dst_transform=grid.origin @ Affine.translation(col_start, row_start),
        dst_crs=CANONICAL_CRS,
        dst_nodata=nodata,
        resampling=resampling,
    )
    window = Window(
        col_start - grid.col_off, row_start - grid.row_off, warped.shape[2], warped.shape[1]
    )
    # Neighbouring tiles may share a pixel of the grid: keep what lies outside this one.
    merged = dst.read(window=window)
    data = _is_data(warped, nodata)
    merged[data] = warped[data]
    dst.write(merged, window=window)
    return True


def write_mosaic(
    path: str | Path,
    grid: MosaicGrid,
    tiles: Iterable[Tile],
    *,
    dtype: str,
    nodata: float,
    band_descriptions: Sequence[str],
    colormap: Mapping[int, tuple[int, int, int, int]] | None = None,
    class_names: Mapping[int, str] | None = None,
    colorinterp: Sequence[ColorInterp] | None = None,
    tags: Mapping[str, str] | None = None,
    resampling: Resampling = Resampling.bilinear,
    overview_resampling: Resampling = Resampling.average,
    blocksize: int = BLOCK_PX,
) -> int:
    """Write the tiles onto `grid` as a COG at `path`, atomically; return the number of
    tiles placed (those on the grid).

    `colormap` (value -> RGBA) goes to band 1; `class_names` (value -> name) to the tag
    `classes` as JSON. `blocksize` (a multiple of 16) sizes the internal tiles, and so the
    overviews: GDAL adds them until the smallest fits in one tile.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    profile = {
        "driver": "GTiff",
        "width": grid.width,
        "height": grid.height,
        "count": len(band_descriptions),
        "dtype": dtype,
        "nodata": nodata,
        "crs": CANONICAL_CRS,
        "transform": grid.transform,
        "tiled": True,
        "blockxsize": blocksize,
        "blockysize": blocksize,
        # Uncompressed: GDAL rewrites a block each time a tile's window moves on, which
        # compression made 10 times slower (1600 attention tiles: 92 s against 9 s). Blocks
        # no tile touches take no space and read as nodata; with bands interleaved by pixel
        # a block half written read 0, not nodata, in its other bands.
        "sparse_ok": True,
        "interleave": "band",
        "bigtiff": "yes",
    }
    all_tags = dict(tags or {})
    if class_names is not None:
        all_tags["classes"] = json.dumps({str(k): v for k, v in sorted(class_names.items())})
    with (
        rasterio.Env(GDAL_CACHEMAX=CACHE_MB),
        tempfile.TemporaryDirectory(prefix=f".{path.name}.", dir=path.parent) as scratch,
    ):
        assembled = Path(scratch) / "assembled.tif"
        with rasterio.open(assembled, "w+", **profile) as dst:
            placed = sum(_place(dst, grid, tile, nodata, resampling) for tile in tiles)
            for band, description in enumerate(band_descriptions, start=1):
                dst.set_band_description(band, description)
            if colormap is not None:
                dst.write_colormap(1, colormap)
            if colorinterp is not None:
                dst.colorinterp = colorinterp
            dst.update_tags(**all_tags)
        with atomic_path(path) as tmp:
            rasterio.shutil.copy(
                assembled,
                tmp,
                driver="COG",
                BLOCKSIZE=blocksize,
                OVERVIEW_RESAMPLING=overview_resampling.name.upper(),
                **COG_OPTIONS,
            )
    return placed


def _vrt_nodata(nodata: float) -> str:
    return "nan" if math.isnan(nodata) else repr(nodata)


def write_vrt(path: str | Path, shards: Sequence[str | Path]) -> None:
    """A GDAL VRT at `path` that mosaics the COGs of the shards (parts of one MosaicGrid),
    atomically. Where shards overlap, a later shard's valid pixels win, as a later tile's do
    in one file; bands, nodata, colours and tags are the first shard's."""
    path = Path(path)
    if not shards:
        raise ValueError("a VRT needs at least one shard")
    with rasterio.open(shards[0]) as first:
        count, dtype, nodata = first.count, first.dtypes[0], first.nodata
        pixel, crs, tags = first.res, first.crs, first.tags()
        descriptions, colorinterp = first.descriptions, first.colorinterp
        colormaps = {
            b: first.colormap(b)
            for b in range(1, count + 1)
            if colorinterp[b - 1] == ColorInterp.palette
        }
        block_rows, block_cols = first.block_shapes[0]
        factors = first.overviews(1)
    parts = []
    for shard in shards:
        with rasterio.open(shard) as src:
            if (src.count, src.dtypes[0], src.res) != (count, dtype, pixel):
                raise ValueError(f"{shard}: bands, dtype or pixel size differ from {shards[0]}")
            parts.append((Path(shard), src.transform, src.width, src.height))
    west = min(t.c for _, t, _, _ in parts)
    north = max(t.f for _, t, _, _ in parts)
    offsets = []
    for shard, transform, _, _ in parts:
        col, row = (transform.c - west) / pixel[0], (north - transform.f) / pixel[1]
        if abs(col - round(col)) > 1e-3 or abs(row - round(row)) > 1e-3:
            raise ValueError(f"{shard} is not on the grid of {shards[0]}")
        offsets.append((round(col), round(row)))
    width = max(col + w for (col, _), (_, _, w, _) in zip(offsets, parts, strict=True))
    height = max(row + h for (_, row), (_, _, _, h) in zip(offsets, parts, strict=True))

    root = ET.Element("VRTDataset", rasterXSize=str(width), rasterYSize=str(height))
    ET.SubElement(root, "SRS").text = crs.to_wkt()
    geotransform = (west, pixel[0], 0.0, north, 0.0, -pixel[1])
    ET.SubElement(root, "GeoTransform").text = ", ".join(repr(v) for v in geotransform)
    metadata = ET.SubElement(root, "Metadata")
    for key, value in tags.items():
        ET.SubElement(metadata, "MDI", key=key).text = value
    for band in range(1, count + 1):
        element = ET.SubElement(root, "VRTRasterBand", dataType=GDAL_TYPES[dtype], band=str(band))
        if descriptions[band - 1]:
            ET.SubElement(element, "Description").text = descriptions[band - 1]
        if nodata is not None:
            ET.SubElement(element, "NoDataValue").text = _vrt_nodata(nodata)
        ET.SubElement(element, "ColorInterp").text = colorinterp[band - 1].name.capitalize()
        if band in colormaps:
            table = ET.SubElement(element, "ColorTable")
            for value in range(max(colormaps[band]) + 1):
                rgba = colormaps[band].get(value, (0, 0, 0, 0))
                ET.SubElement(table, "Entry", {f"c{i + 1}": str(c) for i, c in enumerate(rgba)})
        for (shard, _, w, h), (col, row) in zip(parts, offsets, strict=True):
            source = ET.SubElement(element, "ComplexSource")
            relative = os.path.relpath(shard.resolve(), path.parent.resolve())
            ET.SubElement(source, "SourceFilename", relativeToVRT="1").text = relative
            ET.SubElement(source, "SourceBand").text = str(band)
            ET.SubElement(
                source,
                "SourceProperties",
                RasterXSize=str(w),
                RasterYSize=str(h),
                DataType=GDAL_TYPES[dtype],
                BlockXSize=str(block_cols),
                BlockYSize=str(block_rows),
            )
            ET.SubElement(source, "SrcRect", xOff="0", yOff="0", xSize=str(w), ySize=str(h))
            ET.SubElement(
                source, "DstRect", xOff=str(col), yOff=str(row), xSize=str(w), ySize=str(h)
            )
            if nodata is not None:
                # Nodata of a shard lets the shards under it show through.
                ET.SubElement(source, "NODATA").text = _vrt_nodata(nodata)
    if factors:
        # Virtual overviews, read from the shards' own: a reader of the whole mosaic at a
        # small scale (the map page) never reads its full resolution.
        resampling = "NEAREST" if colormaps else "AVERAGE"
        overviews = ET.SubElement(root, "OverviewList", resampling=resampling)
        overviews.text = " ".join(map(str, factors))
    ET.indent(root)
    write_text_atomic(path, ET.tostring(root, encoding="unicode") + "\n")


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
        """The tiles of an attention-map store (sarssl.attention_maps): token grids."""
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
