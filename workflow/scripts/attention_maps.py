from sarssl.evaluation.attention_maps import extract_attention_maps
from sarssl.logs import job_log

with job_log(snakemake.log[0]) as log:
    params = snakemake.params
    summary = extract_attention_maps(
        params.backbone,
        params.store,
        params.maps,
        snakemake.output.geotiffs,
        which=params.which,
        geotiff_tiles=params.geotiff_tiles,
    )
    log.info("attention maps: %s", summary)
