"""How well are geetiles 0.1.7's uint8 wraps found and undone? Measured on real SAR (not a
test; seconds).

geetiles casts seasonal medians with `uint8(255 * (dB + 30) / 30)` and no clip, so dB
outside [-30, 0) wrap by 256 codes. The real Sen1Floods11 chip (one date) is smoothed with
a k x k boxcar in dB (k = 5 is about the speckle of a seasonal mean), cast exactly as
geetiles casts, and decoded by `sarssl.dataset.s1layout.decode`. Against the true values:

- wraps: the share of pixels whose VV or VH (or both) left [-30, 0) dB;
- detected: the share of single wraps that decoding flags; false: flags without a wrap;
- unwrapped right: the share of flagged single wraps restored within one uint8 step in
  both polarisations; marked nodata: the share made nodata because the two readings are
  alike (`WRAP_MARGIN_DB`); false: pixels without a wrap made nodata or moved by a wrap.

Usage:

    python benchmarks/uint8_wraps.py [--chip PATH] [--sizes 1 5 9]
"""

import argparse
from pathlib import Path

import numpy as np
import rasterio
from scipy.ndimage import uniform_filter

from sarssl.dataset.s1layout import UINT8_STEP_DB, decode

REPO = Path(__file__).resolve().parents[1]
CHIP = REPO / "tests/data/sen1floods11/Spain_7370579_S1Hand.tif"


def boxcar_db(band: np.ndarray, size: int) -> np.ndarray:
    """k x k mean in dB of the chip's finite pixels, edges cut off."""
    finite = np.isfinite(band)
    total = uniform_filter(np.where(finite, band, 0.0), size)
    count = uniform_filter(finite.astype(np.float64), size)
    half = size // 2
    mean = np.where(count > 0, total / np.maximum(count, 1e-9), np.nan)
    return mean[half : mean.shape[0] - half, half : mean.shape[1] - half]


def measure(vv: np.ndarray, vh: np.ndarray) -> dict[str, float]:
    """Cast true dB as geetiles does, decode, and score every single wrap's outcome."""
    true = np.stack([vv.ravel(), vh.ravel()])[:, None]
    true = true[:, :, np.isfinite(true).all(axis=0)[0]]
    codes = (255 * (true - -30) / (0 - -30)).astype(np.uint8)  # geetiles' own expression
    db, _ = decode(codes, None, "geetiles_uint8", [(0, 1)])
    # Values whose code left 0..255 before the uint8 wrap (the cast truncates to zero).
    whole_codes = np.trunc(255 * (true + 30) / 30)[:, 0]
    outside = (whole_codes < 0) | (whole_codes > 255)
    single = outside[0] ^ outside[1]
    error = np.abs(db - true)[:, 0]
    nodata = np.isnan(db[:, 0]).any(axis=0)
    right = (error <= UINT8_STEP_DB + 1e-4).all(axis=0)
    off = error > 25  # a polarisation read one wrap away from the truth
    missed = single & ~nodata & (off.sum(axis=0) == 1)  # still wrapped
    wrong = single & ~nodata & (off.sum(axis=0) == 2)  # the other polarisation unwrapped
    detected = single & ~missed
    return {
        "pixels": true.shape[-1],
        "wrapped (share of pixels)": float(outside.any(axis=0).mean()),
        "single wraps detected": float(detected.sum() / max(single.sum(), 1)),
        "of those, marked nodata": float((single & nodata).sum() / max(detected.sum(), 1)),
        "of the rest, unwrapped right": float(
            (single & right).sum() / max((single & right).sum() + wrong.sum(), 1)
        ),
        "false detections (share of pixels)": float(
            (~outside.any(axis=0) & (nodata | off.any(axis=0))).mean()
        ),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--chip", type=Path, default=CHIP)
    parser.add_argument("--sizes", type=int, nargs="+", default=[1, 5, 9])
    args = parser.parse_args()
    with rasterio.open(args.chip) as src:
        vv, vh = src.read().astype(np.float64)
    rows = {k: measure(boxcar_db(vv, k), boxcar_db(vh, k)) for k in args.sizes}
    names = list(next(iter(rows.values())))
    print("| boxcar | " + " | ".join(names) + " |")
    print("|:--|" + "--:|" * len(names))
    for k, row in rows.items():
        cells = [f"{v:,}" if isinstance(v, int) else f"{v:.2%}" for v in row.values()]
        print(f"| {k} x {k} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
