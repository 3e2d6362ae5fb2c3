"""Copernicus-Bench's DFC2020-S1 task in its layout (the dataset's archive `dfc2020.zip`, which
TorchGeo's CopernicusBenchDFC2020S1 reads): land cover from Sentinel-1, 256 px chips at 10 m
from the IEEE GRSS Data Fusion Contest 2020.

    s1/<ROI>_s1_<scene>_p<n>.tif     VV and VH, float32 dB, bands not named (VV then VH)
    dfc/<ROI>_dfc_<scene>_p<n>.tif   the DFC2020 classes 1-10 (0: none)
    dfc-train-new.csv, dfc-val-new.csv, dfc-test-new.csv   the splits, one label file name
        a row, no header (an image's name is its label's with `dfc` -> `s1`)

Of DFC2020's ten classes Copernicus-Bench scores the eight present in its data: savanna (3)
and snow/ice (8) are ignored with 0, as in its own loader and its results table, so that
scores here are comparable with the benchmark's.

Why this task of Copernicus-Bench's four Sentinel-1 tasks: it is the only one that is
semantic segmentation of single-date S1 GRD in dB, which is what the exported backbones
were pre-trained and fine-tuned for (land cover per pixel at 10 m). EuroSAT-S1 and
BigEarthNet-S1 are scene classification (one label per chip, 64 and 120 px), and Flood-S1
is change detection over a pre-flood and a post-flood date from Kuro Siwo.
"""

from .bands import VH, VV
from .transfer_task import TransferTask

IMAGE_FOLDER, LABEL_FOLDER = "s1", "dfc"
SPLIT_FILES = {
    "train": "dfc-train-new.csv",
    "val": "dfc-val-new.csv",
    "test": "dfc-test-new.csv",
}
# DFC2020's classes by their value in the label files.
DFC2020_CLASSES = {
    1: "forest",
    2: "shrubland",
    3: "savanna",
    4: "grassland",
    5: "wetlands",
    6: "croplands",
    7: "urban/built-up",
    8: "snow/ice",
    9: "barren",
    10: "water",
}
# Ignored by Copernicus-Bench: 0 (no class) and the two classes absent from its chips.
IGNORED_VALUES = (0, 3, 8)
SCORED_CLASSES = tuple(
    name for value, name in DFC2020_CLASSES.items() if value not in IGNORED_VALUES
)


def label_name(image_name: str) -> str:
    """`ROIs0000_test_dfc_0_p609` of the image `ROIs0000_test_s1_0_p609.tif`."""
    return image_name.removesuffix(".tif").replace(f"_{IMAGE_FOLDER}_", f"_{LABEL_FOLDER}_")


DFC2020_S1 = TransferTask(
    name="dfc2020_s1",
    title="DFC2020-S1 (Copernicus-Bench): land cover, 8 classes",
    classes=SCORED_CLASSES,
    label_values={0: None}
    | {
        value: None if value in IGNORED_VALUES else SCORED_CLASSES.index(name)
        for value, name in DFC2020_CLASSES.items()
    },
    image_glob=f"{IMAGE_FOLDER}/*.tif",
    label_glob=f"{LABEL_FOLDER}/*.tif",
    image_key=label_name,
    label_key=lambda file_name: file_name.removesuffix(".tif"),
    split_files=SPLIT_FILES,
    split_row_key=lambda row: row.strip().removesuffix(".tif"),
    band_order=(VV, VH),
)
