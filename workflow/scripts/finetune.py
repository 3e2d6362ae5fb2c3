from sarssl.child import run_sarssl
from sarssl.finetune import write_settings
from sarssl.logs import job_log

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
        ]
    )
