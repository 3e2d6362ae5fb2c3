import os
from pathlib import Path

from snakemake.utils import validate

from sarssl.bands import aoi_datasets
from sarssl.grid import tiles_file_name

validate(config, schema="../../config/schema.yaml")

DATA = config["data"]
GEE = config["gee"]
SPLIT = config["split"]
AOI_CONFIG = {aoi["name"]: aoi for aoi in config["aois"]}
AOIS = list(AOI_CONFIG)
if len(AOIS) != len(config["aois"]):
    raise ValueError(
        f"config aois: names repeat in {[a['name'] for a in config['aois']]}"
    )

if abs(sum(SPLIT["fractions"].values()) - 1.0) > 1e-3:
    raise ValueError(
        f"config split.fractions must add up to 1, got {SPLIT['fractions']}"
    )


wildcard_constraints:
    aoi="[a-z0-9]+",
    shard=r"\d+",
    source="synthetic|gee|geetiles_dir",
    pretrain="[a-z0-9-]+",
    fraction=r"[0-9]+(\.[0-9]+)?(e-?[0-9]+)?",


# Cluster site settings from the environment (see slurm/config.yaml), added to every rule's
# resources: no code or config edit per site.
SITE_RESOURCES = {
    key: os.environ[var]
    for key, var in (
        ("slurm_partition", "SARSSL_SLURM_PARTITION"),
        ("slurm_account", "SARSSL_SLURM_ACCOUNT"),
    )
    if os.environ.get(var)
}

# The Zarr store of an AOI is the folder of this file (its root metadata).
STORE = "results/{aoi}/dataset.zarr/zarr.json"


def aoi_config(aoi):
    return AOI_CONFIG[aoi]


def n_shards(aoi):
    return aoi_config(aoi)["n_shards"]


def chip_size_m():
    return DATA["tile_px"] * DATA["pixel_m"]


def tiles_file(wildcards):
    """The geetiles tiles file of an AOI: ours, or the user's for a geetiles_dir source."""
    aoi = aoi_config(wildcards.aoi)
    if aoi["source"] == "geetiles_dir":
        return aoi["tiles_file"]
    return f"results/{wildcards.aoi}/tiles/{tiles_file_name(wildcards.aoi)}"


def datasets(wildcards):
    """geetiles dataset folder names of the S1 and label GeoTIFFs."""
    return aoi_datasets(aoi_config(wildcards.aoi), DATA["year"])


def manifest(wildcards):
    source = aoi_config(wildcards.aoi)["source"]
    return f"results/{wildcards.aoi}/source/{source}/shard{wildcards.shard}.csv"


def shard_reports(wildcards):
    return expand(
        "results/{aoi}/build/shard{shard}.csv",
        aoi=wildcards.aoi,
        shard=range(n_shards(wildcards.aoi)),
    )


def dataset_targets():
    return expand(
        [
            "results/{aoi}/stats.json",
            "results/{aoi}/rejected_tiles.csv",
            "results/{aoi}/splits.csv",
        ],
        aoi=AOIS,
    )


def gee_request_summary(wildcards):
    from sarssl.gee import export_requests, request_summary

    requests = export_requests(
        DATA["year"], GEE["orbit_pass"], GEE["composite"], datasets(wildcards)
    )
    return request_summary(requests, DATA["tile_px"])


# --- Pre-training -------------------------------------------------------------------------

PRETRAIN = {run["name"]: run for run in config["pretrain"]}
ATTENTION = config["attention"]
# GPU rules go to a GPU partition (and GPU model) when the site sets one.
GPU_SITE_RESOURCES = SITE_RESOURCES | {
    key: os.environ[var]
    for key, var in (
        ("slurm_partition", "SARSSL_SLURM_GPU_PARTITION"),
        ("gpu_model", "SARSSL_SLURM_GPU_MODEL"),
    )
    if os.environ.get(var)
}


def store_path(aoi):
    return f"results/{aoi}/dataset.zarr"


def pretrain_settings(name):
    """The settings of a pretrain run: the shared dino section with the run's overrides."""
    from sarssl.pretrain import PretrainSettings, settings_from_config

    run = PRETRAIN[name]
    unknown = [aoi for aoi in run["aois"] if aoi not in AOI_CONFIG]
    if unknown:
        raise ValueError(
            f"config pretrain {name}: aois {unknown} are not in config aois {AOIS}"
        )
    return settings_from_config(
        run, config["dino"], [store_path(aoi) for aoi in run["aois"]], DATA["tile_px"]
    )


for _name in PRETRAIN:  # invalid settings fail when the DAG is built, naming the run
    pretrain_settings(_name)


def pretrain_stats(wildcards):
    return expand("results/{aoi}/stats.json", aoi=PRETRAIN[wildcards.pretrain]["aois"])


def pretrain_resource(key):
    return lambda wildcards: PRETRAIN[wildcards.pretrain][key]


def pretrain_targets():
    return [
        path
        for name, run in PRETRAIN.items()
        for path in [f"results/pretrain/{name}/checkpoint.pt"]
        + expand(
            "results/pretrain/{pretrain}/attention/{aoi}.zarr/zarr.json",
            pretrain=name,
            aoi=run["aois"],
        )
    ]


# --- Fine-tuning --------------------------------------------------------------------------

FINETUNE = config["finetune"]


def check_finetune_config():
    named = FINETUNE["pretrain"] + [p for p in [FINETUNE["unet_baselines"]] if p]
    if not named:
        return
    if FINETUNE["aoi"] not in AOI_CONFIG:
        raise ValueError(
            f"config finetune.aoi: {FINETUNE['aoi']!r} is not in config aois {AOIS}"
        )
    unknown = [name for name in named if name not in PRETRAIN]
    if unknown:
        raise ValueError(
            f"config finetune: pretrain runs {unknown} are not in config pretrain "
            f"{list(PRETRAIN)}"
        )


check_finetune_config()


def finetune_runs():
    """(pretrain, model, init, fraction) of every run of the grid in the config."""
    from sarssl.finetune import grid_runs

    return grid_runs(FINETUNE)


def finetune_targets():
    return metrics_files(finetune_runs())


def finetune_settings(wildcards):
    """The run's settings; an unknown model, initialisation or pre-training fails here,
    when the DAG is built, naming the value."""
    from sarssl.finetune import settings_from_config

    if wildcards.pretrain not in PRETRAIN:
        raise ValueError(
            f"finetune: no pre-training run {wildcards.pretrain!r} in config pretrain "
            f"{list(PRETRAIN)}"
        )
    if FINETUNE["aoi"] is None:
        raise ValueError("config finetune.aoi is not set")
    model, init, pretrain = wildcards.model, wildcards.init, wildcards.pretrain
    check_fraction(float(wildcards.fraction))
    aoi = FINETUNE["aoi"]
    return settings_from_config(
        FINETUNE,
        pretrain,
        model,
        init,
        float(wildcards.fraction),
        store=store_path(aoi),
        pretrain_checkpoint=f"results/pretrain/{pretrain}/checkpoint.pt",
        attention_maps=f"results/pretrain/{pretrain}/attention/{aoi}.zarr",
        backbone=ATTENTION["backbone"],
    )


def check_fraction(percent):
    """A fraction with less than one tile fails now if the AOI's store is built (else
    when the run starts)."""
    import json

    from sarssl.finetune import subset_size

    stats = Path(f"results/{FINETUNE['aoi']}/stats.json")
    if stats.is_file():
        subset_size(percent, json.loads(stats.read_text())["tiles"]["train"]["valid"])


def finetune_inputs(wildcards):
    settings = finetune_settings(wildcards)
    inputs = {"stats": f"results/{FINETUNE['aoi']}/stats.json"}
    if settings.checkpoint:
        inputs["checkpoint"] = settings.checkpoint
    if settings.attention_store:
        inputs["maps"] = f"{settings.attention_store}/zarr.json"
    return inputs


def finetune_gpu(wildcards):
    from sarssl.finetune import runs_vit

    return 1 if runs_vit(wildcards.model, wildcards.init) else int(FINETUNE["unet_gpu"])


# --- Results ------------------------------------------------------------------------------


def evaluation_aoi(pretrain):
    """Where a backbone's attention is shown and scored: the fine-tuning AOI, else the
    first AOI it was pre-trained on."""
    return FINETUNE["aoi"] or PRETRAIN[pretrain]["aois"][0]


def runs_of(pretrain, models):
    return [run for run in finetune_runs() if run[0] == pretrain and run[1] in models]


def run_file(run, name):
    """A file of one run's folder: results/finetune/{pretrain}/{model}/{init}/frac{f}/."""
    from sarssl.finetune import run_folder

    return (run_folder("results", *run) / name).as_posix()


def metrics_files(runs):
    return [run_file(run, "metrics.json") for run in runs]


TABLE1_MODELS = ("attention-unet", "tokens-decoder")
SI_MODELS = ("s1grd-unet", "s1grd-attention-unet")


def figure2_runs(wildcards):
    """Example predictions of the attention-only and S1GRD + attention U-Nets: the largest
    fraction, pre-trained frozen backbone if in the grid."""
    init = "frozen" if "frozen" in FINETUNE["inits"] else FINETUNE["inits"][0]
    fraction = max(FINETUNE["fractions"])
    return {
        key: run_file((wildcards.pretrain, model, init, fraction), "predictions.npz")
        for key, model in (
            ("attention", "attention-unet"),
            ("s1grd", "s1grd-attention-unet"),
        )
    }


def results_targets():
    targets = [f"results/tables/emergent_{name}.md" for name in PRETRAIN] + [
        f"results/figures/heads_landcover_{name}.png" for name in PRETRAIN
    ]
    targets += [f"results/figures/training_curves_{name}.png" for name in PRETRAIN]
    if finetune_runs():
        targets.append("results/tables/runs.csv")
    targets += [f"results/tables/table1_{name}.md" for name in FINETUNE["pretrain"]]
    baseline = FINETUNE["unet_baselines"]
    if baseline:
        targets.append(f"results/tables/si_table2_{baseline}.md")
        if baseline in FINETUNE["pretrain"] and "attention" in FINETUNE["encodings"]:
            targets.append(f"results/figures/attention_predictions_{baseline}.png")
    return targets
