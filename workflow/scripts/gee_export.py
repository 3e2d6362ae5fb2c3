import ee

from sarssl.dataset.gee import export_requests
from sarssl.dataset.gee_session import RetryPolicy, initialize, resolve_auth
from sarssl.dataset.gee_shard import export_shard
from sarssl.logs import job_log

with job_log(snakemake.log[0]) as log:
    params = snakemake.params
    gee = params.gee
    initialize(ee, resolve_auth(gee["project"], gee["key_file"]), endpoint=gee["endpoint"])
    summary = export_shard(
        ee,
        snakemake.input.tiles,
        int(snakemake.wildcards.shard),
        params.n_shards,
        export_requests(params.year, gee["orbit_pass"], gee["composite"], params.datasets),
        params.tile_px,
        snakemake.output.manifest,
        snakemake.output.summary,
        concurrency=gee["concurrency"],
        policy=RetryPolicy(max_attempts=gee["max_attempts"]),
    )
    log.info("%d tiles complete, %d missing", summary.complete, len(summary.failed))
