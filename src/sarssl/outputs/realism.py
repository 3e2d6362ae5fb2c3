"""How the synthetic source's backscatter compares with a real Sentinel-1 chip, and the
figure of the realism report (with the separability of sarssl.evaluation.separability).

The real chip (a GeoTIFF with bands VV and VH in dB, e.g. a Sen1Floods11 S1Hand chip) is a
single acquisition: its speckle has the equivalent number of looks of GRD, about 4.4. A
store channel is a seasonal mean of the dB values of about 12 acquisitions, whose speckle is
about sqrt(12) times weaker. The chip is therefore also shown after a boxcar mean in dB: a
5 x 5 window averages about as many independent speckle samples as a seasonal mean (GRD
pixels of 10 m oversample its ~20 m resolution, so 25 pixels hold roughly 6 to 12
independent ones), at the price of blurring texture finer than the window, which a temporal
mean keeps. The truth lies between the two curves.

Compared, on windows of the store's tile size (the chip is cut into such windows):
- histograms and percentiles of VV and VH;
- the semivariogram of VV, radially averaged over lags in metres, normalised by each
  window's variance: its value at the first lag is the share of the variance that is
  pixel-scale noise (the nugget, speckle), and the lag at which it reaches 90 % of the
  variance says how large the texture and objects are.
"""

from dataclasses import dataclass
from pathlib import Path
from textwrap import fill

import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from rasterio.crs import CRS
from rasterio.transform import Affine
from scipy.ndimage import uniform_filter

from sarssl.dataset.bands import CHANNELS, POLARISATIONS, SEASONS, band_name
from sarssl.dataset.geotiff import read_raster
from sarssl.dataset.store import open_store, split_positions, tile_transform
from sarssl.errors import SarsslError
from sarssl.outputs.figures import clean, save
from sarssl.outputs.report import first_test_tiles
from sarssl.settings.separability import CONTEXT_INPUT, PIXEL_MIOU_GOAL

METRES_PER_DEGREE = 6_371_008.8 * np.pi / 180  # on the mean Earth sphere
QUICKLOOK_SEASON = "summer"
QUICKLOOK_TILES = 2
SILL_SHARE = 0.9


@dataclass(frozen=True)
class Images:
    """VV and VH in dB (window, y, x) of one source, NaN = no data, and the pixel size."""

    label: str
    vv: np.ndarray
    vh: np.ndarray
    pixel_m: tuple[float, float]  # (y, x)


def pixel_metres(crs: str, transform: Affine, rows: int) -> tuple[float, float]:
    """(y, x) pixel size in metres; for degrees, at the raster's central latitude."""
    if not CRS.from_user_input(crs).is_geographic:
        return abs(transform.e), abs(transform.a)
    latitude = transform.f + transform.e * rows / 2
    degrees = METRES_PER_DEGREE * np.array([1.0, np.cos(np.radians(latitude))])
    return abs(transform.e) * degrees[0], abs(transform.a) * degrees[1]


def synthetic_images(store: str | Path, tiles: int) -> Images:
    """Every seasonal channel of VV and VH of the first `tiles` test tiles (of any split
    where the store has no valid test tile)."""
    dataset = open_store(store)
    positions, split = first_test_tiles(store, tiles), "test"
    if not len(positions):
        positions, split = split_positions(store, ["train", "val", "test"])[:tiles], "valid"
    s1grd = dataset["s1grd"].values[positions].astype(np.float32)
    vv, vh = (
        s1grd[:, [CHANNELS.index(band_name(s, p)) for s in SEASONS]].reshape(-1, *s1grd.shape[-2:])
        for p in POLARISATIONS
    )
    crs = str(dataset["crs"].values[positions[0]])
    size = pixel_metres(crs, tile_transform(dataset, positions[0]), s1grd.shape[-2])
    return Images(f"store, seasonal means of {len(positions)} {split} tiles", vv, vh, size)


def boxcar(image: np.ndarray, size: int) -> np.ndarray:
    """Mean in dB over a size x size window of the pixels with data (as a seasonal mean
    averages dB values); NaN stays NaN."""
    valid = np.isfinite(image)
    sums = uniform_filter(np.where(valid, image, 0).astype(np.float64), size, mode="nearest")
    counts = uniform_filter(valid.astype(np.float64), size, mode="nearest")
    return np.where(valid, sums / np.maximum(counts, 1e-12), np.nan).astype(np.float32)


def windows(image: np.ndarray, size: int) -> np.ndarray:
    """The non-overlapping size x size windows of a (y, x) image (at least one: the top
    left corner when the image is smaller)."""
    rows, cols = max(image.shape[0] // size, 1), max(image.shape[1] // size, 1)
    return np.stack(
        [
            image[r * size : (r + 1) * size, c * size : (c + 1) * size]
            for r in range(rows)
            for c in range(cols)
        ]
    )


def reference_images(path: str | Path, window_px: int, boxcar_px: int) -> list[Images]:
    """The real chip as it is (single date) and after a boxcar, cut into windows."""
    raster = read_raster(path, Path(path).name, what="reference S1")
    data = raster.data.astype(np.float32)
    if raster.valid is not None:
        data = np.where(raster.valid, data, np.nan)
    if not {"VV", "VH"} <= set(raster.band_names):
        raise SarsslError(f"{path}: the reference needs bands VV and VH, not {raster.band_names}")
    vv, vh = (data[raster.band_names.index(band)] for band in ("VV", "VH"))
    size = pixel_metres(raster.crs, raster.transform, raster.shape[0])
    return [
        Images(label, windows(filter_(vv), window_px), windows(filter_(vh), window_px), size)
        for label, filter_ in (
            ("real, single date", lambda band: band),
            (f"real, {boxcar_px}x{boxcar_px} boxcar", lambda band: boxcar(band, boxcar_px)),
        )
    ]


def semivariogram(image: np.ndarray, pixel_m: tuple[float, float], bin_m: float) -> np.ndarray:
    """Semivariogram of a (y, x) image with gaps, radially averaged in bins of `bin_m`
    metres up to half the image side (bin i: lags around (i + 1) * bin_m), normalised by
    the image's variance. All lags at once with FFTs (Marcotte 1996): for the data mask m
    and the centred values z (0 where no data), the pairs at lag h are corr(m, m)(h) and
    their summed squared differences corr(m, z^2) + corr(z^2, m) - 2 corr(z, z)."""
    valid = np.isfinite(image)
    z = np.where(valid, image - np.nanmean(image), 0.0)
    shape = 2 * image.shape[0], 2 * image.shape[1]  # zero-padded: no wrap-around
    mask, values, squares = (np.fft.rfft2(a, shape) for a in (valid.astype(float), z, z * z))
    pairs = np.fft.irfft2(mask * mask.conj(), shape)
    differences = np.fft.irfft2(squares.conj() * mask + mask.conj() * squares, shape)
    differences -= 2 * np.fft.irfft2(values * values.conj(), shape)
    dy, dx = (np.fft.fftfreq(n, 1 / n) for n in shape)
    distance = np.hypot(dy[:, None] * pixel_m[0], dx[None, :] * pixel_m[1])
    bins = np.rint(distance / bin_m).astype(int) - 1
    count = int(min(image.shape[0] * pixel_m[0], image.shape[1] * pixel_m[1]) / 2 / bin_m)
    keep = (bins >= 0) & (bins < count) & (pairs > 0.5)
    summed = np.bincount(bins[keep], differences[keep], minlength=count)
    total = np.bincount(bins[keep], pairs[keep], minlength=count)
    with np.errstate(invalid="ignore", divide="ignore"):
        return 0.5 * summed / total / np.nanvar(image)


@dataclass(frozen=True)
class Comparison:
    sources: list[Images]  # the synthetic images first
    lags_m: np.ndarray
    variograms: dict[str, np.ndarray]  # label -> mean normalised VV semivariogram
    note: str  # what is missing, or ""

    def summary(self) -> pd.DataFrame:
        """Per source: VV and VH percentiles (dB); the VV nugget, the semivariance at the
        first lag (one pixel) over the variance; and the lag (m) at which the VV
        semivariogram reaches 90 % of the variance (NaN: not within the lags compared)."""
        rows = []
        for source in self.sources:
            row = {"source": source.label}
            for band in ("vv", "vh"):
                values = getattr(source, band)
                for q, value in zip(
                    (1, 50, 99), np.nanpercentile(values, (1, 50, 99)), strict=True
                ):
                    row[f"{band}_p{q}"] = float(value)
            variogram = self.variograms[source.label]
            reached = np.flatnonzero(variogram >= SILL_SHARE)
            row["vv_nugget"] = float(variogram[0])
            row["vv_range90_m"] = float(self.lags_m[reached[0]]) if len(reached) else np.nan
            rows.append(row)
        return pd.DataFrame(rows)


def compare(
    store: str | Path, reference: str | Path | None, tiles: int, boxcar_px: int
) -> Comparison:
    """The synthetic test tiles against the real chip at `reference`; without it (None or
    not found), the synthetic ones alone, with a note saying so."""
    synthetic = synthetic_images(store, tiles)
    sources, note = [synthetic], ""
    if reference is None:
        note = "no real reference chip configured (realism.reference_s1)"
    elif not Path(reference).is_file():
        note = f"real reference chip not found: {reference}"
    else:
        sources += reference_images(reference, synthetic.vv.shape[-1], boxcar_px)
    bin_m = max(synthetic.pixel_m)
    variograms = {
        s.label: np.nanmean([semivariogram(w, s.pixel_m, bin_m) for w in s.vv], axis=0)
        for s in sources
    }
    # The lags every source reaches (the chip's windows are narrower in metres where its
    # pixels are).
    lags = bin_m * (1 + np.arange(min(len(v) for v in variograms.values())))
    variograms = {label: v[: len(lags)] for label, v in variograms.items()}
    return Comparison(sources, lags, variograms, note)


def quicklooks(bands: list[tuple[np.ndarray, np.ndarray]]) -> list[np.ndarray]:
    """RGB of VV, VH and VV - VH of each (VV, VH) image of one date or season, stretched to
    the 2-98 % percentiles of all of them (so that colours compare across images); no data
    white. sarssl.outputs.figures.sar_composite stretches one image's annual means."""
    stacks = [np.stack([vv, vh, vv - vh]) for vv, vh in bands]
    pooled = np.concatenate([s.reshape(3, -1) for s in stacks], axis=1)
    low, high = np.nanpercentile(pooled, [2, 98], axis=1)[..., None, None]
    return [
        np.nan_to_num(np.clip((s - low) / np.maximum(high - low, 1e-6), 0, 1), nan=1.0).transpose(
            1, 2, 0
        )
        for s in stacks
    ]


def show_separability(axis: Axes, table: pd.DataFrame) -> None:
    if table.empty:
        axis.text(0.5, 0.5, "not measured:\nno valid train or test tile", ha="center")
    names = [f"{row.classifier} ({row.input})" for row in table.itertuples()]
    colours = [
        "tab:grey" if "majority" in row.classifier else
        "tab:green" if row.input == CONTEXT_INPUT else "tab:blue"
        for row in table.itertuples()
    ]  # fmt: skip
    axis.barh(names, table["miou"], color=colours)
    axis.axvline(PIXEL_MIOU_GOAL, color="tab:red", linestyle="--", label="goal for pixels")
    axis.invert_yaxis()
    axis.set(xlim=(0, 1), xlabel="test MIoU", title="Without context (blue) and with it (green)")
    axis.tick_params(axis="y", labelsize=7)
    axis.legend(fontsize=7)


def realism_figure(comparison: Comparison, table: pd.DataFrame, path: str | Path, title: str):
    """Quicklooks of synthetic tiles and of the real chip (same window size), the VV and VH
    histograms, the VV semivariograms and the separability MIoU."""
    figure = Figure(figsize=(16, 8.5))
    top, bottom = figure.subplots(2, 4, gridspec_kw={"height_ratios": [1, 0.8]})
    synthetic, *real = comparison.sources
    season = SEASONS.index(QUICKLOOK_SEASON)
    images = [
        (f"synthetic tile {i + 1}, {QUICKLOOK_SEASON} mean", synthetic.vv[t], synthetic.vh[t])
        for i, t in enumerate(range(season, len(synthetic.vv), len(SEASONS)))
    ][:QUICKLOOK_TILES]
    images += [(source.label, source.vv[0], source.vh[0]) for source in real]
    rgbs = quicklooks([(vv, vh) for _, vv, vh in images])
    for axis, (label, _, _), rgb in zip(top, images, rgbs, strict=False):
        axis.imshow(rgb, interpolation="nearest")
        axis.set_title(f"{label}\nR VV, G VH, B VV-VH (one stretch)", fontsize=8)
    for axis in top[len(images) :]:
        axis.set_axis_off()
    if comparison.note:
        top[len(images)].text(0.5, 0.5, fill(comparison.note, 30), ha="center", va="center")
    clean(top)

    for axis, band, unit in ((bottom[0], "vv", "VV"), (bottom[1], "vh", "VH")):
        values = [getattr(s, band) for s in comparison.sources]
        edges = np.linspace(
            *np.nanpercentile(np.concatenate([v.ravel() for v in values]), (0.1, 99.9)), 81
        )
        for source, value in zip(comparison.sources, values, strict=True):
            axis.hist(
                value[np.isfinite(value)], edges, density=True, histtype="step", label=source.label
            )
        axis.set(xlabel=f"{unit} (dB)", ylabel="density", title=f"{unit} histogram")
    for label, variogram in comparison.variograms.items():
        bottom[2].plot(comparison.lags_m, variogram, label=label)
    bottom[2].axhline(SILL_SHARE, color="grey", linewidth=0.8, linestyle=":")
    bottom[2].set(
        xscale="log", xlabel="lag (m)", ylabel="semivariance / variance", title="VV semivariogram"
    )
    show_separability(bottom[3], table)
    figure.suptitle(f"{title}: {comparison.note}" if comparison.note else title, fontsize=11)
    # One legend for the three panels of curves, below them: it hides no curve.
    figure.legend(*bottom[0].get_legend_handles_labels(), loc="lower center", ncol=3, fontsize=9)
    figure.tight_layout(rect=(0, 0.04, 1, 1))
    save(figure, path)
