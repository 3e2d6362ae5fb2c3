"""One shard of each map drawn from what the pipeline has stored, without torch: the
per-head attention of a pre-training (its attention-map store), and an AOI's WorldCover
labels and S1 quicklook (its dataset store). Every shard is a COG on the part of the one
mosaic grid its tiles cover; a VRT joins the shards (sarssl.maps.vrt)."""

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import zarr

from ..dataset.bands import QUANTITIES
from ..errors import SarsslError
from .grid import MosaicGrid, TileFootprints
from .products import (
    array_reader,
    class_codes,
    quicklook_stretch,
    s1_db_reader,
    sample_positions,
    write_attention_mosaic,
    write_class_mosaic,
    write_quicklook_mosaic,
)


def shard_part(
    footprints: TileFootprints, splits: Sequence[str], shard: int, n_shards: int
) -> tuple[MosaicGrid, np.ndarray]:
    """The part of the mosaic grid of every tile of `splits` that shard `shard` of
    `n_shards` writes, and its tiles' positions: contiguous runs of the store's order, as the
    store build's shards."""
    positions = footprints.positions(splits)
    if len(positions) < n_shards:
        raise SarsslError(
            f"{len(positions)} tiles of splits {list(splits)} cannot make {n_shards} map "
            "shards (config maps.n_shards)"
        )
    mine = np.array_split(positions, n_shards)[shard]
    return footprints.cover(footprints.grid(positions), mine), mine


def write_attention_shard(
    path: str | Path, maps: str | Path, splits: Sequence[str], shard: int, n_shards: int
) -> int:
    """Shard of the per-head CLS attention mosaic of an attention-map store (the maps on
    the ViT's token grid, one band per head); the number of tiles placed."""
    footprints = TileFootprints.of_attention_maps(maps)
    part, positions = shard_part(footprints, splits, shard, n_shards)
    group = zarr.open_group(maps, mode="r", zarr_format=3)
    attrs = group.attrs
    return write_attention_mosaic(
        path,
        part,
        footprints.tiles(positions, array_reader(maps, "attention")),
        heads=group["attention"].shape[1],
        backbone=attrs["backbone"],
        tags={"pretrain": attrs["pretrain"], "architecture": attrs["architecture"]},
    )


def write_labels_shard(
    path: str | Path, store: str | Path, splits: Sequence[str], shard: int, n_shards: int
) -> int:
    """Shard of the WorldCover labels mosaic of a dataset store."""
    footprints = TileFootprints.of_store(store)
    part, positions = shard_part(footprints, splits, shard, n_shards)
    labels = array_reader(store, "labels")
    return write_class_mosaic(
        path,
        part,
        footprints.tiles(positions, lambda position: class_codes(labels(position))),
        description="WorldCover labels (ESA WorldCover code)",
    )


def write_quicklook_shard(
    path: str | Path, store: str | Path, splits: Sequence[str], shard: int, n_shards: int
) -> int:
    """Shard of the S1 quicklook mosaic of a dataset store, stretched by the percentiles of
    a sample of all the map's tiles (the same sample, and stretch, in every shard)."""
    footprints = TileFootprints.of_store(store)
    part, positions = shard_part(footprints, splits, shard, n_shards)
    read = s1_db_reader(store)
    every = footprints.positions(splits)
    valid = every[footprints.valid[every]]
    # Without a valid tile every pixel is nodata, whatever the stretch.
    stretch = (
        quicklook_stretch(read(int(p)) for p in sample_positions(valid))
        if len(valid)
        else np.zeros((len(QUANTITIES), 2))
    )
    return write_quicklook_mosaic(path, part, footprints.tiles(positions, read), stretch)
