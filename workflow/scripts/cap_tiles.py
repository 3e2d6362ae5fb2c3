from sarssl.dataset.grid import cap_grid, read_splits, read_tiles, split_counts, write_tiles_file
from sarssl.dataset.sources import write_csv
from sarssl.logs import job_log

with job_log(snakemake.log[0]) as log:
    params = snakemake.params
    grid, splits = read_tiles(snakemake.input.grid), read_splits(snakemake.input.splits)
    tiles, kept = cap_grid(grid, splits, params.max_tiles, params.seed)
    write_tiles_file(tiles, snakemake.output.tiles)
    write_csv(kept, snakemake.output.splits)
    log.info("max_tiles %s (seed %d)", params.max_tiles, params.seed)
    log.info("tiles per split: grid %s, kept %s", split_counts(splits), split_counts(kept))
