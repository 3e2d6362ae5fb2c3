rule synthetic_tiles:
    """Embedded synthetic source: writes the GeoTIFFs an Earth Engine export would write,
    in the geetiles layout beside the tiles file, for one shard of tiles."""
    input:
        tiles=tiles_file,
    output:
        "results/{aoi}/source/synthetic/shard{shard}.csv",
    log:
        "logs/{aoi}/synthetic_tiles/shard{shard}.log",
    benchmark:
        "benchmarks/runs/{aoi}/synthetic_tiles/shard{shard}.tsv"
    conda:
        "../../envs/sarssl.yaml"
    threads: DATA["threads"]
    resources:
        mem_mb=4000,
        runtime=240,
    params:
        datasets=datasets,
        n_shards=lambda wildcards: n_shards(wildcards.aoi),
        tile_px=DATA["tile_px"],
        seed=config["synthetic"]["seed"],
    script:
        "../scripts/synthetic_tiles.py"


rule geetiles_dir_tiles:
    """An existing geetiles download, read in place: lists each tile's files (no copy)."""
    input:
        tiles=tiles_file,
    output:
        "results/{aoi}/source/geetiles_dir/shard{shard}.csv",
    log:
        "logs/{aoi}/geetiles_dir_tiles/shard{shard}.log",
    conda:
        "../../envs/sarssl.yaml"
    resources:
        mem_mb=2000,
        runtime=30,
    params:
        datasets=datasets,
        n_shards=lambda wildcards: n_shards(wildcards.aoi),
    script:
        "../scripts/geetiles_dir_tiles.py"
