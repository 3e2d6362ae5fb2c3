import textwrap

from sarssl.logs import job_log
from sarssl.outputs.report import training_curves
from sarssl.training.utils import CollapseVerdict

with job_log(snakemake.log[0]):
    verdict = CollapseVerdict.read(snakemake.input.collapse)
    training_curves(
        snakemake.input.pretrain,
        list(snakemake.input.runs),
        snakemake.output[0],
        f"Training of {snakemake.wildcards.pretrain} and its fine-tuning runs\n"
        + textwrap.fill(f"Collapse verdict: {verdict.sentence}", 110),
    )
