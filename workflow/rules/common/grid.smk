def chip_size_m():
    return DATA["tile_px"] * DATA["pixel_m"]


def grid_file(wildcards):
    """The AOI's whole grid (a geetiles tiles file): ours, or the user's for a geetiles_dir
    source."""
    aoi = aoi_config(wildcards.aoi)
    if aoi["source"] == "geetiles_dir":
        return aoi["tiles_file"]
    return paths.path(paths.GRID, aoi=wildcards.aoi)
