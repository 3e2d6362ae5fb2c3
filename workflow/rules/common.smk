import os

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
