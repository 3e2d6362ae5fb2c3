"""The MIoU tables from the runs' metrics.json files.

- Table 1 (one per pre-training): rows from scratch / with pre-training (backbone frozen) /
  with pre-training (backbone not frozen); columns attention maps x fractions, then tokens x
  fractions.
- SI Table 2: rows U-Net on S1GRD only, then U-Net on S1GRD + attention maps from scratch /
  frozen / not frozen; columns fractions.
- runs.csv: every run of the grid (each seed of a cell its own), one row each, with its
  parameters, how its U-Net read the attention maps (from its settings), status, MIoU,
  per-class IoU, wall time, device, GPU-hours and the difference to the from-scratch run of
  the same model, fraction and seed (how the paper states its findings).

A cell of the tables is its runs' MIoU in %, one decimal (`cell`): the value of a cell with
one seed; mean ± sample standard deviation and the number of seeds of a cell with several.
A run whose metrics.json is absent (its folder holds the resolved config but no metrics: it
failed or is still running) is never a number: a cell without any finished run says
missing, and a cell with some says how many of its seeds it holds. The Markdown of a
table says, under its title, how its runs' U-Nets read the attention maps.
"""

import json
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd

from sarssl import paths
from sarssl.atomic import write_text_atomic
from sarssl.settings.finetune import (
    ENCODING_MODELS,
    SI_TABLE2_MODELS,
    TABLE1_MODELS,
    Init,
    Model,
    Run,
    format_fraction,
    grid_runs,
    run_file,
)

INIT_ROWS = {
    Init.SCRATCH: "from scratch",
    Init.FROZEN: "with pre-training (backbone frozen)",
    Init.FINETUNED: "with pre-training (backbone not frozen)",
}
ENCODING_COLUMNS = {
    ENCODING_MODELS["attention"]: "attention maps",
    ENCODING_MODELS["tokens"]: "tokens",
}
# The readings of config finetune.attention_input (sarssl.settings.finetune.MODEL_ATTENTION_INPUTS).
ATTENTION_READINGS = {
    "native": "on the ViT's token grid, the U-Net's output upsampled to the tile",
    "upsampled": "upsampled (bilinear) to the tile, then the U-Net at the tile's resolution",
}
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
        row = run._asdict() | {"attention_input": started_attention_input(results, run)}
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
    scratch = frame[frame["init"] == Init.SCRATCH].set_index(same)
    key = pd.MultiIndex.from_frame(frame[same])
    frame["miou_minus_scratch"] = frame["miou"].to_numpy() - scratch["miou"].reindex(key).to_numpy()
    return frame


def started_attention_input(results: str | Path, run: Run) -> str | None:
    """The attention-map reading in the settings a started run wrote (None: not started, or
    no attention maps into its U-Net)."""
    settings = run_file(results, run, paths.FINETUNE_CONFIG)
    return json.loads(settings.read_text()).get("attention_input") if settings.is_file() else None


def table_runs(runs: pd.DataFrame, pretrain: str, models: tuple[str, ...]) -> pd.DataFrame:
    return runs[(runs["pretrain"] == pretrain) & runs["model"].isin(list(models))]


def attention_caption(runs: pd.DataFrame) -> str:
    """How the U-Nets of `runs` (a table's) read the attention maps, from the runs' settings
    (two readings: a grid rerun under a new finetune.attention_input, in progress); '' where
    none has."""
    readings = present(runs["attention_input"].dropna(), ATTENTION_READINGS)
    return " ".join(
        f"Attention maps read {r} (finetune.attention_input): {ATTENTION_READINGS[r]}."
        for r in readings
    )


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
    mine = table_runs(runs, pretrain, TABLE1_MODELS)
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
    mine = table_runs(runs, pretrain, SI_TABLE2_MODELS)
    with_maps = mine[mine["model"] == Model.S1GRD_ATTENTION_UNET]
    rows = [S1GRD_ONLY] if (mine["model"] == Model.S1GRD_UNET).any() else []
    rows += [with_attention(INIT_ROWS[init]) for init in present(with_maps["init"], INIT_ROWS)]
    return layout(
        mine,
        lambda run: (
            S1GRD_ONLY if run.model == Model.S1GRD_UNET else with_attention(INIT_ROWS[run.init])
        ),
        lambda run: percent(run.fraction),
        rows,
        pd.Index([percent(f) for f in fractions]),
    )


def markdown(table: pd.DataFrame, title: str, caption: str = "") -> str:
    """A table of cells (`cell`) as Markdown, with `caption` under its title."""
    flat = table.copy()
    if isinstance(flat.columns, pd.MultiIndex):
        flat.columns = [" ".join(c) for c in flat.columns]
    header = "| | " + " | ".join(map(str, flat.columns)) + " |"
    lines = [f"**{title}** (MIoU, %)", ""] + ([caption, ""] if caption else [])
    lines += [header, "|---" * (len(flat.columns) + 1) + "|"]
    for label, cells in flat.iterrows():
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def write_table(
    table: pd.DataFrame, csv_path: str | Path, md_path: str | Path, title: str, caption: str
) -> None:
    """The same cells in both: runs.csv holds each run's numbers."""
    write_text_atomic(csv_path, table.to_csv())
    write_text_atomic(md_path, markdown(table, title, caption))


# Each table (the name of its rule): its layout, the models of its runs and its title.
TABLES = {
    "table1": (table1, TABLE1_MODELS, "Table 1"),
    "si_table2": (si_table2, SI_TABLE2_MODELS, "SI Table 2"),
}


def write_named_table(
    name: str,
    runs: pd.DataFrame,
    pretrain: str,
    fractions: list[float],
    csv_path: str | Path,
    md_path: str | Path,
) -> None:
    """Table `name` of `pretrain` from `runs` (rows of collect_runs), captioned with how its
    runs read the attention maps."""
    layout, models, title = TABLES[name]
    write_table(
        layout(runs, pretrain, fractions),
        csv_path,
        md_path,
        f"{title}, {pretrain}",
        attention_caption(table_runs(runs, pretrain, models)),
    )


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
    tables = [("table1", paths.TABLE1, p) for p in finetune["pretrain"]]
    if finetune["unet_baseline"]:
        tables.append(("si_table2", paths.SI_TABLE2, finetune["unet_baseline"]))
    for name, pattern, pretrain in tables:
        csv_path, md_path = (
            paths.under(results, pattern, pretrain=pretrain, format=ext) for ext in ("csv", "md")
        )
        write_named_table(name, frame, pretrain, finetune["percents"], csv_path, md_path)
        written += [csv_path, md_path]
    return written
