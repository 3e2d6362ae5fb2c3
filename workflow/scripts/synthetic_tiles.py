from sarssl.dataset.synthetic import write_synthetic_shard
from sarssl.logs import job_log

with job_log(snakemake.log[0]) as log:
    params = snakemake.params
    manifest = write_synthetic_shard(
        snakemake.input.tiles,
        shard=int(snakemake.wildcards.shard),
        n_shards=params.n_shards,
        s1_dataset=params.datasets["s1"],
        labels_dataset=params.datasets["labels"],
        tile_px=params.tile_px,
        seed=params.seed,
        manifest_path=snakemake.output[0],
        threads=snakemake.threads,
    )
    log.info("%d synthetic tiles written", len(manifest))
