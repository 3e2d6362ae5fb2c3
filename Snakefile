# sarssl: Sentinel-1 seasonal composites -> Zarr -> DINO pre-training -> fine-tuning -> tables.
# Run from the repository root: `snakemake --cores all` (or `--profile slurm` on a cluster).


configfile: "config/config.yaml"


include: "workflow/rules/common.smk"
include: "workflow/rules/grid.smk"
include: "workflow/rules/source.smk"
include: "workflow/rules/dataset.smk"
include: "workflow/rules/pretrain.smk"
include: "workflow/rules/finetune.smk"


rule all:
    default_target: True
    input:
        dataset_targets(),
        pretrain_targets(),
        finetune_targets(),
