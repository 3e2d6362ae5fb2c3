from sarssl.logs import job_log
from sarssl.maps.predict import write_prediction_shard

with job_log(snakemake.log[0]) as log:
    params = snakemake.params
    run = write_prediction_shard(
        snakemake.output[0],
        snakemake.input.metrics,
        params.splits,
        int(snakemake.wildcards.shard),
        params.n_shards,
    )
    log.info("predicted by %s", run)
