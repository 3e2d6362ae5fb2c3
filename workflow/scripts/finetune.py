from sarssl.child import run_sarssl
from sarssl.logs import job_log
from sarssl.settings.finetune import write_settings

with job_log(snakemake.log[0]):
    # The resolved settings are an output of the run; the child trains from them.
    write_settings(snakemake.params.settings, snakemake.output.config)
    run_sarssl(
        [
            "finetune",
            "--settings",
            snakemake.output.config,
            "--metrics",
            snakemake.output.metrics,
            "--predictions",
            snakemake.output.predictions,
            "--model",
            snakemake.output.model,
        ]
    )
