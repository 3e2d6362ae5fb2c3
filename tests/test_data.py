"""Pre-training data (sarssl.tiles.loader): the step batches and their epoch order, pooled
normalisation, tiles read with the train statistics."""

import numpy as np
import pytest

from sarssl.dataset.store import open_store
from sarssl.errors import ConfigError
from sarssl.tiles.loader import (
    Normalisation,
    StepBatches,
    StoreTiles,
    split_tiles,
)


def test_each_step_batch_is_split_across_ranks_and_epochs_are_permutations():
    single = StepBatches(26, 4, epochs=2, seed=3)
    assert single.steps_per_epoch == 6 and single.total_steps == 12
    batches = list(single)
    epoch0 = np.concatenate([[p for _, p in b] for b in batches[:6]])
    assert len(set(epoch0)) == 24  # no tile twice in an epoch; 2 left over (drop last)
    ranks = [list(StepBatches(26, 4, 2, 3, rank=r, world_size=2)) for r in range(2)]
    for step, batch in enumerate(batches):
        assert sorted(ranks[0][step] + ranks[1][step]) == sorted(batch)
    assert list(StepBatches(26, 4, 2, 3, start_step=7)) == batches[7:]
    assert batches[6][0][0] == 1  # the epoch travels with each item (it seeds the crops)


def test_the_tile_order_is_drawn_once_per_epoch(monkeypatch):
    seeds, default_rng = [], np.random.default_rng
    monkeypatch.setattr(
        np.random, "default_rng", lambda seed: seeds.append(seed) or default_rng(seed)
    )
    assert len(list(StepBatches(26, 4, epochs=2, seed=3))) == 12
    assert seeds == [[3, 0], [3, 1]]  # one permutation per epoch, not per step


def test_step_batches_reject_batches_that_cannot_be_formed():
    with pytest.raises(ConfigError, match="not divisible by the 3 processes"):
        StepBatches(26, 4, 1, 0, world_size=3)
    with pytest.raises(ConfigError, match="larger than the 26 training tiles"):
        StepBatches(26, 32, 1, 0)


def test_pooled_normalisation_equals_the_statistics_of_all_pixels():
    # Store A: pixels -1, 1 (mean 0, std 1); store B: 2, 2 (mean 2, std 0).
    # All four: mean 1, variance (4 + 0 + 1 + 1) / 4 = 1.5.
    pooled = Normalisation.pooled(
        [{"pixels": 2, "mean": [0.0], "std": [1.0]}, {"pixels": 2, "mean": [2.0], "std": [0.0]}]
    )
    np.testing.assert_allclose(pooled.mean, [1.0])
    np.testing.assert_allclose(pooled.std, [np.sqrt(1.5)])


def test_tiles_are_read_normalised_with_the_train_statistics(tiny_store):
    tiles = split_tiles(tiny_store, ["train"])
    dataset = open_store(tiny_store)
    assert len(tiles) == int(((dataset.split == "train") & dataset.valid).sum())
    stats = dataset["s1grd"].attrs["normalisation"]
    image = StoreTiles(tiles, Normalisation.of_stores([tiny_store])).image(0)
    raw = dataset["s1grd"].values[tiles[0].index].astype(np.float32)
    mean, std = (np.array(stats[key])[:, None, None] for key in ("mean", "std"))
    expected = (raw - mean) / std
    np.testing.assert_allclose(image.numpy(), expected, rtol=1e-5, atol=1e-5)


def test_stores_read_together_must_hold_their_channels_alike(tiny_store, tiny_store_uint8):
    tiles = split_tiles(tiny_store, ["train"])[:1] + split_tiles(tiny_store_uint8, ["train"])[:1]
    normalisation = Normalisation.of_stores([tiny_store])
    with pytest.raises(ConfigError, match=r"float16\), .*uint8\); build them with one"):
        StoreTiles(tiles, normalisation)
    assert StoreTiles(tiles[:1] * 2, normalisation).coding.dtype == "float16"
