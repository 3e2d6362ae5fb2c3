from pathlib import Path

from sarssl.build import BuildSettings, build_shard
from sarssl.logs import job_log

with job_log(snakemake.log[0]) as log:
    params = snakemake.params
    settings = BuildSettings(
        tile_px=params.tile_px,
        max_nodata_fraction=params.max_nodata_fraction,
        bad_tile_policy=params.bad_tile_policy,
        threads=snakemake.threads,
    )
    report = build_shard(
        Path(snakemake.input.store).parent, snakemake.input.manifest, snakemake.output[0], settings
    )
    log.info("tiles: %s", report.status.value_counts().to_dict())
