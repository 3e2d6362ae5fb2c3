"""Figures (sarssl.outputs.figures): PNGs in the WorldCover colours."""

import numpy as np
import pandas as pd
from PIL import Image

from sarssl.dataset.worldcover import CLASSES, IGNORE_INDEX, NUM_CLASSES
from sarssl.outputs import figures

FRACTIONS = [0.1, 1.0]


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
