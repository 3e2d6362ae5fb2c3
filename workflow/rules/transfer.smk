include: "common/transfer.smk"


rule sen1floods11_crops:
    """The Sen1Floods11 chip kept in the repository (transfer.chip, with its hand label) cut
    into crops of transfer.crop_px in the dataset's layout, with its split files: bands of
    columns, west to east, train, val and test."""
    input:
        image=CONFIG.transfer_chip()[0],
        label=CONFIG.transfer_chip()[1],
    output:
        directory(paths.TRANSFER_CROPS),
    log:
        paths.job_log("transfer/sen1floods11_crops"),
    conda:
        "../../envs/sarssl.yaml"
    resources:
        **SITE_RESOURCES,
        mem_mb=2000,
        runtime=10,
    params:
        crop_px=CONFIG.transfer_crop_px,
    script:
        "../scripts/sen1floods11_crops.py"


rule transfer:
    """The transfer benchmark of a pre-training's export: on a public Sentinel-1 task in its
    layout (transfer.task: Sen1Floods11 or DFC2020-S1; transfer.data, else the crops), the
    grid's decoders with the ViT frozen and fine-tuned and the U-Net from scratch on the same
    input, per fraction and seed; MIoU (and water IoU) with chip-bootstrap 95 % intervals and
    the paired gain over the U-Net."""
    input:
        unpack(transfer_inputs),
    output:
        **table(paths.TRANSFER_TABLE, "../report/transfer.rst"),
    log:
        paths.job_log("transfer/{pretrain}"),
    benchmark:
        paths.job_benchmark("transfer/{pretrain}")
    conda:
        "../../envs/sarssl.yaml"
    threads: CONFIG.job("transfer").threads
    resources:
        **resources(CONFIG.job("transfer")),
    params:
        weights=lambda wildcards: transfer_export(wildcards.pretrain),
        data=CONFIG.transfer_data(),
        runs=lambda wildcards: paths.path(
            paths.TRANSFER_RUNS, pretrain=wildcards.pretrain
        ),
        settings=CONFIG.transfer_runs_section(),
    script:
        "../scripts/transfer.py"
