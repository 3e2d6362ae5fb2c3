from dataclasses import asdict

from sarssl.settings.finetune import (
    SI_TABLE2_MODELS,
    TABLE1_MODELS,
    Init,
    Model,
    grid_seeds,
)


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


def shown_seed():
    """The seed of the runs the figures show, one run per cell: the grid's first (that of
    a grid without repeats)."""
    return grid_seeds(FINETUNE)[0]


def shown_runs(pretrain, models):
    return [run for run in runs_of(pretrain, models) if run.seed == shown_seed()]


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
    """Example predictions of the attention-only and S1GRD + attention U-Nets: the largest
    fraction, pre-trained frozen backbone if in the grid, the shown seed."""
    init = Init.FROZEN if Init.FROZEN in FINETUNE["inits"] else FINETUNE["inits"][0]
    fraction = max(FINETUNE["percents"])
    return {
        key: run_file(
            paths.RESULTS,
            Run(wildcards.pretrain, model, init, fraction, shown_seed()),
            paths.FINETUNE_PREDICTIONS,
        ).as_posix()
        for key, model in (
            ("attention", Model.ATTENTION_UNET),
            ("s1grd", Model.S1GRD_ATTENTION_UNET),
        )
    }


def probe_settings(wildcards):
    return asdict(CONFIG.probe())


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
        for name in FINETUNE["pretrain"]
    ]
    baseline = FINETUNE["unet_baseline"]
    if baseline:
        targets.append(paths.path(paths.SI_TABLE2, pretrain=baseline, format="md"))
        if baseline in FINETUNE["pretrain"] and "attention" in FINETUNE["encodings"]:
            targets.append(
                paths.path(figure("attention_predictions"), pretrain=baseline)
            )
    return targets
