rule runs_table:
    """Every run of the fine-tuning grid: parameters, status, MIoU, per-class IoU, wall
    time, device, GPU-hours, difference to the from-scratch run."""
    input:
        finetune_targets(),
    output:
        report(paths.RUNS_TABLE, caption="../report/runs.rst", category="Tables"),
    log:
        paths.job_log("results/runs_table"),
    conda:
        "../../envs/sarssl.yaml"
    resources:
        **resources(TABLE_JOB),
    params:
        runs=finetune_runs(),
    script:
        "../scripts/runs_table.py"


rule table1:
    """The paper's Table 1 for one pre-training: MIoU by initialisation (rows) and encoding
    x fraction (columns)."""
    input:
        lambda wildcards: metrics_files(runs_of(wildcards.pretrain, TABLE1_MODELS)),
    output:
        **table(paths.TABLE1, "../report/table1.rst"),
    log:
        paths.job_log("results/table1_{pretrain}"),
    conda:
        "../../envs/sarssl.yaml"
    resources:
        **resources(TABLE_JOB),
    params:
        runs=lambda wildcards: runs_of(wildcards.pretrain, TABLE1_MODELS),
        percents=CONFIG.finetune_percents,
    script:
        "../scripts/table.py"


rule si_table2:
    """SI Table 2: U-Net on S1GRD only against U-Net on S1GRD + attention maps."""
    input:
        lambda wildcards: metrics_files(runs_of(wildcards.pretrain, SI_TABLE2_MODELS)),
    output:
        **table(paths.SI_TABLE2, "../report/si_table2.rst"),
    log:
        paths.job_log("results/si_table2_{pretrain}"),
    conda:
        "../../envs/sarssl.yaml"
    resources:
        **resources(TABLE_JOB),
    params:
        runs=lambda wildcards: runs_of(wildcards.pretrain, SI_TABLE2_MODELS),
        percents=CONFIG.finetune_percents,
    script:
        "../scripts/table.py"


rule emergent_segmentation:
    """How well each attention head separates the land-cover classes of the test split
    (NMI, AUC), against a randomly initialised ViT of the same architecture."""
    input:
        unpack(evaluation_inputs),
    output:
        **{
            form: report(
                paths.path(paths.EMERGENT, format=form),
                caption="../report/emergent.rst",
                category="Emergent segmentation",
            )
            for form in ("csv", "md")
        },
        figure=report(
            figure("emergent"),
            caption="../report/emergent.rst",
            category="Emergent segmentation",
        ),
    log:
        paths.job_log("results/emergent_{pretrain}"),
    benchmark:
        paths.job_benchmark("results/emergent_{pretrain}")
    conda:
        "../../envs/sarssl.yaml"
    threads: CONFIG.job("attention").threads
    resources:
        **resources(CONFIG.job("attention")),
    params:
        backbone=lambda wildcards: backbone(wildcards.pretrain),
        maps=evaluation_maps,
        store=evaluation,
        max_tiles=CONFIG.attention().emergent_tiles,
    script:
        "../scripts/emergent_segmentation.py"


rule supervised_reference:
    """The probe's ceiling: the pre-training's ViT from scratch with the tokens decoder on
    the evaluation AOI's train tiles (probe.supervised_reference: percent, epochs; the
    grid's other settings), best epoch on validation MIoU."""
    input:
        unpack(supervised_inputs),
    output:
        metrics=paths.SUPERVISED_METRICS,
        config=paths.SUPERVISED_CONFIG,
        predictions=paths.SUPERVISED_PREDICTIONS,
        model=paths.SUPERVISED_MODEL,
    log:
        paths.SUPERVISED_LOG,
    benchmark:
        paths.SUPERVISED_BENCHMARK
    conda:
        "../../envs/sarssl.yaml"
    threads: CONFIG.job("finetune").threads
    resources:
        **resources(CONFIG.job("finetune"), gpus=SUPERVISED_GPUS),
    params:
        settings=supervised_settings,
    script:
        "../scripts/finetune.py"


rule knn_probe:
    """k-NN probe of the pre-trained backbone (teacher and student of a training, or the
    exported one), of a random-init ViT of the same architecture, of the patch means (no
    network) and, where the config asks, of the supervised reference's ViT, on the val and
    test tiles of the evaluation AOI, with tile-bootstrap 95 % intervals of the scores and
    of their gains over random init."""
    input:
        unpack(probe_inputs),
    output:
        **table(paths.PROBE, "../report/probe.rst"),
    log:
        paths.job_log("results/probe_{pretrain}"),
    benchmark:
        paths.job_benchmark("results/probe_{pretrain}")
    conda:
        "../../envs/sarssl.yaml"
    threads: CONFIG.job("probe").threads
    resources:
        **resources(CONFIG.job("probe")),
    params:
        backbone=lambda wildcards: backbone(wildcards.pretrain),
        store=evaluation,
        settings=probe_settings,
        supervised=lambda wildcards: supervised_model(wildcards.pretrain),
    script:
        "../scripts/knn_probe.py"


rule figure_heads_landcover:
    """As the paper's Figure 5: attention heads beside the land cover of test tiles."""
    input:
        unpack(evaluation_inputs),
    output:
        report(
            figure("heads_landcover"),
            caption="../report/heads_landcover.rst",
            category="Figures",
        ),
    log:
        paths.job_log("results/heads_landcover_{pretrain}"),
    conda:
        "../../envs/sarssl.yaml"
    resources:
        **SITE_RESOURCES,
        mem_mb=4000,
        runtime=10,
    params:
        maps=evaluation_maps,
        store=evaluation,
        tiles=CONFIG.prediction_tiles(),
    script:
        "../scripts/figure_heads_landcover.py"


rule figure_attention_predictions:
    """As the paper's Figure 2: SAR input, attention heads, the predictions of both
    attention U-Nets and the ground truth for the first test tiles."""
    input:
        unpack(figure2_runs),
        maps=lambda wildcards: paths.path(
            paths.ATTENTION_METADATA,
            pretrain=wildcards.pretrain,
            aoi=CONFIG.finetune_aoi,
        ),
        stats=lambda wildcards: stats(CONFIG.finetune_aoi),
    output:
        report(
            figure("attention_predictions"),
            caption="../report/attention_predictions.rst",
            category="Figures",
        ),
    log:
        paths.job_log("results/attention_predictions_{pretrain}"),
    conda:
        "../../envs/sarssl.yaml"
    resources:
        **SITE_RESOURCES,
        mem_mb=4000,
        runtime=10,
    params:
        maps=lambda wildcards: paths.path(
            paths.ATTENTION, pretrain=wildcards.pretrain, aoi=CONFIG.finetune_aoi
        ),
        store=lambda wildcards: store(CONFIG.finetune_aoi),
    script:
        "../scripts/figure_attention_predictions.py"


rule figure_training_curves:
    """Pre-training loss and collapse indicators; validation MIoU of the fine-tuning runs
    (of the first seed)."""
    input:
        pretrain=paths.PRETRAIN_METRICS,
        collapse=paths.PRETRAIN_COLLAPSE,
        runs=lambda wildcards: metrics_files(
            shown_runs(wildcards.pretrain, TABLE1_MODELS + SI_TABLE2_MODELS)
        ),
    output:
        report(
            figure("training_curves"),
            caption="../report/training_curves.rst",
            category="Figures",
        ),
    log:
        paths.job_log("results/training_curves_{pretrain}"),
    conda:
        "../../envs/sarssl.yaml"
    resources:
        **resources(TABLE_JOB),
    script:
        "../scripts/figure_training_curves.py"


rule figure_probe:
    """The k-NN probe of the teacher over the pre-training steps, against the final scores."""
    input:
        pretrain=paths.PRETRAIN_METRICS,
        table=paths.path(paths.PROBE, format="csv"),
    output:
        report(
            figure("probe"),
            caption="../report/probe_curves.rst",
            category="Figures",
        ),
    log:
        paths.job_log("results/figure_probe_{pretrain}"),
    conda:
        "../../envs/sarssl.yaml"
    resources:
        **resources(TABLE_JOB),
    script:
        "../scripts/figure_probe.py"
