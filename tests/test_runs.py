"""The fine-tuning grid's vocabulary (sarssl.settings.finetune): nested subsets per seed, one
folder per run and seed, unknown models and initialisations named, the attention-map reading only in
the settings of the runs it changes."""

from dataclasses import asdict
from pathlib import Path

import pytest

from sarssl.errors import ConfigError
from sarssl.settings.finetune import (
    FinetuneSettings,
    Run,
    check_run,
    context_settings,
    grid_runs,
    run_file,
    settings_from_config,
    subset_size,
)
from sarssl.tiles.loader import TileRef
from sarssl.training.finetune import fraction_subset


def test_subsets_are_nested_deterministic_and_never_empty():
    tiles = [TileRef("s", i) for i in range(1000)]
    small, medium, large = (fraction_subset(tiles, f, seed=7) for f in (0.1, 1, 10))
    assert (len(small), len(medium), len(large)) == (1, 10, 100)
    assert set(small) <= set(medium) <= set(large)
    assert subset_size(0.05, 1000) == 1  # 0.5 tiles rounds half up
    with pytest.raises(ConfigError, match=r"fraction 0.1 % of 29 .* less than one"):
        subset_size(0.1, 29)


def test_each_seed_draws_its_own_nested_subsets_and_the_same_seed_the_same():
    tiles = [TileRef("s", i) for i in range(200)]
    by_seed = {seed: [fraction_subset(tiles, f, seed) for f in (5, 10, 50)] for seed in (0, 1, 2)}
    for small, medium, large in by_seed.values():
        assert set(small) < set(medium) < set(large)
    assert len({tuple(subsets[1]) for subsets in by_seed.values()}) == 3
    assert [fraction_subset(tiles, f, 1) for f in (5, 10, 50)] == by_seed[1]


def test_every_cell_runs_once_per_seed_from_the_first_seed_each_in_its_folder():
    finetune = {
        "pretrain": ["vit"],
        "encodings": ["tokens"],
        "inits": ["frozen"],
        "percents": [1, 10],
        "unet_baseline": None,
        "seed": 5,
        "seeds": 2,
    }
    assert grid_runs(finetune) == [
        Run("vit", "tokens-decoder", "frozen", 1, 5),
        Run("vit", "tokens-decoder", "frozen", 1, 6),
        Run("vit", "tokens-decoder", "frozen", 10, 5),
        Run("vit", "tokens-decoder", "frozen", 10, 6),
    ]
    assert [run.seed for run in grid_runs(finetune | {"seed": 0, "seeds": 1})] == [0, 0]
    folder = run_file("out", Run("vit", "tokens-decoder", "frozen", 10.0, 6))
    assert folder == Path("out/finetune/vit/tokens-decoder/frozen/frac10/seed6")


def test_unknown_models_and_initialisations_are_named():
    with pytest.raises(ConfigError, match="'segformer'"):
        check_run("segformer", "scratch")
    with pytest.raises(ConfigError, match="s1grd-unet has no initialisation 'frozen'"):
        check_run("s1grd-unet", "frozen")


def run_settings(model: str, attention_input: str) -> dict:
    """A run's settings as the finetune rule's params hold them (and config.json)."""
    run = Run("vit", model, "scratch", 1.0, 0)
    finetune = {"attention_input": attention_input}
    settings = settings_from_config(finetune, run, "s.zarr", "vit.pt", "maps.zarr", "student")
    return asdict(settings)


def test_only_the_attention_map_unet_runs_carry_the_attention_input():
    native, upsampled = (run_settings("attention-unet", r) for r in ("native", "upsampled"))
    assert {key for key in native if native[key] != upsampled[key]} == {"attention_input"}
    assert upsampled["attention_input"] == "upsampled"
    # The others' settings, and so their runs, do not depend on it.
    for model, fixed in [
        ("s1grd-unet", None),
        ("tokens-decoder", None),
        ("s1grd-attention-unet", "upsampled"),  # SI Table 2's maps: always at the tile
    ]:
        assert run_settings(model, "native") == run_settings(model, "upsampled")
        assert run_settings(model, "native")["attention_input"] == fixed


def test_the_params_form_of_the_settings_gives_the_settings_back():
    settings = run_settings("attention-unet", "upsampled")
    assert asdict(FinetuneSettings(**settings)) == settings


def test_a_reading_a_model_cannot_have_is_named():
    common = {"pretrain": "vit", "init": "scratch", "fraction": 1.0, "store": "s.zarr"}
    with pytest.raises(ConfigError, match=r"attention-unet: attention_input None, not one of"):
        FinetuneSettings(**common, model="attention-unet", checkpoint="vit.pt")
    with pytest.raises(ConfigError, match=r"s1grd-unet: attention_input 'upsampled'"):
        FinetuneSettings(**common, model="s1grd-unet", attention_input="upsampled")


def test_the_context_check_is_the_s1grd_unet_with_its_own_epochs_and_the_grids_settings():
    finetune = {"seed": 7, "seeds": 3, "epochs": 12, "lr": 3e-3, "width": 16, "batch_size": 4}
    finetune |= {"attention_input": "native", "loader_workers": 0}
    settings = context_settings(finetune, {"percent": 100, "epochs": 30}, "store.zarr")
    assert (settings.model, settings.init, settings.fraction) == ("s1grd-unet", "scratch", 100)
    assert (settings.epochs, settings.seed, settings.store) == (30, 7, "store.zarr")
    assert (settings.lr, settings.width, settings.batch_size) == (3e-3, 16, 4)
    assert settings.checkpoint is None and settings.attention_store is None
