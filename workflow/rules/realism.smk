include: "common/realism.smk"


rule realism:
    """How separable an AOI's land-cover classes are without spatial context (per-pixel and
    per-patch-mean classifiers, the realism check of the synthetic source) and, where the
    config asks, with it (the context check's U-Net), and its backscatter against a real
    Sentinel-1 chip."""
    input:
        unpack(realism_inputs),
    output:
        **table(paths.SEPARABILITY_TABLE, "../report/realism.rst"),
        figure=report(
            paths.REALISM_FIGURE, caption="../report/realism.rst", category="Figures"
        ),
    log:
        paths.job_log("results/realism_{aoi}"),
    benchmark:
        paths.job_benchmark("results/realism_{aoi}")
    conda:
        "../../envs/sarssl.yaml"
    threads: CONFIG.job("realism").threads
    resources:
        **resources(CONFIG.job("realism")),
    params:
        **CONFIG.realism_check(),
        store=lambda wildcards: store(wildcards.aoi),
        settings=separability_settings(),
    script:
        "../scripts/separability.py"


rule context_unet:
    """The context check of an AOI's data: the U-Net on the 12 S1GRD channels from scratch,
    on the train tiles the separability classifiers are fitted on (realism.context_unet:
    percent, epochs; the grid's other settings), best epoch on validation MIoU, scored on
    the whole test split."""
    input:
        stats=paths.STATS,
    output:
        metrics=paths.CONTEXT_METRICS,
        config=paths.CONTEXT_CONFIG,
        predictions=paths.CONTEXT_PREDICTIONS,
        model=paths.CONTEXT_MODEL,
    log:
        paths.CONTEXT_LOG,
    benchmark:
        paths.CONTEXT_BENCHMARK
    conda:
        "../../envs/sarssl.yaml"
    threads: CONFIG.job("finetune").threads
    resources:
        **resources(CONFIG.job("finetune"), gpus=CONFIG.unet_gpus),
    params:
        settings=context_unet_settings,
    script:
        "../scripts/finetune.py"
