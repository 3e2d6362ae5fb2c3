"""Does DINO pre-training learn? The learning benchmark (not a test).

The pipeline itself builds a synthetic AOI larger than the demo's and pre-trains a ViT-Tiny
once per variant (each a `pretrain` entry of one config, with its own `dino:` overrides),
with the k-NN probe of the teacher on val tiles once per epoch; the knn_probe rule then
scores teacher, student and a random-init ViT (the weights pre-training started from) on
val and test. This script writes the config, runs snakemake, and summarises:

- a table of the final probe scores of each variant against random init, and the gap;
- two references without any network: the same k-NN probe on each patch's mean of the 12
  normalised channels, and the share of the most common class (what a constant guess scores);
- a figure of the probe, the loss and the collapse indicators over the steps.

Usage (about 45 minutes on 2 cores at the defaults):

    python benchmarks/learning.py --workdir /tmp/learning --out benchmarks

Variants (see VARIANTS): the demo's settings; the paper's learning rate 1e-6 read as DINO's
--lr (the negative control); DINO's teacher momentum; DINO's own teacher temperatures.
"""

import argparse
import platform
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import yaml
from matplotlib.figure import Figure
from torch import nn

from sarssl.data import Normalisation, split_tiles
from sarssl.probe import PatchProbe, ProbeSettings

REPO = Path(__file__).resolve().parents[1]
# A box around the demo's, about 4 times its area.
AOI_WKT = "POLYGON ((-1.15 41.55, -0.71 41.55, -0.71 41.89, -1.15 41.89, -1.15 41.55))"
VARIANTS = {
    # The demo's DINO settings: lr 0.016 per 256 tiles, i.e. 5e-4 at a batch of 8 (DINO's
    # default peak); teacher momentum 0.95; the paper's temperatures.
    "demo": {},
    # The paper's 1e-6, read as DINO's --lr (scaled to 3.1e-8 at a batch of 8).
    "paper-lr": {"lr": 1.0e-6, "min_lr": 1.0e-7},
    # DINO's teacher momentum (0.996 -> 1) instead of the demo's 0.95.
    "dino-momentum": {"teacher_momentum": 0.996},
    # DINO's own teacher temperatures instead of the paper's 0.01 -> 0.001.
    "dino-temps": {"warmup_teacher_temp": 0.04, "teacher_temp": 0.07},
}


def config(args: argparse.Namespace, wkt: Path) -> dict:
    demo = yaml.safe_load((REPO / "config/config.yaml").read_text())
    return {
        "aois": [{"name": "learning", "source": "synthetic", "wkt": str(wkt), "n_shards": 2}],
        "data": {**demo["data"], "tile_px": args.tile_px},
        "split": demo["split"],
        "synthetic": demo["synthetic"],
        "pretrain": [
            {
                "name": f"learning-{name}",
                "architecture": "vit_tiny_patch16_224",
                "aois": ["learning"],
                "epochs": args.epochs,
                "batch_size": args.batch_size,
                "threads": 2,
                "mem_mb": 8000,
                "runtime": 600,
                "dino": overrides,
            }
            for name, overrides in VARIANTS.items()
            if name in args.variants
        ],
        "dino": {**demo["dino"], "checkpoint_every": 50, "log_every": 5},
        "probe": {**demo.get("probe", {}), "train_tiles": 128, "eval_tiles": 32, "gpu": False},
        "attention": {**demo["attention"], "gpu": False},
        "finetune": {"aoi": None},
    }


class PatchGrid:
    """What the probe asks of a ViT's patch_embed: the token grid of an image size."""

    def __init__(self, patch: int):
        self.patch = patch

    def dynamic_feat_size(self, size: tuple[int, int]) -> tuple[int, int]:
        return size[0] // self.patch, size[1] // self.patch


class PatchMeans(nn.Module):
    """The probe's reference without a network: each 16 x 16 patch's mean of the normalised
    channels, as a fixed averaging convolution shaped like a ViT for the probe."""

    num_prefix_tokens = 0

    def __init__(self, channels: int = 12, patch: int = 16):
        super().__init__()
        self.patch_embed = PatchGrid(patch)
        self.average = nn.Conv2d(channels, channels, patch, stride=patch, bias=False)
        with torch.no_grad():
            self.average.weight.copy_(
                torch.eye(channels)[:, :, None, None].expand(-1, -1, patch, patch) / patch**2
            )

    def forward_features(self, images: torch.Tensor) -> torch.Tensor:
        return self.average(images).flatten(2).transpose(1, 2)


def references(workdir: Path, probe_settings: dict) -> pd.DataFrame:
    """Per split: the k-NN probe on patch means (same tiles, k and votes as the pipeline's
    probe) and the share of the most common class among the split's labelled pixels."""
    store = workdir / "results/learning/dataset.zarr"
    stats = yaml.safe_load((workdir / "results/learning/stats.json").read_text())
    probe = PatchProbe(
        split_tiles(store, ["train"]),
        {split: split_tiles(store, [split]) for split in ("val", "test")},
        Normalisation.from_dict(stats["normalisation"]),
        ProbeSettings(**probe_settings),
    )
    rows = []
    for split, scores in probe.score(PatchMeans()).items():
        pixels = np.asarray(stats["class_pixels"][split], dtype=float)
        rows.append(
            {
                "split": split,
                "patch_means_accuracy": scores.accuracy,
                "patch_means_miou": scores.miou,
                "majority_share": pixels.max() / pixels.sum(),
            }
        )
    return pd.DataFrame(rows)


def summary(workdir: Path, names: list[str]) -> tuple[pd.DataFrame, dict[str, pd.DataFrame]]:
    rows, curves = [], {}
    for name in names:
        run = f"learning-{name}"
        table = pd.read_csv(workdir / f"results/tables/probe_{run}.csv")
        curves[name] = pd.read_csv(workdir / f"results/pretrain/{run}/metrics.csv")
        for split in ("val", "test"):
            scores = table[table["split"] == split].set_index("backbone")
            teacher = scores.loc["pre-trained (teacher)"]
            random = scores.loc["random init (reference)"]
            rows.append(
                {
                    "variant": name,
                    "split": split,
                    "teacher_accuracy": teacher.patch_accuracy,
                    "random_accuracy": random.patch_accuracy,
                    "accuracy_gain_points": 100 * (teacher.patch_accuracy - random.patch_accuracy),
                    "teacher_miou": teacher.patch_miou,
                    "random_miou": random.patch_miou,
                    "miou_gain_points": 100 * (teacher.patch_miou - random.patch_miou),
                    "steps": int(curves[name]["step"].max()),
                    "probe_share": curves[name]["probe_s"].sum() / curves[name]["elapsed_s"].max(),
                }
            )
    return pd.DataFrame(rows), curves


def plot(curves: dict[str, pd.DataFrame], path: Path) -> None:
    panels = (
        ("probe_accuracy", "k-NN probe on val: patch accuracy"),
        ("loss", "DINO loss"),
        ("batch_entropy", "entropy of the batch-mean teacher"),
        ("prototypes", "prototypes winning in a batch"),
    )
    figure = Figure(figsize=(14, 3.4))
    axes = figure.subplots(1, len(panels))
    for axis, (column, title) in zip(axes, panels, strict=True):
        for name, frame in curves.items():
            points = frame.dropna(subset=[column])
            axis.plot(points["step"], points[column], marker="." * (column == "probe_accuracy"),
                      label=name)  # fmt: skip
        axis.set(title=title, xlabel="step")
    axes[0].legend(fontsize=7)
    figure.tight_layout()
    figure.savefig(path, dpi=110)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/sarssl-learning"))
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks")
    parser.add_argument("--tile-px", type=int, default=224)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    parser.add_argument(
        "--summary-only",
        action="store_true",
        help="summarise a finished workdir again without running snakemake",
    )
    args = parser.parse_args()
    args.workdir.mkdir(parents=True, exist_ok=True)
    wkt = args.workdir / "learning.wkt"
    configfile = args.workdir / "config.yaml"
    if not args.summary_only:
        wkt.write_text(AOI_WKT)
        configfile.write_text(yaml.safe_dump(config(args, wkt)))
        targets = [f"results/tables/probe_learning-{name}.csv" for name in args.variants]
        started = time.perf_counter()
        subprocess.run(
            [sys.executable, "-m", "snakemake", *targets, "--snakefile", str(REPO / "Snakefile"),
             "--directory", str(args.workdir), "--cores", "2", "--configfile", str(configfile)],
            check=True,
        )  # fmt: skip
        minutes = (time.perf_counter() - started) / 60
        print(f"machine: {platform.processor() or platform.machine()}, {platform.platform()}; "
              f"{minutes:.1f} min; tile {args.tile_px} px, "
              f"{args.epochs} epochs of batch {args.batch_size}")  # fmt: skip
    table, curves = summary(args.workdir, args.variants)
    args.out.mkdir(parents=True, exist_ok=True)
    plot(curves, args.out / "learning_curves.png")
    stats = yaml.safe_load((args.workdir / "results/learning/stats.json").read_text())
    print(f"tiles {stats['tiles']}")
    print(table.to_markdown(index=False, floatfmt=".3f"))
    probe_settings = yaml.safe_load(configfile.read_text())["probe"]
    known = ProbeSettings.__dataclass_fields__
    reference = references(args.workdir, {k: v for k, v in probe_settings.items() if k in known})
    print(reference.to_markdown(index=False, floatfmt=".3f"))


if __name__ == "__main__":
    main()
