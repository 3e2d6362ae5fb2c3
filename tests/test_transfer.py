"""The transfer benchmark (sarssl.transfer) on Sen1Floods11's layout: the real chip kept in
tests/data and its crops reach the models changed only by the documented steps; the
dataset's split files are honoured; the table's scores and gains against values worked out
by hand; and the whole benchmark, from the command line, on chips a generator wrote in
that layout, resumed from its records."""

import json
import shutil

import numpy as np
import pandas as pd
import pytest
import rasterio
from conftest import S1_CHIP, S1_LABELS, SEN1FLOODS11
from rasterio.transform import from_origin
from safetensors.torch import load_file, save_file

from sarssl.cli import main
from sarssl.dataset.sen1floods11 import SPLIT_FILES, write_crops
from sarssl.dataset.worldcover import IGNORE_INDEX
from sarssl.errors import InputError
from sarssl.evaluation.metrics import mean_iou
from sarssl.settings.finetune import Init, Model
from sarssl.settings.transfer import transfer_runs
from sarssl.transfer import ChipTiles, find_chips, read_splits, transfer_table
from sarssl.weights import load

CROP_PX = 128


@pytest.fixture(scope="module")
def export(tiny_export):
    return tiny_export


@pytest.fixture(scope="module")
def crops(tmp_path_factory):
    return write_crops(S1_CHIP, S1_LABELS, tmp_path_factory.mktemp("crops"), CROP_PX)


def test_the_real_chip_alone_is_found_but_cannot_be_split():
    chips = find_chips(SEN1FLOODS11)
    assert list(chips) == ["Spain_7370579"] and chips["Spain_7370579"].label == S1_LABELS
    with pytest.raises(InputError, match="1 chips leave the val split empty"):
        read_splits(SEN1FLOODS11, chips, seed=0)


def test_the_crops_are_the_chips_windows_split_in_bands_of_columns(crops):
    chips = find_chips(crops)
    splits = read_splits(crops, chips, seed=0)
    # 4 x 4 crops: columns 0-1 train, 2 val, 3 test (the split files written beside them).
    columns = {split: {c.name[-1] for c in members} for split, members in splits.items()}
    assert columns == {"train": {"0", "1"}, "val": {"2"}, "test": {"3"}}
    assert [len(members) for members in splits.values()] == [8, 4, 4]
    crop = chips["Spain_7370579r2c1"]
    with rasterio.open(S1_CHIP) as chip, rasterio.open(crop.image) as written:
        window = rasterio.windows.Window(CROP_PX, 2 * CROP_PX, CROP_PX, CROP_PX)
        np.testing.assert_array_equal(written.read(), chip.read(window=window))
        assert written.transform == chip.window_transform(window)
        assert written.descriptions == ("VV", "VH") and written.crs == chip.crs


def test_a_crop_reaches_the_model_as_prepare_makes_it_and_nodata_is_ignored(crops, export):
    """Each channel is the crop's dB value (VV, VH or VV - VH, the one date in every
    season) minus the export's mean, over its std; label -1 is the ignored class."""
    _, prepare = load(export)
    chips = find_chips(crops)
    names = sorted(chips)
    item = ChipTiles([chips[n] for n in names], prepare)[names.index("Spain_7370579r0c0")]
    with rasterio.open(S1_CHIP) as source:
        vv, vh = source.read(window=((0, CROP_PX), (0, CROP_PX)))
    with rasterio.open(S1_LABELS) as source:
        label = source.read(1, window=((0, CROP_PX), (0, CROP_PX)))
    mean, std = prepare.contract.mean, prepare.contract.std
    for channel in range(12):
        values = (vv, vh, vv - vh)[channel % 3]
        expected = (values - mean[channel]) / std[channel]
        np.testing.assert_allclose(item["image"][channel].numpy(), expected, rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(
        item["labels"].numpy(), np.where(label == -1, IGNORE_INDEX, label)
    )
    assert (label == -1).any()  # the crop has nodata to ignore


def test_the_datasets_split_files_are_honoured_and_a_missing_chip_is_named(crops, tmp_path):
    chips = find_chips(crops)
    test_file = next(crops.rglob(SPLIT_FILES["test"]))
    rows = test_file.read_text().splitlines()
    assert rows[0] == "Spain_7370579r0c3_S1Hand.tif,Spain_7370579r0c3_LabelHand.tif"
    edited = tmp_path / "edited"
    edited.mkdir()
    for split, name in SPLIT_FILES.items():
        text = next(crops.rglob(name)).read_text()
        if split == "test":
            text += "Nowhere_1_S1Hand.tif,Nowhere_1_LabelHand.tif\n"
        (edited / name).write_text(text)
    for folder in ("S1Hand", "LabelHand"):
        shutil.copytree(crops / folder, edited / folder)
    with pytest.raises(InputError, match=r"flood_test_data.csv: chip Nowhere_1 is not in"):
        read_splits(edited, find_chips(edited), seed=0)
    assert len(chips) == 16


def record(model, init, seed, confusions):
    totals = np.asarray(confusions).sum(axis=0)
    iou_water = totals[1, 1] / (totals[1, 1] + totals[0, 1] + totals[1, 0])
    return {
        "model": model, "init": init, "fraction": 100.0, "seed": seed,
        "miou": mean_iou(totals), "water_iou": iou_water,
        "test_chip_confusions": confusions, "chips": {"train": ["a", "b"]},
    }  # fmt: skip


def test_the_table_averages_the_seeds_and_pairs_the_gain_with_the_unet():
    # Two test chips; rows: true class (not water, water), columns: predicted.
    perfect = [[[50, 0], [0, 50]], [[80, 0], [0, 20]]]
    all_land = [[[50, 0], [50, 0]], [[80, 0], [20, 0]]]
    records = [
        record(Model.TOKENS_DECODER, Init.FROZEN, 0, perfect),
        record(Model.TOKENS_DECODER, Init.FROZEN, 1, all_land),
        record(Model.S1GRD_UNET, Init.SCRATCH, 0, all_land),
        record(Model.S1GRD_UNET, Init.SCRATCH, 1, all_land),
    ]
    table = transfer_table(records).set_index("model")
    # All land: IoU 130/200 for not water, 0 for water -> MIoU 0.325; perfect: 1.
    tokens, unet = table.loc[Model.TOKENS_DECODER], table.loc[Model.S1GRD_UNET]
    assert tokens["miou"] == pytest.approx((1 + 0.325) / 2)
    assert tokens["water_iou"] == pytest.approx(0.5)
    assert unet["miou"] == pytest.approx(0.325) and unet["miou_gain"] == 0
    assert tokens["miou_gain"] == pytest.approx((1 + 0.325) / 2 - 0.325)
    for column in ("miou", "water_iou", "miou_gain"):
        assert tokens[f"{column}_low"] <= tokens[column] <= tokens[f"{column}_high"]
    # The gain's interval is paired: the seed at 1 gains on every resample.
    assert tokens["miou_gain_low"] > 0
    assert tokens["test_chips"] == 2 and tokens["train_chips"] == 2


def write_generated_chips(folder, count, px, seed):
    """Chips in Sen1Floods11's layout, without split files: a band of calm water (VV about
    -20 dB, VH -27) beside land (-9 and -16), speckled, some label nodata; 10 m pixels."""
    rng = np.random.default_rng(seed)
    for index in range(count):
        label = np.zeros((px, px), dtype=np.int16)
        width = rng.integers(px // 4, px // 2)
        label[:, :width] = 1
        label[rng.random((px, px)) < 0.01] = -1
        water = label == 1
        vv = np.where(water, -20.0, -9.0) + rng.normal(0, 1.5, (px, px))
        vh = np.where(water, -27.0, -16.0) + rng.normal(0, 1.5, (px, px))
        transform = from_origin(-0.78 + index * 0.01, 38.13, 8.983e-5, 8.983e-5)
        profile = {"driver": "GTiff", "height": px, "width": px, "crs": "EPSG:4326",
                   "transform": transform}  # fmt: skip
        for kind, bands, dtype in (
            ("S1Hand", [vv, vh], "float32"),
            ("LabelHand", [label], "int16"),
        ):
            (folder / kind).mkdir(parents=True, exist_ok=True)
            path = folder / kind / f"Gen_{index}_{kind}.tif"
            with rasterio.open(path, "w", count=len(bands), dtype=dtype, **profile) as target:
                target.write(np.stack(bands).astype(dtype))
                if kind == "S1Hand":
                    target.descriptions = ("VV", "VH")


def test_the_benchmark_runs_from_the_command_line_and_resumes_from_its_records_of_the_same_weights(
    export, tmp_path
):
    data = tmp_path / "generated"
    write_generated_chips(data, count=10, px=64, seed=5)
    section = {"encodings": ["tokens"], "inits": ["frozen"], "epochs": 2, "width": 4}
    (tmp_path / "settings.json").write_text(json.dumps(section))
    command = ["transfer", "--weights", str(export), "--data", str(data),
               "--out", str(tmp_path / "runs"), "--settings", str(tmp_path / "settings.json"),
               "--table", str(tmp_path / "t.csv"),
               "--markdown", str(tmp_path / "t.md")]  # fmt: skip
    assert main(command) == 0
    table = pd.read_csv(tmp_path / "t.csv")
    assert table[["model", "init"]].values.tolist() == [
        [Model.TOKENS_DECODER, Init.FROZEN],
        [Model.S1GRD_UNET, Init.SCRATCH],
    ]
    # 10 chips without split files: 6 / 2 / 2 by a seeded draw.
    assert table["train_chips"].tolist() == [6, 6] and table["test_chips"].tolist() == [2, 2]
    assert table["miou"].between(0, 1).all()
    assert "water IoU gain over U-Net (points)" in (tmp_path / "t.md").read_text()
    records = sorted((tmp_path / "runs").rglob("metrics.json"))
    assert len(records) == len(transfer_runs(section)) == 2
    stamps = [path.stat().st_mtime_ns for path in records]
    assert main(command) == 0  # every run read back, none trained again
    assert [path.stat().st_mtime_ns for path in records] == stamps
    pd.testing.assert_frame_equal(pd.read_csv(tmp_path / "t.csv"), table)
    # Other weights: every run is trained again, not read back.
    other = shutil.copytree(export, tmp_path / "other")
    weights = other / "model.safetensors"
    tensors = load_file(str(weights))
    save_file({k: v + 0.01 for k, v in tensors.items()}, str(weights))
    command[command.index("--weights") + 1] = str(other)
    assert main(command) == 0
    assert all(path.stat().st_mtime_ns > stamp for path, stamp in zip(records, stamps, strict=True))
