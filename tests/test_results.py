"""Tables from hand-written metrics.json files (a missing and a failed run included)."""

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from sarssl.dataset.worldcover import CLASSES
from sarssl.results import collect_runs, markdown, si_table2, table1

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
