"""The data half of sarssl, free of torch: the tile grid, the sources (Earth Engine, a
geetiles folder, the synthetic scenes), reading their GeoTIFFs, the seasonal channels and
labels, and the Zarr store with its statistics."""
