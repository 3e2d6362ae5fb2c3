"""Tables from hand-written metrics.json files (a missing and a failed run included), the
emergent-segmentation scores against values worked out by hand, and the figures."""

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from sarssl import figures
from sarssl.emergent import (
    head_scores,
    normalised_mutual_information,
    quantile_bins,
    roc_auc,
)
from sarssl.results import collect_runs, markdown, si_table2, table1
from sarssl.worldcover import CLASSES, IGNORE_INDEX, NUM_CLASSES

FRACTIONS = [0.1, 1.0]


def write_metrics(results: Path, pretrain, model, init, fraction, miou, wall=60.0):
    folder = results / "finetune" / pretrain / model / init / f"frac{fraction:g}"
    folder.mkdir(parents=True)
    (folder / "config.json").write_text("{}")
    record = {
        "miou": miou,
        "val_miou": miou + 0.01,
        "best_epoch": 3,
        "epochs": 10,
        "tiles": {"train": 5, "val": 2, "test": 2},
        "wall_time_s": wall,
        "device": "NVIDIA H100",
        "gpu_hours": wall / 3600,
        "per_class_iou": {c.name: miou for c in CLASSES},
    }
    (folder / "metrics.json").write_text(json.dumps(record))


@pytest.fixture
def grid(tmp_path):
    """Every Table 1 run of 'vit' at two fractions, but: attention/finetuned/1 % never
    started, tokens/frozen/0.1 % failed (config, no metrics)."""
    runs = []
    values = iter(np.linspace(0.30, 0.52, 12))
    for model in ("attention-unet", "tokens-decoder"):
        for init in ("scratch", "frozen", "finetuned"):
            for fraction in FRACTIONS:
                runs.append(("vit", model, init, fraction))
                miou = float(next(values))
                if (model, init, fraction) == ("attention-unet", "finetuned", 1.0):
                    continue
                if (model, init, fraction) == ("tokens-decoder", "frozen", 0.1):
                    folder = tmp_path / "finetune/vit/tokens-decoder/frozen/frac0.1"
                    folder.mkdir(parents=True)
                    (folder / "config.json").write_text("{}")
                    continue
                write_metrics(tmp_path, "vit", model, init, fraction, miou)
    return tmp_path, runs


def test_table1_layout_with_missing_runs_shown_as_missing(grid):
    results, runs = grid
    frame = collect_runs(results, runs)
    table = table1(frame, "vit", FRACTIONS)
    assert list(table.index) == [
        "from scratch",
        "with pre-training (backbone frozen)",
        "with pre-training (backbone not frozen)",
    ]
    assert table.columns.tolist() == [
        ("attention maps", "0.1 %"),
        ("attention maps", "1 %"),
        ("tokens", "0.1 %"),
        ("tokens", "1 %"),
    ]
    assert table.loc["from scratch", ("attention maps", "0.1 %")] == pytest.approx(0.30)
    frozen = "with pre-training (backbone frozen)"
    assert table.loc[frozen, ("tokens", "1 %")] == pytest.approx(0.48)
    assert pd.isna(table.loc["with pre-training (backbone not frozen)", ("attention maps", "1 %")])
    assert pd.isna(table.loc["with pre-training (backbone frozen)", ("tokens", "0.1 %")])
    text = markdown(table, "Table 1, vit")
    assert text.count("missing") == 2
    assert "| from scratch | 30.0 | 32.0 | 42.0 | 44.0 |" in text


def test_runs_csv_has_status_and_the_difference_to_scratch(grid):
    results, runs = grid
    frame = collect_runs(results, runs).set_index(["model", "init", "fraction"])
    assert frame.loc[("attention-unet", "finetuned", 1.0), "status"] == "missing"
    assert frame.loc[("tokens-decoder", "frozen", 0.1), "status"] == "failed or running"
    assert frame.loc[("attention-unet", "frozen", 0.1), "status"] == "ok"
    # frozen 0.1 % (0.34) minus scratch 0.1 % (0.30) of the attention U-Net.
    delta = frame.loc[("attention-unet", "frozen", 0.1), "miou_minus_scratch"]
    assert delta == pytest.approx(0.04)
    assert pd.isna(frame.loc[("attention-unet", "finetuned", 1.0), "miou_minus_scratch"])
    assert frame.loc[("tokens-decoder", "scratch", 1.0), "gpu_hours"] == pytest.approx(60 / 3600)
    assert frame.loc[("tokens-decoder", "scratch", 1.0), "iou_Cropland"] == pytest.approx(0.44)


def test_si_table2_layout(tmp_path):
    runs = [("vit", "s1grd-unet", "scratch", 1.0)] + [
        ("vit", "s1grd-attention-unet", init, 1.0) for init in ("scratch", "frozen")
    ]
    write_metrics(tmp_path, "vit", "s1grd-unet", "scratch", 1.0, 0.5)
    write_metrics(tmp_path, "vit", "s1grd-attention-unet", "frozen", 1.0, 0.55)
    table = si_table2(collect_runs(tmp_path, runs), "vit", [1.0])
    assert table.loc["U-Net on S1GRD only", "1 %"] == 0.5
    frozen = "U-Net on S1GRD + attention maps, with pre-training (backbone frozen)"
    assert table.loc[frozen, "1 %"] == 0.55
    assert pd.isna(table.loc["U-Net on S1GRD + attention maps, from scratch", "1 %"])


def test_auc_and_nmi_against_hand_values():
    scores = np.array([0.1, 0.4, 0.35, 0.8])
    positive = np.array([False, False, True, True])
    # Pairs (positive > negative): 0.35>0.1, 0.8>0.1, 0.8>0.4 -> 3 of 4.
    assert roc_auc(scores, positive) == pytest.approx(0.75)
    assert roc_auc(np.array([1.0, 1.0]), np.array([True, False])) == pytest.approx(0.5)
    # Identical partitions (up to renaming): NMI 1; independent ones: 0.
    assert normalised_mutual_information(np.array([0, 0, 1, 1]), np.array([5, 5, 7, 7])) == 1.0
    assert normalised_mutual_information(
        np.array([0, 1, 0, 1]), np.array([0, 0, 1, 1])
    ) == pytest.approx(0.0)
    # a = (0,0,1,1), b = (0,0,0,1): H(a) = ln 2, H(b) = H(3/4, 1/4), H(a,b) = H(1/2,1/4,1/4).
    h = lambda *p: -sum(x * np.log(x) for x in p)  # noqa: E731
    mutual = h(0.5, 0.5) + h(0.75, 0.25) - h(0.5, 0.25, 0.25)
    expected = 2 * mutual / (h(0.5, 0.5) + h(0.75, 0.25))
    value = normalised_mutual_information(np.array([0, 0, 1, 1]), np.array([0, 0, 0, 1]))
    assert value == pytest.approx(expected)


def test_a_head_that_attends_to_one_class_scores_high_and_noise_does_not():
    rng = np.random.default_rng(0)
    classes = rng.integers(0, 3, size=(20, 8, 8))
    sharp = np.where(classes == 1, 1.0, 0.0) + 0.01 * rng.random(classes.shape)
    noise = rng.random(classes.shape)
    maps = np.stack([sharp, noise], axis=1)
    scores = head_scores(maps, classes, ["a", "b", "c"], IGNORE_INDEX)
    assert scores.loc[0, "best_class"] == "b" and scores.loc[0, "best_auc"] == pytest.approx(1.0)
    # Attention tells class b from a and c, not a from c: NMI well above the noise head's.
    assert scores.loc[0, "nmi"] > 0.3 and scores.loc[1, "nmi"] < 0.02
    assert scores.loc[1, "mean_auc"] < 0.56
    assert quantile_bins(np.arange(8.0).reshape(1, 2, 4), bins=4).tolist() == [
        [[0, 0, 1, 1], [2, 2, 3, 3]]
    ]


def test_figures_are_written_as_png_with_the_worldcover_colours(tmp_path):
    rng = np.random.default_rng(1)
    labels = rng.integers(0, NUM_CLASSES, size=(2, 32, 32)).astype(np.uint8)
    labels[:, :4] = IGNORE_INDEX
    maps = rng.random((2, 3, 2, 2))
    path = tmp_path / "fig2.png"
    figures.attention_and_predictions(
        ["a", "b"], rng.normal(-12, 3, (2, 12, 32, 32)), maps, labels, labels, labels, path, "t"
    )
    image = np.asarray(Image.open(path).convert("RGB"))
    tree_cover = tuple(int(CLASSES[0].colour[i : i + 2], 16) for i in (1, 3, 5))
    assert (image == tree_cover).all(axis=-1).sum() > 100  # the class colour is drawn
    figures.heads_and_landcover(["a", "b"], maps, labels, tmp_path / "fig5.png", "t")
    curves = pd.DataFrame(
        {"step": [1, 2], "loss": [3.0, 2.0], "teacher_entropy": [1.0, 0.9],
         "batch_entropy": [2.0, 1.5], "prototypes": [8.0, 6.0],
         "probe_accuracy": [None, 0.8], "probe_miou": [None, 0.5]}
    )  # fmt: skip
    history = pd.DataFrame(
        {"model": "m", "init": "scratch", "fraction": 1.0, "epoch": [0, 1], "val_miou": [0.1, 0.2]}
    )
    figures.training_curves(curves, history, tmp_path / "curves.png", "t")
    probe = pd.DataFrame(
        {"backbone": ["pre-trained (teacher)", "random init (reference)"], "split": "val",
         "patch_accuracy": [0.9, 0.7], "patch_miou": [0.6, 0.4]}
    )  # fmt: skip
    figures.probe_curves(curves, probe, tmp_path / "probe.png", "t")
    for name in ("fig5.png", "curves.png", "probe.png"):
        assert Image.open(tmp_path / name).size[0] > 300


def test_the_tables_command_writes_every_table_of_a_grid_in_progress(grid, tmp_path):
    results, _ = grid
    config = tmp_path / "config.yaml"
    config.write_text(
        "aois: [{name: a, source: synthetic, wkt: a.wkt}]\n"
        "finetune: {aoi: a, pretrain: [vit], percents: [0.1, 1], unet_baseline: vit}\n"
    )
    from sarssl.cli import main

    assert main(["tables", "--configfile", str(config), "--results", str(results)]) == 0
    tables = results / "tables"
    assert "missing" in (tables / "table1_vit.md").read_text()
    si = pd.read_csv(tables / "si_table2_vit.csv", index_col=0)
    assert (si == "missing").all().all()  # no U-Net run has finished
    runs = pd.read_csv(tables / "runs.csv")
    assert len(runs) == 12 + 2 + 6 and (runs["status"] == "ok").sum() == 10
