rule synthetic_tiles:
    """Embedded synthetic source: writes the GeoTIFFs an Earth Engine export would write,
    in the geetiles layout beside the tiles file, for one shard of tiles."""
    input:
        tiles=paths.TILES,
    output:
        source_manifest("synthetic"),
    log:
        paths.job_log("{aoi}/synthetic_tiles/shard{shard}"),
    benchmark:
        paths.job_benchmark("{aoi}/synthetic_tiles/shard{shard}")
    conda:
        "../../envs/sarssl.yaml"
    threads: CONFIG.data_threads
    resources:
        **SITE_RESOURCES,
        mem_mb=4000,
        runtime=240,
    params:
        datasets=datasets,
        n_shards=lambda wildcards: n_shards(wildcards.aoi),
        tile_px=CONFIG.tile_px,
        seed=CONFIG.synthetic_seed,
    script:
        "../scripts/synthetic_tiles.py"


rule geetiles_dir_tiles:
    """An existing geetiles download, read in place: lists each kept tile's files (no
    copy), which are in the layout of the download's own tiles file."""
    input:
        tiles=paths.TILES,
    output:
        source_manifest("geetiles_dir"),
    log:
        paths.job_log("{aoi}/geetiles_dir_tiles/shard{shard}"),
    conda:
        "../../envs/sarssl.yaml"
    resources:
        **SITE_RESOURCES,
        mem_mb=2000,
        runtime=30,
    params:
        datasets=datasets,
        n_shards=lambda wildcards: n_shards(wildcards.aoi),
        layout=grid_file,
    script:
        "../scripts/geetiles_dir_tiles.py"


rule gee_export:
    """Earth Engine export (source gee): seasonal S1 GRD composites and ESA WorldCover of
    one shard of tiles, in the geetiles layout beside the tiles file. Tiles that fail for
    good are listed in the summary and rejected downstream with their reason; rerun with
    --forcerun gee_export to retry them (present files are skipped)."""
    input:
        tiles=paths.TILES,
    output:
        manifest=source_manifest("gee"),
        summary=paths.GEE_SUMMARY,
    log:
        paths.job_log("{aoi}/gee_export/shard{shard}"),
    benchmark:
        paths.job_benchmark("{aoi}/gee_export/shard{shard}")
    conda:
        "../../envs/sarssl.yaml"
    threads: 2
    resources:
        **SITE_RESOURCES,
        mem_mb=4000,
        runtime=1440,
        gee_requests=CONFIG.gee_concurrency,
    params:
        datasets=datasets,
        n_shards=lambda wildcards: n_shards(wildcards.aoi),
        tile_px=CONFIG.tile_px,
        year=CONFIG.year,
        gee=CONFIG.gee,
        requests=lambda wildcards: gee_request_summary(wildcards),
    message:
        "Earth Engine export of {wildcards.aoi}, shard {wildcards.shard}, requests:\n{params.requests}"
    script:
        "../scripts/gee_export.py"
