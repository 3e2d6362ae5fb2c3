"""GeoTIFF reading and writing at the edge of the pipeline.

Reading turns every failure (missing, truncated, unreadable) into a TileError naming the
tile and the file; writing is atomic so that a killed writer never leaves a file that looks
complete.
"""

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import rasterio
from rasterio.enums import MaskFlags, Resampling
from rasterio.transform import Affine
from rasterio.windows import from_bounds

from ..atomic import atomic_path
from ..errors import TileError


@dataclass(frozen=True)
class Raster:
    """Bands of one file, as stored (the file's dtype), with their names, georeferencing and
    the file's own mask."""

    data: np.ndarray  # (band, row, col)
    band_names: tuple[str, ...]
    crs: str
    transform: Affine
    # (band, row, col) False where GDAL masks the pixel (nodata value, internal or per-band
    # mask); None when every pixel is valid.
    valid: np.ndarray | None = None
    units: tuple[str | None, ...] = ()  # per band, as the file declares them (None: unstated)

    @property
    def shape(self) -> tuple[int, int]:
        return self.data.shape[1], self.data.shape[2]

    @property
    def bounds(self) -> tuple[float, float, float, float]:
        """(west, south, east, north) of the pixel edges."""
        return rasterio.transform.array_bounds(*self.shape, self.transform)


def read_raster(
    path: str | Path,
    tile: str,
    *,
    what: str = "",
    bounds: tuple[float, float, float, float] | None = None,
    out_shape: tuple[int, int] | None = None,
) -> Raster:
    """Read all bands of `path` and their masks; every failure is a TileError naming the
    tile, the file and (`what`, e.g. "S1") its role.

    With `bounds` (west, south, east, north, in the file's CRS) and `out_shape` (rows, cols),
    only that window is read, resampled by nearest neighbour (GDAL picks an overview when the
    output is coarser), so a 36000x36000 WorldCover tile is never read whole.
    """
    path = Path(path)
    name = f"{what} file" if what else "file"
    if not path.is_file():
        raise TileError(tile, f"{name} missing: {path}")
    if path.stat().st_size == 0:
        raise TileError(tile, f"{name} {path} is empty (0 bytes)")
    try:
        with rasterio.open(path) as src:
            window = None
            transform = src.transform
            if bounds is not None:
                window = from_bounds(*bounds, transform=src.transform)
                rows, cols = out_shape or (round(window.height), round(window.width))
                transform = rasterio.transform.from_bounds(*bounds, cols, rows)
            read_shape = None if out_shape is None else (src.count, *out_shape)
            options = {"window": window, "out_shape": read_shape, "boundless": False}
            data = src.read(resampling=Resampling.nearest, **options)
            valid = None
            # A NaN nodata value masks what is NaN in the data anyway: no second read.
            nan_nodata = src.nodata is not None and np.isnan(src.nodata)
            if not all(
                MaskFlags.all_valid in flags or (nan_nodata and flags == [MaskFlags.nodata])
                for flags in src.mask_flag_enums
            ):
                valid = src.read_masks(**options) != 0
            names = tuple(d or f"band{i + 1}" for i, d in enumerate(src.descriptions))
            crs = src.crs.to_string() if src.crs else ""
            units = tuple(u or None for u in src.units)
    except rasterio.errors.RasterioError as err:
        raise TileError(tile, f"cannot read {name} {path}: {err}") from err
    return Raster(
        data=data, band_names=names, crs=crs, transform=transform, valid=valid, units=units
    )


def write_geotiff(
    path: str | Path,
    data: np.ndarray,
    band_names: Sequence[str],
    crs: str,
    transform: Affine,
    nodata: float | int | None,
) -> None:
    """Write (band, row, col) `data` as a tiled, deflate-compressed GeoTIFF, atomically."""
    if data.ndim != 3 or data.shape[0] != len(band_names):
        raise ValueError(f"{path}: data {data.shape} does not match bands {list(band_names)}")
    profile = {
        "driver": "GTiff",
        "height": data.shape[1],
        "width": data.shape[2],
        "count": data.shape[0],
        "dtype": data.dtype.name,
        "crs": crs,
        "transform": transform,
        "nodata": nodata,
        "compress": "deflate",
    }
    with atomic_path(path) as tmp, rasterio.open(tmp, "w", **profile) as dst:
        dst.write(data)
        for i, name in enumerate(band_names, start=1):
            dst.set_band_description(i, name)
