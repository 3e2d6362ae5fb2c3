from sarssl.settings.finetune import Run, run_file


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
    CONFIG.check_fraction(run.fraction)
    return settings


def finetune_inputs(wildcards):
    settings = finetune_settings(wildcards)
    inputs = {"stats": stats(CONFIG.finetune_aoi)}
    if settings.checkpoint:
        inputs["backbone"] = backbone_files(wildcards)
    if settings.attention_store:
        inputs["maps"] = paths.path(
            paths.ATTENTION_METADATA,
            pretrain=wildcards.pretrain,
            aoi=CONFIG.finetune_aoi,
        )
    return inputs


def finetune_gpus(wildcards):
    return CONFIG.finetune_gpus(wildcards.model, wildcards.init)
