"""The fine-tuning grid's vocabulary (sarssl.runs): nested subsets, unknown models and
initialisations named."""

import pytest

from sarssl.data import TileRef
from sarssl.errors import ConfigError
from sarssl.finetune import (
    fraction_subset,
)
from sarssl.runs import check_run, subset_size


def test_subsets_are_nested_deterministic_and_never_empty():
    tiles = [TileRef("s", i) for i in range(1000)]
    small, medium, large = (fraction_subset(tiles, f, seed=7) for f in (0.1, 1, 10))
    assert (len(small), len(medium), len(large)) == (1, 10, 100)
    assert set(small) <= set(medium) <= set(large)
    assert fraction_subset(tiles, 1, seed=7) == medium
    assert fraction_subset(tiles, 1, seed=8) != medium
    assert subset_size(0.05, 1000) == 1  # 0.5 tiles rounds half up
    with pytest.raises(ConfigError, match=r"fraction 0.1 % of 29 .* less than one"):
        subset_size(0.1, 29)


def test_unknown_models_and_initialisations_are_named():
    with pytest.raises(ConfigError, match="'segformer'"):
        check_run("segformer", "scratch")
    with pytest.raises(ConfigError, match="s1grd-unet has no initialisation 'frozen'"):
        check_run("s1grd-unet", "frozen")
