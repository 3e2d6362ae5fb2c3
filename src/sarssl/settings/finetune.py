"""The fine-tuning grid's vocabulary, without torch: its models and initialisations, which
runs a config's finetune section makes, where each run lives, and a run's settings.

A run is one cell of Table 1 or SI Table 2 (pre-training, model, initialisation, fraction)
trained with one seed; the seed draws the run's subset of train tiles, its initialisation
(a scratch ViT, the decoder) and its data order, so the seeds of a cell measure the spread
of its MIoU.

Models (the `{model}` of a run) and the initialisations of their ViT (`{init}`):

    attention-unet        attention maps -> U-Net             scratch, frozen, finetuned
    tokens-decoder        patch tokens -> convolutional decoder  scratch, frozen, finetuned
    s1grd-unet            U-Net on the 12 S1GRD channels      scratch (no ViT)
    s1grd-attention-unet  U-Net on S1GRD + attention maps     scratch, frozen, finetuned

`scratch` is a random ViT trained end to end, `frozen` the pre-trained one unchanged,
`finetuned` the pre-trained one trained on. The attention-map U-Net reads the maps on the
ViT's token grid (`native`) or upsampled to the tile through the baseline's U-Net
(`upsampled`), as config finetune.attention_input says; SI Table 2's U-Net always reads
them upsampled, beside the S1GRD channels. A frozen backbone's attention maps are read from
the attention_maps rule's Zarr, so those runs need no ViT at all. The training of one run is
sarssl.training.finetune.
"""

import json
import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from enum import StrEnum
from pathlib import Path
from typing import NamedTuple

from .. import paths
from ..atomic import write_text_atomic
from ..errors import ConfigError


class Model(StrEnum):
    """The `{model}` of a run (the table in the module's docstring)."""

    ATTENTION_UNET = "attention-unet"
    TOKENS_DECODER = "tokens-decoder"
    S1GRD_UNET = "s1grd-unet"
    S1GRD_ATTENTION_UNET = "s1grd-attention-unet"


class Init(StrEnum):
    """The `{init}` of a run: how its ViT starts."""

    SCRATCH = "scratch"
    FROZEN = "frozen"
    FINETUNED = "finetuned"


# Keyed by Model, looked up by a run's model name (a Model is its str).
MODEL_INITS: dict[str, tuple[Init, ...]] = {
    Model.ATTENTION_UNET: tuple(Init),
    Model.TOKENS_DECODER: tuple(Init),
    Model.S1GRD_UNET: (Init.SCRATCH,),
    Model.S1GRD_ATTENTION_UNET: tuple(Init),
}
# Table 1's columns: config finetune.encodings -> the model that reads that encoding.
ENCODING_MODELS = {"attention": Model.ATTENTION_UNET, "tokens": Model.TOKENS_DECODER}
TABLE1_MODELS = tuple(ENCODING_MODELS.values())
# SI Table 2's rows: the U-Net on S1GRD only, and on S1GRD + attention maps.
SI_TABLE2_MODELS = (Model.S1GRD_UNET, Model.S1GRD_ATTENTION_UNET)
# How each model's U-Net may read the attention maps (config finetune.attention_input picks
# for attention-unet); None: no attention maps into a U-Net. A model with one reading keeps
# it whatever the config says, so its settings, and its runs, do not depend on the choice.
MODEL_ATTENTION_INPUTS: dict[str, tuple[str | None, ...]] = {
    Model.ATTENTION_UNET: ("native", "upsampled"),
    Model.TOKENS_DECODER: (None,),
    Model.S1GRD_UNET: (None,),
    Model.S1GRD_ATTENTION_UNET: ("upsampled",),
}
# Models whose U-Net reads attention maps: frozen, they read the stored maps.
ATTENTION_MAP_MODELS = (Model.ATTENTION_UNET, Model.S1GRD_ATTENTION_UNET)


class Run(NamedTuple):
    """One run of the grid: a cell of the tables and one of its seeds."""

    pretrain: str
    model: str
    init: str
    fraction: float  # percent of the labelled train tiles
    seed: int


def grid_seeds(finetune: Mapping) -> list[int]:
    """The seeds of each cell of the grid: `seeds` consecutive ones from `seed`, so that
    the first is the one seed of a grid without repeats."""
    first = finetune.get("seed", FinetuneSettings.seed)
    return list(range(first, first + finetune["seeds"]))


def grid_runs(finetune: Mapping) -> list[Run]:
    """Every run of the config's finetune section: Table 1's encodings x inits x fractions
    per pre-training, and SI Table 2's U-Nets, each cell once per seed."""
    cells = [
        (pretrain, ENCODING_MODELS[encoding], init, fraction)
        for pretrain in finetune["pretrain"]
        for encoding in finetune["encodings"]
        for init in finetune["inits"]
        for fraction in finetune["percents"]
    ]
    baseline = finetune["unet_baseline"]
    if baseline:
        cells += [(baseline, Model.S1GRD_UNET, Init.SCRATCH, f) for f in finetune["percents"]]
        cells += [
            (baseline, Model.S1GRD_ATTENTION_UNET, init, fraction)
            for init in finetune["inits"]
            for fraction in finetune["percents"]
        ]
    return [Run(*cell, seed) for cell in cells for seed in grid_seeds(finetune)]


def uses_vit(model: str) -> bool:
    return model != Model.S1GRD_UNET


def uses_stored_maps(model: str, init: str) -> bool:
    """Frozen attention models read the maps the attention_maps rule wrote."""
    return init == Init.FROZEN and model in ATTENTION_MAP_MODELS


def runs_vit(model: str, init: str) -> bool:
    return uses_vit(model) and not uses_stored_maps(model, init)


def check_run(model: str, init: str) -> None:
    if model not in MODEL_INITS:
        models = [str(m) for m in Model]
        raise ConfigError(f"unknown fine-tuning model {model!r}; models: {models}")
    if init not in MODEL_INITS[model]:
        inits = [str(i) for i in MODEL_INITS[model]]
        raise ConfigError(f"model {model} has no initialisation {init!r}; it has {inits}")


def run_attention_input(model: str, configured: str) -> str | None:
    """The reading of the attention maps of a run of `model` under config
    finetune.attention_input `configured`."""
    readings = MODEL_ATTENTION_INPUTS[model]
    return configured if len(readings) > 1 else readings[0]


def format_fraction(percent: float) -> str:
    """The `{fraction}` of a run's path: 0.1 -> '0.1', 10.0 -> '10'."""
    return f"{percent:g}"


def run_wildcards(run: Run) -> dict[str, str | int]:
    """The `{...}` of the `paths.FINETUNE_*` patterns, of one run."""
    return run._asdict() | {"fraction": format_fraction(run.fraction)}


def run_file(results: str | Path, run: Run, pattern: str = paths.FINETUNE_RUN) -> Path:
    """A file of one run (a `paths.FINETUNE_*` pattern; the run's folder by default),
    below the results folder `results`."""
    return paths.under(results, pattern, **run_wildcards(run))


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
    attention_input: str | None = None  # run_attention_input: native / upsampled / None
    backbone: str = "student"  # which network of the checkpoint
    epochs: int = 100
    batch_size: int = 8
    lr: float = 1e-3
    backbone_lr_scale: float = 0.1
    weight_decay: float = 1e-4
    width: int = 64  # channels of the first U-Net level / last decoder block
    seed: int = 0  # the run's; config finetune.seed is the grid's first (grid_seeds)
    precision: str = "auto"
    loader_workers: int = 4
    prediction_tiles: int = 4  # first valid test tiles whose predictions are kept (figures)

    def __post_init__(self):
        check_run(self.model, self.init)
        if uses_vit(self.model) and not self.checkpoint:
            raise ConfigError(f"{self.model}: needs the checkpoint of pre-training {self.pretrain}")
        if uses_stored_maps(self.model, self.init) and not self.attention_store:
            raise ConfigError(f"{self.model} {self.init}: needs the attention-map store")
        if self.attention_input not in MODEL_ATTENTION_INPUTS[self.model]:
            raise ConfigError(
                f"{self.model}: attention_input {self.attention_input!r}, not one of "
                f"{list(MODEL_ATTENTION_INPUTS[self.model])}"
            )

    @property
    def run(self) -> Run:
        return Run(self.pretrain, self.model, self.init, self.fraction, self.seed)

    @property
    def name(self) -> str:
        return paths.path(paths.FINETUNE_NAME, **run_wildcards(self.run))

    def as_dict(self) -> dict:
        """Plain values (the vocabularies' enums as their strings), as a rule's params and
        the run folder's config.json hold them."""
        return json.loads(json.dumps(asdict(self)))


RUN_KEYS = frozenset(
    {*Run._fields, "store", "checkpoint", "attention_store", "attention_input", "backbone"}
)


def settings_from_config(
    finetune: Mapping,
    run: Run,
    store: str,
    pretrain_checkpoint: str,
    attention_maps: str,
    backbone: str,
) -> FinetuneSettings:
    """A run of the config's finetune section; the checkpoint, the attention maps and
    finetune.attention_input are kept only where the run uses them."""
    check_run(run.model, run.init)
    tunable = {f.name for f in fields(FinetuneSettings)} - RUN_KEYS & set(finetune)
    return FinetuneSettings(
        **run._asdict(),
        store=store,
        checkpoint=pretrain_checkpoint if uses_vit(run.model) else None,
        attention_store=attention_maps if uses_stored_maps(run.model, run.init) else None,
        attention_input=run_attention_input(run.model, finetune["attention_input"]),
        backbone=backbone,
        **{key: finetune[key] for key in tunable},
    )


def write_settings(values: dict, path: str | Path) -> None:
    """A run's settings as its rule's params hold them (FinetuneSettings.as_dict, checked
    when the DAG was built), into its run folder; the run reads them from there."""
    write_text_atomic(path, json.dumps(values, indent=2))


def read_settings(path: str | Path) -> FinetuneSettings:
    return FinetuneSettings(**json.loads(Path(path).read_text()))


# The context check's U-Net starts from nothing: no pre-training run.
CONTEXT_PRETRAIN = "none"


def reference_settings(
    finetune: Mapping, run: Run, epochs: int, store: str, checkpoint: str = ""
) -> FinetuneSettings:
    """A run outside the grid that a check or a table needs as a reference (config
    realism.context_unet, probe.supervised_reference): `epochs` epochs, the fine-tuning
    grid's other settings."""
    trained = {**finetune, "epochs": epochs}
    return settings_from_config(trained, run, store, checkpoint, "", FinetuneSettings.backbone)


def context_settings(finetune: Mapping, context: Mapping, store: str) -> FinetuneSettings:
    """The context check of a store (config realism.context_unet): the S1GRD U-Net from
    scratch on `percent` % of its train tiles, with the grid's first seed."""
    run = Run(
        CONTEXT_PRETRAIN,
        Model.S1GRD_UNET,
        Init.SCRATCH,
        float(context["percent"]),
        grid_seeds(finetune)[0],
    )
    return reference_settings(finetune, run, context["epochs"], store)


def supervised_settings(
    finetune: Mapping, reference: Mapping, pretrain: str, store: str, backbone: str
) -> FinetuneSettings:
    """The probe's supervised reference of a pre-training (config probe.supervised_reference):
    the tokens decoder with a ViT of the pre-training's architecture from scratch, trained
    end to end on `percent` % of the store's train tiles, with the grid's first seed.
    `backbone`: the pre-training's checkpoint or export folder (its architecture and
    normalisation)."""
    run = Run(
        pretrain,
        Model.TOKENS_DECODER,
        Init.SCRATCH,
        float(reference["percent"]),
        grid_seeds(finetune)[0],
    )
    return reference_settings(finetune, run, reference["epochs"], store, backbone)
