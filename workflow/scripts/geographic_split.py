from sarssl.dataset.grid import geographic_split, read_tiles
from sarssl.dataset.sources import write_csv
from sarssl.logs import job_log

with job_log(snakemake.log[0]) as log:
    params = snakemake.params
    splits = geographic_split(
        read_tiles(snakemake.input.tiles), params.nbands, params.angle, params.fractions
    )
    write_csv(splits, snakemake.output[0])
    log.info("tiles per split: %s", splits.split.value_counts().to_dict())
