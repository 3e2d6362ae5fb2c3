"""Real data in: folders written by geetiles' own download code, built by the workflow.

geetiles 0.1.7 (as pinned) and the 2023 s1grd definition (the paper's data and M3LEO) run
their download with Earth Engine and the HTTP download replaced by FakeEarthEngine, a test
double, serving real Sentinel-1 dB (the Sen1Floods11 chip) and real WorldCover codes (see
tests/real_scene.py). Tiles lie near the equator (448 px downloads) and at 50 N (466 px).
One workflow run builds four AOIs: a good 0.1.7 folder, a 2023 uint16 folder, a corpus of
bad inputs made from geetiles-written files (one kind per tile), and an AOI whose every
tile is bad.
"""

import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import rasterio
import shapely
import yaml
from conftest import REPO, quiet_grid
from fake_earthengine import FakeEarthEngine
from rasterio.warp import calculate_default_transform, reproject
from real_scene import (
    S1_CHIP,
    FloatS1Definition,
    Geetiles2023S1,
    RealScene,
    geetiles_definition,
    geetiles_download,
)

from sarssl.dataset.bands import SEASONS
from sarssl.dataset.grid import read_tiles, tile_bounds, write_tiles_file
from sarssl.dataset.s1layout import UINT8_STEP_DB
from sarssl.dataset.store import open_store
from sarssl.dataset.worldcover import codes_to_indices

pytestmark = pytest.mark.skipif(not S1_CHIP.is_file(), reason="real data not found")

TILE_PX = 448
# (west, south) of AOI boxes: near the equator (São Tomé) geetiles downloads 448 px, at
# 50 N 466 px.
EQUATOR, FIFTY_NORTH = (6.58, 0.20), (6.00, 50.00)
GEETILES_S1_BANDS = tuple(
    f"{season}_{pol}{orbit}"
    for season in ("winter", "spring", "summer", "fall")
    for pol in ("vv", "vh")
    for orbit in ("asc", "des")
)
SNAKEMAKE = [sys.executable, "-m", "snakemake", "--snakefile", str(REPO / "Snakefile")]


def tiles_file(folder: Path, name: str, boxes: list[tuple[float, float, float, float]]) -> Path:
    """A geetiles tiles file (hash in the name, as geetiles writes it) over `boxes`."""
    folder.mkdir(parents=True, exist_ok=True)
    grids = []
    for i, box in enumerate(boxes):
        wkt = folder / f"{name}{i}.wkt"
        wkt.write_text(shapely.box(*box).wkt)
        grids.append(quiet_grid(name, wkt, TILE_PX * 10))
    path = folder / f"{name}_partitions_aschips_5f3a9c2e1b7d4.geojson"
    write_tiles_file(gpd.GeoDataFrame(pd.concat(grids, ignore_index=True), crs=4326), path)
    return path


def box_at(corner: tuple[float, float], width: float, height: float):
    return (corner[0], corner[1], corner[0] + width, corner[1] + height)


def download_all(path: Path, fake: FakeEarthEngine, s1_definition=None) -> None:
    geetiles_download(path, s1_definition or geetiles_definition("s1grd-2020"), fake)
    geetiles_download(path, geetiles_definition("esaworldcover-2020"), fake)


def expanded(bounds, margin=1e-3):
    west, south, east, north = bounds
    return (west - margin, south - margin, east + margin, north + margin)


def make_corpus(path: Path) -> dict[str, str]:
    """One kind of bad input per tile, made from geetiles-written files; returns
    {tile: a pattern its rejection must contain}. Tiles left over stay good."""
    fake = FakeEarthEngine(scene=RealScene())
    download_all(path, fake)
    tiles = read_tiles(path)
    bounds = dict(zip(tiles.identifier, map(tuple, tile_bounds(tiles)), strict=True))
    folder = path.parent / path.stem
    s1 = {t: folder / "s1grd-2020" / f"{t}.tif" for t in bounds}
    label = {t: folder / "esaworldcover-2020" / f"{t}.tif" for t in bounds}
    # A tile that gets the files of its east neighbour (which stays good). The grid is
    # square in UTM, so a neighbour lies a little north or south as well.
    a, b = next(
        (a, b)
        for a in bounds
        for b in bounds
        if abs(bounds[b][0] - bounds[a][2]) < 1e-3 and abs(bounds[b][1] - bounds[a][1]) < 0.01
    )
    pool = iter(t for t in sorted(bounds) if t not in (a, b))
    kinds: dict[str, str] = {}

    def kind(words: str) -> str:
        tile = next(pool)
        kinds[tile] = re.escape(words)
        return tile

    def redownload(tile, scene=None, definition=None, **options):
        geetiles_download(
            path,
            definition or geetiles_definition("s1grd-2020"),
            FakeEarthEngine(scene=scene or RealScene()),
            identifiers=[tile],
            **options,
        )

    shutil.copy(s1[b], s1[a])
    shutil.copy(label[b], label[a])
    # One chip (4480 m) east; the two sit differently in UTM, so it is also a bit north.
    kinds[a] = r"S1 bounds are 44[78] px east and \d+ px north of the tile: the file covers \(W"
    t = kind("cannot read S1 file")
    s1[t].write_bytes(s1[t].read_bytes()[: s1[t].stat().st_size // 3])
    s1[kind("is empty (0 bytes)")].write_bytes(b"")
    s1[kind("S1 file missing")].unlink()
    label[kind("label file missing")].unlink()
    # Every value of the 16 bands of 466 x 466 px at 255: masked before the cast.
    t = kind("all pixels are nodata (ascending pass; geetiles uint8: 0 values at code 0 (NaN ")
    kinds[t] += re.escape(f"before the cast), {16 * 466 * 466} at 255")
    redownload(t, RealScene(masked=[(expanded(bounds[t]), set(SEASONS))]))
    t = kind("season winter has no VV data (ascending pass; geetiles uint8: ")
    redownload(t, RealScene(masked=[(expanded(bounds[t]), {"winter"})]))
    redownload(
        kind("bands ['fall_vvasc', 'fall_vhasc'] missing"), bands=list(GEETILES_S1_BANDS[:12])
    )
    t = kind("this looks like linear power")
    redownload(t, RealScene(linear=[expanded(bounds[t])]), FloatS1Definition())
    t = kind("S1 CRS EPSG:32632, expected EPSG:4326")
    to_utm(s1[t], "EPSG:32632")
    t = kind("label codes [33] are not ESA WorldCover")
    with rasterio.open(label[t], "r+") as dst:
        codes = dst.read(1)
        codes[:4, :4] = 33
        dst.write(codes, 1)
    t = kind("label bounds are 50 px east of the tile")
    pixel_deg = (bounds[t][2] - bounds[t][0]) / TILE_PX
    redownload(
        t, definition=geetiles_definition("esaworldcover-2020"), shift_deg=(50 * pixel_deg, 0)
    )
    redownload(kind("m pixels (233 px), expected 10 m (448 px)"), meters_per_pixel=20)
    t = kind("unknown S1 layout: bands ['B1', 'B2'")
    with rasterio.open(s1[t], "r+") as dst:
        for i in range(dst.count):
            dst.set_band_description(i + 1, f"B{i + 1}")
    t = kind("")
    kinds[t] = r"lie outside -50\.\.\+20 dB \(median 1\d\d\); " + re.escape(
        "they look like integer codes: set the AOI's s1_format: geetiles_uint8"
    )
    with rasterio.open(s1[t]) as src:  # the uint8 codes, converted to float32
        data, profile, names = src.read(), src.profile, src.descriptions
    with rasterio.open(s1[t], "w", **{**profile, "dtype": "float32"}) as dst:
        dst.write(data.astype(np.float32))
        dst.descriptions = names
    return kinds


def to_utm(path: Path, crs: str) -> None:
    """Reproject a file in place, as gdalwarp would (names and dtype kept)."""
    with rasterio.open(path) as src:
        transform, width, height = calculate_default_transform(
            src.crs, crs, src.width, src.height, *src.bounds
        )
        profile = {**src.profile, "crs": crs, "transform": transform}
        profile.update(width=width, height=height)
        data = np.zeros((src.count, height, width), src.dtypes[0])
        reproject(src.read(), data, src_transform=src.transform, src_crs=src.crs,
                  dst_transform=transform, dst_crs=crs)  # fmt: skip
        names = src.descriptions
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(data)
        dst.descriptions = names


@dataclass
class World:
    workdir: Path
    tiles: dict[str, Path]  # AOI -> tiles file
    corpus: dict[str, str]
    result: subprocess.CompletedProcess


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> World:
    root = tmp_path_factory.mktemp("geetiles")
    paths = {
        "good": tiles_file(
            root / "good", "good", [box_at(EQUATOR, 0.12, 0.09), box_at(FIFTY_NORTH, 0.12, 0.05)]
        ),
        "mleo": tiles_file(root / "mleo", "mleo", [box_at(FIFTY_NORTH, 0.12, 0.05)]),
        "corpus": tiles_file(root / "corpus", "corpus", [box_at(FIFTY_NORTH, 0.32, 0.2)]),
        "allbad": tiles_file(root / "allbad", "allbad", [box_at(FIFTY_NORTH, 0.12, 0.05)]),
    }
    download_all(paths["good"], FakeEarthEngine(scene=RealScene()))
    download_all(paths["mleo"], FakeEarthEngine(scene=RealScene()), Geetiles2023S1())
    corpus = make_corpus(paths["corpus"])
    linear = RealScene(linear=[(-180.0, -90.0, 180.0, 90.0)])
    download_all(paths["allbad"], FakeEarthEngine(scene=linear), FloatS1Definition())
    config = {
        "aois": [
            {"name": name, "source": "geetiles_dir", "tiles_file": str(path)}
            for name, path in paths.items()
        ],
        "data": {"tile_px": TILE_PX, "threads": 2},
        "split": {"nbands": 2, "fractions": {"train": 1.0, "val": 0.0, "test": 0.0}},
    }
    workdir = root / "run"
    workdir.mkdir()
    (workdir / "config.yaml").write_text(yaml.safe_dump(config))
    result = subprocess.run(
        [*SNAKEMAKE, "--directory", str(workdir), "--cores", "2", "--keep-going",
         "--configfile", str(workdir / "config.yaml")],
        capture_output=True, text=True, cwd=workdir,
    )  # fmt: skip
    return World(workdir, paths, corpus, result)


def grid_points(bounds) -> tuple[np.ndarray, np.ndarray]:
    """Longitudes and latitudes of the centres of a tile's 448 x 448 grid."""
    west, south, east, north = bounds
    lon = west + (np.arange(TILE_PX) + 0.5) * (east - west) / TILE_PX
    lat = north - (np.arange(TILE_PX) + 0.5) * (north - south) / TILE_PX
    return np.meshgrid(lon, lat)


def one_cell(scene: RealScene, bounds, lon, lat) -> np.ndarray:
    """Pixels at least one pixel from the edges of the scene's cell: any download grid
    around them holds that cell's value, whatever its pixel size."""
    margin = ((bounds[2] - bounds[0]) / TILE_PX, (bounds[3] - bounds[1]) / TILE_PX)
    inside = np.ones(lon.shape, bool)
    for values, cell, pad in (
        (lon, scene.cell_deg[0], margin[0]),
        (lat, scene.cell_deg[1], margin[1]),
    ):
        offset = np.mod(values, cell)
        inside &= (offset > pad) & (cell - offset > pad)
    return inside


def compare_with_served(
    world: World, aoi: str, orbit: str, tolerance: float, decodable: tuple[float, float]
):
    """Stored winter VV and labels against what the double served, tile by tile, where the
    served dB lie in the `decodable` range of the layout; returns (the file sizes seen, the
    share of pixels compared)."""
    store = open_store(world.workdir / f"results/{aoi}/dataset.zarr")
    scene = RealScene()
    folder = world.tiles[aoi].parent / world.tiles[aoi].stem
    sizes, compared = set(), []
    for i, tile in enumerate(store.tile.values):
        with rasterio.open(folder / "s1grd-2020" / f"{tile}.tif") as src:
            width = src.width
        sizes.add(width)
        bounds = tuple(store.bounds.values[i])
        lon, lat = grid_points(bounds)
        served = scene.sar_db("winter", orbit, "VV", lon, lat)
        cell = one_cell(scene, bounds, lon, lat)
        same_grid = width == TILE_PX  # no regridding: every pixel is a served pixel
        checked = (cell | same_grid) & (served > decodable[0]) & (served < decodable[1])
        stored = store.s1grd.values[i, 0].astype(np.float64)
        assert np.abs(stored - served)[checked].max() <= tolerance, tile
        expected = codes_to_indices(scene.label_codes(lon, lat).astype(np.uint8))
        labels = store.labels.values[i]
        np.testing.assert_array_equal(labels[cell | same_grid], expected[cell | same_grid])
        compared.append(checked.mean())
    return sizes, float(np.mean(compared))


def test_a_geetiles_017_folder_builds_with_every_tile_valid_and_the_served_values(world):
    store = open_store(world.workdir / "results/good/dataset.zarr")
    n = len(read_tiles(world.tiles["good"]))
    assert store.sizes["tile"] == n >= 5 and bool(store.valid.all())
    assert bool(np.isfinite(store.s1grd.values).all())
    # Within one quantisation step (0.118 dB) of the served dB; labels identical. The uint8
    # cast wraps dB outside [-30, 0), and its codes 0 and 255 are nodata.
    decodable = (-30 + UINT8_STEP_DB, -UINT8_STEP_DB)
    sizes, compared = compare_with_served(world, "good", "ascending", UINT8_STEP_DB, decodable)
    assert sizes == {448, 466} and compared > 0.3
    stats = (world.workdir / "results/good/stats.json").read_text()
    assert f'"geetiles_uint8": {n}' in stats and f'"ascending": {n}' in stats


def test_a_2023_uint16_folder_builds_within_half_a_db_of_the_served_values(world):
    store = open_store(world.workdir / "results/mleo/dataset.zarr")
    assert bool(store.valid.all())
    # Whole dB decoded to the bin centre: 0.5 dB, plus float16 rounding. Code 0 (means in
    # (-1, 1) dB) is nodata.
    sizes, compared = compare_with_served(world, "mleo", "ascending", 0.5 + 0.02, (-60, -1))
    assert sizes == {466} and compared > 0.3
    assert store.s1grd.attrs["source_files"]["formats"] == {"geetiles_uint16": len(store.tile)}


def test_the_bad_input_corpus_is_rejected_kind_by_kind_and_the_good_tiles_stay(world):
    assert len(world.corpus) >= 12
    rejected = pd.read_csv(world.workdir / "results/corpus/rejected_tiles.csv", dtype=str)
    reasons = dict(zip(rejected.tile, rejected.reason, strict=True))
    assert set(reasons) == set(world.corpus)
    for tile, pattern in world.corpus.items():
        assert re.search(pattern, reasons[tile]), (tile, reasons[tile])
    store = open_store(world.workdir / "results/corpus/dataset.zarr")
    bad = np.isin(store.tile.values, list(world.corpus))
    assert store.valid.values[~bad].all() and (~bad).sum() >= 3
    assert not store.valid.values[bad].any()
    assert bool(np.isfinite(store.s1grd.values).all())
    assert not (world.workdir / "logs/corpus/finalise_store.log").read_text().count("job failed")


def test_an_aoi_without_a_valid_tile_lists_its_rejections_and_quotes_the_reason(world):
    assert world.result.returncode != 0  # allbad alone fails, with --keep-going
    assert world.result.stderr.count("Error in rule") == 1
    rejected = pd.read_csv(world.workdir / "results/allbad/rejected_tiles.csv", dtype=str)
    n = len(read_tiles(world.tiles["allbad"]))
    assert len(rejected) == n and rejected.reason.str.contains("linear power").all()
    assert (rejected.s1_format == "float_db").all()
    log = (world.workdir / "logs/allbad/finalise_store.log").read_text()
    assert f"no valid tile in the train split ({n} of {n} tiles rejected; most common" in log
    assert f"{n} tile{'s' * (n > 1)}: values are not dB: only 0.0% are below 0" in log
    assert not (world.workdir / "results/allbad/stats.json").exists()
