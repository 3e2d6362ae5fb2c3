from sarssl.dataset.build import finalise, tile_outcomes
from sarssl.logs import job_log

with job_log(snakemake.log[0]) as log:
    inputs = snakemake.input
    store = snakemake.params.store
    outcomes = tile_outcomes(store, inputs.tiles, inputs.splits, list(inputs.reports))
    summary = finalise(store, outcomes, snakemake.output.stats, inputs.rejected)
    log.info("tiles: %s; S1 files: %s", summary["tiles"], summary["s1"])
