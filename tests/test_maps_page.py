"""The offline map page (sarssl.maps.page): GeoTIFFs rendered to Web Mercator PNGs, and the
page itself opened from disk in headless Chromium.

The browser tests keep their screenshot as an artefact in pytest's tmp folder
(`maps_page.png` under `pytest --basetemp DIR`), to look at after a run; nothing is written
into the source tree.
"""

import itertools
import re
from pathlib import Path

import numpy as np
import pytest
import rasterio
from PIL import Image
from playwright.sync_api import sync_playwright
from rasterio.enums import Resampling
from rasterio.transform import from_bounds

from sarssl.dataset.worldcover import CLASSES
from sarssl.maps.page import (
    BASE,
    OVERLAY,
    REJECTED_COLOUR,
    MapLayer,
    render_png,
    tiles_geojson,
    write_map_page,
)

CHROMIUM = Path("/usr/bin/chromium")
# As Debian's chromium runs as root with no network: no sandbox, no GPU, nothing that calls out.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
VIEWPORT = {"width": 1000, "height": 700}
LEAFLET_BACKGROUND = (221, 221, 221)  # .leaflet-container's #ddd: where no layer is drawn
WEST, SOUTH, EAST, NORTH = -1.0, 41.70, -0.97, 41.717  # the tests' tiny AOI
NAMES = {"quicklook": "S1 quicklook", "labels": "WorldCover labels", "head": "Attention head 0"}
REJECTION = "S1 file <shard0>/t2.tif: 62 % nodata"


def rgb(colour: str) -> tuple[int, int, int]:
    return tuple(int(colour[i : i + 2], 16) for i in (1, 3, 5))


WORLDCOVER_TABLE = {c.code: (*rgb(c.colour), 255) for c in CLASSES}


def write_geotiff(
    path: Path, data: np.ndarray, bounds=(WEST, SOUTH, EAST, NORTH), nodata=None, table=None
) -> Path:
    count, height, width = data.shape
    with rasterio.open(
        path, "w", driver="GTiff", width=width, height=height, count=count, dtype=data.dtype,
        crs="EPSG:4326", transform=from_bounds(*bounds, width, height), nodata=nodata,
    ) as dst:  # fmt: skip
        dst.write(data)
        if table:
            dst.write_colormap(1, table)
    return path


def quicklook(folder: Path) -> Path:
    """RGB uint8, a gradient far from Leaflet's grey background."""
    red = np.linspace(40, 200, 12, dtype=np.uint8)[None, :].repeat(8, axis=0)
    bands = np.stack([red, np.full_like(red, 80), np.full_like(red, 150)])
    return write_geotiff(folder / "quicklook.tif", bands)


def labels(folder: Path) -> Path:
    """WorldCover codes with their colour table; the first column is nodata (0)."""
    codes = np.array([c.code for c in CLASSES], dtype=np.uint8)
    data = np.resize(codes, (1, 8, 12))
    data[0, :, 0] = 0
    return write_geotiff(folder / "labels.tif", data, nodata=0, table=WORLDCOVER_TABLE)


def heads(folder: Path) -> Path:
    """Two float attention heads; NaN (nodata) in the top-left quarter."""
    data = np.random.default_rng(0).random((2, 8, 12)).astype(np.float32)
    data[:, :4, :6] = np.nan
    return write_geotiff(folder / "heads.tif", data, nodata=np.nan)


def three_tiles() -> dict:
    """The AOI cut in three tiles west to east, one per split; the middle one rejected."""
    edges = np.linspace(WEST, EAST, 4)
    bounds = np.array([[w, SOUTH, e, NORTH] for w, e in itertools.pairwise(edges)])
    return tiles_geojson(["t1", "t2", "t3"], bounds, ["train", "val", "test"], {"t2": REJECTION})


def read_png(path: Path) -> np.ndarray:
    return np.asarray(Image.open(path).convert("RGBA"))


def test_colour_table_keeps_the_class_colours_and_nodata_is_transparent(tmp_path):
    png, bounds = render_png(labels(tmp_path), tmp_path / "labels.png")
    image = read_png(png)
    assert bounds == pytest.approx((SOUTH, WEST, NORTH, EAST))
    opaque = image[image[..., 3] == 255][:, :3]
    assert {tuple(p) for p in opaque} == {v[:3] for v in WORLDCOVER_TABLE.values()}
    assert (image[:, 0, 3] == 0).all()  # the nodata column


def test_float_head_goes_through_the_ramp_with_nodata_transparent(tmp_path):
    png, _ = render_png(heads(tmp_path), tmp_path / "head1.png", band=2)
    image = read_png(png)
    height, width = image.shape[:2]
    assert 0.15 < (image[..., 3] == 0).mean() < 0.35  # about the nodata quarter
    assert image[0, 0, 3] == 0
    south_east = image[height // 2 :, width // 2 :]
    assert (south_east[..., 3] == 255).all()
    assert len({tuple(p) for p in south_east[..., :3].reshape(-1, 3)}) > 10  # a ramp, not flat


def test_rows_are_placed_in_web_mercator(tmp_path):
    """Half of 0-60 N in degrees is not half in Web Mercator: 30 N lies 58 % of the way down
    from 60 N, which is where Leaflet, stretching the PNG linearly, puts it."""
    data = np.full((1, 60, 10), 10, dtype=np.uint8)
    data[0, 30:] = 80  # south of 30 N: water
    tif = write_geotiff(tmp_path / "tall.tif", data, bounds=(0, 0, 10, 60), table=WORLDCOVER_TABLE)
    png, bounds = render_png(tif, tmp_path / "tall.png")
    image = read_png(png)
    water = (image[:, 0, :3] == WORLDCOVER_TABLE[80][:3]).all(axis=-1)
    first_water_row = int(np.argmax(water))
    mercator_y = [np.log(np.tan(np.pi / 4 + np.radians(lat) / 2)) for lat in (60, 30, 0)]
    expected = (mercator_y[0] - mercator_y[1]) / (mercator_y[0] - mercator_y[2]) * image.shape[0]
    assert abs(first_water_row - expected) <= 1
    assert bounds == pytest.approx((0, 0, 60, 10))


def test_a_large_file_is_read_from_an_overview_at_the_bounded_size(tmp_path):
    """The overviews hold tree cover, the full resolution (rewritten after) water: a PNG of
    tree cover was read from an overview."""
    data = np.full((1, 256, 256), 10, dtype=np.uint8)
    tif = write_geotiff(tmp_path / "big.tif", data, table=WORLDCOVER_TABLE)
    with rasterio.open(tif, "r+") as dst:
        dst.build_overviews([2, 4, 8], Resampling.nearest)
        dst.write(np.full_like(data, 80))
    png, _ = render_png(tif, tmp_path / "big.png", max_px=40)
    image = read_png(png)
    assert max(image.shape[:2]) <= 40
    assert (image[..., :3] == WORLDCOVER_TABLE[10][:3]).all()


@pytest.fixture(scope="module")
def page(tmp_path_factory) -> Path:
    rasters = tmp_path_factory.mktemp("rasters")
    layers = []
    for group, name, tif in [
        (BASE, NAMES["quicklook"], quicklook(rasters)),
        (BASE, NAMES["labels"], labels(rasters)),
        (OVERLAY, NAMES["head"], heads(rasters)),
    ]:
        png, bounds = render_png(tif, tif.with_suffix(".png"))
        layers.append(MapLayer(group, name, png, bounds))
    return write_map_page(tmp_path_factory.mktemp("maps"), "tiny AOI", layers, three_tiles())


def test_the_page_names_no_external_url(page):
    """Not in the page, nor in Leaflet's stylesheet outside its comments."""
    css = (page.parent / "leaflet" / "leaflet.css").read_text()
    assert "http" not in page.read_text()
    assert "http" not in re.sub(r"/\*.*?\*/", "", css, flags=re.S)
    for asset in ("leaflet.js", "images/layers.png", "LICENSE"):
        assert (page.parent / "leaflet" / asset).is_file()


@pytest.fixture(scope="module")
def browser(page):
    """The page open in headless Chromium, with what it logged and requested."""
    if not CHROMIUM.exists():
        pytest.skip(f"no Chromium at {CHROMIUM} (.ci/install-chromium installs Debian's)")
    errors, requests = [], []
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        tab = chromium.new_page(viewport=VIEWPORT)
        tab.on("console", lambda m: m.type == "error" and errors.append(m.text))
        tab.on("pageerror", lambda error: errors.append(str(error)))
        tab.on("request", lambda request: requests.append(request.url))
        tab.goto(page.as_uri(), wait_until="load")
        tab.wait_for_function("[...document.images].every((image) => image.complete)")
        yield tab, errors, requests
        chromium.close()


def test_the_page_loads_from_disk_with_no_error_and_no_network(browser):
    tab, errors, requests = browser
    assert errors == []
    assert requests and all(url.startswith(("file://", "data:")) for url in requests)
    assert "http" not in tab.content()  # nor a link in what Leaflet drew


def test_the_layers_and_the_legend_are_listed(browser):
    tab, _, _ = browser
    listed = tab.locator(".leaflet-control-layers label").all_inner_texts()
    expected = [*NAMES.values(), "Tiles by split", "Tiles by rejection"]
    assert [name.strip() for name in listed] == expected
    assert tab.get_by_label(NAMES["quicklook"]).is_checked()  # on by default
    legend = tab.locator(".legend").inner_text()
    assert all(c.name in legend for c in CLASSES)


def test_the_screenshot_shows_the_aoi(browser, tmp_path):
    tab, _, _ = browser
    box = tab.locator("img.raster").bounding_box()  # the quicklook, where the fit put it
    assert box["width"] > VIEWPORT["width"] / 3 or box["height"] > VIEWPORT["height"] / 3
    assert box["x"] >= 0 and box["x"] + box["width"] <= VIEWPORT["width"]
    screenshot = tmp_path / "maps_page.png"
    tab.screenshot(path=screenshot)
    pixels = read_png(screenshot)[..., :3].astype(int)
    # The middle half of the box: clear of the controls in the corners.
    rows = slice(int(box["y"] + box["height"] / 4), int(box["y"] + box["height"] * 3 / 4))
    cols = slice(int(box["x"] + box["width"] / 4), int(box["x"] + box["width"] * 3 / 4))
    inside = pixels[rows, cols]
    drawn = np.abs(inside - LEAFLET_BACKGROUND).sum(axis=-1) > 30
    assert drawn.mean() > 0.99


def test_a_rejected_tile_gives_its_reason_on_click(browser):
    tab, _, _ = browser
    tab.get_by_label("Tiles by rejection").check()
    tab.locator(f'path[stroke="{REJECTED_COLOUR}"]').click()
    popup = tab.locator(".leaflet-popup-content").inner_text()
    assert "t2" in popup and "val" in popup and REJECTION in popup
