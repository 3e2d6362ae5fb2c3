import json
from pathlib import Path

from sarssl.atomic import write_text_atomic
from sarssl.child import run_sarssl
from sarssl.logs import job_log

with job_log(snakemake.log[0]):
    params = snakemake.params
    # The runs' settings beside their records; the child runs them.
    settings = Path(params.runs) / "settings.json"
    write_text_atomic(settings, json.dumps(params.settings, indent=2))
    run_sarssl(
        ["transfer", "--weights", params.weights, "--data", params.data, "--out", params.runs,
         "--settings", str(settings), "--table", snakemake.output.csv,
         "--markdown", snakemake.output.md]
    )  # fmt: skip
