rule finetune:
    """One run of the fine-tuning grid: {model} with its ViT initialised by {init}
    (scratch, frozen, finetuned) from pre-training {pretrain}, trained on {fraction} % of
    the fine-tuning AOI's labelled train tiles with seed {seed} (the subset, initialisation
    and data order); best epoch on validation MIoU; MIoU, per-class IoU and confusion
    matrix over the whole test split."""
    input:
        unpack(finetune_inputs),
    output:
        metrics=paths.FINETUNE_METRICS,
        config=paths.FINETUNE_CONFIG,
        predictions=paths.FINETUNE_PREDICTIONS,
        model=paths.FINETUNE_MODEL,
    log:
        paths.FINETUNE_LOG,
    benchmark:
        paths.FINETUNE_BENCHMARK
    wildcard_constraints:
        seed=r"\d+",
    conda:
        "../../envs/sarssl.yaml"
    threads: CONFIG.job("finetune").threads
    resources:
        **resources(CONFIG.job("finetune"), gpus=finetune_gpus),
    params:
        # Plain values, not the dataclass (which Snakemake cannot record): a run reruns when
        # its settings change, and only then.
        settings=lambda wildcards: finetune_settings(wildcards).as_dict(),
    script:
        "../scripts/finetune.py"
