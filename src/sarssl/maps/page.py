"""The offline map page: `index.html` that opens from disk with no server and no network.

Leaflet (vendored in `resources/leaflet/`, copied beside the page) shows the AOI's rasters as
PNG image overlays in a layers control, the tile outlines coloured by split and by rejection
(a click tells the tile, its split and why it was rejected), and a WorldCover legend.
Leaflet places an image overlay by stretching it linearly between its corners in Web
Mercator, so each GeoTIFF is rendered reprojected to EPSG:3857 first.
"""

import html
import json
import shutil
from collections.abc import Mapping, Sequence
from pathlib import Path, PurePath
from typing import NamedTuple

import numpy as np
import rasterio
from matplotlib import colormaps
from matplotlib.image import imsave
from rasterio.enums import ColorInterp, Resampling
from rasterio.transform import Affine, from_bounds
from rasterio.vrt import WarpedVRT
from rasterio.warp import calculate_default_transform, transform_bounds

from .. import paths
from ..atomic import atomic_path, write_text_atomic
from ..dataset.worldcover import CLASSES

LEAFLET = Path(__file__).resolve().parents[3] / "resources" / "leaflet"
LEAFLET_FILES = ("leaflet.js", "leaflet.css", "LICENSE", "images")
PAGE_NAME = "index.html"
ASSETS = PurePath(paths.MAP_LEAFLET).name  # the vendored Leaflet, beside the page
LAYERS = PurePath(paths.MAP_LAYERS).name  # PNGs copied beside the page
WEB_MERCATOR = "EPSG:3857"
MAX_PX = 2048
ATTENTION_RAMP = "inferno"  # as the attention heads of sarssl.outputs.figures
STRETCH_PERCENTILES = (2, 98)

BASE = "base"  # one shown at a time; the first is on when the page opens
OVERLAY = "overlay"  # any number, drawn over the base
# Tile outlines: matplotlib's first colours by split (as sarssl.outputs.figures' curves),
# magenta for rejected tiles (no WorldCover class is magenta).
SPLIT_COLOURS = {"train": "#1f77b4", "val": "#ff7f0e", "test": "#2ca02c"}
OTHER_SPLIT_COLOUR = "#7f7f7f"
VALID_COLOUR = "#ffffff"
REJECTED_COLOUR = "#e6007e"
WORLDCOVER_LEGEND: tuple[tuple[str, str], ...] = tuple((c.name, c.colour) for c in CLASSES)


class LatLonBounds(NamedTuple):
    south: float
    west: float
    north: float
    east: float

    def leaflet(self) -> list[list[float]]:
        """Leaflet's LatLngBounds: [[south, west], [north, east]]."""
        return [[self.south, self.west], [self.north, self.east]]


class MapLayer(NamedTuple):
    group: str  # BASE or OVERLAY
    name: str
    png: Path
    bounds: LatLonBounds


def render_png(
    geotiff: str | Path,
    png: str | Path,
    *,
    band: int = 1,
    max_px: int = MAX_PX,
    ramp: str = ATTENTION_RAMP,
) -> tuple[Path, LatLonBounds]:
    """Render `geotiff` as an RGBA PNG in Web Mercator, at most `max_px` on its longer side;
    return the PNG and its lat/lon bounds (those to give Leaflet's image overlay).

    A band with a colour table keeps its colours; three or more uint8 bands are RGB; any
    other band (a float attention head) goes through the colour `ramp` stretched to its 2-98 %
    percentiles. Nodata and masked pixels are transparent. A large file is read from the
    overview level nearest above the output size, never whole.
    """
    with rasterio.open(geotiff) as src:
        has_table = src.colorinterp[band - 1] == ColorInterp.palette
        colour_table = src.colormap(band) if has_table else None
        is_rgb = colour_table is None and src.count >= 3 and src.dtypes[0] == "uint8"
        mercator = transform_bounds(src.crs, WEB_MERCATOR, *src.bounds)
        transform, width, height = output_grid(src, mercator, max_px)
        level = overview_level(src, width, height)
        # Categories must not be blended; continuous values are averaged when shrinking.
        resampling = Resampling.nearest if colour_table else Resampling.average
    bands = [1, 2, 3] if is_rgb else [band]
    with (
        rasterio.open(geotiff, overview_level=level) as src,
        WarpedVRT(
            src,
            crs=WEB_MERCATOR,
            transform=transform,
            width=width,
            height=height,
            resampling=resampling,
        ) as warped,
    ):
        data = warped.read(bands)
        valid = (warped.read_masks(bands) != 0).all(axis=0)
    if colour_table is not None:
        rgba = palette_rgba(data[0], colour_table)
    elif is_rgb:
        rgba = np.concatenate([data, np.full_like(data[:1], 255)]).transpose(1, 2, 0)
    else:
        values = data[0].astype(np.float64)
        valid &= np.isfinite(values)
        rgba = ramp_rgba(values, valid, ramp)
    rgba[..., 3] = np.where(valid, rgba[..., 3], 0)
    png = Path(png)
    with atomic_path(png) as tmp:
        imsave(tmp, rgba, format="png")
    west, south, east, north = transform_bounds(WEB_MERCATOR, "EPSG:4326", *mercator)
    return png, LatLonBounds(south, west, north, east)


def output_grid(
    src: rasterio.DatasetReader, mercator: tuple[float, float, float, float], max_px: int
) -> tuple[Affine, int, int]:
    """The Web Mercator grid over `mercator` bounds: the source's resolution, shrunk so that
    the longer side is at most `max_px`."""
    _, width, height = calculate_default_transform(
        src.crs, WEB_MERCATOR, src.width, src.height, *src.bounds
    )
    scale = min(1.0, max_px / max(width, height))
    width, height = max(1, round(width * scale)), max(1, round(height * scale))
    return from_bounds(*mercator, width, height), width, height


def overview_level(src: rasterio.DatasetReader, width: int, height: int) -> int | None:
    """The coarsest overview with at least as many pixels as the output (None: full size)."""
    level = None
    for index, factor in enumerate(src.overviews(1)):
        if src.width / factor >= width and src.height / factor >= height:
            level = index
    return level


def palette_rgba(codes: np.ndarray, colour_table: Mapping[int, tuple[int, ...]]) -> np.ndarray:
    """(row, col) codes -> RGBA by the colour table; codes past its end are transparent."""
    lut = np.zeros((max(max(colour_table), int(codes.max(initial=0))) + 1, 4), np.uint8)
    for code, colour in colour_table.items():
        lut[code] = colour
    return lut[codes]


def ramp_rgba(values: np.ndarray, valid: np.ndarray, ramp: str) -> np.ndarray:
    """(row, col) values -> RGBA through the colour map `ramp`, stretched to the 2-98 %
    percentiles of the valid values."""
    if not valid.any():
        return np.zeros((*values.shape, 4), np.uint8)
    low, high = np.percentile(values[valid], STRETCH_PERCENTILES)
    scaled = np.clip((values - low) / max(high - low, 1e-12), 0, 1)
    return colormaps[ramp](np.where(valid, scaled, 0), bytes=True)


def tiles_geojson(
    identifiers: Sequence[str],
    bounds: np.ndarray,
    splits: Sequence[str],
    rejected: Mapping[str, str],
) -> dict:
    """The tile outlines as a GeoJSON FeatureCollection: a rectangle per tile from its
    (west, south, east, north) `bounds` (as `grid.tile_bounds`), with its id, split, status
    ("valid" or "rejected") and reason (`rejected` maps a tile id to its reason)."""
    features = []
    for tile, (west, south, east, north), split in zip(identifiers, bounds, splits, strict=True):
        ring = [[west, south], [east, south], [east, north], [west, north], [west, south]]
        features.append(
            {
                "type": "Feature",
                "geometry": {"type": "Polygon", "coordinates": [ring]},
                "properties": {
                    "tile": tile,
                    "split": split,
                    "status": "rejected" if tile in rejected else "valid",
                    "reason": rejected.get(tile, ""),
                },
            }
        )
    return {"type": "FeatureCollection", "features": features}


def write_map_page(
    folder: str | Path,
    title: str,
    layers: Sequence[MapLayer],
    tiles: dict,
    legend: Sequence[tuple[str, str]] = WORLDCOVER_LEGEND,
) -> Path:
    """Write `folder/index.html` with Leaflet and the layers' PNGs beside it; return it.

    `layers` are listed in the layers control in their order, BASE ones as exclusive choices
    (the first shown), OVERLAY ones as switches; `tiles` (see `tiles_geojson`) adds two
    overlays, the outlines by split and by rejection; `legend` is (name, colour) pairs. The
    view fits the layers and tiles. Every file is written atomically, the page last, so that
    a page never names a file that is not there yet.
    """
    folder = Path(folder)
    unknown_groups = {layer.group for layer in layers} - {BASE, OVERLAY}
    if unknown_groups:
        raise ValueError(
            f"layer groups {sorted(unknown_groups)} are neither {BASE!r} nor {OVERLAY!r}"
        )
    copy_leaflet(folder / ASSETS)
    pngs = [page_png(folder, layer.png) for layer in layers]
    if len(set(pngs)) != len(pngs):
        raise ValueError(f"layers share a PNG file name: {sorted(pngs)}")
    data = {
        "layers": [
            {"group": layer.group, "name": layer.name, "png": png, "bounds": layer.bounds.leaflet()}
            for layer, png in zip(layers, pngs, strict=True)
        ],
        "tiles": tiles,
        "bounds": view_bounds(layers, tiles).leaflet(),
        "legend": [{"name": name, "colour": colour} for name, colour in legend],
        "splitColours": SPLIT_COLOURS,
        "otherSplitColour": OTHER_SPLIT_COLOUR,
        "validColour": VALID_COLOUR,
        "rejectedColour": REJECTED_COLOUR,
    }
    page = folder / PAGE_NAME
    write_text_atomic(page, page_html(title, data))
    return page


def copy_leaflet(target: Path) -> None:
    if not (LEAFLET / "leaflet.js").is_file():
        raise FileNotFoundError(f"the vendored Leaflet is missing: {LEAFLET}")
    for name in LEAFLET_FILES:
        source = LEAFLET / name
        for path in sorted(source.rglob("*")) if source.is_dir() else [source]:
            if path.is_file():
                copy_atomic(path, target / path.relative_to(LEAFLET))


def copy_atomic(source: Path, target: Path) -> None:
    with atomic_path(target) as tmp:
        shutil.copyfile(source, tmp)


def page_png(folder: Path, png: Path) -> str:
    """The PNG's path relative to the page, copied under `layers/` unless already in `folder`."""
    png = Path(png).resolve()
    if png.is_relative_to(folder.resolve()):
        return png.relative_to(folder.resolve()).as_posix()
    copy_atomic(png, folder / LAYERS / png.name)
    return f"{LAYERS}/{png.name}"


def view_bounds(layers: Sequence[MapLayer], tiles: dict) -> LatLonBounds:
    """The box around every layer and tile: the view the page opens on."""
    lons, lats = [], []
    for layer in layers:
        lons += [layer.bounds.west, layer.bounds.east]
        lats += [layer.bounds.south, layer.bounds.north]
    for feature in tiles["features"]:
        for lon, lat in feature["geometry"]["coordinates"][0]:
            lons.append(lon)
            lats.append(lat)
    if not lons:
        raise ValueError("a map page needs at least one layer or tile")
    return LatLonBounds(min(lats), min(lons), max(lats), max(lons))


def page_html(title: str, data: dict) -> str:
    # "</" would end the script element that holds the data; "<\/" is the same JSON string.
    payload = json.dumps(data, separators=(",", ":")).replace("</", "<\\/")
    return PAGE_TEMPLATE.format(title=html.escape(title), assets=ASSETS, data=payload)


# Braces of CSS and JavaScript are doubled for str.format. The empty data: favicon keeps the
# browser from asking for /favicon.ico. Names, colours, tile ids and reasons are escaped before
# they are inserted as HTML. The attribution's prefix replaces Leaflet's link to its website.
PAGE_TEMPLATE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title>
<link rel="icon" href="data:,">
<link rel="stylesheet" href="{assets}/leaflet.css">
<script src="{assets}/leaflet.js"></script>
<style>
html, body, #map {{ height: 100%; margin: 0; }}
.raster {{ image-rendering: pixelated; }}
.legend {{ background: #fff; padding: 6px 8px; border-radius: 4px; font: 12px sans-serif;
  box-shadow: 0 1px 5px rgba(0, 0, 0, 0.4); }}
.legend h4 {{ margin: 4px 0; font-size: 12px; }}
.legend div {{ line-height: 16px; }}
.legend i {{ display: inline-block; width: 14px; height: 12px; margin-right: 6px;
  vertical-align: middle; border: 1px solid #999; }}
</style>
</head>
<body>
<div id="map"></div>
<script id="map-data" type="application/json">{data}</script>
<script>
const data = JSON.parse(document.getElementById("map-data").textContent);
const escape = (text) => String(text).replace(/[&<>"']/g, (c) => `&#${{c.charCodeAt(0)}};`);
const map = L.map("map", {{ zoomSnap: 0, attributionControl: false }});
L.control.attribution({{ prefix: "Leaflet" }}).addTo(map);

const baseLayers = {{}};
const overlays = {{}};
for (const layer of data.layers) {{
  const isBase = layer.group === "base";
  const overlay = L.imageOverlay(layer.png, layer.bounds, {{
    className: "raster", opacity: isBase ? 1 : 0.75,
  }});
  if (isBase && Object.keys(baseLayers).length === 0) overlay.addTo(map);
  (isBase ? baseLayers : overlays)[escape(layer.name)] = overlay;
}}

function describe(feature, layer) {{
  const p = feature.properties;
  const reason = p.reason ? `<br>reason: ${{escape(p.reason)}}` : "";
  const text = `tile ${{escape(p.tile)}}<br>split: ${{escape(p.split)}}` +
    `<br>status: ${{escape(p.status)}}${{reason}}`;
  layer.bindPopup(text);
}}
const splitColour = (split) => data.splitColours[split] ?? data.otherSplitColour;
overlays["Tiles by split"] = L.geoJSON(data.tiles, {{
  style: (f) => ({{ color: splitColour(f.properties.split), weight: 1, fillOpacity: 0.15 }}),
  onEachFeature: describe,
}});
overlays["Tiles by rejection"] = L.geoJSON(data.tiles, {{
  style: (f) => f.properties.status === "rejected"
    ? {{ color: data.rejectedColour, weight: 2, dashArray: "4 3", fillOpacity: 0.35 }}
    : {{ color: data.validColour, weight: 1, fillOpacity: 0 }},
  onEachFeature: describe,
}});
L.control.layers(baseLayers, overlays, {{ collapsed: false }}).addTo(map);

const legend = L.control({{ position: "bottomright" }});
legend.onAdd = () => {{
  const box = L.DomUtil.create("div", "legend");
  const row = (colour, name) =>
    `<div><i style="background:${{escape(colour)}}"></i>${{escape(name)}}</div>`;
  const tileRows = Object.entries(data.splitColours).map(([split, c]) => row(c, split));
  box.innerHTML = "<h4>Land cover (ESA WorldCover)</h4>" +
    data.legend.map((c) => row(c.colour, c.name)).join("") +
    "<h4>Tiles</h4>" + tileRows.join("") + row(data.validColour, "valid") +
    row(data.rejectedColour, "rejected");
  return box;
}};
legend.addTo(map);
map.fitBounds(data.bounds, {{ padding: [20, 20] }});
</script>
</body>
</html>
"""
