"""The fine-tuning grid's vocabulary, without torch: its models and initialisations, which
runs a config's finetune section makes, where each run lives, and a run's settings.

Models (the `{model}` of a run) and the initialisations of their ViT (`{init}`):

    attention-unet        attention maps -> U-Net             scratch, frozen, finetuned
    tokens-decoder        patch tokens -> convolutional decoder  scratch, frozen, finetuned
    s1grd-unet            U-Net on the 12 S1GRD channels      scratch (no ViT)
    s1grd-attention-unet  U-Net on S1GRD + attention maps     scratch, frozen, finetuned

`scratch` is a random ViT trained end to end, `frozen` the pre-trained one unchanged,
`finetuned` the pre-trained one trained on. A frozen backbone's attention maps are read from
the attention_maps rule's Zarr, so those runs need no ViT at all. The training of one run is
sarssl.finetune.
"""

import json
import math
from dataclasses import asdict, dataclass, fields
from pathlib import Path

from . import paths
from .atomic import write_text_atomic
from .errors import ConfigError

INITS = ("scratch", "frozen", "finetuned")
MODEL_INITS = {
    "attention-unet": INITS,
    "tokens-decoder": INITS,
    "s1grd-unet": ("scratch",),
    "s1grd-attention-unet": INITS,
}
ENCODING_MODELS = {"attention": "attention-unet", "tokens": "tokens-decoder"}


def grid_runs(finetune: dict) -> list[tuple[str, str, str, float]]:
    """(pretrain, model, init, fraction) of every run of the config's finetune section:
    Table 1's encodings x inits x fractions per pre-training, and SI Table 2's U-Nets."""
    runs = [
        (pretrain, ENCODING_MODELS[encoding], init, fraction)
        for pretrain in finetune["pretrain"]
        for encoding in finetune["encodings"]
        for init in finetune["inits"]
        for fraction in finetune["percents"]
    ]
    baseline = finetune["unet_baseline"]
    if baseline:
        runs += [(baseline, "s1grd-unet", "scratch", f) for f in finetune["percents"]]
        runs += [
            (baseline, "s1grd-attention-unet", init, fraction)
            for init in finetune["inits"]
            for fraction in finetune["percents"]
        ]
    return runs


def uses_vit(model: str) -> bool:
    return model != "s1grd-unet"


def uses_stored_maps(model: str, init: str) -> bool:
    """Frozen attention models read the maps the attention_maps rule wrote."""
    return init == "frozen" and model in ("attention-unet", "s1grd-attention-unet")


def runs_vit(model: str, init: str) -> bool:
    return uses_vit(model) and not uses_stored_maps(model, init)


def check_run(model: str, init: str) -> None:
    if model not in MODEL_INITS:
        raise ConfigError(f"unknown fine-tuning model {model!r}; models: {list(MODEL_INITS)}")
    if init not in MODEL_INITS[model]:
        raise ConfigError(
            f"model {model} has no initialisation {init!r}; it has {list(MODEL_INITS[model])}"
        )


def format_fraction(percent: float) -> str:
    """The `{fraction}` of a run's path: 0.1 -> '0.1', 10.0 -> '10'."""
    return f"{percent:g}"


def run_file(
    results: str | Path, run: tuple[str, str, str, float], pattern: str = paths.FINETUNE_RUN
) -> Path:
    """A file of one run (a `paths.FINETUNE_*` pattern; the run's folder by default),
    below the results folder `results`."""
    pretrain, model, init, fraction = run
    return paths.under(
        results,
        pattern,
        pretrain=pretrain,
        model=model,
        init=init,
        fraction=format_fraction(fraction),
    )


def subset_size(percent: float, n_tiles: int) -> int:
    """Tiles in a fraction (rounded half up); an error if that is no tile at all."""
    size = math.floor(percent / 100 * n_tiles + 0.5)
    if size < 1:
        raise ConfigError(
            f"fraction {format_fraction(percent)} % of {n_tiles} labelled train tiles is "
            f"{percent / 100 * n_tiles:.3g} tiles, less than one: use a larger fraction "
            "or a larger fine-tuning AOI"
        )
    return size


@dataclass(frozen=True)
class FinetuneSettings:
    pretrain: str
    model: str
    init: str
    fraction: float  # percent of the labelled train tiles
    store: str  # the fine-tuning AOI's Zarr store
    checkpoint: str | None = None  # the pre-training's, for every model but s1grd-unet
    attention_store: str | None = None  # for frozen attention models
    backbone: str = "student"  # which network of the checkpoint
    epochs: int = 100
    batch_size: int = 8
    lr: float = 1e-3
    backbone_lr_scale: float = 0.1
    weight_decay: float = 1e-4
    width: int = 64  # channels of the first U-Net level / last decoder block
    seed: int = 0
    precision: str = "auto"
    loader_workers: int = 4
    prediction_tiles: int = 4  # first valid test tiles whose predictions are kept (figures)

    def __post_init__(self):
        check_run(self.model, self.init)
        if uses_vit(self.model) and not self.checkpoint:
            raise ConfigError(f"{self.model}: needs the checkpoint of pre-training {self.pretrain}")
        if uses_stored_maps(self.model, self.init) and not self.attention_store:
            raise ConfigError(f"{self.model} {self.init}: needs the attention-map store")

    @property
    def name(self) -> str:
        return f"{self.pretrain}/{self.model}/{self.init}/frac{format_fraction(self.fraction)}"


RUN_KEYS = frozenset(
    {"pretrain", "model", "init", "fraction", "store", "checkpoint", "attention_store", "backbone"}
)


def settings_from_config(
    finetune: dict,
    pretrain: str,
    model: str,
    init: str,
    fraction: float,
    store: str,
    pretrain_checkpoint: str,
    attention_maps: str,
    backbone: str,
) -> FinetuneSettings:
    """A run of the config's finetune section; the checkpoint and the attention maps are
    kept only where the run uses them."""
    check_run(model, init)
    tunable = {f.name for f in fields(FinetuneSettings)} - RUN_KEYS & set(finetune)
    return FinetuneSettings(
        pretrain=pretrain,
        model=model,
        init=init,
        fraction=fraction,
        store=store,
        checkpoint=pretrain_checkpoint if uses_vit(model) else None,
        attention_store=attention_maps if uses_stored_maps(model, init) else None,
        backbone=backbone,
        **{key: finetune[key] for key in tunable},
    )


def write_settings(settings: FinetuneSettings, path: str | Path) -> None:
    write_text_atomic(path, json.dumps(asdict(settings), indent=2))


def read_settings(path: str | Path) -> FinetuneSettings:
    return FinetuneSettings(**json.loads(Path(path).read_text()))
