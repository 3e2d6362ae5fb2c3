from sarssl.logs import job_log
from sarssl.report import training_curves

with job_log(snakemake.log[0]):
    training_curves(
        snakemake.input.pretrain,
        list(snakemake.input.runs),
        snakemake.output[0],
        f"Training of {snakemake.wildcards.pretrain} and its fine-tuning runs",
    )
