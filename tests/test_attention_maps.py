"""Attention maps of every tile (sarssl.evaluation.attention_maps): to Zarr, and
georeferenced GeoTIFFs on their tiles."""

from pathlib import Path

import numpy as np
import rasterio
import torch
import xarray as xr

from sarssl.dataset.store import open_store, tile_transform
from sarssl.evaluation.attention_maps import extract_attention_maps
from sarssl.models.attention import cls_attention
from sarssl.models.backbone import load_backbone
from sarssl.tiles.loader import (
    StoreTiles,
    split_tiles,
)


def test_attention_maps_of_every_tile_to_zarr_and_georeferenced_geotiffs(
    tiny_store, tiny_checkpoint, tmp_path
):
    checkpoint = tiny_checkpoint
    summary = extract_attention_maps(
        checkpoint, tiny_store, tmp_path / "maps.zarr", tmp_path / "tifs", geotiff_tiles=2
    )
    dataset = open_store(tiny_store)
    maps = xr.open_zarr(tmp_path / "maps.zarr")
    assert maps.attention.shape == (dataset.sizes["tile"], 3, 2, 2)
    assert (maps.tile.values == dataset.tile.values).all()
    assert (maps.split.values == dataset.split.values).all()

    pretrained = load_backbone(checkpoint)
    tile = split_tiles(tiny_store, ["test"])[0]
    image = StoreTiles([tile], pretrained.normalisation).image(0)[None]
    with torch.no_grad():
        expected = cls_attention(pretrained.network, image)[0].numpy()
    np.testing.assert_allclose(maps.attention.values[tile.index], expected, atol=1e-6)

    assert len(summary["geotiffs"]) == 2
    path = Path(summary["geotiffs"][0])
    assert path.stem == str(dataset.tile.values[tile.index])
    with rasterio.open(path) as src:
        np.testing.assert_allclose(src.read(), expected, atol=1e-6)
        assert src.descriptions == ("head0", "head1", "head2")
        assert src.crs.to_string() == str(dataset.crs.values[tile.index])
        transform = tile_transform(dataset, tile.index)
        west, north = transform @ (0, 0)
        east, south = transform @ (32, 32)  # the tile's corners: the maps lie on the tile
        np.testing.assert_allclose(tuple(src.bounds), (west, south, east, north), atol=1e-9)
