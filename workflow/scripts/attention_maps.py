from pathlib import Path

from sarssl.attention_maps import extract_attention_maps
from sarssl.logs import job_log

with job_log(snakemake.log[0]) as log:
    summary = extract_attention_maps(
        snakemake.input.checkpoint,
        Path(snakemake.input.stats).parent / "dataset.zarr",
        Path(snakemake.output.maps).parent,
        snakemake.output.geotiffs,
        which=snakemake.params.backbone,
        geotiff_tiles=snakemake.params.geotiff_tiles,
    )
    log.info("attention maps: %s", summary)
