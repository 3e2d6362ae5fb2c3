# sarssl: Sentinel-1 seasonal composites -> Zarr -> DINO pre-training -> fine-tuning -> tables.
# Run from the repository root: `snakemake --cores all` (or `--profile slurm` on a cluster).

from snakemake.utils import min_version

# As pyproject.toml requires.
min_version("9.0")


configfile: "config/config.yaml"


report: "workflow/report/workflow.rst"


include: "workflow/rules/common.smk"
include: "workflow/rules/grid.smk"
include: "workflow/rules/source.smk"
include: "workflow/rules/dataset.smk"
include: "workflow/rules/pretrain.smk"
include: "workflow/rules/finetune.smk"
include: "workflow/rules/results.smk"
include: "workflow/rules/realism.smk"
include: "workflow/rules/maps.smk"
include: "workflow/rules/transfer.smk"


rule all:
    default_target: True
    input:
        dataset_targets(),
        pretrain_targets(),
        finetune_targets(),
        results_targets(),
        realism_targets(),
        maps_targets(),
        transfer_targets(),
