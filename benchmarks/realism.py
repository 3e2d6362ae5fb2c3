"""Is the synthetic source realistic enough? The realism benchmark (not a test).

Reads a finished workdir (the repository's own after `snakemake --cores all`: its
results/tables/separability_{aoi}.csv, results/tables/runs.csv and the AOI's store), draws
the realism figure again beside the real Sentinel-1 chip, and prints a Markdown section:

- the separability without context: per-pixel naive Bayes, LDA and k-NN, k-NN on 16 x 16
  patch means, and the majority class (test split), and with it: the context check's U-Net
  on S1GRD on the same train tiles (where the config has realism.context_unet);
- the fine-tuning grid's U-Net on S1GRD only (from scratch) at each label fraction, mean
  over its seeds;
- VV and VH percentiles and the VV semivariogram's nugget and 90 %-of-sill lag, synthetic
  against the real chip as it is (single date) and after a boxcar (about a seasonal mean's
  speckle);
- the goals: no per-pixel classifier above 0.30 MIoU, and the context check's U-Net at least
  5 points above the best per-pixel classifier (sarssl.evaluation.separability.goal_lines).

Usage (seconds):

    python benchmarks/realism.py [--workdir .] [--aoi demo] [--out section.md]
"""

import argparse
import sys
from pathlib import Path

import pandas as pd

from sarssl import paths
from sarssl.evaluation.separability import goal_lines
from sarssl.outputs.realism import compare, realism_figure
from sarssl.outputs.tables import frame_markdown, percent
from sarssl.settings.finetune import Init, Model

REPO = Path(__file__).resolve().parents[1]
# The default config's realism.reference_s1, relative to the repository.
REFERENCE = REPO / "tests/data/sen1floods11/Spain_7370579_S1Hand.tif"


def unet_baseline(runs_csv: Path) -> pd.DataFrame:
    """MIoU of the U-Net on S1GRD only per fraction: mean over its finished seeds."""
    runs = pd.read_csv(runs_csv)
    unet = runs[(runs["model"] == Model.S1GRD_UNET) & (runs["init"] == Init.SCRATCH)]
    return (
        unet.groupby("fraction")["miou"]
        .agg(miou="mean", finished="count", runs="size")
        .reset_index()
        .sort_values("fraction")
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--workdir", type=Path, default=REPO)
    parser.add_argument("--aoi", default="demo")
    parser.add_argument("--reference", type=Path, default=REFERENCE)
    parser.add_argument("--tiles", type=int, default=16, help="test tiles compared")
    parser.add_argument("--boxcar-px", type=int, default=5)
    parser.add_argument("--figure", type=Path, default=REPO / "benchmarks/realism.png")
    parser.add_argument("--out", type=Path, help="write the Markdown here, not to stdout")
    args = parser.parse_args()

    results = args.workdir / paths.RESULTS
    separability = pd.read_csv(
        paths.under(results, paths.SEPARABILITY_TABLE, aoi=args.aoi, format="csv")
    )
    unet = unet_baseline(paths.under(results, paths.RUNS_TABLE))
    store = paths.under(results, paths.STORE, aoi=args.aoi)
    comparison = compare(store, args.reference, args.tiles, args.boxcar_px)
    realism_figure(comparison, separability, args.figure, f"Realism of the {args.aoi} data")

    columns = ["input", "classifier", "accuracy", "miou", "test_samples"]
    sections = [
        f"## Realism of the synthetic source, {args.aoi}",
        "",
        frame_markdown(separability[columns], "Separability without context (test split)"),
        frame_markdown(
            unet.assign(fraction=unet["fraction"].map(percent)),
            "U-Net on S1GRD only, from scratch (MIoU, mean over its finished seeds)",
        ),
        frame_markdown(
            comparison.summary(),
            "Backscatter against the real chip (dB; VV nugget and 90 %-of-sill lag in m, "
            "NaN: beyond half a window)",
            digits=2,
        ),
        *([f"Note: {comparison.note}.", ""] if comparison.note else []),
        f"Figure: {args.figure}",
        "",
        "**Goals**",
        "",
        *goal_lines(separability),
    ]
    text = "\n".join(sections) + "\n"
    if args.out:
        args.out.write_text(text)
    else:
        sys.stdout.write(text)


if __name__ == "__main__":
    main()
