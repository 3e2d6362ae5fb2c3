from sarssl.launch import launch, publish
from sarssl.logs import job_log

with job_log(snakemake.log[0]):
    # Run state (resumable checkpoint, metrics, TensorBoard) is kept outside the declared
    # outputs, so that Snakemake never deletes it before a rerun.
    params = snakemake.params
    launch(params.settings, params.run_dir, params.gpus, params.nodes)
    outputs = snakemake.output
    publish(params.run_dir, outputs.checkpoint, outputs.metrics, outputs.collapse)
