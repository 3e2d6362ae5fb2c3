from sarssl.dataset.build import common_reasons, tile_outcomes, write_rejected
from sarssl.logs import job_log

with job_log(snakemake.log[0]) as log:
    inputs = snakemake.input
    outcomes = tile_outcomes(
        snakemake.params.store, inputs.tiles, inputs.splits, list(inputs.reports)
    )
    rejected = write_rejected(outcomes, snakemake.output[0])
    log.info("%d of %d tiles rejected", len(rejected), len(outcomes))
    for count, reason in common_reasons(outcomes):
        log.info("%d tiles like: %s", count, reason)
