"""The MIoU tables from the runs' metrics.json files.

- Table 1 (one per pre-training): rows from scratch / with pre-training (backbone frozen) /
  with pre-training (backbone not frozen); columns attention maps x fractions, then tokens x
  fractions.
- SI Table 2: rows U-Net on S1GRD only, then U-Net on S1GRD + attention maps from scratch /
  frozen / not frozen; columns fractions.
- runs.csv: every run of the grid (each seed of a cell its own), one row each, with its
  parameters, status, MIoU, per-class IoU, wall time, device, GPU-hours and the difference
  to the from-scratch run of the same model, fraction and seed (how the paper states its
  findings).

A cell of the tables is its runs' MIoU in %, one decimal (`cell`): the value of a cell with
one seed; mean ± sample standard deviation and the number of seeds of a cell with several.
A run whose metrics.json is absent (its folder holds the resolved config but no metrics: it
failed or is still running) is never a number: a cell without any finished run says
missing, and a cell with some says how many of its seeds it holds.
"""

import json
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd

from . import paths
from .atomic import write_text_atomic
from .runs import Run, format_fraction, grid_runs, run_file

INIT_ROWS = {
    "scratch": "from scratch",
    "frozen": "with pre-training (backbone frozen)",
    "finetuned": "with pre-training (backbone not frozen)",
}
ENCODING_COLUMNS = {"attention-unet": "attention maps", "tokens-decoder": "tokens"}
S1GRD_ONLY = "U-Net on S1GRD only"
MISSING = "missing"


def percent(fraction: float) -> str:
    return f"{format_fraction(fraction)} %"


def with_attention(init_row: str) -> str:
    return f"U-Net on S1GRD + attention maps, {init_row}"


def collect_runs(results: str | Path, runs: list[Run]) -> pd.DataFrame:
    """One row per run of the grid, with its metrics or its status: ok, failed (config
    written, no metrics) or missing (never started)."""
    rows = []
    for run in runs:
        row = run._asdict()
        metrics = run_file(results, run, paths.FINETUNE_METRICS)
        if metrics.is_file():
            record = json.loads(metrics.read_text())
            row |= {
                "status": "ok",
                "miou": record["miou"],
                "val_miou": record["val_miou"],
                "best_epoch": record["best_epoch"],
                "epochs": record["epochs"],
                "train_tiles": record["tiles"]["train"],
                "wall_time_s": record["wall_time_s"],
                "device": record["device"],
                "gpu_hours": record["gpu_hours"],
                **{f"iou_{name}": iou for name, iou in record["per_class_iou"].items()},
            }
        else:
            started = run_file(results, run, paths.FINETUNE_CONFIG).is_file()
            status = "failed or running" if started else MISSING
            row |= {"status": status, "miou": np.nan}
        rows.append(row)
    frame = pd.DataFrame(rows)
    # Against the scratch run of the same seed: the same train tiles, like with like.
    same = ["pretrain", "model", "fraction", "seed"]
    scratch = frame[frame["init"] == "scratch"].set_index(same)
    key = pd.MultiIndex.from_frame(frame[same])
    frame["miou_minus_scratch"] = frame["miou"].to_numpy() - scratch["miou"].reindex(key).to_numpy()
    return frame


def present(values: pd.Series, order) -> list:
    """The members of `order` found in `values`, in that order (the grid's rows and
    columns: a missing run is still in the grid, so its cell stays)."""
    found = set(values)
    return [value for value in order if value in found]


def cell(mious: list[float]) -> str:
    """A table cell, in %, from the MIoU of its runs, one per seed (NaN: no metrics): a
    single run's value as it is; over several seeds their mean ± sample standard deviation
    (ddof 1) and count, e.g. '25.0 ± 5.0 (3 seeds)', or, where some have not finished, the
    count of those finished of all, '23.1 ± 1.2 (2/3 seeds)'; missing where none has."""
    finished = 100 * pd.Series(mious, dtype=float).dropna()
    if finished.empty:
        return MISSING
    if len(mious) == 1:
        return f"{finished.iloc[0]:.1f}"
    spread = f" ± {finished.std(ddof=1):.1f}" if len(finished) > 1 else ""
    count = len(finished) if len(finished) == len(mious) else f"{len(finished)}/{len(mious)}"
    return f"{finished.mean():.1f}{spread} ({count} seeds)"


def layout(
    mine: pd.DataFrame,
    row_of: Callable[[tuple], str],
    column_of: Callable[[tuple], str | tuple[str, str]],
    rows: list[str],
    columns: pd.Index,
) -> pd.DataFrame:
    """The runs `mine` (rows of collect_runs) as a table of cells, each over the seeds of
    its row and column label (a cell no run reaches stays missing)."""
    seeds = defaultdict(list)
    for run in mine.itertuples():
        seeds[row_of(run), column_of(run)].append(run.miou)
    table = pd.DataFrame(MISSING, index=rows, columns=columns)
    for (row, column), mious in seeds.items():
        table.loc[row, column] = cell(mious)
    return table


def table1(runs: pd.DataFrame, pretrain: str, fractions: list[float]) -> pd.DataFrame:
    """MIoU of one pre-training's runs in the paper's Table 1 layout."""
    mine = runs[(runs["pretrain"] == pretrain) & runs["model"].isin(list(ENCODING_COLUMNS))]
    columns = pd.MultiIndex.from_tuples(
        [
            (ENCODING_COLUMNS[model], percent(f))
            for model in present(mine["model"], ENCODING_COLUMNS)
            for f in fractions
        ],
        names=["encoding", "fraction"],
    )
    return layout(
        mine,
        lambda run: INIT_ROWS[run.init],
        lambda run: (ENCODING_COLUMNS[run.model], percent(run.fraction)),
        [INIT_ROWS[init] for init in present(mine["init"], INIT_ROWS)],
        columns,
    )


def si_table2(runs: pd.DataFrame, pretrain: str, fractions: list[float]) -> pd.DataFrame:
    """MIoU of the U-Nets in the SI Table 2 layout."""
    mine = runs[runs["pretrain"] == pretrain]
    mine = mine[mine["model"].isin(["s1grd-unet", "s1grd-attention-unet"])]
    with_maps = mine[mine["model"] == "s1grd-attention-unet"]
    rows = [S1GRD_ONLY] if (mine["model"] == "s1grd-unet").any() else []
    rows += [with_attention(INIT_ROWS[init]) for init in present(with_maps["init"], INIT_ROWS)]
    return layout(
        mine,
        lambda run: (
            S1GRD_ONLY if run.model == "s1grd-unet" else with_attention(INIT_ROWS[run.init])
        ),
        lambda run: percent(run.fraction),
        rows,
        pd.Index([percent(f) for f in fractions]),
    )


def markdown(table: pd.DataFrame, title: str) -> str:
    """A table of cells (`cell`) as Markdown."""
    flat = table.copy()
    if isinstance(flat.columns, pd.MultiIndex):
        flat.columns = [" ".join(c) for c in flat.columns]
    header = "| | " + " | ".join(map(str, flat.columns)) + " |"
    lines = [f"**{title}** (MIoU, %)", "", header, "|---" * (len(flat.columns) + 1) + "|"]
    for label, cells in flat.iterrows():
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def write_table(table: pd.DataFrame, csv_path: str | Path, md_path: str | Path, title: str) -> None:
    """The same cells in both: runs.csv holds each run's numbers."""
    write_text_atomic(csv_path, table.to_csv())
    write_text_atomic(md_path, markdown(table, title))


def frame_markdown(frame: pd.DataFrame, title: str, digits: int = 3) -> str:
    """Any table as Markdown, numbers rounded to `digits`."""
    lines = [f"**{title}**", "", "| " + " | ".join(map(str, frame.columns)) + " |"]
    lines.append("|---" * len(frame.columns) + "|")
    for values in frame.itertuples(index=False):
        cells = [f"{v:.{digits}f}" if isinstance(v, float) else str(v) for v in values]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def write_all_tables(results: str | Path, finetune: dict) -> list[Path]:
    """Every table of the config's grid from the runs finished so far (the rules wait for
    the whole grid; this shows a grid in progress or with failed runs)."""
    frame = collect_runs(results, grid_runs(finetune))
    runs_table = paths.under(results, paths.RUNS_TABLE)
    write_text_atomic(runs_table, frame.to_csv(index=False))
    written = [runs_table]
    layouts = [(table1, paths.TABLE1, "Table 1", p) for p in finetune["pretrain"]]
    if finetune["unet_baseline"]:
        layouts.append((si_table2, paths.SI_TABLE2, "SI Table 2", finetune["unet_baseline"]))
    for layout, pattern, title, pretrain in layouts:
        csv_path, md_path = (
            paths.under(results, pattern, pretrain=pretrain, format=ext) for ext in ("csv", "md")
        )
        write_table(
            layout(frame, pretrain, finetune["percents"]),
            csv_path,
            md_path,
            f"{title}, {pretrain}",
        )
        written += [csv_path, md_path]
    return written
