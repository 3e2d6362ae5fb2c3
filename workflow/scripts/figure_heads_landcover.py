from pathlib import Path

from sarssl.logs import job_log
from sarssl.report import heads_and_landcover

with job_log(snakemake.log[0]):
    heads_and_landcover(
        Path(snakemake.input.stats).parent / "dataset.zarr",
        Path(snakemake.input.maps).parent,
        snakemake.params.tiles,
        snakemake.output[0],
        f"Attention heads of {snakemake.wildcards.pretrain} and ESA WorldCover (test tiles)",
    )
