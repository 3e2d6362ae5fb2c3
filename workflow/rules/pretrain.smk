rule pretrain:
    """DINO pre-training of a timm ViT on the train tiles of the run's AOIs. One job; with
    gpus > 1 it runs torchrun inside (DDP, one process per GPU), with nodes > 1 one torchrun
    per node (srun, c10d rendezvous on the first node). A killed job resumes from
    results/pretrain/{pretrain}/run/last.pt when rerun. The collapse verdict of the
    finished run (ok, partial or full collapse) goes to collapse.json and the log."""
    input:
        stats=pretrain_stats,
    output:
        checkpoint=paths.CHECKPOINT,
        metrics=paths.PRETRAIN_METRICS,
        collapse=paths.PRETRAIN_COLLAPSE,
    log:
        paths.job_log("pretrain/{pretrain}"),
    benchmark:
        paths.job_benchmark("pretrain/{pretrain}")
    # The pre-training and the attention maps are the DAG's critical path: most of the grid
    # waits for them, so they start before jobs that could run any time (the context check).
    priority: CRITICAL_PATH_PRIORITY
    conda:
        "../../envs/sarssl.yaml"
    threads: pretrain_resource("threads")
    resources:
        **pretrain_resources(),
    params:
        settings=lambda wildcards: CONFIG.pretrain(wildcards.pretrain).as_dict(),
        run_dir=lambda wildcards: paths.path(paths.RUN, pretrain=wildcards.pretrain),
        gpus=pretrain_resource("gpus"),
        nodes=pretrain_resource("nodes"),
    script:
        "../scripts/pretrain.py"


rule attention_maps:
    """Per-head CLS attention of the last block for every tile of an AOI (Zarr), and
    GeoTIFFs of a few test tiles to open over the tiles in QGIS."""
    input:
        backbone=backbone_files,
        stats=paths.STATS,
    output:
        maps=paths.ATTENTION_METADATA,
        geotiffs=directory(paths.ATTENTION_GEOTIFFS),
    log:
        paths.job_log("pretrain/{pretrain}/attention_maps/{aoi}"),
    benchmark:
        paths.job_benchmark("pretrain/{pretrain}/attention_maps/{aoi}")
    priority: CRITICAL_PATH_PRIORITY
    conda:
        "../../envs/sarssl.yaml"
    threads: CONFIG.job("attention").threads
    resources:
        **resources(CONFIG.job("attention")),
    params:
        backbone=lambda wildcards: backbone(wildcards.pretrain),
        which=CONFIG.attention().backbone,
        store=lambda wildcards: store(wildcards.aoi),
        maps=lambda wildcards: paths.path(
            paths.ATTENTION, pretrain=wildcards.pretrain, aoi=wildcards.aoi
        ),
        geotiff_tiles=CONFIG.attention().geotiff_tiles,
    script:
        "../scripts/attention_maps.py"


rule export_weights:
    """The pre-trained backbone as timm loads it, for others: its weights (safetensors),
    timm's config with the channel order and normalisation, and a model card (with the
    collapse verdict and the evaluations)."""
    input:
        checkpoint=paths.CHECKPOINT,
        metrics=paths.PRETRAIN_METRICS,
        collapse=paths.PRETRAIN_COLLAPSE,
        stats=pretrain_stats,
        probe=paths.path(paths.PROBE, format="csv"),
        emergent=paths.path(paths.EMERGENT, format="csv"),
    output:
        weights=paths.EXPORT_WEIGHTS,
        config=paths.EXPORT_CONFIG,
        card=report(
            paths.EXPORT_CARD, caption="../report/export.rst", category="Weights"
        ),
    log:
        paths.job_log("pretrain/{pretrain}/export_weights"),
    conda:
        "../../envs/sarssl.yaml"
    resources:
        **SITE_RESOURCES,
        mem_mb=8000,
        runtime=30,
    params:
        which=CONFIG.export_backbone,
        stores=lambda wildcards: {
            aoi: store(aoi) for aoi in CONFIG.pretrain_aois(wildcards.pretrain)
        },
        split=CONFIG.split,
    script:
        "../scripts/export_weights.py"
