from sarssl.dataset.grid import build_tile_grid, write_tiles_file
from sarssl.logs import job_log

with job_log(snakemake.log[0]) as log:
    tiles = build_tile_grid(
        snakemake.wildcards.aoi, snakemake.input.aoi, snakemake.params.chip_size_m
    )
    write_tiles_file(tiles, snakemake.output[0])
    log.info("%d tiles of %s m", len(tiles), snakemake.params.chip_size_m)
