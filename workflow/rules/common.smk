import os

from sarssl import paths
from sarssl.errors import ConfigError
from sarssl.settings.config import Config, JobResources

# The config, checked (renamed keys, the schema, which fills the defaults, then what holds
# between keys; every problem a ConfigError naming the key): every translation of it into
# files and settings is a method of CONFIG (sarssl.settings.config.Config).
CONFIG = Config.checked(config, workflow.source_path("../../config/schema.yaml"))

AOIS = CONFIG.aoi_names
PRETRAIN = CONFIG.pretrain_names


wildcard_constraints:
    aoi="[a-z0-9]+",
    shard=r"\d+",
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
# Rules on the DAG's critical path run first among the jobs that are ready (default 0).
CRITICAL_PATH_PRIORITY = 10
# GPU rules go to a GPU partition (and GPU model) when the site sets one.
GPU_SITE_RESOURCES = SITE_RESOURCES | {
    key: os.environ[var]
    for key, var in (
        ("slurm_partition", "SARSSL_SLURM_GPU_PARTITION"),
        ("gpu_model", "SARSSL_SLURM_GPU_MODEL"),
    )
    if os.environ.get(var)
}
# Jobs whose needs the config does not set: a table, a store's first and last step.
TABLE_JOB = JobResources(threads=1, mem_mb=2000, runtime=10)
STORE_STEP_JOB = JobResources(threads=1, mem_mb=4000, runtime=30)


def resources(job, gpus=None):
    """A job's resources for the scheduler (a JobResources), with the site's: those of a
    GPU partition and model for a job on GPUs. `gpus`, a number or a function of the
    wildcards, replaces the job's own."""
    gpus = job.gpus if gpus is None else gpus
    on_gpu = callable(gpus) or gpus > 0
    return (GPU_SITE_RESOURCES if on_gpu else SITE_RESOURCES) | {
        "mem_mb": job.mem_mb,
        "runtime": job.runtime,
        **({"gpu": gpus} if on_gpu else {}),
    }


def store(aoi):
    """The Zarr store of an AOI (a folder: rules track STORE_METADATA)."""
    return CONFIG.store(aoi)


def stats(aoi):
    return CONFIG.stats(aoi)


# Each stage's helpers (lint keeps them apart from the rules).
include: "common/grid.smk"
include: "common/source.smk"
include: "common/dataset.smk"
include: "common/pretrain.smk"
include: "common/finetune.smk"
include: "common/results.smk"
include: "common/maps.smk"
