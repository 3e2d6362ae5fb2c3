"""The transfer benchmark (sarssl.transfer) on Sen1Floods11's layout: the real chip kept in
tests/data and its crops reach the models changed only by the documented steps; the
dataset's split files are honoured; the table's scores and gains against values worked out
by hand; and the whole benchmark, from the command line, on chips a generator wrote in
that layout, resumed from its records. On Copernicus-Bench's DFC2020-S1 layout: chips a
generator wrote are read as TorchGeo's own loader reads them, their classes mapped as
Copernicus-Bench maps them, and the benchmark runs on them."""

import json
import shutil

import numpy as np
import pandas as pd
import pytest
import rasterio
from conftest import S1_CHIP, S1_LABELS
from conftest import SEN1FLOODS11 as SEN1FLOODS11_FOLDER
from rasterio.transform import from_origin
from safetensors.torch import load_file, save_file

from sarssl.cli import main
from sarssl.dataset.dfc2020 import DFC2020_S1
from sarssl.dataset.sen1floods11 import SEN1FLOODS11, SPLIT_FILES, write_crops
from sarssl.dataset.worldcover import IGNORE_INDEX
from sarssl.errors import InputError
from sarssl.evaluation.metrics import mean_iou
from sarssl.settings.finetune import Init, Model
from sarssl.settings.transfer import transfer_runs
from sarssl.transfer import ChipTiles, transfer_table
from sarssl.weights import load

CROP_PX = 128


@pytest.fixture(scope="module")
def export(tiny_export):
    return tiny_export


@pytest.fixture(scope="module")
def crops(tmp_path_factory):
    return write_crops(S1_CHIP, S1_LABELS, tmp_path_factory.mktemp("crops"), CROP_PX)


def test_the_real_chip_alone_is_found_but_cannot_be_split():
    chips = SEN1FLOODS11.find_chips(SEN1FLOODS11_FOLDER)
    assert list(chips) == ["Spain_7370579"] and chips["Spain_7370579"].label == S1_LABELS
    with pytest.raises(InputError, match="1 chips leave the val split empty"):
        SEN1FLOODS11.read_splits(SEN1FLOODS11_FOLDER, chips, seed=0)


def test_the_crops_are_the_chips_windows_split_in_bands_of_columns(crops):
    chips = SEN1FLOODS11.find_chips(crops)
    splits = SEN1FLOODS11.read_splits(crops, chips, seed=0)
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
    chips = SEN1FLOODS11.find_chips(crops)
    names = sorted(chips)
    tiles = ChipTiles([chips[n] for n in names], prepare, SEN1FLOODS11)
    item = tiles[names.index("Spain_7370579r0c0")]
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
    chips = SEN1FLOODS11.find_chips(crops)
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
        SEN1FLOODS11.read_splits(edited, SEN1FLOODS11.find_chips(edited), seed=0)
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
    table = transfer_table(records, SEN1FLOODS11).set_index("model")
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


def transfer_command(export, data, section, folder) -> list[str]:
    """`sarssl transfer` on `data` with `section` as its settings file, writing under `folder`
    (runs/, t.csv, t.md)."""
    (folder / "settings.json").write_text(json.dumps(section))
    return ["transfer", "--weights", str(export), "--data", str(data),
            "--out", str(folder / "runs"), "--settings", str(folder / "settings.json"),
            "--table", str(folder / "t.csv"), "--markdown", str(folder / "t.md")]  # fmt: skip


def test_the_benchmark_runs_from_the_command_line_and_resumes_from_its_records_of_the_same_weights(
    export, tmp_path
):
    data = tmp_path / "generated"
    write_generated_chips(data, count=10, px=64, seed=5)
    section = {"encodings": ["tokens"], "inits": ["frozen"], "epochs": 2, "width": 4}
    command = transfer_command(export, data, section, tmp_path)
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


# Copernicus-Bench's mapping of DFC2020's values to its 8 scored classes (its loader's
# cls_mapping; 255 is ignored): savanna (3), snow/ice (8) and 0 are not scored.
COPERNICUS_BENCH_MAPPING = {0: 255, 1: 0, 2: 1, 3: 255, 4: 2, 5: 3, 6: 4, 7: 5, 8: 255, 9: 6, 10: 7}
# Mean VV and VH (dB) of each DFC2020 value in the generated chips: water dark in both,
# urban bright, vegetation between.
DFC2020_BACKSCATTER = {0: (-12, -19), 1: (-7, -13), 2: (-9, -16), 3: (-8, -15), 4: (-10, -17),
                       5: (-11, -18), 6: (-9, -15), 7: (-3, -10), 8: (-6, -14), 9: (-14, -22),
                       10: (-20, -27)}  # fmt: skip
DFC2020_SPLITS = {"train": 6, "val": 2, "test": 2}


def write_dfc2020_chips(root, px, seed):
    """Chips in the layout of Copernicus-Bench's dfc2020.zip (dfc2020_s1s2/s1, /dfc and the
    split files): VV and VH float32 dB without band names, labels DFC2020's values 0-10 in
    blocks of 8 px, speckled; 10 m pixels in UTM."""
    rng = np.random.default_rng(seed)
    folder = root / "dfc2020_s1s2"
    for kind in ("s1", "dfc"):
        (folder / kind).mkdir(parents=True, exist_ok=True)
    index = 0
    for split, count in DFC2020_SPLITS.items():
        names = []
        for _ in range(count):
            blocks = rng.integers(0, 11, (px // 8, px // 8))
            label = np.kron(blocks, np.ones((8, 8), dtype=np.int64)).astype(np.uint16)
            means = np.array([DFC2020_BACKSCATTER[v] for v in range(11)], dtype=np.float32)
            vv, vh = (means[label, band] + rng.normal(0, 1.5, (px, px)) for band in (0, 1))
            transform = from_origin(500_000 + 1000 * index, 5_000_000, 10, 10)
            profile = {"driver": "GTiff", "height": px, "width": px, "crs": "EPSG:32632",
                       "transform": transform}  # fmt: skip
            name = f"ROIs0000_{split}_dfc_{index}_p{100 + index}.tif"
            with rasterio.open(folder / "dfc" / name, "w", count=1, dtype="uint16", **profile) as t:
                t.write(label[None])
            image = folder / "s1" / name.replace("_dfc_", "_s1_")
            with rasterio.open(image, "w", count=2, dtype="float32", **profile) as target:
                target.write(np.stack([vv, vh]).astype(np.float32))
            names.append(name)
            index += 1
        (folder / f"dfc-{split}-new.csv").write_text("".join(f"{n}\n" for n in names))
    return root


@pytest.fixture(scope="module")
def dfc2020(tmp_path_factory):
    return write_dfc2020_chips(tmp_path_factory.mktemp("dfc2020"), px=32, seed=3)


def test_dfc2020_chips_are_read_as_torchgeo_reads_them_and_mapped_as_copernicus_bench(dfc2020):
    """Each split holds TorchGeo's CopernicusBenchDFC2020S1 samples, in its order: the same
    VV and VH, and the classes of its mask under Copernicus-Bench's mapping."""
    from torchgeo.datasets import CopernicusBenchDFC2020S1

    chips = DFC2020_S1.find_chips(dfc2020)
    splits = DFC2020_S1.read_splits(dfc2020, chips, seed=0)
    assert {split: len(members) for split, members in splits.items()} == DFC2020_SPLITS
    for split, members in splits.items():
        samples = CopernicusBenchDFC2020S1(root=str(dfc2020), split=split)
        assert len(samples) == len(members)
        for index, chip in enumerate(members):
            sample = samples[index]
            with rasterio.open(chip.image) as source:
                np.testing.assert_array_equal(source.read(), sample["image"].numpy())
            mask = sample["mask"].numpy()
            expected = np.vectorize(COPERNICUS_BENCH_MAPPING.get)(mask)
            classes = DFC2020_S1.read_classes(chip)
            np.testing.assert_array_equal(np.where(classes == IGNORE_INDEX, 255, classes), expected)
    assert DFC2020_S1.classes[COPERNICUS_BENCH_MAPPING[10]] == "water"


def test_a_dfc2020_chip_reaches_the_model_with_its_bands_in_the_layouts_order(dfc2020, export):
    """The files name no band: VV is the first, VH the second, as the layout says."""
    _, prepare = load(export)
    chips = DFC2020_S1.find_chips(dfc2020)
    chip = chips[sorted(chips)[0]]
    item = ChipTiles([chip], prepare, DFC2020_S1)[0]
    with rasterio.open(chip.image) as source:
        assert source.descriptions == (None, None)
        vv, vh = source.read()
    mean, std = prepare.contract.mean, prepare.contract.std
    for channel in range(12):
        values = (vv, vh, vv - vh)[channel % 3]
        expected = (values - mean[channel]) / std[channel]
        np.testing.assert_allclose(item["image"][channel].numpy(), expected, rtol=1e-5, atol=1e-5)


def test_a_dfc2020_label_value_outside_the_layout_is_refused_naming_the_file(tmp_path):
    root = write_dfc2020_chips(tmp_path, px=16, seed=4)
    chip = next(iter(DFC2020_S1.find_chips(root).values()))
    with rasterio.open(chip.label, "r+") as target:
        target.write(np.full((1, 16, 16), 11, dtype=np.uint16))
    with pytest.raises(InputError, match=rf"{chip.label.name}: label values \[11\]"):
        DFC2020_S1.read_classes(chip)


def test_the_benchmark_runs_on_dfc2020_from_the_command_line(dfc2020, export, tmp_path, capsys):
    section = {"task": "dfc2020_s1", "encodings": ["tokens"], "inits": ["frozen"], "epochs": 1,
               "width": 4}  # fmt: skip
    command = transfer_command(export, dfc2020, section, tmp_path)
    assert main(command) == 0
    table = pd.read_csv(tmp_path / "t.csv")
    assert table["train_chips"].tolist() == [6, 6] and table["test_chips"].tolist() == [2, 2]
    assert table["miou"].between(0, 1).all() and "water_iou" not in table
    markdown = (tmp_path / "t.md").read_text()
    assert "DFC2020-S1 (Copernicus-Bench)" in markdown and "water IoU" not in markdown
    record = json.loads(next((tmp_path / "runs").rglob("metrics.json")).read_text())
    assert record["task"] == "dfc2020_s1" and len(record["record"]["classes"]) == 8
    # The same folder read as Sen1Floods11's layout: no chip of that layout, named.
    (tmp_path / "settings.json").write_text(json.dumps(section | {"task": "sen1floods11"}))
    assert main(command) == 2
    assert (
        "no *_S1Hand.tif file (Sen1Floods11: water / not water's layout)" in capsys.readouterr().err
    )
