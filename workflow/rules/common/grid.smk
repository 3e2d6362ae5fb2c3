def grid_file(wildcards):
    return CONFIG.grid_file(wildcards.aoi)
