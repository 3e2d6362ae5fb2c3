# sarssl: Sentinel-1 seasonal composites -> Zarr -> DINO pre-training -> fine-tuning -> tables.
# Run from the repository root: `snakemake --cores all` (or `--profile slurm` on a cluster).

from snakemake.utils import min_version

# As pyproject.toml requires.
min_version("9.0")


# The demo's config when no --configfile is given. A run given its own (config/paper.yaml,
# with its overlays) starts from the schema's defaults, not from the demo's values, which
# Snakemake would otherwise merge beneath it key by key.
if not workflow.overwrite_configfiles:

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
