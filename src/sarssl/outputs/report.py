"""Inputs of the figures read from the pipeline's outputs (the I/O side of
sarssl.outputs.figures)."""

import json
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr

from sarssl.dataset.store import open_store, split_positions
from sarssl.outputs import figures


def first_test_tiles(store: str | Path, count: int) -> np.ndarray:
    """Store positions of the first `count` valid test tiles (the tiles every figure and the
    runs' example predictions show)."""
    return split_positions(store, ["test"])[:count]


def attention_and_predictions(
    store: str | Path,
    attention_store: str | Path,
    attention_run: str | Path,
    s1grd_run: str | Path,
    path: str | Path,
    title: str,
) -> None:
    """Figure 2: the tiles of the runs' example predictions (the first test tiles)."""
    attention_only, with_s1grd = np.load(attention_run), np.load(s1grd_run)
    tiles = list(attention_only["tile"])
    dataset = open_store(store)
    positions = first_test_tiles(store, len(tiles))
    if [str(t) for t in dataset["tile"].values[positions]] != tiles:
        raise ValueError(f"{attention_run}: its example tiles are not the store's first test tiles")
    maps = xr.open_zarr(attention_store)["attention"].values[positions]
    figures.attention_and_predictions(
        tiles,
        dataset["s1grd"].values[positions],
        maps,
        attention_only["predicted"],
        with_s1grd["predicted"],
        dataset["labels"].values[positions],
        path,
        title,
    )


def heads_and_landcover(
    store: str | Path, attention_store: str | Path, count: int, path: str | Path, title: str
) -> None:
    """Figure 5: the first `count` test tiles."""
    dataset = open_store(store)
    positions = first_test_tiles(store, count)
    maps = xr.open_zarr(attention_store)["attention"].values[positions]
    tiles = [str(t) for t in dataset["tile"].values[positions]]
    figures.heads_and_landcover(tiles, maps, dataset["labels"].values[positions], path, title)


def run_histories(metrics_files: list[str | Path]) -> pd.DataFrame:
    """The per-epoch history of every run, with its model, initialisation and fraction."""
    rows = []
    for path in metrics_files:
        record = json.loads(Path(path).read_text())
        for epoch in record["history"]:
            rows.append({k: record[k] for k in ("model", "init", "fraction")} | epoch)
    return pd.DataFrame(
        rows, columns=["model", "init", "fraction", "epoch", "train_loss", "val_miou"]
    )


def training_curves(
    pretrain_metrics: str | Path, metrics_files: list[str | Path], path: str | Path, title: str
) -> None:
    figures.training_curves(
        pd.read_csv(pretrain_metrics), run_histories(metrics_files), path, title
    )


def probe_curves(pretrain_metrics: str | Path, table: str | Path, path: str | Path, title: str):
    figures.probe_curves(pd.read_csv(pretrain_metrics), pd.read_csv(table), path, title)
