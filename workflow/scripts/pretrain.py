from pathlib import Path

from sarssl.logs import job_log
from sarssl.pretrain import PretrainSettings, launch, publish

with job_log(snakemake.log[0]):
    # Run state (resumable checkpoint, metrics, TensorBoard) is kept outside the declared
    # outputs, so that Snakemake never deletes it before a rerun.
    run_dir = Path(snakemake.output.checkpoint).parent / "run"
    settings = PretrainSettings.from_dict(snakemake.params.settings)
    launch(settings, run_dir, snakemake.resources.gpu)
    publish(run_dir, snakemake.output.checkpoint, snakemake.output.metrics)
