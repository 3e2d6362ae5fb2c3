from sarssl.dataset.grid import read_tiles, tile_bounds
from sarssl.dataset.store import create_store
from sarssl.logs import job_log

with job_log(snakemake.log[0]) as log:
    params = snakemake.params
    tiles = read_tiles(snakemake.input.tiles)
    create_store(
        snakemake.params.store,
        tiles.identifier.tolist(),
        tile_bounds(tiles),
        tile_px=params.tile_px,
        dtype=params.dtype,
        attrs=params.record,
    )
    log.info("store for %d tiles created", len(tiles))
