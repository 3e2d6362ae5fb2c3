from sarssl.dataset.sen1floods11 import write_crops
from sarssl.logs import job_log

with job_log(snakemake.log[0]) as log:
    folder = write_crops(
        snakemake.input.image, snakemake.input.label, snakemake.output[0], snakemake.params.crop_px
    )
    log.info("%s: crops of %s", folder, snakemake.input.image)
