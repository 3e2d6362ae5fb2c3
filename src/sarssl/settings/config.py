"""A configuration: its checks beyond the schema (config/schema.yaml: renamed keys, what
holds between keys; every problem a ConfigError naming the key), and the one object that
translates it into files and settings (Config). Torch-free, so that the Snakefile is read
quickly."""

import json
from collections.abc import Mapping
from dataclasses import dataclass, fields
from pathlib import Path

import yaml

from .. import paths
from ..dataset.bands import aoi_datasets
from ..dataset.sen1floods11 import IMAGE_SUFFIX, LABEL_SUFFIX, SEN1FLOODS11
from ..errors import ConfigError
from .finetune import (
    SI_TABLE2_MODELS,
    TABLE1_MODELS,
    FinetuneSettings,
    Init,
    Model,
    Run,
    context_settings,
    grid_runs,
    grid_seeds,
    run_wildcards,
    runs_vit,
    subset_size,
    supervised_settings,
)
from .finetune import settings_from_config as finetune_settings
from .pretrain import PretrainSettings
from .pretrain import settings_from_config as pretrain_settings
from .probe import ProbeSettings, probe_settings
from .separability import SeparabilitySettings
from .transfer import SECTION_DEFAULTS, TransferSettings

# Old key -> new key. The schema refuses unknown keys; these get a message naming the new.
RENAMED = {
    ("finetune", "fractions"): "finetune.percents",
    ("finetune", "unet_baselines"): "finetune.unet_baseline",
}


def merge_configs(base: Mapping, overlay: Mapping) -> dict:
    """`overlay` on top of `base` as Snakemake merges several --configfile: mappings merge
    key by key, anything else (lists included) is replaced."""
    merged = dict(base)
    for key, value in overlay.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = merge_configs(merged[key], value)
        else:
            merged[key] = value
    return merged


def refuse_renamed(config: Mapping) -> None:
    """Before the schema: an old key fails naming its new name."""
    for (section, key), new in RENAMED.items():
        if key in (config.get(section) or {}):
            raise ConfigError(f"config {section}.{key} is now {new}: rename it")


def check(config: Mapping) -> None:
    """What holds between keys of a config the schema has validated (defaults filled)."""
    names = [aoi["name"] for aoi in config["aois"]]
    if len(set(names)) != len(names):
        raise ConfigError(f"config aois: names repeat in {names}")
    fractions = config["split"]["fractions"]
    if abs(sum(fractions.values()) - 1.0) > 1e-3:
        raise ConfigError(f"config split.fractions must add up to 1, got {dict(fractions)}")
    runs = [run["name"] for run in config["pretrain"]]
    if len(set(runs)) != len(runs):
        raise ConfigError(f"config pretrain: names repeat in {runs}")
    for run in config["pretrain"]:
        unknown = [aoi for aoi in run["aois"] if aoi not in names]
        if unknown:
            raise ConfigError(
                f"config pretrain {run['name']}: aois {unknown} are not in config aois {names}"
            )
        if "weights" in run:
            given = [key for key in ("architecture", "epochs", "batch_size") if key in run]
            if given:
                raise ConfigError(
                    f"config pretrain {run['name']}: weights names an export folder, whose "
                    f"config.json says what it is; remove {given}"
                )
            continue
        processes = run["nodes"] * run["gpus"]
        if run["batch_size"] % processes:
            raise ConfigError(
                f"config pretrain {run['name']}: batch_size {run['batch_size']} is global and "
                f"must be a multiple of nodes x gpus = {processes}"
            )
    reference = config["probe"].get("supervised_reference") or {}
    unknown = [name for name in reference.get("pretrain", []) if name not in runs]
    if unknown:
        raise ConfigError(
            f"config probe.supervised_reference.pretrain: {unknown} are not in config "
            f"pretrain {runs}"
        )
    unknown = [name for name in config["transfer"]["pretrain"] if name not in runs]
    if unknown:
        raise ConfigError(f"config transfer.pretrain: {unknown} are not in config pretrain {runs}")
    transfer = config["transfer"]
    if transfer["pretrain"] and not transfer["data"] and transfer["task"] != SEN1FLOODS11.name:
        raise ConfigError(
            f"config transfer.data: task {transfer['task']} needs a folder in its layout (the "
            f"crops of transfer.chip, used without one, are {SEN1FLOODS11.name}'s)"
        )
    finetune = config["finetune"]
    named = finetune["pretrain"] + [p for p in [finetune["unet_baseline"]] if p]
    if not named:
        return
    if finetune["aoi"] not in names:
        raise ConfigError(f"config finetune.aoi: {finetune['aoi']!r} is not in config aois {names}")
    unknown = [name for name in named if name not in runs]
    if unknown:
        raise ConfigError(
            f"config finetune: pretrain runs {unknown} are not in config pretrain {runs}"
        )


@dataclass(frozen=True)
class JobResources:
    """What one job asks of the machine or the cluster: cores, memory in MB, wall time in
    minutes, GPUs (per node) and nodes."""

    threads: int
    mem_mb: int
    runtime: int
    gpus: int = 0
    nodes: int = 1


# Sections whose jobs' cores, memory and wall time the config sets, and the key, if any, that
# puts the job on a GPU.
JOB_SECTIONS = {
    "attention": "gpu",
    "probe": "gpu",
    "finetune": None,  # a run's GPU depends on its model: Config.finetune_gpus
    "realism": None,
    "maps": None,
    "transfer": "gpu",
}


@dataclass(frozen=True)
class AttentionSettings:
    """The attention section's settings of the attention maps and emergent segmentation."""

    backbone: str  # which network of a checkpoint: student or teacher
    geotiff_tiles: int  # tiles written as georeferenced GeoTIFFs besides the Zarr store
    emergent_tiles: int  # tiles of the emergent segmentation table


class Config:
    """A checked config and every translation of it into what the code takes: the AOIs'
    files and Earth Engine requests, and the settings of each job. The workflow and the
    command line read a config only through this object, so each key is translated in one
    place. Paths are below the results folder `results`, as the rules write them."""

    def __init__(self, values: Mapping, results: str | Path = paths.RESULTS):
        self.values = values
        self.results = Path(results)

    @classmethod
    def validated(
        cls, values: dict, schema: str | Path, results: str | Path = paths.RESULTS
    ) -> "Config":
        """`values` after renamed keys and the schema (which fills the defaults in place,
        as Snakemake's config sees them)."""
        from snakemake.utils import validate

        refuse_renamed(values)
        validate(values, str(schema))
        return cls(values, results)

    @classmethod
    def checked(
        cls, values: dict, schema: str | Path, results: str | Path = paths.RESULTS
    ) -> "Config":
        """`values` validated, then what holds between keys (the workflow's whole DAG).
        Every problem is a ConfigError naming the key."""
        config = cls.validated(values, schema, results)
        check(values)
        return config

    @classmethod
    def read(
        cls, configfiles: list[Path], schema: str | Path, results: str | Path = paths.RESULTS
    ) -> "Config":
        """The config files merged in order, as Snakemake merges several --configfile, and
        validated: a command reads the sections it needs (`sarssl tables` the finetune
        section alone)."""
        values: dict = {}
        for path in configfiles:
            values = merge_configs(values, yaml.safe_load(Path(path).read_text()))
        return cls.validated(values, schema, results)

    def under(self, pattern: str, **wildcards) -> str:
        """A `sarssl.paths` pattern below this config's results folder."""
        return paths.under(self.results, pattern, **wildcards).as_posix()

    # The data.
    @property
    def data(self) -> Mapping:
        return self.values["data"]

    @property
    def tile_px(self) -> int:
        return self.data["tile_px"]

    @property
    def store_dtype(self) -> str:
        return self.data["store_dtype"]

    def tile_checks(self) -> dict:
        """What makes a tile bad, and what a bad tile does to the build."""
        keys = ("max_nodata_fraction", "max_season_nodata_fraction", "bad_tile_policy")
        return {key: self.data[key] for key in keys}

    @property
    def split(self) -> dict:
        """The geographic split: bands, their angle, the split's fractions and its seed."""
        return dict(self.values["split"])

    def split_bands(self) -> dict:
        """geetiles' geographic bands: their number, angle and the split's fractions."""
        return {key: self.split[key] for key in ("nbands", "angle", "fractions")}

    @property
    def split_seed(self) -> int:
        """The seed of the sample of an AOI's tiles (max_tiles)."""
        return self.split["seed"]

    @property
    def synthetic_seed(self) -> int:
        return self.values["synthetic"]["seed"]

    @property
    def year(self) -> int:
        return self.data["year"]

    @property
    def gee_concurrency(self) -> int:
        """Earth Engine requests in flight at once, over all export jobs."""
        return self.values["gee"]["concurrency"]

    @property
    def gee(self) -> dict:
        """The Earth Engine export's section (sarssl.dataset.gee reads it)."""
        return dict(self.values["gee"])

    @property
    def aoi_names(self) -> list[str]:
        return [aoi["name"] for aoi in self.values["aois"]]

    def aoi(self, name: str) -> Mapping:
        for aoi in self.values["aois"]:
            if aoi["name"] == name:
                return aoi
        raise ConfigError(f"no AOI named {name!r} in the config; AOIs: {self.aoi_names}")

    def source(self, aoi: str) -> str:
        return self.aoi(aoi)["source"]

    def aoi_wkt(self, aoi: str) -> str:
        return self.aoi(aoi)["wkt"]

    def s1_format(self, aoi: str) -> str:
        """How the AOI's S1 GeoTIFFs lay out their bands (sarssl.dataset.s1layout)."""
        return self.aoi(aoi)["s1_format"]

    def orbit_pass(self, aoi: str) -> str:
        return self.aoi(aoi)["orbit_pass"]

    def n_shards(self, aoi: str) -> int:
        return self.aoi(aoi)["n_shards"]

    def max_tiles(self, aoi: str) -> int | None:
        return self.aoi(aoi)["max_tiles"]

    def chip_size_m(self) -> float:
        """The side of a tile on the ground."""
        return self.data["tile_px"] * self.data["pixel_m"]

    def grid_file(self, aoi: str) -> str:
        """The AOI's whole grid (a geetiles tiles file): ours, or the user's for a
        geetiles_dir source."""
        entry = self.aoi(aoi)
        if entry["source"] == "geetiles_dir":
            return entry["tiles_file"]
        return self.under(paths.GRID, aoi=aoi)

    def store(self, aoi: str) -> str:
        return self.under(paths.STORE, aoi=aoi)

    def stats(self, aoi: str) -> str:
        return self.under(paths.STATS, aoi=aoi)

    def store_record(self, aoi: str) -> dict:
        """What the AOI's store records of where its data came from (init_store), so that
        its readers (sarssl.dataset.storeinfo.StoreInfo) never ask the config: the AOI,
        year and pixel size, the source, and for the gee source the export's orbit pass
        and composite (bands of one pass do not name it)."""
        source = self.aoi(aoi)["source"]
        gee = self.values["gee"]
        return {
            "aoi": aoi,
            "year": self.data["year"],
            "pixel_m": self.data["pixel_m"],
            "source": source,
            "gee_export": (
                {"orbit_pass": gee["orbit_pass"], "composite": gee["composite"]}
                if source == "gee"
                else None
            ),
        }

    def datasets(self, aoi: str) -> dict[str, str]:
        """geetiles dataset folder names of the AOI's S1 and label GeoTIFFs."""
        return aoi_datasets(self.aoi(aoi), self.data["year"])

    def gee_requests(self, aoi: str) -> tuple:
        """What Earth Engine is asked for each tile of the AOI (sarssl.dataset.gee)."""
        from ..dataset.gee import export_requests

        gee = self.values["gee"]
        return export_requests(
            self.data["year"], gee["orbit_pass"], gee["composite"], self.datasets(aoi)
        )

    # What jobs ask of the machine.
    @property
    def data_threads(self) -> int:
        """The cores of the jobs that read and write tiles (source, store shards)."""
        return self.data["threads"]

    def job(self, section: str) -> JobResources:
        """The resources of the jobs of a section (JOB_SECTIONS)."""
        values = self.values[section]
        gpu_key = JOB_SECTIONS[section]
        return JobResources(
            threads=values["threads"],
            mem_mb=values["mem_mb"],
            runtime=values["runtime"],
            gpus=int(values[gpu_key]) if gpu_key else 0,
        )

    def pretrain_job(self, name: str) -> JobResources:
        """A pre-training's resources: `gpus` on each of `nodes` nodes."""
        run = self.pretrain_runs[name]
        keys = ("threads", "mem_mb", "runtime", "gpus", "nodes")
        return JobResources(**{key: run[key] for key in keys})

    def finetune_gpus(self, model: str, init: str) -> int:
        """A fine-tuning run's GPUs: one for a run with a ViT, the config's choice for a
        U-Net alone (finetune.unet_gpu)."""
        return 1 if runs_vit(model, init) else self.unet_gpus

    @property
    def unet_gpus(self) -> int:
        return int(self.finetune_section["unet_gpu"])

    # Pre-training.
    @property
    def pretrain_runs(self) -> dict[str, Mapping]:
        return {run["name"]: run for run in self.values["pretrain"]}

    @property
    def pretrain_names(self) -> list[str]:
        return list(self.pretrain_runs)

    def pretrain_aois(self, name: str) -> list[str]:
        """The AOIs a pre-training reads (an export folder's: those of its evaluation)."""
        return list(self.pretrain_runs[name]["aois"])

    def trained(self, name: str) -> bool:
        """A pretrain entry that trains (not one that names an export folder's `weights`)."""
        return "weights" not in self.pretrain_runs[name]

    def pretrain(self, name: str) -> PretrainSettings:
        """The settings of a pretrain run: the shared dino and probe sections with the run's
        overrides."""
        if not self.trained(name):
            raise ConfigError(f"config pretrain {name} names weights: it has nothing to train")
        run = self.pretrain_runs[name]
        return pretrain_settings(
            run,
            self.values["dino"],
            [self.store(aoi) for aoi in run["aois"]],
            self.data["tile_px"],
            self.values["probe"],
        )

    def backbone(self, name: str) -> str:
        """Where a pre-training's backbone is: its checkpoint, or the export folder it
        names."""
        if self.trained(name):
            return self.under(paths.CHECKPOINT, pretrain=name)
        return self.pretrain_runs[name]["weights"]

    def attention(self) -> AttentionSettings:
        section = self.values["attention"]
        names = [f.name for f in fields(AttentionSettings)]
        return AttentionSettings(**{key: section[key] for key in names})

    @property
    def export_backbone(self) -> str:
        """The network of a checkpoint its export folder holds: teacher or student."""
        return self.values["export"]["backbone"]

    def probe(self) -> ProbeSettings:
        """The knn_probe rule's settings: the probe section, with the dino section's seed."""
        seed = self.values["dino"].get("seed", PretrainSettings.seed)
        return probe_settings(self.values["probe"], seed)

    # Fine-tuning.
    @property
    def finetune_section(self) -> Mapping:
        return self.values["finetune"]

    @property
    def finetune_aoi(self) -> str | None:
        return self.finetune_section["aoi"]

    @property
    def finetune_percents(self) -> list[float]:
        return list(self.finetune_section["percents"])

    def finetune_runs(self) -> list[Run]:
        """Every run of the grid (Table 1 and SI Table 2, each seed)."""
        return grid_runs(self.finetune_section)

    def finetune(self, run: Run) -> FinetuneSettings:
        """The settings of one run of the grid; an unknown model, initialisation or
        pre-training fails naming the value."""
        section = self.finetune_section
        if run.pretrain not in self.pretrain_runs:
            raise ConfigError(
                f"finetune: no pre-training run {run.pretrain!r} in config pretrain "
                f"{list(self.pretrain_runs)}"
            )
        if section["aoi"] is None:
            raise ConfigError("config finetune.aoi is not set")
        aoi = section["aoi"]
        return finetune_settings(
            section,
            run,
            store=self.store(aoi),
            pretrain_checkpoint=self.backbone(run.pretrain),
            attention_maps=self.under(paths.ATTENTION, pretrain=run.pretrain, aoi=aoi),
            backbone=self.values["attention"]["backbone"],
        )

    def check_fraction(self, percent: float) -> None:
        """A fraction with less than one train tile fails now if the fine-tuning AOI's store
        is built (else when the run starts)."""
        built = Path(self.stats(self.finetune_section["aoi"]))
        if built.is_file():
            valid = json.loads(built.read_text())["tiles"]["train"]["valid"]
            subset_size(percent, valid)

    def prediction_tiles(self) -> int:
        """The first valid test tiles whose predictions each run keeps (the figures')."""
        return self.finetune_section.get("prediction_tiles", FinetuneSettings.prediction_tiles)

    def context(self, aoi: str) -> FinetuneSettings | None:
        """The context check's U-Net of an AOI's store (config realism.context_unet), or
        None when the config asks for none."""
        context = self.values["realism"]["context_unet"]
        if not context:
            return None
        return context_settings(self.finetune_section, context, self.store(aoi))

    def supervised_reference(self, pretrain: str) -> FinetuneSettings | None:
        """The probe's supervised reference of a pre-training on its evaluation AOI (config
        probe.supervised_reference), or None when the config asks for none."""
        reference = self.values["probe"].get("supervised_reference")
        if not reference or pretrain not in reference.get("pretrain", [pretrain]):
            return None
        store = self.store(self.evaluation_aoi(pretrain))
        return supervised_settings(
            self.finetune_section, reference, pretrain, store, self.backbone(pretrain)
        )

    # The transfer benchmark.
    def transfer_pretrains(self) -> list[str]:
        """The pre-trainings whose exports the transfer benchmark runs (none: it is off)."""
        return list(self.values["transfer"]["pretrain"])

    @property
    def transfer_crops(self) -> bool:
        """Whether the task is the crops of the kept chip (no transfer.data)."""
        return not self.values["transfer"]["data"]

    @property
    def transfer_crop_px(self) -> int:
        return int(self.values["transfer"]["crop_px"])

    def transfer_data(self) -> str:
        """The task's folder: the config's, else the crops of the kept chip."""
        return self.values["transfer"]["data"] or self.under(paths.TRANSFER_CROPS)

    def transfer_chip(self) -> tuple[str, str]:
        """The chip cut into the crops and its label, named as the layout names it."""
        image = self.values["transfer"]["chip"]
        return image, image.replace(IMAGE_SUFFIX, LABEL_SUFFIX)

    def transfer_runs_section(self) -> dict:
        """The transfer section's keys of the runs and their training (sarssl.transfer)."""
        keys = {*SECTION_DEFAULTS, *(f.name for f in fields(TransferSettings))}
        return {key: value for key, value in self.values["transfer"].items() if key in keys}

    def separability(self) -> SeparabilitySettings:
        """The separability table's settings from the realism section."""
        realism = self.values["realism"]
        names = [f.name for f in fields(SeparabilitySettings)]
        return SeparabilitySettings(**{key: realism[key] for key in names if key in realism})

    def evaluation_aoi(self, pretrain: str) -> str:
        """Where a backbone's attention is shown, scored and mapped: the fine-tuning AOI,
        else the first AOI it was pre-trained on."""
        return self.finetune_aoi or self.pretrain_aois(pretrain)[0]

    # What the tables and figures show.
    def table1_pretrains(self) -> list[str]:
        """The pre-trainings with a Table 1: those the grid fine-tunes."""
        return list(self.finetune_section["pretrain"])

    @property
    def unet_baseline(self) -> str | None:
        """The pre-training of SI Table 2's U-Nets on S1GRD + attention maps, if any."""
        return self.finetune_section["unet_baseline"]

    def shown_seed(self) -> int:
        """The seed of the runs the figures show, one run per cell: the grid's first (that
        of a grid without repeats)."""
        return grid_seeds(self.finetune_section)[0]

    def attention_predictions_pretrain(self) -> str | None:
        """The pre-training whose example predictions are drawn (the figure of the
        attention-only and S1GRD + attention U-Nets): SI Table 2's baseline, when the grid
        also fine-tunes it with attention maps."""
        baseline = self.unet_baseline
        section = self.finetune_section
        if baseline in section["pretrain"] and "attention" in section["encodings"]:
            return baseline
        return None

    def attention_predictions_runs(self, pretrain: str) -> dict[str, Run]:
        """The runs of the example predictions: the attention-only and the S1GRD +
        attention U-Net at the largest fraction, with the pre-trained frozen backbone if the
        grid has it, of the shown seed."""
        inits = self.finetune_section["inits"]
        init = Init.FROZEN if Init.FROZEN in inits else inits[0]
        fraction = max(self.finetune_percents)
        return {
            key: Run(pretrain, model, init, fraction, self.shown_seed())
            for key, model in (
                ("attention", Model.ATTENTION_UNET),
                ("s1grd", Model.S1GRD_ATTENTION_UNET),
            )
        }

    # The realism check.
    @property
    def realism_reference(self) -> str | None:
        """The real Sentinel-1 chip the synthetic scenes are compared with."""
        return self.values["realism"]["reference_s1"]

    def realism_check(self) -> dict:
        """The realism rule's reading of its section: the real chip, the tiles compared with
        it and the boxcar of the speckle statistics."""
        realism = self.values["realism"]
        return {
            "reference": self.realism_reference,
            "tiles": realism["tiles"],
            "boxcar_px": realism["boxcar_px"],
        }

    # Maps.
    @property
    def map_splits(self) -> list[str]:
        return list(self.values["maps"]["splits"])

    @property
    def map_shards(self) -> int:
        return self.values["maps"]["n_shards"]

    @property
    def map_page_px(self) -> int:
        """The largest side of a map drawn into the page."""
        return self.values["maps"]["page_px"]

    def map_aois(self) -> list[str]:
        """The AOIs the maps cover: each pre-training's evaluation AOI, in config order."""
        return list(dict.fromkeys(self.evaluation_aoi(name) for name in self.pretrain_runs))

    def prediction_maps(self) -> dict[str, tuple[Run, ...]]:
        """Each prediction map's name and the runs it chooses from: with maps.runs `best`,
        one map per table (the run of the highest val MIoU among the table's), else one
        per listed run folder."""
        runs = self.finetune_runs()
        chosen = self.values["maps"]["runs"]
        if chosen != "best":
            by_name = {paths.path(paths.FINETUNE_NAME, **run_wildcards(r)): r for r in runs}
            unknown = [name for name in chosen if name not in by_name]
            if unknown:
                raise ConfigError(f"config maps.runs: {unknown} are not runs of the grid")
            return {
                paths.path(paths.RUN_MAP, **run_wildcards(by_name[name])): (by_name[name],)
                for name in chosen
            }
        tables = [("table1", name, TABLE1_MODELS) for name in self.table1_pretrains()]
        if self.unet_baseline:
            tables.append(("si_table2", self.unet_baseline, SI_TABLE2_MODELS))
        maps = {
            paths.path(paths.BEST_RUN_MAP, table=table, pretrain=pretrain): tuple(
                run for run in runs if run.pretrain == pretrain and run.model in models
            )
            for table, pretrain, models in tables
        }
        return {name: chosen for name, chosen in maps.items() if chosen}

    def maps(self) -> dict[str, str]:
        """Every map's name and what it shows (sarssl.maps.site.MapKind): the predictions,
        the attention of each pre-training, and the labels and S1 quicklook of each AOI."""
        maps = {name: "prediction" for name in self.prediction_maps()}
        for name in self.pretrain_runs:
            aoi = self.evaluation_aoi(name)
            maps[paths.path(paths.ATTENTION_MAP, pretrain=name, aoi=aoi)] = "attention"
        for aoi in self.map_aois():
            for layer in paths.STORE_MAP_LAYERS:
                maps[paths.path(paths.STORE_MAP, layer=layer, aoi=aoi)] = layer
        return maps
