"""Does DINO pre-training learn? The learning benchmark (not a test).

The pipeline itself builds a synthetic AOI larger than the demo's and pre-trains a ViT-Tiny
once per variant (each a `pretrain` entry of one config, with its own `dino:` overrides),
with the k-NN probe of the teacher on val tiles once per epoch; the knn_probe rule then
scores teacher, student and a random-init ViT (the weights pre-training started from) on
val and test. This script writes the config, runs snakemake, and summarises:

- a table of the final probe scores of each variant against random init, read on the CLS
  token (DINO's own k-NN) and on the patch tokens, and the gap with its 95 % interval from
  the probe table's paired tile bootstrap;
- two references without any network: the same k-NN probe on each patch's mean of the 12
  normalised channels (the probe table's "patch means" row), and the share of the most
  common class (what a constant guess scores);
- a figure of the probe, the loss and the collapse indicators over the steps, and each
  variant's collapse verdict (`collapse.json`);
- fine-tuning of the first variant: the tokens decoder from scratch against the fine-tuned
  pre-trained ViT at the lowest and highest fraction, each over several seeds, with the
  paired difference (same seed, same tiles) and its 95 % t interval;
- context: the best classifier of single pixels (`separability_learning.csv`) against the
  U-Net on S1GRD of the context check (every train tile; the default config's
  realism.context_unet) and the grid's at the highest fraction.

Usage (`--variants demo` with the fine-tuning comparison took 60 minutes on 2 shared cores;
the four variants add about 12 minutes each, the context check about 30 minutes of one
core):

    python benchmarks/learning.py --workdir /tmp/learning --out benchmarks

`--probe-only` pre-trains and probes, without the fine-tuning and the context check;
`--probe-every N` probes the teacher on val every N steps (-1: only the final probe).
`--budgets 1 2 4 8` is the compute ladder: each variant trained once per budget (epochs),
each run with its schedules scaled to its own length, and the gains against the steps in
`learning_ladder.png`.

Variants (see `variants`): DINO's own recipe (sarssl.settings.recipes, scaled to the run's
length by its `scaled_to_run`), alone (`dino`, the demo's recipe since the ladder), with the
SAR photometric augmentation (`dino-sar`), and with the learning rate scaled by the square
root of the batch, without and with the augmentation (`dino-sqrt-lr`, `dino-sar-sqrt-lr`);
the earlier demo's settings (`demo`, BASE_DINO: the paper's temperatures); the paper's
learning rate in its two readings: 1e-6 as DINO's --lr, which at the paper's batch of 256 is
also DINO's min_lr, so the schedule is flat (`paper-lr-literal`), and 1e-6 as min_lr under
DINO's peak of 5e-4 per 256 tiles (`paper-lr-dino`), both scaled to the benchmark's batch as
DINO scales them; DINO's teacher momentum; DINO's own teacher temperatures.
"""

import argparse
import itertools
import json
import platform
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import yaml
from matplotlib.figure import Figure
from scipy import stats as scipy_stats

from sarssl import paths
from sarssl.evaluation.probe import CLS, PATCH_MEANS, RANDOM_INIT, READINGS, SUPERVISED
from sarssl.settings.finetune import Init, Model, Run, grid_seeds, run_file
from sarssl.settings.recipes import DINO, DINO_RECIPE, scaled_to_run
from sarssl.settings.separability import CONTEXT_INPUT

REPO = Path(__file__).resolve().parents[1]
# A box around the demo's, about 4 times its area.
AOI_WKT = "POLYGON ((-1.15 41.55, -0.71 41.55, -0.71 41.89, -1.15 41.89, -1.15 41.55))"
PAPER_LR = 1.0e-6
DINO_LR = 5.0e-4  # DINO's --lr default, per 256 images
REFERENCE_BATCH = 256
# The benchmark AOI's valid train tiles at 224 px (stats.json), for the steps of a run.
TRAIN_TILES = 163
# The dino section every variant overrides: the demo's until it took DINO's recipe (the
# paper's temperatures, lr 0.016 per 256 tiles, teacher momentum 0.95, 2 local crops of
# 96 px, out_dim 4096), kept so that every run of the benchmark stays comparable.
BASE_DINO = {
    "out_dim": 4096,
    "lr": 0.016,
    "teacher_momentum": 0.95,
    "warmup_epochs": 1,
    "warmup_teacher_temp_epochs": 2,
    "local_px": 96,
    "local_crops": 2,
    "loader_workers": 1,
    "checkpoint_every": 50,
    "log_every": 5,
}


def variants(batch_size: int, epochs: int = 10, train_tiles: int = TRAIN_TILES) -> dict[str, dict]:
    """The `dino:` overrides of each variant at the benchmark's batch; DINO's recipe scaled
    to the run's length by sarssl.settings.recipes.scaled_to_run."""
    steps = epochs * (train_tiles // batch_size)
    dino = {"recipe": DINO, **scaled_to_run(DINO_RECIPE, epochs, steps)}
    return {
        # DINO's own recipe (temperatures 0.1 / 0.04 -> 0.07, center momentum 0.9, lr 5e-4
        # per 256 tiles, 8 local crops, out_dim 65536), scaled to the run.
        "dino": dino,
        # The same with the SAR photometric augmentation of each view.
        "dino-sar": dino | {"augment": {"enabled": True}},
        # DINO's recipe with the learning rate scaled by the square root of the batch
        # (DINOv2's rule) instead of linearly: 5.7 x the linear rule at a batch of 8.
        "dino-sqrt-lr": dino | {"lr": DINO_LR * (REFERENCE_BATCH / batch_size) ** 0.5},
        # ... with the learning rate scaled by the square root of the batch (DINOv2's rule)
        # instead of linearly: 5e-4 x sqrt(8 / 256) at a batch of 8, 5.7 x the linear rule.
        "dino-sar-sqrt-lr": dino
        | {
            "augment": {"enabled": True},
            "lr": DINO_LR * (REFERENCE_BATCH / batch_size) ** 0.5,
        },
        # The earlier demo's DINO settings (BASE_DINO): lr 0.016 per 256 tiles, i.e. 5e-4 at
        # a batch of 8; teacher momentum 0.95; the paper's temperatures. Its warm-up
        # of 2 epochs is cut to a shorter run's length.
        "demo": {"warmup_teacher_temp_epochs": min(2, epochs)},
        # 1e-6 as --lr: at the paper's batch of 256 the peak equals min_lr, a flat schedule;
        # here both are scaled to the batch (3.1e-8 at 8) to keep that shape.
        "paper-lr-literal": {
            "lr": PAPER_LR,
            "min_lr": PAPER_LR * batch_size / REFERENCE_BATCH,
        },
        # 1e-6 as min_lr, DINO's peak of 5e-4 per 256 tiles (1.6e-5 at a batch of 8).
        "paper-lr-dino": {"lr": DINO_LR, "min_lr": PAPER_LR},
        # DINO's teacher momentum (0.996 -> 1) instead of the demo's 0.95.
        "dino-momentum": {"teacher_momentum": 0.996},
        # DINO's own teacher temperatures instead of the paper's 0.01 -> 0.001.
        "dino-temps": {"warmup_teacher_temp": 0.04, "teacher_temp": 0.07},
    }


VARIANTS = tuple(variants(8))


def runs(args: argparse.Namespace) -> dict[str, tuple[str, int]]:
    """Each pre-training of the benchmark: its name -> (variant, epochs). With --budgets,
    every variant once per budget (its schedules scaled to that run's length, as DINO's
    are to its own), else once at --epochs."""
    if not args.budgets:
        return {name: (name, args.epochs) for name in args.variants}
    return {
        f"{name}-e{epochs}": (name, epochs)
        for name in args.variants
        for epochs in sorted(args.budgets)
    }


def finetuned_run(args: argparse.Namespace) -> str:
    """The pre-training the fine-tuning comparison reads: the first variant's largest budget."""
    ladder = runs(args)
    first = [name for name, (variant, _) in ladder.items() if variant == args.variants[0]]
    return max(first, key=lambda name: ladder[name][1])


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
                "epochs": epochs,
                "batch_size": args.batch_size,
                "threads": 2,
                "mem_mb": 8000,
                "runtime": 600,
                "dino": variants(args.batch_size, epochs)[variant],
            }
            for name, (variant, epochs) in runs(args).items()
        ],
        "dino": BASE_DINO,
        # Every val and test tile is probed (the AOI has 50 and 59).
        "probe": {
            **demo.get("probe", {}),
            "every": args.probe_every,
            "train_tiles": 163,
            "eval_tiles": 64,
            "gpu": False,
            # The probe's ceiling: the ViT trained on every train tile's labels, once (every
            # run shares the architecture and the data).
            "supervised_reference": {
                "percent": 100,
                "epochs": args.supervised_epochs,
                "pretrain": [f"learning-{finetuned_run(args)}"],
            },
        },
        "attention": {**demo["attention"], "gpu": False},
        # With the context check; the real chip's path from the repository, not the workdir.
        "realism": demo["realism"] | {"reference_s1": str(REPO / demo["realism"]["reference_s1"])},
        "finetune": {
            **{k: v for k, v in demo["finetune"].items() if k not in ("pretrain", "unet_baseline")},
            "aoi": "learning",
            "pretrain": [f"learning-{finetuned_run(args)}"],
            "percents": args.finetune_percents,
            "encodings": ["tokens"],
            "inits": [Init.SCRATCH.value, Init.FINETUNED.value],
            "seeds": args.finetune_seeds,
            "unet_gpu": False,
        },
    }


def unet_targets(args: argparse.Namespace) -> list[str]:
    """The U-Net on S1GRD at the highest fraction, each seed of the grid: not part of the
    tokens grid, asked for by its run file."""
    finetune = config(args, Path())["finetune"]
    runs = [
        Run(
            finetune["pretrain"][0],
            Model.S1GRD_UNET,
            Init.SCRATCH,
            max(args.finetune_percents),
            seed,
        )
        for seed in grid_seeds(finetune)
    ]
    return [str(run_file("results", run, paths.FINETUNE_METRICS)) for run in runs]


def mean_interval(values: np.ndarray) -> str:
    """Mean ± sample sd and the 95 % t interval of the mean, in points."""
    values = 100 * np.asarray(values, dtype=float)
    half = scipy_stats.t.ppf(0.975, len(values) - 1) * values.std(ddof=1) / np.sqrt(len(values))
    return (f"{values.mean():+.1f} ± {values.std(ddof=1):.1f} "
            f"[{values.mean() - half:+.1f}, {values.mean() + half:+.1f}]")  # fmt: skip


def finetune_summary(workdir: Path) -> pd.DataFrame:
    """Tokens decoder, per fraction: scratch and fine-tuned MIoU over the seeds, and the
    paired gain of pre-training (same seed: same tiles and decoder initialisation)."""
    runs = pd.read_csv(workdir / "results/tables/runs.csv")
    runs = runs[runs["model"] == Model.TOKENS_DECODER]
    rows = []
    for fraction, cell in runs.groupby("fraction"):
        by_init = cell.pivot(index="seed", columns="init", values="miou")
        rows.append(
            {
                "fraction %": fraction,
                "seeds": len(by_init),
                "scratch MIoU %": mean_interval(by_init[Init.SCRATCH]).replace("+", ""),
                "fine-tuned MIoU %": mean_interval(by_init[Init.FINETUNED]).replace("+", ""),
                "gain (points)": mean_interval(by_init[Init.FINETUNED] - by_init[Init.SCRATCH]),
            }
        )
    return pd.DataFrame(rows)


def context_summary(workdir: Path, args: argparse.Namespace) -> pd.DataFrame:
    """The best single-pixel classifier against the U-Nets on S1GRD: the context check's
    (every train tile, its row of the separability table) and the grid's at the highest
    fraction (mean over seeds)."""
    table = pd.read_csv(workdir / "results/tables/separability_learning.csv")
    pixels = table[table["input"] == "pixel"].set_index("classifier")["miou"]
    check = table.loc[table["input"] == CONTEXT_INPUT, "miou"]
    check_miou = check.iloc[0] if len(check) else np.nan  # a config without the check
    unet = [json.loads((workdir / t).read_text())["miou"] for t in unet_targets(args)]
    return pd.DataFrame(
        [
            {
                "best pixel classifier": pixels.idxmax(),
                "its MIoU": pixels.max(),
                "context check U-Net": check_miou,
                "context pays (points)": 100 * (check_miou - pixels.max()),
                f"grid U-Net at {max(args.finetune_percents):g} %": np.mean(unet),
                "its seeds": ", ".join(f"{m:.3f}" for m in unet),
            }
        ]
    )


def references(workdir: Path, variant: str) -> pd.DataFrame:
    """Per split: the k-NN probe on patch means and on the supervised reference's ViT (the
    probe table's rows: the same tiles, k and votes for every variant) and the share of the
    most common class among the split's labelled pixels."""
    stats = yaml.safe_load((workdir / "results/learning/stats.json").read_text())
    table = pd.read_csv(workdir / f"results/tables/probe_learning-{variant}.csv")
    rows = []
    for split in ("val", "test"):
        scores = table[table["split"] == split].set_index("backbone")
        pixels = np.asarray(stats["class_pixels"][split], dtype=float)
        row = {"split": split}
        for name, backbone in (("patch_means", PATCH_MEANS), ("supervised", SUPERVISED)):
            for reading, score in itertools.product(READINGS, ("accuracy", "miou")):
                column = f"{reading}_{score}"
                row[f"{name}_{column}"] = scores.loc[backbone, column]
        rows.append(row | {"majority_share": pixels.max() / pixels.sum()})
    return pd.DataFrame(rows)


def summary(workdir: Path, names: list[str]) -> tuple[pd.DataFrame, dict[str, pd.DataFrame]]:
    """Per variant, split and probe reading (CLS, patch): teacher, random init and the patch
    means, and the teacher's gain in points with its paired 95 % tile-bootstrap interval
    (the probe table's `_gain` columns)."""
    rows, curves = [], {}
    for name in names:
        run = f"learning-{name}"
        if not (workdir / f"results/tables/probe_{run}.csv").is_file():
            print(f"{run}: not run in {workdir}, left out")  # a ladder's untried rungs
            continue
        table = pd.read_csv(workdir / f"results/tables/probe_{run}.csv")
        curves[name] = pd.read_csv(workdir / f"results/pretrain/{run}/metrics.csv")
        verdict = json.loads((workdir / f"results/pretrain/{run}/collapse.json").read_text())
        for split, reading in itertools.product(("val", "test"), READINGS):
            scores = table[table["split"] == split].set_index("backbone")
            teacher = scores.loc["pre-trained (teacher)"]
            row = {"variant": name, "split": split, "reading": reading}
            for score in ("accuracy", "miou"):
                column = f"{reading}_{score}"
                row[f"teacher_{score}"] = teacher[column]
                row[f"random_{score}"] = scores.loc[RANDOM_INIT, column]
                row[f"means_{score}"] = scores.loc[PATCH_MEANS, column]
                for end in ("", "_low", "_high"):
                    row[f"{score}_gain_points{end}"] = 100 * teacher[f"{column}_gain{end}"]
            row["collapse"] = verdict["verdict"]
            row["steps"] = int(curves[name]["step"].max())
            rows.append(row)
    return pd.DataFrame(rows), curves


def plot(curves: dict[str, pd.DataFrame], path: Path) -> None:
    panels = (
        ("probe_accuracy", "k-NN probe on val: patch accuracy"),
        ("probe_cls_accuracy", "k-NN probe on val: CLS accuracy"),
        ("loss", "DINO loss"),
        ("batch_entropy", "entropy of the batch-mean teacher"),
        ("prototypes", "prototypes winning in a batch"),
    )
    figure = Figure(figsize=(17, 3.4))
    axes = figure.subplots(1, len(panels))
    for axis, (column, title) in zip(axes, panels, strict=True):
        for name, frame in curves.items():
            if column not in frame:  # runs probed before the CLS reading
                continue
            points = frame.dropna(subset=[column])
            axis.plot(points["step"], points[column], marker="." * column.startswith("probe"),
                      label=name)  # fmt: skip
        axis.set(title=title, xlabel="step")
    axes[0].legend(fontsize=7)
    figure.tight_layout()
    figure.savefig(path, dpi=110)


def ladder_plot(table: pd.DataFrame, ladder: dict[str, tuple[str, int]], path: Path) -> None:
    """The teacher's MIoU gain over random init against the steps of each budget, per
    variant, reading and split, with the paired tile-bootstrap 95 % intervals."""
    table = table.assign(name=table["variant"])
    table["variant"] = [ladder[name][0] for name in table["name"]]
    panels = [(split, reading) for split in ("val", "test") for reading in READINGS]
    figure = Figure(figsize=(4.2 * len(panels), 3.4))
    axes = figure.subplots(1, len(panels), sharey=True)
    for axis, (split, reading) in zip(axes, panels, strict=True):
        cells = table[(table["split"] == split) & (table["reading"] == reading)]
        for variant, rows in cells.groupby("variant", sort=False):
            rows = rows.sort_values("steps")
            low = rows["miou_gain_points"] - rows["miou_gain_points_low"]
            high = rows["miou_gain_points_high"] - rows["miou_gain_points"]
            axis.errorbar(rows["steps"], rows["miou_gain_points"], yerr=[low, high],
                          marker="o", capsize=3, label=variant)  # fmt: skip
        axis.axhline(0, color="grey", linewidth=0.8)
        name = "CLS" if reading == CLS else reading
        axis.set(title=f"{name} reading, {split}", xlabel="steps (log scale)", xscale="log")
        steps = sorted(cells["steps"].unique())
        axis.set_xticks(steps, [str(s) for s in steps])
        axis.minorticks_off()
    axes[0].set_ylabel("MIoU gain over random init (points)")
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
    parser.add_argument(
        "--budgets",
        nargs="+",
        type=int,
        help="epochs: one pre-training of each variant per budget (the compute ladder)",
    )
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    parser.add_argument("--finetune-percents", nargs="+", type=float, default=[5.0, 20.0])
    parser.add_argument(
        "--supervised-epochs",
        type=int,
        default=30,
        help="epochs of the probe's supervised reference (every train tile)",
    )
    parser.add_argument(
        "--no-context",
        action="store_true",
        help="fine-tune without the context check (separability, U-Nets on S1GRD)",
    )
    parser.add_argument("--finetune-seeds", type=int, default=3)
    parser.add_argument("--probe-every", type=int, default=0, help="steps (0: once per epoch)")
    parser.add_argument(
        "--probe-only",
        action="store_true",
        help="pre-train and probe only: no fine-tuning and no context check",
    )
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
        targets = [f"results/tables/probe_learning-{name}.csv" for name in runs(args)]
        if not args.probe_only:
            targets += ["results/tables/runs.csv"]
        if not (args.probe_only or args.no_context):
            targets += ["results/tables/separability_learning.csv", *unet_targets(args)]
        started = time.perf_counter()
        subprocess.run(
            [sys.executable, "-m", "snakemake", *targets, "--snakefile", str(REPO / "Snakefile"),
             "--directory", str(args.workdir), "--cores", "2", "--configfile", str(configfile),
             # A workdir's store is reused across versions of the code; runs are new names.
             "--rerun-triggers", "mtime", "params", "input"],
            check=True,
        )  # fmt: skip
        minutes = (time.perf_counter() - started) / 60
        print(f"machine: {platform.processor() or platform.machine()}, {platform.platform()}; "
              f"{minutes:.1f} min; tile {args.tile_px} px, "
              f"{args.epochs} epochs of batch {args.batch_size}")  # fmt: skip
    table, curves = summary(args.workdir, list(runs(args)))
    args.out.mkdir(parents=True, exist_ok=True)
    plot(curves, args.out / "learning_curves.png")
    stats = yaml.safe_load((args.workdir / "results/learning/stats.json").read_text())
    print(f"tiles {stats['tiles']}")
    print(table.to_markdown(index=False, floatfmt=".3f"))
    references_table = references(args.workdir, finetuned_run(args))
    print(references_table.to_markdown(index=False, floatfmt=".3f"))
    if args.budgets:
        ladder_plot(table, runs(args), args.out / "learning_ladder.png")
    if not args.probe_only:
        print(finetune_summary(args.workdir).to_markdown(index=False))
    if not (args.probe_only or args.no_context):
        print(context_summary(args.workdir, args).to_markdown(index=False, floatfmt=".3f"))


if __name__ == "__main__":
    main()
