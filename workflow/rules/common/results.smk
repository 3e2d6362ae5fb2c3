from dataclasses import asdict

from sarssl.settings.finetune import SI_TABLE2_MODELS, TABLE1_MODELS, Init, Model


def evaluation_aoi(pretrain):
    return CONFIG.evaluation_aoi(pretrain)


def evaluation(wildcards):
    """The evaluation AOI's store (a parameter) of a pre-training."""
    return store(evaluation_aoi(wildcards.pretrain))


def evaluation_inputs(wildcards):
    """Attention maps and statistics of the evaluation AOI, and the backbone."""
    aoi = evaluation_aoi(wildcards.pretrain)
    return {
        "maps": paths.path(
            paths.ATTENTION_METADATA, pretrain=wildcards.pretrain, aoi=aoi
        ),
        "stats": stats(aoi),
        "backbone": backbone_files(wildcards),
    }


def evaluation_maps(wildcards):
    aoi = evaluation_aoi(wildcards.pretrain)
    return paths.path(paths.ATTENTION, pretrain=wildcards.pretrain, aoi=aoi)


def runs_of(pretrain, models):
    return [
        run
        for run in finetune_runs()
        if run.pretrain == pretrain and run.model in models
    ]


def shown_runs(pretrain, models):
    return [run for run in runs_of(pretrain, models) if run.seed == CONFIG.shown_seed()]


def table(pattern, rule_caption):
    """The csv and md outputs of a table pattern, in the report."""
    return {
        form: report(
            paths.path(pattern, format=form), caption=rule_caption, category="Tables"
        )
        for form in ("csv", "md")
    }


def figure(name):
    return paths.path(paths.FIGURE, figure=name)


def figure2_runs(wildcards):
    """The example predictions of the attention-only and S1GRD + attention U-Nets
    (Config.attention_predictions_runs)."""
    runs = CONFIG.attention_predictions_runs(wildcards.pretrain)
    return {
        key: run_file(paths.RESULTS, run, paths.FINETUNE_PREDICTIONS).as_posix()
        for key, run in runs.items()
    }


def probe_settings(wildcards):
    return asdict(CONFIG.probe())


# The supervised reference runs a ViT: the GPUs of a fine-tuning run that does.
SUPERVISED_GPUS = CONFIG.finetune_gpus(Model.TOKENS_DECODER, Init.SCRATCH)


def supervised_settings(wildcards):
    return CONFIG.supervised_reference(wildcards.pretrain).as_dict()


def supervised_model(pretrain):
    """The supervised reference's model of a pre-training, where the config asks for one."""
    if CONFIG.supervised_reference(pretrain) is None:
        return None
    return paths.path(paths.SUPERVISED_MODEL, pretrain=pretrain)


def probe_inputs(wildcards):
    """The evaluation inputs, and the supervised reference where the config asks for it."""
    inputs = evaluation_inputs(wildcards)
    model = supervised_model(wildcards.pretrain)
    if model:
        inputs["supervised"] = model
    return inputs


def supervised_inputs(wildcards):
    return {
        "stats": stats(evaluation_aoi(wildcards.pretrain)),
        "backbone": backbone_files(wildcards),
    }


def results_targets():
    targets = []
    for name in PRETRAIN:
        targets += [paths.path(paths.EMERGENT, pretrain=name, format="md")]
        targets += [paths.path(paths.PROBE, pretrain=name, format="md")]
        targets += [paths.path(figure("heads_landcover"), pretrain=name)]
        if trained(name):  # curves of a training
            targets += [
                paths.path(figure(f), pretrain=name)
                for f in ("probe", "training_curves")
            ]
    if finetune_runs():
        targets.append(paths.RUNS_TABLE)
    targets += [
        paths.path(paths.TABLE1, pretrain=name, format="md")
        for name in CONFIG.table1_pretrains()
    ]
    if CONFIG.unet_baseline:
        targets.append(
            paths.path(paths.SI_TABLE2, pretrain=CONFIG.unet_baseline, format="md")
        )
    shown = CONFIG.attention_predictions_pretrain()
    if shown:
        targets.append(paths.path(figure("attention_predictions"), pretrain=shown))
    return targets
