import json
from dataclasses import asdict
from pathlib import Path

from sarssl.settings.finetune import (
    Run,
    grid_runs,
    run_file,
    runs_vit,
    settings_from_config,
    subset_size,
)


def finetune_runs():
    """Every run (sarssl.settings.finetune.Run) of the grid in the config."""
    return grid_runs(FINETUNE)


def metrics_files(runs):
    return [
        run_file(paths.RESULTS, run, paths.FINETUNE_METRICS).as_posix() for run in runs
    ]


def finetune_targets():
    return metrics_files(finetune_runs())


def finetune_settings(wildcards):
    """The run's settings; an unknown model, initialisation or pre-training fails here,
    when the DAG is built, naming the value."""
    if wildcards.pretrain not in PRETRAIN:
        raise ConfigError(
            f"finetune: no pre-training run {wildcards.pretrain!r} in config pretrain "
            f"{list(PRETRAIN)}"
        )
    if FINETUNE["aoi"] is None:
        raise ConfigError("config finetune.aoi is not set")
    run = Run(
        wildcards.pretrain,
        wildcards.model,
        wildcards.init,
        float(wildcards.fraction),
        int(wildcards.seed),
    )
    aoi = FINETUNE["aoi"]
    check_fraction(run.fraction)
    return settings_from_config(
        FINETUNE,
        run,
        store=store(aoi),
        pretrain_checkpoint=backbone(wildcards.pretrain),
        attention_maps=paths.path(
            paths.ATTENTION, pretrain=wildcards.pretrain, aoi=aoi
        ),
        backbone=ATTENTION["backbone"],
    )


def check_fraction(percent):
    """A fraction with less than one tile fails now if the AOI's store is built (else
    when the run starts)."""
    built = Path(stats(FINETUNE["aoi"]))
    if built.is_file():
        subset_size(percent, json.loads(built.read_text())["tiles"]["train"]["valid"])


def finetune_inputs(wildcards):
    settings = finetune_settings(wildcards)
    inputs = {"stats": stats(FINETUNE["aoi"])}
    if settings.checkpoint:
        inputs["backbone"] = backbone_files(wildcards)
    if settings.attention_store:
        inputs["maps"] = paths.path(
            paths.ATTENTION_METADATA, pretrain=wildcards.pretrain, aoi=FINETUNE["aoi"]
        )
    return inputs


def finetune_gpu(wildcards):
    return 1 if runs_vit(wildcards.model, wildcards.init) else int(FINETUNE["unet_gpu"])
