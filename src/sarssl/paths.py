"""Every path the pipeline writes, named once. The rules use these patterns as they are
(their `{...}` are Snakemake's wildcards) or partly filled; the library and the command line
fill them with `path` (relative to the working directory, as the rules) or `under` (below
another results folder)."""

from pathlib import Path

RESULTS = "results"
LOGS = "logs"
JOB_BENCHMARKS = "benchmarks/runs"

# Data, per AOI. geetiles names a grid `{aoi}_partitions_aschips_{hash}.geojson`; the
# pipeline drops the hash so that the path is known before the grid exists.
TILES_NAME = "{aoi}_partitions_aschips.geojson"
# The AOI's whole grid and its geographic split; TILES and SPLITS are the tiles kept of it
# (all of them unless the AOI sets max_tiles): those the sources export and the store holds.
GRID = "results/{aoi}/grid/" + TILES_NAME
GRID_SPLITS = "results/{aoi}/grid/splits.csv"
TILES = "results/{aoi}/tiles/" + TILES_NAME
SPLITS = "results/{aoi}/splits.csv"
SOURCE_MANIFEST = "results/{aoi}/source/{source}/shard{shard}.csv"
GEE_SUMMARY = "results/{aoi}/source/gee/shard{shard}.summary.json"
STORE = "results/{aoi}/dataset.zarr"
# A Zarr store is a folder: rules track a metadata file in it. For the data store, that of
# the tile coordinate, written once at init: finalising rewrites the root's zarr.json (the
# consolidated metadata), which must not make the shards look out of date.
STORE_METADATA = STORE + "/tile/zarr.json"
BUILD_REPORT = "results/{aoi}/build/shard{shard}.csv"
REJECTED = "results/{aoi}/rejected_tiles.csv"
STATS = "results/{aoi}/stats.json"

# Pre-training, per run.
PRETRAIN = "results/pretrain/{pretrain}"
CHECKPOINT = PRETRAIN + "/checkpoint.pt"
PRETRAIN_METRICS = PRETRAIN + "/metrics.csv"
PRETRAIN_COLLAPSE = PRETRAIN + "/collapse.json"  # the collapse verdict (sarssl.training.utils)
RUN = PRETRAIN + "/run"  # resumable run state, outside the declared outputs
ATTENTION = PRETRAIN + "/attention/{aoi}.zarr"
ATTENTION_METADATA = ATTENTION + "/zarr.json"
ATTENTION_GEOTIFFS = PRETRAIN + "/attention/{aoi}_geotiff"
EXPORT = PRETRAIN + "/export"
# The files of an export folder (sarssl.outputs.export_format), timm's names; any folder of
# them can be a pretrain entry's `weights`.
WEIGHTS_NAME = "model.safetensors"
CONFIG_NAME = "config.json"
CARD_NAME = "README.md"
EXPORT_WEIGHTS = EXPORT + "/" + WEIGHTS_NAME
EXPORT_CONFIG = EXPORT + "/" + CONFIG_NAME
EXPORT_CARD = EXPORT + "/" + CARD_NAME

# Fine-tuning, per run: one folder per model, initialisation, fraction and seed.
FINETUNE_NAME = "{pretrain}/{model}/{init}/frac{fraction}/seed{seed}"
FINETUNE_RUN = "results/finetune/" + FINETUNE_NAME
# The files of a fine-tuning run's folder (a run of the grid, or the context check's): the
# model is the best epoch's state dict, from which the maps predict every tile.
RUN_FILES = ("/metrics.json", "/config.json", "/predictions.npz", "/train.log", "/model.pt")
FINETUNE_METRICS, FINETUNE_CONFIG, FINETUNE_PREDICTIONS, FINETUNE_LOG, FINETUNE_MODEL = (
    FINETUNE_RUN + name for name in RUN_FILES
)
FINETUNE_BENCHMARK = JOB_BENCHMARKS + "/finetune/" + FINETUNE_NAME + ".tsv"

# The context check of an AOI's data (realism): a U-Net on the S1GRD channels of its train
# tiles, beside the per-pixel classifiers of the separability table.
CONTEXT_RUN = "results/realism/{aoi}/context_unet"
CONTEXT_METRICS, CONTEXT_CONFIG, CONTEXT_PREDICTIONS, CONTEXT_LOG, CONTEXT_MODEL = (
    CONTEXT_RUN + name for name in RUN_FILES
)
CONTEXT_BENCHMARK = JOB_BENCHMARKS + "/realism/context_unet_{aoi}.tsv"
# The probe's supervised reference of a pre-training: its ViT from scratch with the tokens
# decoder on the evaluation AOI's labels, a fine-tuning run outside the grid.
SUPERVISED_RUN = PRETRAIN + "/supervised_reference"
SUPERVISED_METRICS, SUPERVISED_CONFIG, SUPERVISED_PREDICTIONS, SUPERVISED_LOG, SUPERVISED_MODEL = (
    SUPERVISED_RUN + name for name in RUN_FILES
)
SUPERVISED_BENCHMARK = JOB_BENCHMARKS + "/results/supervised_reference_{pretrain}.tsv"

# The transfer benchmark (sarssl.transfer): the crops of the kept Sen1Floods11 chip in the
# dataset's layout, and each pre-training's runs.
TRANSFER_CROPS = "results/transfer/sen1floods11_crops"
TRANSFER_RUNS = "results/transfer/{pretrain}"

# Results.
TABLES = "results/tables"
RUNS_TABLE = TABLES + "/runs.csv"
TABLE1 = TABLES + "/table1_{pretrain}.{format}"
SI_TABLE2 = TABLES + "/si_table2_{pretrain}.{format}"
EMERGENT = TABLES + "/emergent_{pretrain}.{format}"
PROBE = TABLES + "/probe_{pretrain}.{format}"
TRANSFER_TABLE = TABLES + "/transfer_{pretrain}.{format}"
FIGURES = "results/figures"
FIGURE = FIGURES + "/{figure}_{pretrain}.png"
# The realism report of an AOI's data (sarssl.outputs.realism).
SEPARABILITY_TABLE = TABLES + "/separability_{aoi}.{format}"
REALISM_FIGURE = FIGURES + "/realism_{aoi}.png"

# Maps (sarssl.maps): each mosaic's shards, COGs on one grid, the VRT that joins them, and
# the offline page that shows them. A mosaic's `{map}` name says what it shows.
MAPS = "results/maps"
MAP_SHARD = MAPS + "/{map}/shard{shard}.tif"
MAP = MAPS + "/{map}.vrt"
MAP_PAGE = MAPS + "/index.html"
MAP_LAYERS = MAPS + "/layers"  # the page's images
MAP_LEAFLET = MAPS + "/leaflet"  # the page's copy of Leaflet
BEST_RUN_MAP = "best_{table}_{pretrain}"  # the table's run of the highest val MIoU
RUN_MAP = "run_{pretrain}_{model}_{init}_frac{fraction}_seed{seed}"
ATTENTION_MAP = "attention_{pretrain}_{aoi}"
STORE_MAP = "{layer}_{aoi}"  # the store's labels or S1 quicklook
STORE_MAP_LAYERS = ("labels", "s1")


def job_log(job: str) -> str:
    """The log of a rule's job; `job` names it with its wildcards ("{aoi}/tile_grid")."""
    return f"{LOGS}/{job}.log"


def job_benchmark(job: str) -> str:
    """The benchmark (time, memory) of a rule's job, named as its log."""
    return f"{JOB_BENCHMARKS}/{job}.tsv"


class _Unfilled(dict):
    def __missing__(self, key: str) -> str:
        return "{" + key + "}"


def path(pattern: str, **wildcards) -> str:
    """`pattern` with the given wildcards filled (the others stay wildcards), relative to
    the working directory."""
    return pattern.format_map(_Unfilled(wildcards))


def under(root: str | Path, pattern: str, **wildcards) -> Path:
    """`pattern` filled, below the results folder `root` instead of `results`."""
    return Path(root) / Path(path(pattern, **wildcards)).relative_to(RESULTS)
