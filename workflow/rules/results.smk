rule runs_table:
    """Every run of the fine-tuning grid: parameters, status, MIoU, per-class IoU, wall
    time, device, GPU-hours, difference to the from-scratch run."""
    input:
        finetune_targets(),
    output:
        report(
            "results/tables/runs.csv",
            caption="../report/runs.rst",
            category="Tables",
        ),
    log:
        "logs/results/runs_table.log",
    conda:
        "../../envs/sarssl.yaml"
    resources:
        **SITE_RESOURCES,
        mem_mb=2000,
        runtime=10,
    params:
        runs=finetune_runs(),
    script:
        "../scripts/runs_table.py"


rule table1:
    """The paper's Table 1 for one pre-training: MIoU by initialisation (rows) and encoding
    x fraction (columns)."""
    input:
        lambda wildcards: metrics_files(runs_of(wildcards.pretrain, TABLE1_MODELS)),
    output:
        csv=report(
            "results/tables/table1_{pretrain}.csv",
            caption="../report/table1.rst",
            category="Tables",
        ),
        md=report(
            "results/tables/table1_{pretrain}.md",
            caption="../report/table1.rst",
            category="Tables",
        ),
    log:
        "logs/results/table1_{pretrain}.log",
    conda:
        "../../envs/sarssl.yaml"
    resources:
        **SITE_RESOURCES,
        mem_mb=2000,
        runtime=10,
    params:
        runs=lambda wildcards: runs_of(wildcards.pretrain, TABLE1_MODELS),
        fractions=FINETUNE["fractions"],
    script:
        "../scripts/table.py"


rule si_table2:
    """SI Table 2: U-Net on S1GRD only against U-Net on S1GRD + attention maps."""
    input:
        lambda wildcards: metrics_files(runs_of(wildcards.pretrain, SI_MODELS)),
    output:
        csv=report(
            "results/tables/si_table2_{pretrain}.csv",
            caption="../report/si_table2.rst",
            category="Tables",
        ),
        md=report(
            "results/tables/si_table2_{pretrain}.md",
            caption="../report/si_table2.rst",
            category="Tables",
        ),
    log:
        "logs/results/si_table2_{pretrain}.log",
    conda:
        "../../envs/sarssl.yaml"
    resources:
        **SITE_RESOURCES,
        mem_mb=2000,
        runtime=10,
    params:
        runs=lambda wildcards: runs_of(wildcards.pretrain, SI_MODELS),
        fractions=FINETUNE["fractions"],
    script:
        "../scripts/table.py"


rule emergent_segmentation:
    """How well each attention head separates the land-cover classes of the test split
    (NMI, AUC), against a randomly initialised ViT of the same architecture."""
    input:
        maps=lambda wildcards: (
            f"results/pretrain/{wildcards.pretrain}/attention/"
            f"{evaluation_aoi(wildcards.pretrain)}.zarr/zarr.json"
        ),
        checkpoint="results/pretrain/{pretrain}/checkpoint.pt",
        stats=lambda wildcards: f"results/{evaluation_aoi(wildcards.pretrain)}/stats.json",
    output:
        csv=report(
            "results/tables/emergent_{pretrain}.csv",
            caption="../report/emergent.rst",
            category="Emergent segmentation",
        ),
        md=report(
            "results/tables/emergent_{pretrain}.md",
            caption="../report/emergent.rst",
            category="Emergent segmentation",
        ),
        figure=report(
            "results/figures/emergent_{pretrain}.png",
            caption="../report/emergent.rst",
            category="Emergent segmentation",
        ),
    log:
        "logs/results/emergent_{pretrain}.log",
    benchmark:
        "benchmarks/runs/results/emergent_{pretrain}.tsv"
    conda:
        "../../envs/sarssl.yaml"
    threads: ATTENTION["threads"]
    resources:
        **(GPU_SITE_RESOURCES if ATTENTION["gpu"] else SITE_RESOURCES),
        gpu=int(ATTENTION["gpu"]),
        mem_mb=ATTENTION["mem_mb"],
        runtime=ATTENTION["runtime"],
    params:
        max_tiles=ATTENTION["emergent_tiles"],
    script:
        "../scripts/emergent_segmentation.py"


rule figure_heads_landcover:
    """As the paper's Figure 5: attention heads beside the land cover of test tiles."""
    input:
        maps=lambda wildcards: (
            f"results/pretrain/{wildcards.pretrain}/attention/"
            f"{evaluation_aoi(wildcards.pretrain)}.zarr/zarr.json"
        ),
        stats=lambda wildcards: f"results/{evaluation_aoi(wildcards.pretrain)}/stats.json",
    output:
        report(
            "results/figures/heads_landcover_{pretrain}.png",
            caption="../report/heads_landcover.rst",
            category="Figures",
        ),
    log:
        "logs/results/heads_landcover_{pretrain}.log",
    conda:
        "../../envs/sarssl.yaml"
    resources:
        **SITE_RESOURCES,
        mem_mb=4000,
        runtime=10,
    params:
        tiles=FINETUNE["prediction_tiles"],
    script:
        "../scripts/figure_heads_landcover.py"


rule figure_attention_predictions:
    """As the paper's Figure 2: SAR input, attention heads, the predictions of both
    attention U-Nets and the ground truth for the first test tiles."""
    input:
        unpack(figure2_runs),
        maps=lambda wildcards: (
            f"results/pretrain/{wildcards.pretrain}/attention/{FINETUNE['aoi']}.zarr/zarr.json"
        ),
        stats=f"results/{FINETUNE['aoi']}/stats.json",
    output:
        report(
            "results/figures/attention_predictions_{pretrain}.png",
            caption="../report/attention_predictions.rst",
            category="Figures",
        ),
    log:
        "logs/results/attention_predictions_{pretrain}.log",
    conda:
        "../../envs/sarssl.yaml"
    resources:
        **SITE_RESOURCES,
        mem_mb=4000,
        runtime=10,
    script:
        "../scripts/figure_attention_predictions.py"


rule figure_training_curves:
    """Pre-training loss and teacher entropy; validation MIoU of the fine-tuning runs."""
    input:
        pretrain="results/pretrain/{pretrain}/metrics.csv",
        runs=lambda wildcards: metrics_files(
            runs_of(wildcards.pretrain, TABLE1_MODELS + SI_MODELS)
        ),
    output:
        report(
            "results/figures/training_curves_{pretrain}.png",
            caption="../report/training_curves.rst",
            category="Figures",
        ),
    log:
        "logs/results/training_curves_{pretrain}.log",
    conda:
        "../../envs/sarssl.yaml"
    resources:
        **SITE_RESOURCES,
        mem_mb=2000,
        runtime=10,
    script:
        "../scripts/figure_training_curves.py"
