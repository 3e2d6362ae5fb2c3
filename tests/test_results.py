"""Tables from hand-written metrics.json files (a missing and a failed run included, and
cells over several seeds), captioned with how the runs read the attention maps."""

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from sarssl.dataset.worldcover import CLASSES
from sarssl.outputs.tables import (
    MISSING,
    attention_caption,
    cell,
    collect_runs,
    markdown,
    si_table2,
    table1,
    write_named_table,
)
from sarssl.settings.finetune import Run, run_attention_input, run_file

FRACTIONS = [0.1, 1.0]
UPSAMPLED = (
    "Attention maps read upsampled (finetune.attention_input): upsampled (bilinear) to the "
    "tile, then the U-Net at the tile's resolution."
)


def start(results: Path, run: Run, attention_input: str = "upsampled") -> Path:
    """A run's folder with its config (the part the tables read), as the rule writes it
    before training, under finetune.attention_input `attention_input`."""
    folder = run_file(results, run)
    folder.mkdir(parents=True)
    settings = {"attention_input": run_attention_input(run.model, attention_input)}
    (folder / "config.json").write_text(json.dumps(settings))
    return folder


def write_metrics(results: Path, run: Run, miou: float, wall: float = 60.0) -> None:
    folder = start(results, run)
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
                run = Run("vit", model, init, fraction, 0)
                runs.append(run)
                miou = float(next(values))
                if (model, init, fraction) == ("attention-unet", "finetuned", 1.0):
                    continue
                if (model, init, fraction) == ("tokens-decoder", "frozen", 0.1):
                    start(tmp_path, run)
                    continue
                write_metrics(tmp_path, run, miou)
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
    assert table.loc["from scratch", ("attention maps", "0.1 %")] == "30.0"
    frozen = "with pre-training (backbone frozen)"
    assert table.loc[frozen, ("tokens", "1 %")] == "48.0"
    assert table.loc["with pre-training (backbone not frozen)", ("attention maps", "1 %")] == (
        "missing"
    )
    assert table.loc[frozen, ("tokens", "0.1 %")] == "missing"
    text = markdown(table, "Table 1, vit")
    assert text.count("missing") == 2
    assert "| from scratch | 30.0 | 32.0 | 42.0 | 44.0 |" in text


def test_runs_csv_has_status_and_the_difference_to_scratch(grid):
    results, runs = grid
    frame = collect_runs(results, runs).set_index(["model", "init", "fraction"])
    assert (frame["seed"] == 0).all()
    assert frame.loc[("attention-unet", "finetuned", 1.0), "status"] == "missing"
    assert frame.loc[("tokens-decoder", "frozen", 0.1), "status"] == "failed or running"
    assert frame.loc[("attention-unet", "frozen", 0.1), "status"] == "ok"
    # frozen 0.1 % (0.34) minus scratch 0.1 % (0.30) of the attention U-Net.
    delta = frame.loc[("attention-unet", "frozen", 0.1), "miou_minus_scratch"]
    assert delta == pytest.approx(0.04)
    assert pd.isna(frame.loc[("attention-unet", "finetuned", 1.0), "miou_minus_scratch"])
    assert frame.loc[("tokens-decoder", "scratch", 1.0), "gpu_hours"] == pytest.approx(60 / 3600)
    assert frame.loc[("tokens-decoder", "scratch", 1.0), "iou_Cropland"] == pytest.approx(0.44)


def test_runs_csv_and_the_markdown_caption_say_how_the_maps_were_read(grid, tmp_path):
    results, runs = grid  # the runs started under attention_input upsampled
    frame = collect_runs(results, runs)
    readings = frame.set_index(["model", "init", "fraction"])["attention_input"]
    assert readings[("attention-unet", "frozen", 0.1)] == "upsampled"
    assert pd.isna(readings[("tokens-decoder", "scratch", 0.1)])  # no maps into a U-Net
    assert pd.isna(readings[("attention-unet", "finetuned", 1.0)])  # never started
    csv_path, md_path = tmp_path / "t.csv", tmp_path / "t.md"
    write_named_table("table1", frame, "vit", FRACTIONS, csv_path, md_path)
    lines = md_path.read_text().splitlines()
    assert lines[:3] == ["**Table 1, vit** (MIoU, %)", "", UPSAMPLED]
    assert "Attention" not in csv_path.read_text()


def test_a_grid_rerun_under_the_other_reading_shows_both_in_the_caption(tmp_path):
    runs = [Run("vit", "attention-unet", init, 1.0, 0) for init in ("scratch", "frozen")]
    start(tmp_path, runs[0], "upsampled")
    start(tmp_path, runs[1], "native")
    caption = attention_caption(collect_runs(tmp_path, runs))
    assert caption.startswith("Attention maps read native (finetune.attention_input): on the")
    assert caption.endswith(UPSAMPLED)


def test_si_table2_layout(tmp_path):
    runs = [Run("vit", "s1grd-unet", "scratch", 1.0, 0)] + [
        Run("vit", "s1grd-attention-unet", init, 1.0, 0) for init in ("scratch", "frozen")
    ]
    write_metrics(tmp_path, runs[0], 0.5)
    write_metrics(tmp_path, runs[2], 0.55)
    frame = collect_runs(tmp_path, runs)
    table = si_table2(frame, "vit", [1.0])
    assert table.loc["U-Net on S1GRD only", "1 %"] == "50.0"
    assert attention_caption(frame) == UPSAMPLED  # SI Table 2's maps, always
    frozen = "U-Net on S1GRD + attention maps, with pre-training (backbone frozen)"
    assert table.loc[frozen, "1 %"] == "55.0"
    assert table.loc["U-Net on S1GRD + attention maps, from scratch", "1 %"] == "missing"


def test_a_cell_over_seeds_is_their_mean_and_sample_sd_with_missing_seeds_counted(tmp_path):
    """Three seeds per cell: all finished, seed 2 failed, only seed 1 finished."""
    mious = {
        "scratch": [0.20, 0.25, 0.30],  # mean 25, sd sqrt((5² + 0 + 5²) / 2) = 5
        "frozen": [0.26, 0.28, None],  # mean 27, sd sqrt((1² + 1²) / 1) = 1.41
        "finetuned": [None, 0.40, None],
    }
    runs = []
    for init, values in mious.items():
        for seed, miou in enumerate(values):
            run = Run("vit", "attention-unet", init, 1.0, seed)
            runs.append(run)
            if miou is None:
                start(tmp_path, run)
            else:
                write_metrics(tmp_path, run, miou)
    frame = collect_runs(tmp_path, runs)
    assert len(frame) == 9 and frame["seed"].tolist() == [0, 1, 2] * 3
    # Each seed against the scratch run of its own seed: 0.26 - 0.20, 0.28 - 0.25.
    frozen = frame[frame["init"] == "frozen"]["miou_minus_scratch"].tolist()
    assert frozen[:2] == pytest.approx([0.06, 0.03]) and np.isnan(frozen[2])
    table = table1(frame, "vit", [1.0])["attention maps", "1 %"]
    assert table.to_dict() == {
        "from scratch": "25.0 ± 5.0 (3 seeds)",
        "with pre-training (backbone frozen)": "27.0 ± 1.4 (2/3 seeds)",
        "with pre-training (backbone not frozen)": "40.0 (1/3 seeds)",
    }
    assert cell([np.nan] * 3) == MISSING  # no seed finished


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
    assert UPSAMPLED in (tables / "table1_vit.md").read_text()
    si = pd.read_csv(tables / "si_table2_vit.csv", index_col=0)
    assert (si == "missing").all().all()  # no U-Net run has finished
    runs = pd.read_csv(tables / "runs.csv")
    assert len(runs) == 12 + 2 + 6 and (runs["status"] == "ok").sum() == 10
