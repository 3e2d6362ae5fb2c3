from sarssl.dataset.sources import shard_manifest, write_csv
from sarssl.logs import job_log

with job_log(snakemake.log[0]) as log:
    params = snakemake.params
    manifest, _ = shard_manifest(
        snakemake.input.tiles,
        int(snakemake.wildcards.shard),
        params.n_shards,
        params.datasets["s1"],
        params.datasets["labels"],
        layout_file=params.layout,
    )
    write_csv(manifest, snakemake.output[0])
    log.info("%d tiles listed", len(manifest))
