include: "common/realism.smk"


rule realism:
    """How separable an AOI's land-cover classes are without spatial context (per-pixel and
    per-patch-mean classifiers, the realism check of the synthetic source), and its
    backscatter against a real Sentinel-1 chip."""
    input:
        stats=paths.STATS,
        reference=realism_reference,
    output:
        **table(SEPARABILITY_TABLE, "../report/realism.rst"),
        figure=report(
            REALISM_FIGURE, caption="../report/realism.rst", category="Figures"
        ),
    log:
        "logs/results/realism_{aoi}.log",
    benchmark:
        "benchmarks/runs/results/realism_{aoi}.tsv"
    conda:
        "../../envs/sarssl.yaml"
    threads: REALISM["threads"]
    resources:
        **SITE_RESOURCES,
        mem_mb=REALISM["mem_mb"],
        runtime=REALISM["runtime"],
    params:
        store=lambda wildcards: store(wildcards.aoi),
        reference=REALISM["reference_s1"],
        settings=separability_settings(),
        tiles=REALISM["tiles"],
        boxcar_px=REALISM["boxcar_px"],
    script:
        "../scripts/separability.py"
