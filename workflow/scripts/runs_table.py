from sarssl.atomic import write_text_atomic
from sarssl.logs import job_log
from sarssl.outputs.tables import collect_runs
from sarssl.settings.finetune import Run

with job_log(snakemake.log[0]) as log:
    runs = collect_runs("results", [Run(*run) for run in snakemake.params.runs])
    write_text_atomic(snakemake.output[0], runs.to_csv(index=False))
    log.info("runs: %s", runs["status"].value_counts().to_dict())
