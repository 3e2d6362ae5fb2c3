from sarssl.logs import job_log
from sarssl.outputs.report import probe_curves

with job_log(snakemake.log[0]):
    probe_curves(
        snakemake.input.pretrain,
        snakemake.input.table,
        snakemake.output[0],
        f"k-NN probe of {snakemake.wildcards.pretrain} during pre-training",
    )
