"""Generation cost of the synthetic source (not a test).

CPU seconds per tile of `sarssl.dataset.synthetic.synthetic_tile` on one thread, at the
demo's 224 px and the paper's 448 px, against the generator before the realistic scenes
(git 2c04557, one signature per class), loaded from git history as the baseline and timed
in the same run, alternating tile by tile. The budget is 0.5 s per 448 px tile on one core.

    OMP_NUM_THREADS=1 python benchmarks/synthetic_source.py --tiles 12
"""

import argparse
import os
import platform
import subprocess
import sys
import time
import types
from collections.abc import Callable
from pathlib import Path

import numpy as np

from sarssl.dataset.synthetic import synthetic_tile

REPO = Path(__file__).resolve().parents[1]
BASELINE_COMMIT = "2c04557"


def baseline_generator() -> Callable | None:
    """synthetic_tile of the baseline commit, or None outside a git checkout."""
    try:
        source = subprocess.run(
            ["git", "show", f"{BASELINE_COMMIT}:src/sarssl/dataset/synthetic.py"],
            cwd=REPO, capture_output=True, text=True, check=True,
        ).stdout  # fmt: skip
    except (OSError, subprocess.CalledProcessError):
        return None
    module = types.ModuleType("baseline_synthetic")
    exec(
        compile(source.replace("from .", "from sarssl.dataset."), "baseline", "exec"),
        module.__dict__,
    )
    return module.synthetic_tile


def cpu_seconds(generate: Callable, bounds: tuple, px: int, tile: str) -> float:
    started = time.process_time()
    generate(bounds, px, tile, 39)
    return time.process_time() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--tiles", type=int, default=12)
    args = parser.parse_args()
    generators = {"sarssl": synthetic_tile}
    if (baseline := baseline_generator()) is not None:
        generators["baseline (2c04557)"] = baseline
    threads = os.environ.get("OMP_NUM_THREADS")
    machine = platform.processor() or platform.machine()
    print(f"machine: {machine}, {platform.platform()}, Python {sys.version.split()[0]}, "
          f"OMP_NUM_THREADS={threads}")  # fmt: skip
    print("| generator | tile px | CPU s per tile (median) | min | max | ratio to baseline |")
    print("|:--|--:|--:|--:|--:|--:|")
    for px in (224, 448):
        size = px * 10 / 111_320  # degrees: 10 m pixels near the demo AOI's latitude
        times: dict[str, list[float]] = {name: [] for name in generators}
        for i in range(args.tiles + 1):
            west = -1.15 + (i % 4) * size
            bounds = (
                west,
                41.55 + (i // 4) * size,
                west + size * 1.34,
                41.55 + (i // 4 + 1) * size,
            )
            for name, generate in generators.items():
                seconds = cpu_seconds(generate, bounds, px, f"{i + 1:013x}")
                if i:  # the first tile warms caches and imports
                    times[name].append(seconds)
        medians = {name: float(np.median(t)) for name, t in times.items()}
        for name, t in times.items():
            ratio = medians[name] / medians.get("baseline (2c04557)", np.nan)
            spread = f"{min(t):.3f} | {max(t):.3f}"
            print(f"| {name} | {px} | {medians[name]:.3f} | {spread} | {ratio:.2f} |")


if __name__ == "__main__":
    main()
