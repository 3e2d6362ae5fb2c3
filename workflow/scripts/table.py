from sarssl.logs import job_log
from sarssl.results import collect_runs, si_table2, table1, write_table
from sarssl.runs import Run

LAYOUTS = {
    "table1": (table1, "Table 1, {pretrain}"),
    "si_table2": (si_table2, "SI Table 2, {pretrain}"),
}

with job_log(snakemake.log[0]):
    layout, title = LAYOUTS[snakemake.rule]
    pretrain = snakemake.wildcards.pretrain
    runs = collect_runs("results", [Run(*run) for run in snakemake.params.runs])
    table = layout(runs, pretrain, snakemake.params.percents)
    write_table(table, snakemake.output.csv, snakemake.output.md, title.format(pretrain=pretrain))
