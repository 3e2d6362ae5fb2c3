"""A public Sentinel-1 segmentation task in its dataset's own layout, as the transfer benchmark
reads it (sarssl.transfer): how its chips and their labels are found, how its split files
name them, what its label values mean, and the order of its bands where the files name none.
The tasks: sarssl.dataset.sen1floods11 and sarssl.dataset.dfc2020.
"""

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import rasterio

from ..errors import InputError
from .worldcover import IGNORE_INDEX

# Without the dataset's split files: the shares of a seeded draw of the chips.
DRAWN_SPLIT = {"train": 0.6, "val": 0.2, "test": 0.2}


@dataclass(frozen=True)
class Chip:
    name: str
    image: Path
    label: Path


@dataclass(frozen=True)
class TransferTask:
    """A task's layout. Chips are found below a folder by `image_glob` and `label_glob`
    (recursive), each file keyed by `image_key`/`label_key` of its name; an image and a
    label of one key are a chip, the key its name."""

    name: str  # as config transfer.task names it
    title: str  # what the table's title says the task is
    classes: tuple[str, ...]  # the model's classes, in order
    # Each value a label file may hold -> its class index in `classes`, None: ignored.
    label_values: Mapping[int, int | None]
    image_glob: str
    label_glob: str
    image_key: Callable[[str], str]
    label_key: Callable[[str], str]
    split_files: Mapping[str, str]  # split -> the dataset's file naming its chips
    split_row_key: Callable[[str], str]  # a row of a split file -> its chip's key
    # The bands of an image whose file names none (no band descriptions), in order.
    band_order: tuple[str, ...]
    # The class whose IoU the table reports beside the MIoU (None: the MIoU alone).
    focus_class: str | None = None

    def find_chips(self, folder: str | Path) -> dict[str, Chip]:
        """Every chip below `folder` by name; an error names an image without its label."""
        folder = Path(folder)
        images = {self.image_key(p.name): p for p in sorted(folder.rglob(self.image_glob))}
        labels = {self.label_key(p.name): p for p in sorted(folder.rglob(self.label_glob))}
        if not images:
            raise InputError(f"{folder}: no {self.image_glob} file ({self.title}'s layout)")
        unlabelled = sorted(set(images) - set(labels))
        if unlabelled:
            raise InputError(
                f"{folder}: {images[unlabelled[0]]} has no label ({self.label_glob})"
                + (f" (nor {len(unlabelled) - 1} more chips)" if len(unlabelled) > 1 else "")
            )
        return {name: Chip(name, images[name], labels[name]) for name in images}

    def read_splits(
        self, folder: str | Path, chips: Mapping[str, Chip], seed: int
    ) -> dict[str, list[Chip]]:
        """The dataset's split files where all are below `folder`, else a seeded draw of
        DRAWN_SPLIT; an error names a split file's chip that is missing, or an empty split."""
        folder = Path(folder)
        found = {split: sorted(folder.rglob(name)) for split, name in self.split_files.items()}
        if all(found.values()):
            splits = {}
            for split, (path, *_) in found.items():
                rows = [row for row in path.read_text().splitlines() if row.strip()]
                names = [self.split_row_key(row) for row in rows]
                missing = [name for name in names if name not in chips]
                if missing:
                    raise InputError(f"{path}: chip {missing[0]} is not in {folder}")
                splits[split] = [chips[name] for name in names]
        else:
            order = np.random.default_rng(seed).permutation(sorted(chips))
            train = round(DRAWN_SPLIT["train"] * len(order))
            val = round(DRAWN_SPLIT["val"] * len(order))
            bounds = {"train": (0, train), "val": (train, train + val), "test": (train + val, None)}
            splits = {split: [chips[n] for n in order[a:b]] for split, (a, b) in bounds.items()}
        empty = [split for split, members in splits.items() if not members]
        if empty:
            raise InputError(f"{folder}: {len(chips)} chips leave the {empty[0]} split empty")
        return splits

    def classes_of(self, label: np.ndarray, origin: str | Path) -> np.ndarray:
        """A label file's values as class indices (int64), ignored values as IGNORE_INDEX;
        an error names the file and any value the layout does not have."""
        unknown = sorted(set(np.unique(label).tolist()) - set(self.label_values))
        if unknown:
            raise InputError(
                f"{origin}: label values {unknown[:5]}; {self.title} has "
                f"{sorted(self.label_values)}"
            )
        lookup = np.full(max(self.label_values) - min(self.label_values) + 1, IGNORE_INDEX)
        for value, index in self.label_values.items():
            lookup[value - min(self.label_values)] = IGNORE_INDEX if index is None else index
        return lookup[label.astype(np.int64) - min(self.label_values)]

    def read_classes(self, chip: Chip) -> np.ndarray:
        with rasterio.open(chip.label) as source:
            return self.classes_of(source.read(1), chip.label)

    @property
    def focus_index(self) -> int | None:
        return None if self.focus_class is None else self.classes.index(self.focus_class)
