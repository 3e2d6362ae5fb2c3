rule pretrain:
    """DINO pre-training of a timm ViT on the train tiles of the run's AOIs. One job; with
    gpus > 1 it runs torchrun inside (DDP, one process per GPU). A killed job resumes from
    results/pretrain/{pretrain}/run/last.pt when rerun."""
    input:
        stats=pretrain_stats,
    output:
        checkpoint="results/pretrain/{pretrain}/checkpoint.pt",
        metrics="results/pretrain/{pretrain}/metrics.csv",
    log:
        "logs/pretrain/{pretrain}.log",
    benchmark:
        "benchmarks/runs/pretrain/{pretrain}.tsv"
    conda:
        "../../envs/sarssl.yaml"
    threads: pretrain_resource("threads")
    resources:
        **GPU_SITE_RESOURCES,
        gpu=pretrain_resource("gpus"),
        mem_mb=pretrain_resource("mem_mb"),
        runtime=pretrain_resource("runtime"),
    params:
        settings=lambda wildcards: pretrain_settings(wildcards.pretrain).as_dict(),
    script:
        "../scripts/pretrain.py"


rule attention_maps:
    """Per-head CLS attention of the last block for every tile of an AOI (Zarr), and
    GeoTIFFs of a few test tiles to open over the tiles in QGIS."""
    input:
        checkpoint="results/pretrain/{pretrain}/checkpoint.pt",
        stats="results/{aoi}/stats.json",
    output:
        maps="results/pretrain/{pretrain}/attention/{aoi}.zarr/zarr.json",
        geotiffs=directory("results/pretrain/{pretrain}/attention/{aoi}_geotiff"),
    log:
        "logs/pretrain/{pretrain}/attention_maps/{aoi}.log",
    benchmark:
        "benchmarks/runs/pretrain/{pretrain}/attention_maps/{aoi}.tsv"
    conda:
        "../../envs/sarssl.yaml"
    threads: ATTENTION["threads"]
    resources:
        **(GPU_SITE_RESOURCES if ATTENTION["gpu"] else SITE_RESOURCES),
        gpu=int(ATTENTION["gpu"]),
        mem_mb=ATTENTION["mem_mb"],
        runtime=ATTENTION["runtime"],
    params:
        backbone=ATTENTION["backbone"],
        geotiff_tiles=ATTENTION["geotiff_tiles"],
    script:
        "../scripts/attention_maps.py"
