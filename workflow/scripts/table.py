from sarssl.logs import job_log
from sarssl.outputs.tables import collect_runs, write_named_table
from sarssl.settings.finetune import Run

with job_log(snakemake.log[0]):
    runs = collect_runs("results", [Run(*run) for run in snakemake.params.runs])
    write_named_table(
        snakemake.rule,
        runs,
        snakemake.wildcards.pretrain,
        snakemake.params.percents,
        snakemake.output.csv,
        snakemake.output.md,
    )
