"""The Snakemake workflow end to end on a tiny configuration, config validation, and lint."""

import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import rasterio
import rioxarray
import xarray as xr
import yaml
from conftest import (
    REPO,
    S1_CHIP,
    TEST_TILE_PX,
    TINY_AOI_WKT,
    TINY_DATA_CONFIG,
    quiet_grid,
    tiny_finetune_config,
    tiny_pretrain_config,
)
from fake_earthengine import FakeEarthEngine
from real_scene import RealScene, geetiles_definition, geetiles_download
from rio_cogeo.cogeo import cog_validate

from sarssl.dataset.bands import labels_dataset_name, s1_dataset_name
from sarssl.dataset.grid import SPLITS, write_tiles_file
from sarssl.dataset.store import open_store, tile_transform
from sarssl.dataset.worldcover import CLASSES, IGNORE_INDEX
from sarssl.models.backbone import load_checkpoint
from sarssl.outputs.export import export_backbone
from sarssl.outputs.export_format import DataDescription
from sarssl.settings.finetune import SI_TABLE2_MODELS, TABLE1_MODELS

SNAKEMAKE = [sys.executable, "-m", "snakemake", "--snakefile", str(REPO / "Snakefile")]


def snakemake(workdir: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    result = subprocess.run(
        [*SNAKEMAKE, "--directory", str(workdir), *args],
        capture_output=True,
        text=True,
        cwd=workdir,
    )
    if check and result.returncode != 0:
        pytest.fail(f"snakemake {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}")
    return result


def write_config(workdir: Path, config: dict) -> Path:
    path = workdir / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def geetiles_folder(root: Path, wkt: Path) -> Path:
    """A folder written by geetiles' own download code (hash in the name, as geetiles names
    it), with real SAR and WorldCover served by the Earth Engine test double."""
    tiles_file = root / "tinydir_partitions_aschips_0123456789abc.geojson"
    write_tiles_file(quiet_grid("tinydir", wkt, TEST_TILE_PX * 10), tiles_file)
    fake = FakeEarthEngine(scene=RealScene())
    for dataset in (s1_dataset_name(2020), labels_dataset_name(2020)):
        geetiles_download(tiles_file, geetiles_definition(dataset), fake)
    return tiles_file


def exported_weights(checkpoint: Path, folder: Path) -> Path:
    """An export folder made elsewhere (a pre-training of another project, say)."""
    data = DataDescription(
        aois=["other"],
        year=2020,
        tiles={"other": {split: {"valid": 100, "rejected": 0} for split in SPLITS}},
        split={"nbands": 2, "angle": 0, "fractions": {"train": 0.6, "val": 0.2, "test": 0.2}},
        sources={"other": "gee"},
        orbit_pass={"other": "ascending"},
        composite={"other": "mean of the dB images per season"},
    )
    return export_backbone(checkpoint, folder, data)


@pytest.fixture(scope="module")
def workflow_run(tmp_path_factory, tiny_checkpoint):
    workdir = tmp_path_factory.mktemp("workflow")
    wkt = workdir / "tiny.wkt"
    wkt.write_text(TINY_AOI_WKT)
    tiles_file = geetiles_folder(workdir / "download", wkt)
    pretraining = tiny_pretrain_config(["tiny", "tinydir"])
    # A second pre-training: weights exported elsewhere, fine-tuned on the same grid.
    weights = exported_weights(tiny_checkpoint, workdir / "elsewhere")
    pretraining["pretrain"].append({"name": "ext", "weights": str(weights), "aois": ["tiny"]})
    finetune = tiny_finetune_config("tiny", [50])
    finetune["pretrain"] = ["tiny-vit", "ext"]
    config = {
        "aois": [
            {"name": "tiny", "source": "synthetic", "wkt": str(wkt), "n_shards": 2},
            {"name": "tinydir", "source": "geetiles_dir", "tiles_file": str(tiles_file)},
        ],
        **TINY_DATA_CONFIG,
        **pretraining,
        "finetune": finetune,
        "realism": {"context_unet": {"percent": 100, "epochs": 2}},
    }
    config["probe"] = {"supervised_reference": {"percent": 100, "epochs": 1}}
    # The transfer benchmark on the crops of the kept Sen1Floods11 chip, the smallest grid.
    config["transfer"] = {"pretrain": ["tiny-vit"], "chip": str(S1_CHIP), "encodings": ["tokens"],
                          "inits": ["frozen"], "epochs": 1, "width": 4}  # fmt: skip
    configfile = write_config(workdir, config)
    result = snakemake(workdir, "--cores", "2", "--configfile", str(configfile))
    return workdir, configfile, result


def test_the_workflow_builds_every_aoi_store_splits_and_statistics(workflow_run):
    workdir, _, _ = workflow_run
    for aoi in ("tiny", "tinydir"):
        ds = open_store(workdir / f"results/{aoi}/dataset.zarr")
        assert ds.sizes["tile"] == 42 and bool(ds.valid.all())
        stats = json.loads((workdir / f"results/{aoi}/stats.json").read_text())
        assert len(stats["normalisation"]["mean"]) == 12
        assert (workdir / f"results/{aoi}/rejected_tiles.csv").read_text().startswith("index,tile")
        assert (workdir / f"logs/{aoi}/finalise_store.log").is_file()
    assert len(list((workdir / "results/tiny/build").glob("shard*.csv"))) == 2
    # The geetiles folder is read in place: nothing copied into results/.
    assert not list((workdir / "results/tinydir").rglob("*.tif"))


def test_the_workflow_pretrains_on_both_aois_and_writes_their_attention_maps(workflow_run):
    workdir, _, _ = workflow_run
    run = workdir / "results/pretrain/tiny-vit"
    checkpoint = load_checkpoint(run / "checkpoint.pt")
    assert checkpoint["tiles"] == 2 * 26 and checkpoint["step"] == 13  # 52 tiles, batch 4
    assert len(pd.read_csv(run / "metrics.csv")) == 13
    verdict = json.loads((run / "collapse.json").read_text())
    assert verdict["verdict"] in ("ok", "partial collapse", "full collapse")
    assert "collapse verdict" in (workdir / "logs/pretrain/tiny-vit.log").read_text()
    assert (workdir / "logs/pretrain/tiny-vit.log").is_file()
    for aoi in ("tiny", "tinydir"):
        maps = xr.open_zarr(run / f"attention/{aoi}.zarr")
        assert maps.attention.shape == (42, 3, 2, 2)
        assert len(list((run / f"attention/{aoi}_geotiff").glob("*.tif"))) == 1


FINETUNE_RUNS = [
    "tiny-vit/attention-unet/frozen",
    "tiny-vit/attention-unet/finetuned",
    "ext/attention-unet/frozen",
    "ext/attention-unet/finetuned",
    "tiny-vit/s1grd-unet/scratch",
    "tiny-vit/s1grd-attention-unet/frozen",
    "tiny-vit/s1grd-attention-unet/finetuned",
]


def test_the_workflow_runs_the_finetuning_grid_one_folder_per_run(workflow_run):
    workdir, _, _ = workflow_run
    for run in FINETUNE_RUNS:
        folder = workdir / f"results/finetune/{run}/frac50/seed0"
        metrics = json.loads((folder / "metrics.json").read_text())
        assert 0 <= metrics["miou"] <= 1 and metrics["tiles"]["train"] == 13
        assert np.array(metrics["confusion_matrix"]).shape == (11, 11)
        assert json.loads((folder / "config.json").read_text())["fraction"] == 50
        assert "val MIoU" in (folder / "train.log").read_text()


def test_the_workflow_writes_tables_figures_and_a_report(workflow_run):
    workdir, configfile, _ = workflow_run
    tables, figures = workdir / "results/tables", workdir / "results/figures"
    table1 = pd.read_csv(tables / "table1_tiny-vit.csv", header=[0, 1], index_col=0)
    assert table1.shape == (2, 1) and not table1.isin(["missing"]).any().any()
    si = pd.read_csv(tables / "si_table2_tiny-vit.csv", index_col=0)
    assert si.shape == (3, 1) and not si.isin(["missing"]).any().any()
    assert "missing" not in (tables / "table1_tiny-vit.md").read_text()
    runs = pd.read_csv(tables / "runs.csv")
    assert len(runs) == len(FINETUNE_RUNS) and (runs["status"] == "ok").all()
    emergent = pd.read_csv(tables / "emergent_tiny-vit.csv")
    assert set(emergent["backbone"]) == {"pre-trained (student)", "random init (reference)"}
    assert len(emergent) == 2 * 3  # 3 heads each
    figure_names = ("attention_predictions", "heads_landcover", "training_curves", "emergent")
    for name in (*figure_names, "probe"):
        assert (figures / f"{name}_tiny-vit.png").read_bytes()[:4] == b"\x89PNG"
    probe = pd.read_csv(tables / "probe_tiny-vit.csv")
    assert set(probe.backbone) == {
        "pre-trained (teacher)",
        "pre-trained (student)",
        "random init (reference)",
        "patch means (no network)",
        "supervised reference (labels)",
    } and set(probe.split) == {"val", "test"}
    supervised = json.loads(
        (workdir / "results/pretrain/tiny-vit/supervised_reference/metrics.json").read_text()
    )
    assert supervised["epochs"] == 1 and supervised["fraction"] == 100
    assert probe.patch_accuracy.between(0, 1).all()
    assert (probe.patch_accuracy_low <= probe.patch_accuracy).all()
    # The realism table: classifiers without context, and the context check's U-Net on the
    # AOI's train tiles, 2 epochs, with the goals beneath.
    separability = pd.read_csv(tables / "separability_tiny.csv")
    context = separability[separability["input"] == "tile"]
    context_metrics = json.loads(
        (workdir / "results/realism/tiny/context_unet/metrics.json").read_text()
    )
    assert context_metrics["epochs"] == 2 and context_metrics["fraction"] == 100
    assert context.miou.tolist() == [pytest.approx(context_metrics["miou"])]
    assert context.train_samples.tolist() == [context_metrics["tiles"]["train"]]
    assert "- Context pays" in (tables / "separability_tiny.md").read_text()
    report = workdir / "report.html"
    snakemake(workdir, "--report", str(report), "--configfile", str(configfile))
    assert report.stat().st_size > 100_000


def test_the_transfer_table_of_the_export_on_the_crops_of_the_real_chip(workflow_run):
    workdir, _, _ = workflow_run
    table = pd.read_csv(workdir / "results/tables/transfer_tiny-vit.csv")
    assert table[["model", "init"]].values.tolist() == [
        ["tokens-decoder", "frozen"],
        ["s1grd-unet", "scratch"],
    ]
    assert table["train_chips"].tolist() == [8, 8] and table["test_chips"].tolist() == [4, 4]
    assert table["miou"].between(0, 1).all()
    crops = workdir / "results/transfer/sen1floods11_crops"
    assert len(list(crops.glob("S1Hand/*_S1Hand.tif"))) == 16
    markdown = (workdir / "results/tables/transfer_tiny-vit.md").read_text()
    assert "Transfer of results/pretrain/tiny-vit/export to sen1floods11_crops" in markdown


def test_the_exported_weights_of_a_training_and_a_grid_on_weights_from_elsewhere(workflow_run):
    workdir, _, _ = workflow_run
    export = workdir / "results/pretrain/tiny-vit/export"
    assert {p.name for p in export.iterdir()} == {"model.safetensors", "config.json", "README.md"}
    assert "k-NN probe of CLS and patch features" in (export / "README.md").read_text()
    # The pre-training named by `weights` was not trained: its grid ran on the export.
    assert not (workdir / "results/pretrain/ext/checkpoint.pt").exists()
    table1 = pd.read_csv(workdir / "results/tables/table1_ext.csv", header=[0, 1], index_col=0)
    assert table1.shape == (2, 1) and not table1.isin(["missing"]).any().any()
    probe = pd.read_csv(workdir / "results/tables/probe_ext.csv")
    assert set(probe.backbone) == {
        "pre-trained (exported)",
        "random init (reference)",
        "patch means (no network)",
        "supervised reference (labels)",
    }


def test_a_new_fraction_adds_only_its_runs(workflow_run):
    workdir, _, _ = workflow_run
    config = yaml.safe_load((workdir / "config.yaml").read_text())
    config["finetune"]["percents"] = [50, 100]
    bigger = workdir / "bigger.yaml"
    bigger.write_text(yaml.safe_dump(config))
    plan = snakemake(workdir, "-n", "--cores", "1", "--configfile", str(bigger))
    jobs = re.findall(r"^finetune\s+(\d+)$", plan.stdout, re.MULTILINE)
    assert set(jobs) == {str(len(FINETUNE_RUNS))}  # the job table, printed twice
    outputs = re.findall(r"output: (\S+/metrics.json)", plan.stdout)
    assert outputs and all("/frac100/" in output for output in outputs)


@pytest.mark.parametrize(
    ("target", "named"),
    [
        ("results/finetune/tiny-vit/segformer/scratch/frac50/seed0/metrics.json", "'segformer'"),
        (
            "results/finetune/tiny-vit/attention-unet/frozen/frac1/seed0/metrics.json",
            "fraction 1 %",
        ),
    ],
)
def test_a_bad_run_path_fails_when_the_dag_is_built_naming_the_value(workflow_run, target, named):
    workdir, configfile, _ = workflow_run
    result = snakemake(workdir, target, "-n", "--configfile", str(configfile), check=False)
    assert result.returncode != 0 and named in result.stdout + result.stderr


def test_a_single_target_reruns_alone(workflow_run):
    workdir, configfile, _ = workflow_run
    stats = workdir / "results/tiny/stats.json"
    shard_report = workdir / "results/tiny/build/shard0.csv"
    before = shard_report.stat().st_mtime_ns
    stats.unlink()
    target = "results/tiny/stats.json"  # before --configfile, which takes several values
    result = snakemake(workdir, target, "--cores", "1", "--configfile", str(configfile))
    assert "finalise_store" in result.stderr and "build_store_shard" not in result.stderr
    assert stats.is_file() and shard_report.stat().st_mtime_ns == before
    nothing = snakemake(workdir, "--cores", "1", "--configfile", str(configfile), "-n")
    assert "Nothing to be done" in nothing.stdout + nothing.stderr


PRETRAIN_RUN = {
    "name": "p",
    "architecture": "vit_tiny_patch16_224",
    "aois": ["x"],
    "epochs": 1,
    "batch_size": 4,
}


@pytest.mark.parametrize(
    ("change", "named"),
    [
        ({"data": {"tile_px": "big"}}, "tile_px"),
        ({"data": {"tile_size": 448}}, "tile_size"),
        ({"split": {"fractions": {"train": 0.7, "val": 0.2, "test": 0.2}}}, "split.fractions"),
        ({"aois": [{"name": "x", "source": "geetiles_dir"}]}, "tiles_file"),
        ({"aois": [{"name": "bad_name", "source": "synthetic", "wkt": "a.wkt"}]}, "bad_name"),
        ({"aois": [{"name": "x", "source": "modis", "wkt": "a.wkt"}]}, "modis"),
        (
            {"pretrain": [{**PRETRAIN_RUN, "aois": ["x", "nope"]}]},
            "pretrain p: aois ['nope'] are not in config aois ['x']",
        ),
        (
            {"pretrain": [{**PRETRAIN_RUN, "dino": {"lerning_rate": 1}}]},
            "dino overrides ['lerning_rate'] are unknown",
        ),
        ({"pretrain": [{**PRETRAIN_RUN, "architecture": "vit_huge_typo"}]}, "vit_huge_typo"),
        ({"dino": {"local_px": 100}}, "local_px"),
        ({"finetune": {"aoi": "x", "pretrain": ["nope"]}}, "pretrain runs ['nope']"),
        ({"finetune": {"encodings": ["pixels"]}}, "pixels"),
        ({"finetune": {"fractions": [1]}}, "finetune.fractions is now finetune.percents"),
        ({"finetune": {"unet_baselines": "p"}}, "is now finetune.unet_baseline"),
        (
            {"pretrain": [{"name": "w", "weights": "/nowhere", "aois": ["x"]}]},
            "config pretrain w: weights: /nowhere/model.safetensors does not exist",
        ),
        (
            {"pretrain": [{**PRETRAIN_RUN, "weights": "/nowhere"}]},
            "remove ['architecture', 'epochs', 'batch_size']",
        ),
        (
            {"pretrain": [{**PRETRAIN_RUN, "gpus": 3}]},
            "batch_size 4 is global and must be a multiple of nodes x gpus = 3",
        ),
        (
            {"pretrain": [PRETRAIN_RUN], "transfer": {"pretrain": ["p"], "task": "dfc2020_s1"}},
            "config transfer.data: task dfc2020_s1 needs a folder in its layout",
        ),
    ],
)
def test_an_invalid_config_fails_at_start_naming_the_key(tmp_path, change, named):
    config = {"aois": [{"name": "x", "source": "synthetic", "wkt": "a.wkt"}], **change}
    result = snakemake(
        tmp_path, "-n", "--configfile", str(write_config(tmp_path, config)), check=False
    )
    assert result.returncode != 0
    assert named in result.stdout + result.stderr


def test_workflow_is_lint_clean_and_formatted():
    lint = subprocess.run([*SNAKEMAKE, "--lint"], capture_output=True, text=True, cwd=REPO)
    assert lint.returncode == 0, lint.stdout + lint.stderr
    snakefmt = Path(sys.executable).parent / "snakefmt"
    fmt = subprocess.run(
        [str(snakefmt), "--check", "Snakefile", "workflow"],
        capture_output=True,
        text=True,
        cwd=REPO,
    )
    assert fmt.returncode == 0, fmt.stderr


MAPS = {
    "best_table1_tiny-vit": TABLE1_MODELS,
    "best_table1_ext": TABLE1_MODELS,
    "best_si_table2_tiny-vit": SI_TABLE2_MODELS,
    "attention_tiny-vit_tiny": None,
    "attention_ext_tiny": None,
    "labels_tiny": None,
    "s1_tiny": None,
}


def test_the_workflow_maps_the_aoi_as_valid_cogs_and_an_offline_page(workflow_run):
    workdir, _, _ = workflow_run
    maps = workdir / "results/maps"
    store = open_store(workdir / "results/tiny/dataset.zarr")
    test_tiles = np.flatnonzero(store.split.values == "test")
    for name, models in MAPS.items():
        valid, errors, _ = cog_validate(maps / name / "shard0.tif")
        assert valid, (name, errors)
        with rasterio.open(maps / f"{name}.vrt") as vrt:
            assert vrt.crs == "EPSG:4326"
            tags = vrt.tags()
        if models is None:
            continue
        # The mapped run: the table's of the highest validation MIoU.
        pretrain = name.rsplit("_", 1)[1]
        folders = [
            folder
            for model in models
            for folder in (workdir / f"results/finetune/{pretrain}/{model}").glob("*/*/seed0")
        ]
        scores = {
            folder.relative_to(workdir / "results/finetune").as_posix(): json.loads(
                (folder / "metrics.json").read_text()
            )["val_miou"]
            for folder in folders
        }
        assert scores[tags["run"]] == max(scores.values())
    # The labels mosaic holds, at a labelled pixel near the centre of a test tile, the tile's
    # own label there.
    tile = int(test_tiles[0])
    labels = store.labels.values[tile]
    rows, cols = np.nonzero(labels != IGNORE_INDEX)
    middle = np.argmin((rows - labels.shape[0] / 2) ** 2 + (cols - labels.shape[1] / 2) ** 2)
    row, col = int(rows[middle]), int(cols[middle])
    lon, lat = tile_transform(store, tile) @ (col + 0.5, row + 0.5)
    with rasterio.open(maps / "labels_tiny.vrt") as vrt:
        (code,) = next(vrt.sample([(lon, lat)]))
    assert code == CLASSES[int(labels[row, col])].code
    # As docs/results.md opens them.
    heads = rioxarray.open_rasterio(maps / "attention_tiny-vit_tiny.vrt")
    assert heads.attrs["long_name"] == tuple(f"head {h} (student)" for h in range(3))
    page = (maps / "index.html").read_text()
    assert "WorldCover labels (tiny)" in page and "S1 quicklook (tiny)" in page
    assert (maps / "leaflet/leaflet.js").is_file() and list((maps / "layers").glob("*.png"))
