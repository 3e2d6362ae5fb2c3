from sarssl.logs import job_log
from sarssl.maps.shards import write_attention_shard, write_labels_shard, write_quicklook_shard

# The layer of the map -> what writes a shard of it from its source store.
WRITERS = {
    "attention": write_attention_shard,
    "labels": write_labels_shard,
    "s1": write_quicklook_shard,
}

with job_log(snakemake.log[0]) as log:
    params = snakemake.params
    placed = WRITERS[params.layer](
        snakemake.output[0],
        params.source,
        params.splits,
        int(snakemake.wildcards.shard),
        params.n_shards,
    )
    log.info("%d tiles placed", placed)
