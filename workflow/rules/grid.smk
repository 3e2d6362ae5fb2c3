rule tile_grid:
    """Square chips of tile_px * pixel_m metres over the AOI, with geetiles' identifiers."""
    input:
        aoi=lambda wildcards: CONFIG.aoi_wkt(wildcards.aoi),
    output:
        paths.GRID,
    log:
        paths.job_log("{aoi}/tile_grid"),
    benchmark:
        paths.job_benchmark("{aoi}/tile_grid")
    conda:
        "../../envs/sarssl.yaml"
    threads: 4
    resources:
        **SITE_RESOURCES,
        mem_mb=8000,
        runtime=240,
    params:
        chip_size_m=CONFIG.chip_size_m(),
    script:
        "../scripts/tile_grid.py"


rule geographic_split:
    """geetiles' geographic-band train/val/test split of the AOI's whole grid."""
    input:
        tiles=grid_file,
    output:
        paths.GRID_SPLITS,
    log:
        paths.job_log("{aoi}/geographic_split"),
    conda:
        "../../envs/sarssl.yaml"
    resources:
        **SITE_RESOURCES,
        mem_mb=4000,
        runtime=60,
    params:
        **CONFIG.split_bands(),
    script:
        "../scripts/geographic_split.py"


rule cap_tiles:
    """The tiles the AOI keeps, and their splits: every tile of the grid, or with max_tiles
    a seeded sample in which each split keeps its share (sarssl.dataset.grid.capped).
    Before any source or store rule, so that the tiles left out cost nothing."""
    input:
        grid=grid_file,
        splits=paths.GRID_SPLITS,
    output:
        tiles=paths.TILES,
        splits=paths.SPLITS,
    log:
        paths.job_log("{aoi}/cap_tiles"),
    conda:
        "../../envs/sarssl.yaml"
    resources:
        **SITE_RESOURCES,
        mem_mb=8000,
        runtime=60,
    params:
        max_tiles=lambda wildcards: CONFIG.max_tiles(wildcards.aoi),
        seed=CONFIG.split_seed,
    script:
        "../scripts/cap_tiles.py"
