"""Attention maps of a pre-trained backbone for every tile of a store, into Zarr and, for a
few tiles, into georeferenced GeoTIFFs.

Layout of the output store (xarray-readable):
    attention (tile, head, y, x)  float32 CLS-to-patch attention of the last block
    tile, split, valid, bounds    copied from the dataset store
    head                          head index
    crs, transform (tile, affine) georeferencing of each tile's attention grid
"""

import logging
from pathlib import Path

import numpy as np
import torch
import zarr
from rasterio.transform import Affine

from sarssl.atomic import atomic_path
from sarssl.dataset.geotiff import write_geotiff
from sarssl.dataset.store import (
    consolidate,
    open_store,
    split_positions,
    tile_transform,
    write_coordinate,
)
from sarssl.dataset.storeinfo import StoreInfo
from sarssl.devices import default_device
from sarssl.models.attention import cls_attention
from sarssl.models.backbone import load_backbone
from sarssl.models.checkpoint import Network
from sarssl.tiles.loader import StoreTiles, TileRef

log = logging.getLogger(__name__)

TILES_PER_CHUNK = 64


def attention_grid_transform(transform: Affine, tile_px: int, grid: tuple[int, int]) -> Affine:
    """The tile's pixel transform scaled to its grid of patches (one pixel per token)."""
    return transform @ Affine.scale(tile_px / grid[1], tile_px / grid[0])


@torch.no_grad()
def extract_attention_maps(
    checkpoint: str | Path,
    store: str | Path,
    output: str | Path,
    geotiff_dir: str | Path,
    which: Network = "student",
    geotiff_tiles: int = 3,
    device: str | None = None,
) -> dict:
    """Write the attention maps of every tile of `store` to the Zarr store `output`
    (atomically) and those of the first `geotiff_tiles` valid test tiles as GeoTIFFs."""
    run_on = torch.device(device) if device else default_device()
    pretrained = load_backbone(checkpoint, which)
    backbone = pretrained.network.to(run_on)
    dataset, info = open_store(store), StoreInfo.read(store)
    n_tiles, tile_px = info.n_tiles, info.tile_px
    heads = backbone.blocks[-1].attn.num_heads
    grid = tuple(backbone.patch_embed.dynamic_feat_size((tile_px, tile_px)))
    tiles = StoreTiles([TileRef(str(store), i) for i in range(n_tiles)], pretrained.normalisation)
    with atomic_path(output, is_dir=True) as tmp:
        group = zarr.open_group(tmp, mode="w", zarr_format=3)
        group.attrs.update(
            {
                "pretrain": pretrained.name,
                "architecture": pretrained.architecture,
                "backbone": which,
                "checkpoint": str(checkpoint),
                "tile_px": tile_px,
            }
        )
        maps = group.create_array(
            "attention",
            shape=(n_tiles, heads, *grid),
            chunks=(min(n_tiles, TILES_PER_CHUNK), heads, *grid),
            dtype="float32",
            dimension_names=("tile", "head", "y", "x"),
            attributes={"coordinates": "split valid bounds crs transform"},
        )
        for start in range(0, n_tiles, TILES_PER_CHUNK):
            stop = min(start + TILES_PER_CHUNK, n_tiles)
            images = torch.stack([tiles.image(i) for i in range(start, stop)]).to(run_on)
            maps[start:stop] = cls_attention(backbone, images).float().cpu().numpy()
            log.info("attention maps: %d / %d tiles", stop, n_tiles)
        for name, dims in (("tile", ("tile",)), ("split", ("tile",)), ("crs", ("tile",))):
            write_coordinate(group, name, dataset[name].values.astype(object), dims, str)
        write_coordinate(group, "valid", dataset["valid"].values, ("tile",), "bool")
        write_coordinate(group, "bounds", dataset["bounds"].values, ("tile", "corner"), "float64")
        write_coordinate(group, "head", np.arange(heads), ("head",), "int32")
        grid_transforms = np.array(
            [
                tuple(attention_grid_transform(tile_transform(dataset, i), tile_px, grid))[:6]
                for i in range(n_tiles)
            ]
        )
        write_coordinate(group, "transform", grid_transforms, ("tile", "affine"), "float64")
        consolidate(tmp)
        test_tiles = split_positions(store, ["test"])[:geotiff_tiles]
        examples = {int(i): maps[int(i)] for i in test_tiles}

    Path(geotiff_dir).mkdir(parents=True, exist_ok=True)
    written = []
    for i, values in examples.items():
        tile_id = str(dataset["tile"].values[i])
        path = Path(geotiff_dir) / f"{tile_id}.tif"
        write_geotiff(
            path,
            values,
            [f"head{h}" for h in range(heads)],
            str(dataset["crs"].values[i]),
            Affine(*grid_transforms[i]),
            nodata=None,
        )
        written.append(str(path))
    return {"tiles": n_tiles, "heads": heads, "grid": list(grid), "geotiffs": written}
