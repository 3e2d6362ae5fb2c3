from sarssl.dataset.build import BuildSettings, build_shard
from sarssl.dataset.storeinfo import tile_geometry
from sarssl.logs import job_log

with job_log(snakemake.log[0]) as log:
    params = snakemake.params
    tile_px, pixel_m = tile_geometry(params.store)
    settings = BuildSettings(
        tile_px=tile_px,
        max_nodata_fraction=params.max_nodata_fraction,
        max_season_nodata_fraction=params.max_season_nodata_fraction,
        bad_tile_policy=params.bad_tile_policy,
        threads=snakemake.threads,
        pixel_m=pixel_m,
        s1_format=params.s1_format,
        orbit_pass=params.orbit_pass,
    )
    report = build_shard(params.store, snakemake.input.manifest, snakemake.output[0], settings)
    log.info("tiles: %s", report.status.value_counts().to_dict())
