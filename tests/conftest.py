"""Shared fixtures: a tiny AOI, small tiles (tests only; defaults keep 448 px), and a helper
that runs the data half of the pipeline through the library, shard by shard."""

import contextlib
import dataclasses
import io
from dataclasses import dataclass
from pathlib import Path

import pytest

from sarssl.dataset.bands import labels_dataset_name, s1_dataset_name
from sarssl.dataset.build import BuildSettings, build_shard, finalise, tile_outcomes, write_rejected
from sarssl.dataset.grid import (
    build_tile_grid,
    geographic_split,
    read_tiles,
    tile_bounds,
    tiles_file_name,
    write_tiles_file,
)
from sarssl.dataset.sources import write_csv
from sarssl.dataset.store import create_store
from sarssl.dataset.synthetic import write_synthetic_shard

TESTS = Path(__file__).resolve().parent  # also the home of the tests' helper modules
REPO = TESTS.parent
# Real rasters kept in the repository, each folder with its README (source, licence, sha256):
# the Sentinel-1 chip and its hand label, and a WorldCover tile.
REAL_DATA = REPO / "tests" / "data"
SEN1FLOODS11 = REAL_DATA / "sen1floods11"
S1_CHIP = SEN1FLOODS11 / "Spain_7370579_S1Hand.tif"
S1_LABELS = SEN1FLOODS11 / "Spain_7370579_LabelHand.tif"
WORLDCOVER = REAL_DATA / "esa_worldcover" / "ESA_WorldCover_10m_2020_v100_N00E006_Map.tif"
TEST_TILE_PX = 32
TEST_PIXEL_M = 10
SEED = 39
FRACTIONS = {"train": 0.6, "val": 0.2, "test": 0.2}
# About 2.5 km x 1.9 km near the demo AOI: 42 tiles of 320 m.
TINY_AOI_WKT = "POLYGON ((-1.0 41.70, -0.97 41.70, -0.97 41.717, -1.0 41.717, -1.0 41.70))"


@pytest.fixture
def tiny_aoi(tmp_path: Path) -> Path:
    path = tmp_path / "tiny.wkt"
    path.write_text(TINY_AOI_WKT)
    return path


@dataclass
class Dataset:
    root: Path
    tiles_file: Path
    splits_file: Path
    store: Path
    manifests: list[Path]
    reports: list[Path]
    stats: Path
    rejected: Path


def quiet_grid(aoi: str, wkt: Path, chip_size_m: float):
    # geetiles prints joblib progress; keep test output readable.
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        return build_tile_grid(aoi, wkt, chip_size_m)


def prepare_sources(
    root: Path, wkt: Path, n_shards: int = 1, aoi: str = "tiny", dtype: str = "float16"
) -> Dataset:
    """Grid, split, synthetic GeoTIFFs, manifests and an empty store (s1grd of `dtype`);
    nothing built yet."""
    tiles_file = root / "tiles" / tiles_file_name(aoi)
    write_tiles_file(quiet_grid(aoi, wkt, TEST_TILE_PX * TEST_PIXEL_M), tiles_file)
    tiles = read_tiles(tiles_file)
    splits_file = root / "splits.csv"
    write_csv(geographic_split(tiles, 5, 0.0, FRACTIONS), splits_file)
    manifests = []
    for shard in range(n_shards):
        manifest = root / "source" / f"shard{shard}.csv"
        write_synthetic_shard(
            tiles_file,
            shard,
            n_shards,
            s1_dataset_name(2020),
            labels_dataset_name(2020),
            TEST_TILE_PX,
            SEED,
            manifest,
            threads=2,
        )
        manifests.append(manifest)
    store = root / "dataset.zarr"
    create_store(store, tiles.identifier.tolist(), tile_bounds(tiles), TEST_TILE_PX, dtype, {})
    return Dataset(
        root,
        tiles_file,
        splits_file,
        store,
        manifests,
        [root / "build" / f"shard{s}.csv" for s in range(n_shards)],
        root / "stats.json",
        root / "rejected_tiles.csv",
    )


def settings(policy: str = "record", max_nodata_fraction: float = 0.5) -> BuildSettings:
    return BuildSettings(TEST_TILE_PX, max_nodata_fraction, policy, threads=2)


def build_all(data: Dataset, policy: str = "record") -> dict:
    """The build as the workflow runs it: shards, the rejected list, then finalisation."""
    for manifest, report in zip(data.manifests, data.reports, strict=True):
        build_shard(data.store, manifest, report, settings(policy))
    outcomes = tile_outcomes(data.store, data.tiles_file, data.splits_file, data.reports)
    write_rejected(outcomes, data.rejected)
    return finalise(data.store, outcomes, data.stats, data.rejected)


# DINO for TEST_TILE_PX tiles: a ViT-Tiny (2 x 2 tokens), a small head, few steps.
TINY_DINO = {
    "out_dim": 128,
    "head_hidden_dim": 64,
    "bottleneck_dim": 32,
    "local_px": 16,
    "local_crops": 2,
    "lr": 0.05,
    "warmup_epochs": 1,
    "warmup_teacher_temp_epochs": 1,
    "loader_workers": 0,
    "checkpoint_every": 2,
    "log_every": 1,
}


# The data sections of the workflow and SLURM tests' configs: 32 px tiles, 5 split bands.
TINY_DATA_CONFIG = {
    "data": {"tile_px": TEST_TILE_PX, "threads": 1},
    "split": {"nbands": 5, "angle": 0.0},
    "synthetic": {"seed": SEED},
}


def tiny_pretrain_config(aois: list[str]) -> dict:
    """The pretrain, dino and attention sections of a test config: one ViT-Tiny epoch."""
    return {
        "pretrain": [
            {
                "name": "tiny-vit",
                "architecture": "vit_tiny_patch16_224",
                "aois": aois,
                "epochs": 1,
                "batch_size": 4,
                "threads": 1,
                "mem_mb": 2000,
                "runtime": 10,
            }
        ],
        "dino": TINY_DINO,
        "attention": {"geotiff_tiles": 1, "threads": 1, "mem_mb": 2000, "runtime": 10},
    }


def tiny_finetune_config(aoi: str, percents: list[float]) -> dict:
    """A reduced grid: attention maps (frozen, fine-tuned) and the SI Table 2 U-Nets."""
    return {
        "aoi": aoi,
        "pretrain": ["tiny-vit"],
        "percents": percents,
        "encodings": ["attention"],
        "inits": ["frozen", "finetuned"],
        "unet_baseline": "tiny-vit",
        "epochs": 1,
        "batch_size": 4,
        "width": 4,
        "loader_workers": 0,
        "threads": 1,
        "mem_mb": 2000,
        "runtime": 10,
    }


def tiny_settings(store: Path, **overrides):
    """Pre-training settings on the tiny store: 26 train tiles of 32 px, 6 steps of 4 tiles
    per epoch; a small head."""
    from sarssl.settings.pretrain import PretrainSettings, settings_from_config

    run = {"name": "tiny", "architecture": "vit_tiny_patch16_224", "epochs": 2, "batch_size": 4}
    settings = settings_from_config(run, TINY_DINO, [str(store)], TEST_TILE_PX)
    return PretrainSettings.from_dict({**settings.as_dict(), **overrides})


def built_tiny_store(root: Path, dtype: str) -> Path:
    (root / "tiny.wkt").write_text(TINY_AOI_WKT)
    data = prepare_sources(root, root / "tiny.wkt", dtype=dtype)
    build_all(data)
    return data.store


@pytest.fixture(scope="session")
def tiny_store(tmp_path_factory) -> Path:
    """A built store of the tiny AOI, shared (read-only) by the tests that train on it."""
    return built_tiny_store(tmp_path_factory.mktemp("tiny-store"), "float16")


@pytest.fixture(scope="session")
def tiny_store_uint8(tmp_path_factory) -> Path:
    """The tiny store packed as uint8 (the same tiles as tiny_store), shared, read-only."""
    return built_tiny_store(tmp_path_factory.mktemp("tiny-store-uint8"), "uint8")


@pytest.fixture(scope="session")
def tiny_checkpoint(tiny_store, tmp_path_factory) -> Path:
    """A ViT-Tiny pre-trained on the tiny store for one epoch (shared, read-only)."""
    from sarssl.settings.pretrain import CHECKPOINT_NAME
    from sarssl.training.pretrain import train

    folder = tmp_path_factory.mktemp("tiny-pretrain")
    train(tiny_settings(tiny_store, name="tiny-vit", epochs=1), folder)
    return folder / CHECKPOINT_NAME


@pytest.fixture(scope="session")
def tiny_export(tiny_checkpoint, tmp_path_factory) -> Path:
    """The tiny checkpoint's export folder, with its 10 m pixels recorded (shared, read-only)."""
    from test_export import DATA

    from sarssl.outputs.export import export_backbone

    data = dataclasses.replace(DATA, pixel_m=10.0)
    return export_backbone(tiny_checkpoint, tmp_path_factory.mktemp("export"), data)
