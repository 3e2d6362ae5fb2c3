def chip_size_m():
    return DATA["tile_px"] * DATA["pixel_m"]


def tiles_file(wildcards):
    """The geetiles tiles file of an AOI: ours, or the user's for a geetiles_dir source."""
    aoi = aoi_config(wildcards.aoi)
    if aoi["source"] == "geetiles_dir":
        return aoi["tiles_file"]
    return paths.path(paths.TILES, aoi=wildcards.aoi)
