rule init_store:
    """The empty Zarr store of an AOI, sized for every tile of its grid. The output is the
    store's root metadata: a directory() output would put Snakemake's timestamp file
    inside the store, where Zarr readers warn about it."""
    input:
        tiles=tiles_file,
    output:
        STORE,
    log:
        "logs/{aoi}/init_store.log",
    conda:
        "../../envs/sarssl.yaml"
    resources:
        **SITE_RESOURCES,
        mem_mb=4000,
        runtime=30,
    params:
        tile_px=DATA["tile_px"],
        pixel_m=DATA["pixel_m"],
        year=DATA["year"],
        dtype=DATA["store_dtype"],
    script:
        "../scripts/init_store.py"


rule build_store_shard:
    """Seasonal 12-channel stacks and labels of one shard's tiles, written into its own
    chunks of the store; the report lists every tile's outcome and statistics."""
    input:
        store=STORE,
        manifest=manifest,
    output:
        "results/{aoi}/build/shard{shard}.csv",
    log:
        "logs/{aoi}/build_store_shard/shard{shard}.log",
    benchmark:
        "benchmarks/runs/{aoi}/build_store_shard/shard{shard}.tsv"
    conda:
        "../../envs/sarssl.yaml"
    threads: DATA["threads"]
    resources:
        **SITE_RESOURCES,
        mem_mb=4000,
        runtime=240,
    params:
        tile_px=DATA["tile_px"],
        max_nodata_fraction=DATA["max_nodata_fraction"],
        bad_tile_policy=DATA["bad_tile_policy"],
    script:
        "../scripts/build_store_shard.py"


rule finalise_store:
    """Splits and per-tile georeferencing into the store, train-only statistics, the list
    of rejected tiles; marks the store complete."""
    input:
        store=STORE,
        tiles=tiles_file,
        splits="results/{aoi}/splits.csv",
        reports=shard_reports,
    output:
        stats="results/{aoi}/stats.json",
        rejected="results/{aoi}/rejected_tiles.csv",
    log:
        "logs/{aoi}/finalise_store.log",
    conda:
        "../../envs/sarssl.yaml"
    resources:
        **SITE_RESOURCES,
        mem_mb=8000,
        runtime=60,
    script:
        "../scripts/finalise_store.py"
