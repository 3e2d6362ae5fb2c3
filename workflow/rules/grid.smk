rule tile_grid:
    """Square chips of tile_px * pixel_m metres over the AOI, with geetiles' identifiers."""
    input:
        aoi=lambda wildcards: aoi_config(wildcards.aoi)["wkt"],
    output:
        paths.TILES,
    log:
        "logs/{aoi}/tile_grid.log",
    benchmark:
        "benchmarks/runs/{aoi}/tile_grid.tsv"
    conda:
        "../../envs/sarssl.yaml"
    threads: 4
    resources:
        **SITE_RESOURCES,
        mem_mb=8000,
        runtime=240,
    params:
        chip_size_m=chip_size_m(),
    script:
        "../scripts/tile_grid.py"


rule geographic_split:
    """geetiles' geographic-band train/val/test split of the tiles."""
    input:
        tiles=tiles_file,
    output:
        paths.SPLITS,
    log:
        "logs/{aoi}/geographic_split.log",
    conda:
        "../../envs/sarssl.yaml"
    resources:
        **SITE_RESOURCES,
        mem_mb=4000,
        runtime=60,
    params:
        nbands=config["split"]["nbands"],
        angle=config["split"]["angle"],
        fractions=config["split"]["fractions"],
    script:
        "../scripts/geographic_split.py"
