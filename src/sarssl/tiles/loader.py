"""Tiles from the Zarr stores for training: normalisation, data sets and the step order.

Every worker process opens the stores itself, on first use: zarr 3 in a forked worker after
the parent touched a store can deadlock, so loaders use the forkserver start method and a
data set never carries an open store across a process boundary.

The order of the tiles is a pure function of (seed, step): the batch of step s is a slice of
the permutation of epoch s // steps_per_epoch, drawn once per epoch. A resumed run starts at
its checkpoint's step without reading what came before, and each of W distributed ranks
takes every W-th tile of the same global batch.
"""

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import zarr
from torch.utils.data import DataLoader, Dataset, Sampler

from sarssl.dataset.quantise import ChannelCoding
from sarssl.dataset.stats import Moments
from sarssl.dataset.store import split_positions, store_coding
from sarssl.dataset.storeinfo import StoreInfo
from sarssl.errors import ConfigError
from sarssl.settings.augment import SarAugmentSpec
from sarssl.settings.crops import CropSpec
from sarssl.tiles.augment import draw_photometric
from sarssl.tiles.multicrop import crop_params


@dataclass(frozen=True)
class Normalisation:
    """Per-channel mean and standard deviation of the train pixels."""

    mean: np.ndarray
    std: np.ndarray

    @classmethod
    def of_stores(cls, stores: Sequence[str | Path]) -> "Normalisation":
        return cls.pooled([StoreInfo.read(store).normalisation for store in stores])

    @classmethod
    def pooled(cls, stats: Sequence[dict]) -> "Normalisation":
        """Train statistics of several stores ({pixels, mean, std} each) pooled exactly, as
        if computed over all their train pixels at once."""
        count = np.array([[s["pixels"]] * len(s["mean"]) for s in stats], dtype=np.float64)
        mean = np.array([s["mean"] for s in stats], dtype=np.float64)
        m2 = np.array([s["std"] for s in stats], dtype=np.float64) ** 2 * count
        pooled = Moments.pooled(count, mean, m2)
        return cls(pooled.mean, pooled.std)

    def as_dict(self) -> dict:
        return {"mean": self.mean.tolist(), "std": self.std.tolist()}

    @classmethod
    def from_dict(cls, values: dict) -> "Normalisation":
        return cls(np.asarray(values["mean"]), np.asarray(values["std"]))


@dataclass(frozen=True)
class Standardiser:
    """Stored values -> standardised float32 in one multiply-add per channel:
    (value * scale_factor + add_offset - mean) / std. Decoding a packed store's integers is
    folded into standardisation, so it runs wherever standardisation runs: on the training
    device, for tiles that loader workers ship as stored."""

    gain: np.ndarray  # (channel,)
    bias: np.ndarray

    @classmethod
    def of(cls, normalisation: Normalisation, coding: ChannelCoding) -> "Standardiser":
        std = np.asarray(normalisation.std, dtype=np.float64)
        mean = np.asarray(normalisation.mean, dtype=np.float64)
        return cls(coding.scale_factor / std, (coding.add_offset - mean) / std)

    def __call__(self, stored: torch.Tensor) -> torch.Tensor:
        """([batch,] channel, y, x) stored values, on any device -> float32."""
        gain = torch.as_tensor(self.gain, dtype=torch.float32, device=stored.device)
        bias = torch.as_tensor(self.bias, dtype=torch.float32, device=stored.device)
        return stored.float() * gain[:, None, None] + bias[:, None, None]


@dataclass(frozen=True)
class TileRef:
    store: str
    index: int  # position along the store's tile dimension


def split_tiles(store: str | Path, splits: Sequence[str]) -> list[TileRef]:
    return [TileRef(str(store), int(i)) for i in split_positions(store, splits)]


class LazyArrays:
    """Zarr arrays opened on first use in the process that reads them; pickles without
    them, so that an open store never crosses a process boundary."""

    def __init__(self):
        self._arrays: dict[tuple[str, str], zarr.Array] = {}

    def __getstate__(self) -> dict:
        return {"_arrays": {}}

    def get(self, store: str, name: str) -> zarr.Array:
        if (store, name) not in self._arrays:
            self._arrays[store, name] = zarr.open_group(store, mode="r")[name]
        return self._arrays[store, name]


def stores_coding(stores: Sequence[str]) -> ChannelCoding:
    """The one coding of the s1grd arrays of `stores` (float32 dB for none)."""
    codings = {store: store_coding(store) for store in dict.fromkeys(stores)}
    # By dtype, scale and offset: a float coding's NaN fill never equals another NaN.
    if len({(c.dtype, c.scale_factor, c.add_offset) for c in codings.values()}) > 1:
        listed = ", ".join(f"{store} ({c.dtype})" for store, c in codings.items())
        raise ConfigError(
            f"stores read together hold their channels differently: {listed}; build them "
            "with one data.store_dtype"
        )
    return next(iter(codings.values()), ChannelCoding.of_dtype("float32"))


class StoreTiles:
    """Reads whole tiles (normalised SAR channels, labels) of one or more stores."""

    def __init__(self, tiles: Sequence[TileRef], normalisation: Normalisation):
        self.tiles = list(tiles)
        self.normalisation = normalisation
        self.coding = stores_coding([t.store for t in self.tiles])
        self.standardise = Standardiser.of(normalisation, self.coding)
        self.arrays = LazyArrays()

    def __len__(self) -> int:
        return len(self.tiles)

    def image(self, position: int) -> torch.Tensor:
        """(channel, y, x) standardised float32."""
        return self.standardise(self.stored(position))

    def stored(self, position: int) -> torch.Tensor:
        """(channel, y, x) as stored (float16 dB by default, or a packed store's integer
        codes): what a loader worker ships."""
        tile = self.tiles[position]
        return torch.from_numpy(self.arrays.get(tile.store, "s1grd")[tile.index])

    def labels(self, position: int) -> torch.Tensor:
        """(y, x) int64 class indices, IGNORE_INDEX where unlabelled."""
        tile = self.tiles[position]
        return torch.from_numpy(self.arrays.get(tile.store, "labels")[tile.index].astype("int64"))


class MultiCropTiles(Dataset):
    """Item (epoch, position) -> the stored tile and the boxes and flips of its multi-crop
    views for that epoch, and with an enabled `augment` each view's photometric parameters
    (sarssl.tiles.augment), drawn after the crops so that the crops are the same either way.
    Workers only read: decoding, standardisation, resampling and augmentation run batched on
    the training device (sarssl.training.pretrain.device_views)."""

    def __init__(
        self, tiles: StoreTiles, crops: CropSpec, seed: int, augment: SarAugmentSpec | None = None
    ):
        self.tiles, self.crops, self.seed = tiles, crops, seed
        self.augment = augment if augment is not None and augment.enabled else None

    def __len__(self) -> int:
        return len(self.tiles)

    def __getitem__(self, key: tuple[int, int]) -> tuple[torch.Tensor, ...]:
        epoch, position = key
        tile = self.tiles.stored(position)
        rng = np.random.default_rng([self.seed, epoch, position])
        boxes, flips = crop_params(rng, *tile.shape[-2:], self.crops)
        if self.augment is None:
            return tile, boxes, flips
        return tile, boxes, flips, draw_photometric(rng, self.crops.n_crops, self.augment)


class StepBatches(Sampler):
    """This rank's share of the global batch of every step from `start_step` on."""

    def __init__(
        self,
        n_tiles: int,
        global_batch: int,
        epochs: int,
        seed: int,
        start_step: int = 0,
        rank: int = 0,
        world_size: int = 1,
    ):
        if global_batch % world_size:
            raise ConfigError(
                f"batch_size {global_batch} is not divisible by the {world_size} processes"
            )
        if n_tiles < global_batch:
            raise ConfigError(
                f"batch_size {global_batch} is larger than the {n_tiles} training tiles"
            )
        self.n_tiles, self.global_batch, self.epochs, self.seed = (
            n_tiles,
            global_batch,
            epochs,
            seed,
        )
        self.start_step, self.rank, self.world_size = start_step, rank, world_size
        # Incomplete last batches are dropped (as DINO): every step has the full batch.
        self.steps_per_epoch = n_tiles // global_batch
        self._order: tuple[int, np.ndarray] | None = None  # (epoch, its permutation)

    @property
    def total_steps(self) -> int:
        return self.epochs * self.steps_per_epoch

    def epoch_order(self, epoch: int) -> np.ndarray:
        """The permutation of the tiles in `epoch`: drawn once per epoch, so that a step
        costs a slice whatever the number of tiles."""
        if self._order is None or self._order[0] != epoch:
            self._order = epoch, np.random.default_rng([self.seed, epoch]).permutation(self.n_tiles)
        return self._order[1]

    def global_batch_at(self, step: int) -> tuple[int, np.ndarray]:
        epoch, position = divmod(step, self.steps_per_epoch)
        order = self.epoch_order(epoch)
        return epoch, order[position * self.global_batch : (position + 1) * self.global_batch]

    def __len__(self) -> int:
        return self.total_steps - self.start_step

    def __iter__(self) -> Iterator[list[tuple[int, int]]]:
        for step in range(self.start_step, self.total_steps):
            epoch, batch = self.global_batch_at(step)
            yield [(epoch, int(p)) for p in batch[self.rank :: self.world_size]]


def make_loader(dataset: Dataset, batches: Sampler, workers: int, pin_memory: bool) -> DataLoader:
    return DataLoader(
        dataset,
        batch_sampler=batches,
        num_workers=workers,
        pin_memory=pin_memory,
        multiprocessing_context="forkserver" if workers else None,
        prefetch_factor=4 if workers else None,
        persistent_workers=False,
        # Its own generator: starting the iterator then draws no number from the global
        # one, whose state a resumed run restores (stochastic depth).
        generator=torch.Generator(),
    )
