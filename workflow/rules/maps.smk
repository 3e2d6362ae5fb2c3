rule best_run_map:
    """Shard of the land cover predicted over the AOI's tiles of maps.splits by the run of
    the highest validation MIoU among a table's runs (its saved model)."""
    input:
        unpack(prediction_map_inputs(paths.BEST_RUN_MAP)),
    output:
        paths.path(paths.MAP_SHARD, map=paths.BEST_RUN_MAP),
    log:
        paths.job_log("maps/best_{table}_{pretrain}/shard{shard}"),
    benchmark:
        paths.job_benchmark("maps/best_{table}_{pretrain}/shard{shard}")
    wildcard_constraints:
        table="table1|si_table2",
    conda:
        "../../envs/sarssl.yaml"
    threads: CONFIG.job("maps").threads
    resources:
        **resources(CONFIG.job("maps"), gpus=1),
    params:
        splits=CONFIG.map_splits,
        n_shards=CONFIG.map_shards,
    script:
        "../scripts/prediction_map.py"


use rule best_run_map as run_map with:
    input:
        unpack(prediction_map_inputs(paths.RUN_MAP)),
    output:
        paths.path(paths.MAP_SHARD, map=paths.RUN_MAP),
    log:
        paths.job_log(
            "maps/run_{pretrain}_{model}_{init}_frac{fraction}_seed{seed}/shard{shard}"
        ),
    benchmark:
        paths.job_benchmark(
            "maps/run_{pretrain}_{model}_{init}_frac{fraction}_seed{seed}/shard{shard}"
        )
    wildcard_constraints:
        seed=r"\d+",


rule attention_map:
    """Shard of the per-head CLS attention of a pre-training over the AOI's tiles of
    maps.splits, one band per head, from its attention-map store."""
    input:
        paths.ATTENTION_METADATA,
    output:
        paths.path(paths.MAP_SHARD, map=paths.ATTENTION_MAP),
    log:
        paths.job_log("maps/attention_{pretrain}_{aoi}/shard{shard}"),
    conda:
        "../../envs/sarssl.yaml"
    threads: CONFIG.job("maps").threads
    resources:
        **resources(CONFIG.job("maps")),
    params:
        layer="attention",
        source=lambda wildcards: paths.path(paths.ATTENTION, **wildcards),
        splits=CONFIG.map_splits,
        n_shards=CONFIG.map_shards,
    script:
        "../scripts/map_shard.py"


rule store_map:
    """Shard of the WorldCover labels (layer labels) or of the S1 quicklook (layer s1: RGB
    of the annual means of VV, VH and VV-VH) over the AOI's tiles of maps.splits."""
    input:
        paths.STATS,
    output:
        paths.path(paths.MAP_SHARD, map=paths.STORE_MAP),
    log:
        paths.job_log("maps/{layer}_{aoi}/shard{shard}"),
    wildcard_constraints:
        layer="|".join(paths.STORE_MAP_LAYERS),
    conda:
        "../../envs/sarssl.yaml"
    threads: CONFIG.job("maps").threads
    resources:
        **resources(CONFIG.job("maps")),
    params:
        layer=lambda wildcards: wildcards.layer,
        source=lambda wildcards: store(wildcards.aoi),
        splits=CONFIG.map_splits,
        n_shards=CONFIG.map_shards,
    script:
        "../scripts/map_shard.py"


rule map_page:
    """A VRT over each map's shards, and the offline map page: every map as a layer, the
    tile outlines by split and by rejection (with the reason), the WorldCover legend; Leaflet
    beside it, no network needed."""
    input:
        unpack(map_page_inputs),
    output:
        page=paths.MAP_PAGE,
        maps=[paths.path(paths.MAP, map=name) for name in CONFIG.maps()],
        layers=directory(paths.MAP_LAYERS),
        leaflet=directory(paths.MAP_LEAFLET),
    log:
        paths.job_log("maps/map_page"),
    conda:
        "../../envs/sarssl.yaml"
    resources:
        **resources(CONFIG.job("maps")),
    params:
        maps={name: (kind, map_shards(name)) for name, kind in CONFIG.maps().items()},
        aois={
            aoi: (store(aoi), paths.path(paths.REJECTED, aoi=aoi))
            for aoi in CONFIG.map_aois()
        },
        max_px=CONFIG.map_page_px,
    script:
        "../scripts/map_page.py"
