from sarssl.logs import job_log
from sarssl.outputs.report import attention_and_predictions

with job_log(snakemake.log[0]):
    attention_and_predictions(
        snakemake.params.store,
        snakemake.params.maps,
        snakemake.input.attention,
        snakemake.input.s1grd,
        snakemake.output[0],
        f"{snakemake.wildcards.pretrain}: attention maps and predictions (test tiles)",
    )
