"""Figures as PNG: land cover in the official ESA WorldCover colours with a legend.

- `attention_and_predictions` (as the paper's Figure 2): per test tile, the SAR input, the
  attention map of each head, the predictions of the attention-only U-Net and of the
  S1GRD + attention U-Net, and the ground truth;
- `heads_and_landcover` (as Figure 5): attention heads beside the land-cover map;
- `training_curves`: pre-training loss and teacher entropy, fine-tuning validation MIoU;
- `emergent_scores`: per-head NMI and AUC, pre-trained against a random ViT.

Figures are built with matplotlib's object API (no pyplot): no display or global state.
"""

from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.colors import BoundaryNorm, ListedColormap
from matplotlib.figure import Figure
from matplotlib.patches import Patch

from sarssl.atomic import atomic_path
from sarssl.dataset.bands import CHANNELS, QUANTITIES, SEASONS, band_name
from sarssl.dataset.worldcover import CLASSES, IGNORE_INDEX

NODATA_COLOUR = "#ffffff"


def landcover_colours() -> tuple[ListedColormap, BoundaryNorm]:
    """Class index -> official colour; IGNORE_INDEX -> white."""
    colours = [c.colour for c in CLASSES] + [NODATA_COLOUR]
    bounds = np.arange(len(colours) + 1) - 0.5
    return ListedColormap(colours), BoundaryNorm(bounds, len(colours))


def landcover_image(labels: np.ndarray) -> np.ndarray:
    """Class indices with IGNORE_INDEX moved to the colour map's last entry."""
    return np.where(labels == IGNORE_INDEX, len(CLASSES), labels)


def landcover_legend(figure: Figure) -> None:
    handles = [Patch(color=c.colour, label=c.name) for c in CLASSES]
    handles.append(Patch(facecolor=NODATA_COLOUR, edgecolor="grey", label="no label"))
    figure.legend(handles=handles, loc="lower center", ncol=6, fontsize=8, frameon=False)


def sar_composite(image: np.ndarray) -> np.ndarray:
    """(12, y, x) dB -> RGB of the annual means of VV, VH and VV-VH, each stretched to its
    2-98 % percentiles."""
    channels = []
    for quantity in QUANTITIES:
        index = [CHANNELS.index(band_name(season, quantity)) for season in SEASONS]
        band = image[index].astype(np.float32).mean(axis=0)
        low, high = np.percentile(band, [2, 98])
        channels.append(np.clip((band - low) / max(high - low, 1e-6), 0, 1))
    return np.stack(channels, axis=-1)


def save(figure: Figure, path: str | Path) -> None:
    with atomic_path(path) as tmp:
        figure.savefig(tmp, dpi=110, bbox_inches="tight", format="png")


def show_landcover(axis: Axes, labels: np.ndarray, title: str) -> None:
    cmap, norm = landcover_colours()
    axis.imshow(landcover_image(labels), cmap=cmap, norm=norm, interpolation="nearest")
    axis.set_title(title, fontsize=8)


def show_heads(axes: np.ndarray, maps: np.ndarray) -> None:
    """One attention map (head, h, w) per axis."""
    for head, axis in enumerate(axes):
        axis.imshow(maps[head], cmap="inferno", interpolation="nearest")
        axis.set_title(f"head {head}", fontsize=8)


def finish_tile_figure(figure: Figure, axes: np.ndarray, path: str | Path, title: str) -> None:
    """No ticks, the title, the land-cover legend below; saved."""
    clean(axes)
    figure.suptitle(title, fontsize=10)
    landcover_legend(figure)
    figure.subplots_adjust(bottom=0.12)
    save(figure, path)


def clean(axes: np.ndarray) -> None:
    for axis in np.atleast_1d(axes).ravel():
        axis.set_xticks([])
        axis.set_yticks([])


def attention_and_predictions(
    tiles: list[str],
    images: np.ndarray,
    maps: np.ndarray,
    attention_only: np.ndarray,
    with_s1grd: np.ndarray,
    truth: np.ndarray,
    path: str | Path,
    title: str,
) -> None:
    """images (n, 12, y, x), maps (n, heads, h, w), predictions and truth (n, y, x)."""
    n, heads = maps.shape[:2]
    columns = 1 + heads + 3
    figure = Figure(figsize=(1.9 * columns, 1.9 * n + 0.8))
    axes = figure.subplots(n, columns, squeeze=False)
    for row, tile in enumerate(tiles):
        axes[row, 0].imshow(sar_composite(images[row]))
        axes[row, 0].set_title(f"S1GRD {tile}", fontsize=7)
        show_heads(axes[row, 1 : 1 + heads], maps[row])
        show_landcover(axes[row, heads + 1], attention_only[row], "attention maps U-Net")
        show_landcover(axes[row, heads + 2], with_s1grd[row], "S1GRD + attention U-Net")
        show_landcover(axes[row, heads + 3], truth[row], "ESA WorldCover")
    finish_tile_figure(figure, axes, path, title)


def heads_and_landcover(
    tiles: list[str], maps: np.ndarray, truth: np.ndarray, path: str | Path, title: str
) -> None:
    """Attention heads (n, heads, h, w) beside the land cover (n, y, x)."""
    n, heads = maps.shape[:2]
    figure = Figure(figsize=(1.9 * (heads + 1), 1.9 * n + 0.8))
    axes = figure.subplots(n, heads + 1, squeeze=False)
    for row, tile in enumerate(tiles):
        show_landcover(axes[row, 0], truth[row], f"land cover {tile}")
        show_heads(axes[row, 1 : 1 + heads], maps[row])
    finish_tile_figure(figure, axes, path, title)


# Pre-training panels: metrics.csv column and title. At the paper's teacher temperature
# (0.001) each teacher distribution is one-hot, so its own entropy is ~0 whether the run
# learns or collapses; the batch-mean distribution tells them apart.
PRETRAIN_PANELS = (
    ("loss", "DINO loss"),
    ("teacher_entropy", "teacher entropy per tile\n(~0 by construction at T = 0.001)"),
    ("batch_entropy", "entropy of the batch-mean teacher\n(one prototype: 0; uniform: log K)"),
    ("prototypes", "prototypes winning in a batch\n(collapse onto one: 1)"),
)


def training_curves(
    pretrain_metrics: pd.DataFrame, histories: pd.DataFrame, path: str | Path, title: str
) -> None:
    """Pre-training loss and collapse indicators per step; fine-tuning validation MIoU per
    epoch, one panel per model, one line per initialisation and fraction."""
    models = sorted(histories["model"].unique()) if len(histories) else []
    columns = len(PRETRAIN_PANELS)
    rows = 1 + -(-len(models) // columns)
    figure = Figure(figsize=(3.6 * columns, 3.2 * rows))
    grid = figure.subplots(rows, columns, squeeze=False)
    for axis, (column, panel_title) in zip(grid[0], PRETRAIN_PANELS, strict=True):
        axis.plot(pretrain_metrics["step"], pretrain_metrics[column])
        axis.set(title=panel_title, xlabel="step")
        axis.title.set_fontsize(8)
    model_axes = grid[1:].ravel()
    for unused in model_axes[len(models) :]:
        unused.set_visible(False)
    for axis, model in zip(model_axes, models, strict=False):
        for (init, fraction), run in histories[histories["model"] == model].groupby(
            ["init", "fraction"]
        ):
            axis.plot(run["epoch"], run["val_miou"], marker=".", label=f"{init}, {fraction:g} %")
        axis.set(title=f"{model}: val MIoU", xlabel="epoch")
        axis.legend(fontsize=6)
    figure.suptitle(title, fontsize=10)
    figure.tight_layout()
    save(figure, path)


def probe_curves(
    pretrain_metrics: pd.DataFrame, table: pd.DataFrame, path: str | Path, title: str
) -> None:
    """The k-NN probe of the teacher on val tiles over the pre-training steps, against the
    final scores of the probe table on the same split (random init: the reference)."""
    probed = pretrain_metrics.dropna(subset=["probe_accuracy"])
    val = table[table["split"] == "val"].set_index("backbone")
    figure = Figure(figsize=(9, 3.4))
    axes = figure.subplots(1, 2)
    for axis, (column, score, name) in zip(
        axes,
        (
            ("probe_accuracy", "patch_accuracy", "patch accuracy"),
            ("probe_miou", "patch_miou", "patch MIoU"),
        ),
        strict=True,
    ):
        axis.plot(probed["step"], probed[column], marker="o", label="teacher during training")
        for i, (backbone, row) in enumerate(val.iterrows()):
            axis.axhline(row[score], color=f"C{i + 1}", ls="--", lw=1, label=f"{backbone}, end")
        axis.set(title=f"k-NN probe on val: {name}", xlabel="step", ylim=(0, 1))
    axes[0].legend(fontsize=7)
    figure.suptitle(title, fontsize=10)
    figure.tight_layout()
    save(figure, path)


def emergent_scores(table: pd.DataFrame, path: str | Path, title: str) -> None:
    """Per-head NMI and mean AUC, one bar group per head, pre-trained against random."""
    figure = Figure(figsize=(9, 3.2))
    axes = figure.subplots(1, 2)
    backbones = list(table["backbone"].unique())
    width = 0.8 / len(backbones)
    for axis, score in zip(axes, ("nmi", "mean_auc"), strict=True):
        for i, backbone in enumerate(backbones):
            rows = table[table["backbone"] == backbone]
            axis.bar(rows["head"] + i * width, rows[score], width, label=backbone)
        heads = np.sort(table["head"].unique())
        axis.set_xticks(heads + width * (len(backbones) - 1) / 2, [str(h) for h in heads])
        axis.set(title=score.replace("_", " "), xlabel="head")
        if score == "mean_auc":
            axis.axhline(0.5, color="grey", lw=0.8, ls="--")
            axis.set_ylim(0.5, 1)
    axes[0].legend(fontsize=7)
    figure.suptitle(title, fontsize=10)
    figure.tight_layout()
    save(figure, path)
