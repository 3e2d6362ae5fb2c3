"""The analysis-ready Zarr v3 store of one AOI.

Layout (xarray-readable, dimension names in the array metadata):
    s1grd     (tile, channel, y, x)  float16 or float32 dB, or uint8 / uint16 codes packed
                                     with CF scale_factor, add_offset and _FillValue
                                     (sarssl.dataset.quantise); one chunk per tile
    labels    (tile, y, x)           uint8 class index 0..10, 255 = ignore
    observed_seasons (tile, y, x)    uint8, bit s set where season s (season order) was
                                     observed in VV and VH; elsewhere the season is imputed
    tile      (tile)                 geetiles identifier
    channel   (channel)              names in sarssl.dataset.bands.CHANNELS order
    season, polarisation             names in sarssl.dataset.bands order
    bounds    (tile, corner)         west, south, east, north (EPSG:4326 degrees)
  written when the build is finalised (TILE_COORDINATES):
    split     (tile)                 train / val / test
    valid     (tile)                 False for rejected tiles (zeros, labels all 255)
    crs       (tile)                 CRS of the tile's pixel grid
    transform (tile, affine)         a, b, c, d, e, f of the pixel-to-map affine transform
    nodata_fraction (tile)           share of pixels without SAR data (labels ignored there)
    observed_fraction (tile, season, polarisation)
                                     share of pixels observed; the rest is imputed
    orbit_pass (tile)                the pass(es) the channels come from, and any missing
    wraps_unwrapped, wraps_nodata (tile)
                                     uint8 wraps undone, and ambiguous ones made nodata
    effective_pixel_m (tile)         ground metres per pixel the stored tile holds: the
                                     coarser of its grid's and its S1 file's (tilegrid)
    clipped_pixels (tile)            pixels with a channel beyond a packed store's range
  and the train-split normalisation statistics in the attributes of s1grd.

The subgroup `sarssl_complete` (a marker, renamed into place atomically) exists only after a
successful finalisation; every shard job removes it before writing, and `open_store` refuses
a store without it.
"""

import shutil
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import NamedTuple, cast

import numpy as np
import xarray as xr
import zarr
import zarr.codecs
from rasterio.transform import Affine

from .. import __version__
from ..atomic import atomic_path
from ..errors import IncompleteStoreError
from .bands import CHANNELS, POLARISATIONS, SEASONS
from .quantise import ChannelCoding
from .worldcover import CLASSES, IGNORE_INDEX

COMPLETE_MARKER = "sarssl_complete"
# Per-tile coordinates written at finalisation: dimensions and dtype.
TILE_COORDINATES: dict[str, tuple[tuple[str, ...], type | str]] = {
    "split": (("tile",), str),
    "valid": (("tile",), "bool"),
    "crs": (("tile",), str),
    "transform": (("tile", "affine"), "float64"),
    "nodata_fraction": (("tile",), "float32"),
    "observed_fraction": (("tile", "season", "polarisation"), "float32"),
    "orbit_pass": (("tile",), str),
    "wraps_unwrapped": (("tile",), "int64"),
    "wraps_nodata": (("tile",), "int64"),
    "effective_pixel_m": (("tile",), "float32"),
    "clipped_pixels": (("tile",), "int64"),
}
COORDINATES = ("bounds", *TILE_COORDINATES)


class StoreArrays(NamedTuple):
    """The per-tile arrays a shard job writes, the tiles' bounds (west, south, east,
    north), which define each tile's pixel grid, and how s1grd holds dB."""

    s1grd: zarr.Array
    labels: zarr.Array
    observed_seasons: zarr.Array
    bounds: np.ndarray
    coding: ChannelCoding


def _compressor(dtype: str) -> zarr.codecs.BloscCodec:
    """Blosc-zstd with byte shuffle; for uint8 Blosc-LZ4HC (level 9), whose decompression
    keeps a loader worker within its goal of 4 ms per tile: on 448 px uint8 tiles it reads
    1.36 MB in 1.1 ms, against zstd's 1.08 MB in 4.6 ms (one thread; benchmarks/loader.py,
    RESULTS.md). It costs 130 ms per tile to compress, once, at the build."""
    if dtype == "uint8":
        return zarr.codecs.BloscCodec(cname="lz4hc", clevel=9, shuffle="noshuffle")
    return zarr.codecs.BloscCodec(cname="zstd", clevel=3, shuffle="shuffle")


def create_store(
    path: str | Path,
    tile_ids: list[str],
    bounds: np.ndarray,
    tile_px: int,
    dtype: str,
    attrs: dict,
) -> None:
    """Create the empty store (arrays sized for every tile, no chunk written), atomically.
    `dtype` is the s1grd array's (sarssl.dataset.quantise.STORE_DTYPES)."""
    n = len(tile_ids)
    coding = ChannelCoding.of_dtype(dtype)
    with atomic_path(path, is_dir=True) as tmp:
        group = zarr.open_group(tmp, mode="w", zarr_format=3)
        group.attrs.update(
            {
                **attrs,
                "sarssl_version": __version__,
                "channels": list(CHANNELS),
                "classes": [
                    {"index": i, "code": c.code, "name": c.name} for i, c in enumerate(CLASSES)
                ],
                "ignore_index": IGNORE_INDEX,
            }
        )
        coords = " ".join(COORDINATES)
        group.create_array(
            "s1grd",
            shape=(n, len(CHANNELS), tile_px, tile_px),
            chunks=(1, len(CHANNELS), tile_px, tile_px),
            dtype=dtype,
            fill_value=coding.fill_value,
            compressors=_compressor(dtype),
            dimension_names=("tile", "channel", "y", "x"),
            attributes={"units": "dB", "coordinates": coords, **coding.attributes()},
        )
        group.create_array(
            "labels",
            shape=(n, tile_px, tile_px),
            chunks=(1, tile_px, tile_px),
            dtype="uint8",
            fill_value=IGNORE_INDEX,
            compressors=zarr.codecs.ZstdCodec(level=3),
            dimension_names=("tile", "y", "x"),
            attributes={"coordinates": coords},
        )
        group.create_array(
            "observed_seasons",
            shape=(n, tile_px, tile_px),
            chunks=(1, tile_px, tile_px),
            dtype="uint8",
            fill_value=0,
            compressors=zarr.codecs.ZstdCodec(level=3),
            dimension_names=("tile", "y", "x"),
            attributes={
                "coordinates": coords,
                "flag_masks": [1 << s for s in range(len(SEASONS))],
                "flag_meanings": " ".join(f"{s}_observed" for s in SEASONS),
            },
        )
        write_coordinate(group, "tile", np.array(tile_ids, dtype=object), ("tile",), str)
        write_coordinate(group, "channel", np.array(CHANNELS, dtype=object), ("channel",), str)
        write_coordinate(group, "season", np.array(SEASONS, dtype=object), ("season",), str)
        write_coordinate(
            group, "polarisation", np.array(POLARISATIONS, dtype=object), ("polarisation",), str
        )
        write_coordinate(group, "bounds", bounds, ("tile", "corner"), "float64")


def write_coordinate(
    group: zarr.Group, name: str, values: np.ndarray, dims: tuple[str, ...], dtype
) -> None:
    array = group.create_array(
        name,
        shape=values.shape,
        chunks=values.shape,
        dtype=dtype,
        dimension_names=dims,
        overwrite=True,
    )
    array[...] = values


def consolidate(path: str | Path) -> None:
    """Gather the metadata of every array into the root's zarr.json, so that readers open
    the store in one read (and xarray without its warning about unconsolidated stores)."""
    with warnings.catch_warnings():
        # Zarr warns that format 3 does not specify consolidated metadata yet; xarray, zarr
        # and the pipeline read it, and other readers fall back to the arrays' metadata.
        warnings.filterwarnings("ignore", "Consolidated metadata", UserWarning)
        zarr.consolidate_metadata(str(path), zarr_format=3)


def open_arrays(path: str | Path) -> StoreArrays:
    """The per-tile arrays, for chunk-aligned writes by one shard, and the tiles' bounds."""
    group = zarr.open_group(path, mode="r+", zarr_format=3)
    s1grd = cast(zarr.Array, group["s1grd"])
    return StoreArrays(
        s1grd,
        cast(zarr.Array, group["labels"]),
        cast(zarr.Array, group["observed_seasons"]),
        cast(np.ndarray, cast(zarr.Array, group["bounds"])[...]),
        channel_coding(s1grd),
    )


def channel_coding(s1grd: zarr.Array) -> ChannelCoding:
    """How the values of a store's s1grd array give dB."""
    return ChannelCoding.of_attributes(str(s1grd.dtype), s1grd.attrs)


def store_coding(path: str | Path) -> ChannelCoding:
    """How the s1grd array of the store at `path` holds dB (read only)."""
    s1grd = zarr.open_group(path, mode="r", zarr_format=3)["s1grd"]
    return channel_coding(cast(zarr.Array, s1grd))


def mark_incomplete(path: str | Path) -> None:
    # Shard jobs may race here; whichever removes the marker, it is gone.
    shutil.rmtree(Path(path) / COMPLETE_MARKER, ignore_errors=True)


def is_complete(path: str | Path) -> bool:
    return (Path(path) / COMPLETE_MARKER / "zarr.json").is_file()


def finalise_store(
    path: str | Path, coordinates: Mapping[str, np.ndarray], stats: dict, s1: dict
) -> None:
    """Write the per-tile coordinates (every one of TILE_COORDINATES), the statistics and
    what the S1 files were (`s1`: layouts, orbit passes), then mark the store complete."""
    group = zarr.open_group(path, mode="r+", zarr_format=3)
    for name, (dims, dtype) in TILE_COORDINATES.items():
        values = np.asarray(coordinates[name])
        values = values.astype(object) if dtype is str else values.astype(dtype)
        write_coordinate(group, name, values, dims, dtype)
    # On the array, as the store's statistics of its pixels.
    group["s1grd"].attrs.update({"normalisation": stats, "source_files": s1})
    consolidate(path)
    with atomic_path(Path(path) / COMPLETE_MARKER, is_dir=True) as tmp:
        tiles = len(coordinates["split"])
        zarr.open_group(tmp, mode="w", zarr_format=3, attributes={"tiles": tiles})


def check_complete(path: str | Path) -> None:
    """Refuse a store whose build did not finish."""
    if not is_complete(path):
        raise IncompleteStoreError(
            f"{path}: the build of this store did not finish (no {COMPLETE_MARKER}); "
            "rerun the pipeline to complete it"
        )


def open_store(path: str | Path) -> xr.Dataset:
    """Open a finished store lazily; refuse one whose build did not finish."""
    check_complete(path)
    return xr.open_zarr(path, zarr_format=3)


def split_positions(store: str | Path, splits: Sequence[str]) -> np.ndarray:
    """Positions of the valid tiles of `splits` in a finished store, in store order."""
    dataset = open_store(store)
    return np.flatnonzero(np.isin(dataset["split"].values, list(splits)) & dataset["valid"].values)


def tile_transform(dataset: xr.Dataset, tile: int) -> Affine:
    """Pixel (col, row) -> map (x, y) transform of tile number `tile`."""
    return Affine(*dataset["transform"].values[tile])
