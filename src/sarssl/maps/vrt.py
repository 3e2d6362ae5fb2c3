"""A GDAL VRT that mosaics the COGs of a map's shards (parts of one MosaicGrid), written
as GDAL's XML by hand: a later shard's valid pixels win where shards overlap."""

import math
import os
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from pathlib import Path

import rasterio
import rasterio.shutil
from rasterio.enums import ColorInterp

from ..atomic import write_text_atomic

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
