from sarssl.logs import job_log
from sarssl.outputs.report import heads_and_landcover

with job_log(snakemake.log[0]):
    heads_and_landcover(
        snakemake.params.store,
        snakemake.params.maps,
        snakemake.params.tiles,
        snakemake.output[0],
        f"Attention heads of {snakemake.wildcards.pretrain} and ESA WorldCover (test tiles)",
    )
