"""A store's record of itself: what its build wrote, read back without its pixels, agreeing
with stats.json; an unfinished store is refused."""

import json

import numpy as np
import pytest
from conftest import TEST_TILE_PX

from sarssl.dataset.bands import CHANNELS, POLARISATIONS, SEASONS
from sarssl.dataset.store import TILE_COORDINATES, create_store, finalise_store, open_store
from sarssl.dataset.storeinfo import StoreInfo
from sarssl.errors import IncompleteStoreError


def test_a_built_store_records_what_its_stats_json_says(tiny_store):
    info = StoreInfo.read(tiny_store)
    stats = json.loads((tiny_store.parent / "stats.json").read_text())
    assert info.tile_px == TEST_TILE_PX and info.n_tiles == open_store(tiny_store).sizes["tile"]
    assert info.channels == CHANNELS
    assert info.normalisation == stats["normalisation"]
    assert info.source_files == stats["s1"]
    assert info.tiles == stats["tiles"]
    assert info.coding.dtype == stats["store"]["dtype"] == "float16"
    # The synthetic source: float dB files whose bands name no orbit pass.
    assert info.formats == ["float_db"] and info.orbit_passes == []
    # The tests' stores are created without the attributes the pipeline's init_store adds.
    assert (info.aoi, info.year, info.pixel_m) == (None, None, None)


def test_a_store_is_read_once_finalised_with_the_pipelines_attributes(tmp_path):
    store = tmp_path / "dataset.zarr"
    attrs = {"aoi": "somewhere", "year": 2021, "pixel_m": 10.0}
    create_store(store, ["a", "b"], np.zeros((2, 4)), 8, "uint8", attrs)
    with pytest.raises(IncompleteStoreError, match="did not finish"):
        StoreInfo.read(store)
    # Tile a kept (train, a geetiles file naming its pass), tile b rejected (test).
    sizes = {"tile": 2, "season": len(SEASONS), "polarisation": len(POLARISATIONS), "affine": 6}
    coordinates = {
        name: np.zeros([sizes[dim] for dim in dims]) for name, (dims, _) in TILE_COORDINATES.items()
    }
    coordinates |= {"split": ["train", "test"], "valid": [True, False], "crs": ["", ""],
                    "orbit_pass": ["ascending", ""]}  # fmt: skip
    stats = {"mean": [0.0] * len(CHANNELS), "std": [1.0] * len(CHANNELS), "pixels": 64}
    s1 = {"formats": {"geetiles_uint16": 1}, "orbit_pass": {"ascending": 1}}
    finalise_store(store, coordinates, stats, s1)
    info = StoreInfo.read(store)
    assert (info.aoi, info.year, info.pixel_m) == ("somewhere", 2021, 10.0)
    assert info.coding.packed and info.coding.dtype == "uint8"
    assert info.tiles == {"train": {"valid": 1, "rejected": 0}, "test": {"valid": 0, "rejected": 1}}
    assert info.formats == ["geetiles_uint16"] and info.orbit_passes == ["ascending"]
    assert info.normalisation == stats and (info.tile_px, info.n_tiles) == (8, 2)
