"""AOI-wide maps: Cloud-Optimized GeoTIFF mosaics of per-tile rasters (land-cover
predictions, attention heads, the S1 quicklook), the land cover predicted for them, and an
offline page that shows them."""
