"""The maps folder, results/maps: a VRT joining the shards of each map, and the offline
page showing them (sarssl.maps.page) with the outlines of the mapped AOIs' tiles, their
splits and why a tile was rejected."""

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd
import rasterio

from ..dataset.store import open_store
from .page import BASE, LAYERS, OVERLAY, MapLayer, render_png, tiles_geojson, write_map_page
from .vrt import write_vrt

# What a map shows (sarssl.settings.config.Config.maps).
MapKind = Literal["prediction", "attention", "labels", "s1"]


def layer_name(kind: MapKind, name: str, tags: Mapping[str, str], band: str) -> str:
    """How the page lists one band of a map."""
    if kind == "prediction":
        return f"Land cover predicted by {tags['run']} (val MIoU {float(tags['val_miou']):.3f})"
    if kind == "attention":
        return f"Attention of {tags['pretrain']}, {band}"
    aoi = name.removeprefix(f"{kind}_")  # a store map's name: paths.STORE_MAP
    if kind == "labels":
        return f"WorldCover labels ({aoi})"
    return f"S1 quicklook ({aoi})"


def map_layers(folder: Path, kind: MapKind, name: str, vrt: Path, max_px: int) -> list[MapLayer]:
    """The page's layers of one map: the S1 quicklook a base layer, the others overlays,
    one per band (an attention map has a band per head)."""
    with rasterio.open(vrt) as src:
        tags, descriptions = src.tags(), src.descriptions
    bands = [1] if kind == "s1" else range(1, len(descriptions) + 1)
    layers = []
    for band in bands:
        png, bounds = render_png(
            vrt, folder / LAYERS / f"{name}_band{band}.png", band=band, max_px=max_px
        )
        group = BASE if kind == "s1" else OVERLAY
        layers.append(
            MapLayer(group, layer_name(kind, name, tags, descriptions[band - 1]), png, bounds)
        )
    return layers


def aoi_tiles(store: str | Path, rejected_file: str | Path) -> dict:
    """The tile outlines of an AOI's store as GeoJSON, with each tile's split and, for a
    rejected tile, its reason (the rejected_tiles rule's list)."""
    dataset = open_store(store)
    rejected = pd.read_csv(rejected_file, dtype={"tile": str})
    return tiles_geojson(
        [str(tile) for tile in dataset["tile"].values],
        np.asarray(dataset["bounds"].values),
        [str(split) for split in dataset["split"].values],
        dict(zip(rejected["tile"], rejected["reason"], strict=True)),
    )


def write_maps_site(
    folder: str | Path,
    maps: Mapping[str, tuple[MapKind, Sequence[str | Path]]],
    aois: Mapping[str, tuple[str | Path, str | Path]],
    title: str,
    max_px: int,
) -> Path:
    """A VRT per map over its shards (`maps`: name -> kind, shard COGs), then the page with
    every map's layers and the tiles of `aois` (name -> store, rejected tiles file);
    returns the page."""
    folder = Path(folder)
    layers = []
    for name, (kind, shards) in maps.items():
        vrt = folder / f"{name}.vrt"
        write_vrt(vrt, shards)
        layers += map_layers(folder, kind, name, vrt, max_px)
    # The base layers first: the page shows the first base layer when it opens.
    layers.sort(key=lambda layer: layer.group != BASE)
    features = [feature for files in aois.values() for feature in aoi_tiles(*files)["features"]]
    tiles = {"type": "FeatureCollection", "features": features}
    return write_map_page(folder, title, layers, tiles)
