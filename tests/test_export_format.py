"""The export format without torch: the data description read from the stores' records,
and a module the Snakefile can import while it parses."""

import dataclasses
import subprocess
import sys

import pytest

from sarssl.dataset.storeinfo import StoreInfo
from sarssl.errors import SarsslError
from sarssl.outputs.export_format import describe_data

SPLIT = {"nbands": 5, "angle": 0.0, "fractions": {"train": 0.6, "val": 0.2, "test": 0.2}}


@pytest.fixture
def tiny_info(tiny_store) -> StoreInfo:
    # The year init_store records (the tests' stores are created without it).
    return dataclasses.replace(StoreInfo.read(tiny_store), year=2020)


def test_the_data_are_described_from_the_stores_and_the_sources(tiny_info):
    stores = {
        "files": dataclasses.replace(tiny_info, source="geetiles_dir"),
        "export": dataclasses.replace(
            tiny_info, source="gee", gee_export={"orbit_pass": "DESCENDING", "composite": "median"}
        ),
        "scenes": dataclasses.replace(tiny_info, source="synthetic"),
    }
    data = describe_data(stores, SPLIT)
    assert data.aois == ["files", "export", "scenes"] and data.year == 2020
    assert data.tiles["files"] == tiny_info.tiles and data.split == SPLIT
    assert data.sources == {"files": "geetiles_dir", "export": "gee", "scenes": "synthetic"}
    # Files whose bands name no pass (the store says so); the export's pass as it asked.
    assert data.orbit_pass == {
        "files": "as in the files",
        "export": "descending",
        "scenes": "none (synthetic)",
    }
    assert data.composite["files"] == "as in the files (float_db)"
    assert data.composite["export"] == "median of the dB images per season"


def test_stores_of_other_years_or_of_none_are_not_described_as_one(tiny_info):
    synthetic = dataclasses.replace(tiny_info, source="synthetic")
    other_year = dataclasses.replace(synthetic, year=2021)
    no_year = dataclasses.replace(synthetic, year=None)
    for stores in ({"a": synthetic, "b": other_year}, {"a": no_year}):
        with pytest.raises(SarsslError, match="not one"):
            describe_data(stores, SPLIT)
    with pytest.raises(SarsslError, match=r"AOIs \['a'\] record no source"):
        describe_data({"a": tiny_info}, SPLIT)


def test_the_format_module_imports_neither_torch_nor_timm_nor_pandas():
    code = (
        "import sys, sarssl.outputs.export_format\n"
        "loaded = {name.partition('.')[0] for name in sys.modules}\n"
        "print(sorted(loaded & {'torch', 'timm', 'safetensors', 'pandas'}))\n"
    )
    imported = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert imported.stdout.strip() == "[]", imported.stdout + imported.stderr
