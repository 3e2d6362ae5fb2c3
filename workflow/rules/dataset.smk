rule init_store:
    """The empty Zarr store of an AOI, sized for the tiles it keeps of its grid. The output
    is the store's root metadata: a directory() output would put Snakemake's timestamp
    file inside the store, where Zarr readers warn about it."""
    input:
        tiles=paths.TILES,
    output:
        paths.STORE_METADATA,
    log:
        paths.job_log("{aoi}/init_store"),
    conda:
        "../../envs/sarssl.yaml"
    resources:
        **SITE_RESOURCES,
        mem_mb=4000,
        runtime=30,
    params:
        store=lambda wildcards: store(wildcards.aoi),
        tile_px=CONFIG.tile_px,
        dtype=CONFIG.store_dtype,
        record=lambda wildcards: CONFIG.store_record(wildcards.aoi),
    script:
        "../scripts/init_store.py"


rule build_store_shard:
    """Seasonal 12-channel stacks and labels of one shard's tiles, written into its own
    chunks of the store; the report lists every tile's outcome and statistics."""
    input:
        store=paths.STORE_METADATA,
        manifest=manifest,
    output:
        paths.BUILD_REPORT,
    log:
        paths.job_log("{aoi}/build_store_shard/shard{shard}"),
    benchmark:
        paths.job_benchmark("{aoi}/build_store_shard/shard{shard}")
    conda:
        "../../envs/sarssl.yaml"
    threads: CONFIG.data_threads
    resources:
        **SITE_RESOURCES,
        mem_mb=4000,
        runtime=240,
    params:
        **CONFIG.tile_checks(),
        store=lambda wildcards: store(wildcards.aoi),
        s1_format=lambda wildcards: CONFIG.s1_format(wildcards.aoi),
        orbit_pass=lambda wildcards: CONFIG.orbit_pass(wildcards.aoi),
    script:
        "../scripts/build_store_shard.py"


rule rejected_tiles:
    """Every rejected tile with its reason. A rule of its own, so that the list is there
    even when finalise_store fails (a failed job's outputs are removed)."""
    input:
        store=paths.STORE_METADATA,
        tiles=paths.TILES,
        splits=paths.SPLITS,
        reports=shard_reports,
    output:
        report(paths.REJECTED, caption="../report/rejected_tiles.rst", category="Data"),
    log:
        paths.job_log("{aoi}/rejected_tiles"),
    conda:
        "../../envs/sarssl.yaml"
    resources:
        **SITE_RESOURCES,
        mem_mb=4000,
        runtime=30,
    params:
        store=lambda wildcards: store(wildcards.aoi),
    script:
        "../scripts/rejected_tiles.py"


rule finalise_store:
    """Splits and per-tile georeferencing into the store, train-only statistics; marks the
    store complete. Fails, quoting the most common reasons, when no train tile is valid.
    """
    input:
        store=paths.STORE_METADATA,
        tiles=paths.TILES,
        splits=paths.SPLITS,
        reports=shard_reports,
        rejected=paths.REJECTED,
    output:
        stats=report(paths.STATS, caption="../report/stats.rst", category="Data"),
    log:
        paths.job_log("{aoi}/finalise_store"),
    conda:
        "../../envs/sarssl.yaml"
    resources:
        **SITE_RESOURCES,
        mem_mb=8000,
        runtime=60,
    params:
        store=lambda wildcards: store(wildcards.aoi),
    script:
        "../scripts/finalise_store.py"
