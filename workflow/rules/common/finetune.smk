import json
from pathlib import Path

from sarssl.settings.finetune import Run, run_file, runs_vit, subset_size


def finetune_runs():
    """Every run (sarssl.settings.finetune.Run) of the grid in the config."""
    return CONFIG.finetune_runs()


def metrics_files(runs):
    return [
        run_file(paths.RESULTS, run, paths.FINETUNE_METRICS).as_posix() for run in runs
    ]


def finetune_targets():
    return metrics_files(finetune_runs())


def finetune_settings(wildcards):
    """The run's settings; an unknown model, initialisation or pre-training fails here,
    when the DAG is built, naming the value."""
    run = Run(
        pretrain=wildcards.pretrain,
        model=wildcards.model,
        init=wildcards.init,
        fraction=float(wildcards.fraction),
        seed=int(wildcards.seed),
    )
    settings = CONFIG.finetune(run)
    check_fraction(run.fraction)
    return settings


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
