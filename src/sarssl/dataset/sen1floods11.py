"""Sen1Floods11's layout (the dataset's and PANGAEA's task's), as the transfer benchmark reads
it, and written from one chip:

    S1Hand/<chip>_S1Hand.tif        VV and VH, float32 dB, bands named by their descriptions
    LabelHand/<chip>_LabelHand.tif  int16: -1 nodata, 0 not water, 1 water
    flood_train_data.csv, flood_valid_data.csv, flood_test_data.csv   (optional) the
        dataset's splits, rows "<chip>_S1Hand.tif,<chip>_LabelHand.tif"

Without the split files the benchmark draws a split. The writer (`write_crops`): the crops
of a chip and its hand label, each a chip of the layout, and the dataset's split files, the
crops split into bands of columns (west: train, then val, then test), so that neighbouring
crops fall in one split where they can.

This is how the default run's transfer table needs nothing outside the repository: the real
chip kept in tests/data, cut into crops the benchmark can split. Crops of one scene are not
the dataset's independent chips; a real Sen1Floods11 folder is read as it is.
"""

from pathlib import Path

import rasterio
from rasterio.windows import Window

from ..atomic import atomic_path, write_text_atomic
from ..errors import InputError
from .bands import VH, VV
from .transfer_task import TransferTask

IMAGE_FOLDER, LABEL_FOLDER = "S1Hand", "LabelHand"
IMAGE_SUFFIX, LABEL_SUFFIX = "_S1Hand.tif", "_LabelHand.tif"
SPLIT_FILES = {
    "train": "flood_train_data.csv",
    "val": "flood_valid_data.csv",
    "test": "flood_test_data.csv",
}

SEN1FLOODS11 = TransferTask(
    name="sen1floods11",
    title="Sen1Floods11: water / not water",
    classes=("not water", "water"),
    label_values={-1: None, 0: 0, 1: 1},
    image_glob=f"*{IMAGE_SUFFIX}",
    label_glob=f"*{LABEL_SUFFIX}",
    image_key=lambda file_name: file_name.removesuffix(IMAGE_SUFFIX),
    label_key=lambda file_name: file_name.removesuffix(LABEL_SUFFIX),
    split_files=SPLIT_FILES,
    split_row_key=lambda row: row.split(",")[0].strip().removesuffix(IMAGE_SUFFIX),
    band_order=(VV, VH),
    focus_class="water",
)
# The shares of the columns of crops in each split, west to east.
COLUMN_SHARES = {"train": 0.6, "val": 0.2, "test": 0.2}


def column_splits(columns: int) -> list[str]:
    """The split of each column of crops, west to east, by COLUMN_SHARES (each at least
    one column); an error if there are fewer columns than splits."""
    if columns < len(COLUMN_SHARES):
        raise InputError(f"{columns} columns of crops cannot fill {len(COLUMN_SHARES)} splits")
    val = max(1, round(COLUMN_SHARES["val"] * columns))
    test = max(1, round(COLUMN_SHARES["test"] * columns))
    train = columns - val - test
    return ["train"] * train + ["val"] * val + ["test"] * test


def write_crop(source: rasterio.DatasetReader, window: Window, path: Path) -> None:
    """The window of `source` as a GeoTIFF of its own: its pixels, grid, band descriptions,
    units and nodata."""
    profile = source.profile | {
        "width": window.width,
        "height": window.height,
        "transform": source.window_transform(window),
    }
    profile.pop("blockxsize", None), profile.pop("blockysize", None)
    profile["tiled"] = False
    with atomic_path(path) as tmp, rasterio.open(tmp, "w", **profile) as target:
        target.write(source.read(window=window))
        for band in range(1, source.count + 1):
            if source.descriptions[band - 1]:
                target.set_band_description(band, source.descriptions[band - 1])
            if source.units[band - 1]:
                target.set_band_unit(band, source.units[band - 1])


def write_crops(image: str | Path, label: str | Path, folder: str | Path, crop_px: int) -> Path:
    """The crops of a chip (`image`, its `label`) of `crop_px` in Sen1Floods11's layout
    under `folder`, with the split files; returns `folder`."""
    folder = Path(folder)
    name = Path(image).name.removesuffix(IMAGE_SUFFIX)
    with rasterio.open(image) as image_source, rasterio.open(label) as label_source:
        if (image_source.height, image_source.width) != (label_source.height, label_source.width):
            raise InputError(f"{label}: not the size of {image}")
        rows, columns = image_source.height // crop_px, image_source.width // crop_px
        splits = column_splits(columns)
        members: dict[str, list[str]] = {split: [] for split in SPLIT_FILES}
        for row in range(rows):
            for column in range(columns):
                crop = f"{name}r{row}c{column}"
                window = Window(column * crop_px, row * crop_px, crop_px, crop_px)
                write_crop(image_source, window, folder / IMAGE_FOLDER / f"{crop}{IMAGE_SUFFIX}")
                write_crop(label_source, window, folder / LABEL_FOLDER / f"{crop}{LABEL_SUFFIX}")
                members[splits[column]].append(crop)
    for split, crops in members.items():
        rows_text = "".join(f"{c}{IMAGE_SUFFIX},{c}{LABEL_SUFFIX}\n" for c in crops)
        write_text_atomic(folder / SPLIT_FILES[split], rows_text)
    return folder
