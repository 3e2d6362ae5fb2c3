"""Layouts of seasonal Sentinel-1 GeoTIFFs, recognised from the file itself and decoded to dB.

Three encodings are written in the wild, all with one band per season, polarisation and
(optionally) orbit pass:

- ``float_db``: float dB, as our Earth Engine export and the synthetic source write
  (``winter_VV``, ..., ``autumn_VH``; with ``gee.orbit_pass: BOTH``, ``winter_VV_asc`` and
  ``winter_VV_des``). Our export writes masked pixels as NaN (it reads the payload's mask);
  other writers fill them with 0.0 (``rasterio.mask``, downloads without a mask), so 0.0 in
  VV and VH together is nodata too (see "Extreme codes").
- ``geetiles_uint8``: geetiles 0.1.7 (2024 on): the median per season and pass, cast with
  ``uint8(255 * (dB + 30) / 30)``, i.e. floor for dB in [-30, 0). A code decodes to the
  centre of its bin (steps of 30/255 = 0.118 dB). The cast has no clip: dB outside
  [-30, 0) wrap by 256 codes (30.118 dB), see "Wraps" below.
- ``geetiles_uint16``: geetiles of 2023, which made the paper's data and M3LEO: the mean per
  season and pass, cast to uint16, which truncates towards zero and wraps negative values
  (-12.7 -> -12 -> 65524). Read as int16 this gives the whole dB back (as M3LEO's loader
  does); a code decodes to the centre of its 1 dB bin (-12 -> -12.5).
- ``geetiles_uint16_unnamed``: the same values in a file whose 16 bands carry no names,
  read by position in the order of M3LEO's loader (``S1GRD_BANDS`` of spaceml-org/M3LEO,
  ``src/fdlsar/io/io.py``). Only when an AOI sets it: band order is never guessed.

**Extreme codes.** Masked pixels reach a file as a pair: Earth Engine and ``rasterio.mask``
fill both polarisations of a season and pass with 0.0 (uint8 code 255, uint16 code 0, float
0.0) and a NaN becomes code 0 in both. A pixel is nodata only where VV and VH of one season
and pass sit at the same extreme code together, or where the file's own mask says so. A
lone extreme code is a value and decodes to its bin: uint8 0 -> -29.94 dB (calm water VH),
uint8 255 -> +0.06 dB, uint16 0 -> 0 dB (bright built-up VV: every mean in (-1, 1) dB).

**Wraps (uint8).** A single wrap moves one polarisation by 30.118 dB and VV - VH with it:
calm water VH of -32 dB is read as -1.9 dB, built-up VV of +3 dB as -27.1 dB. Real seasonal
VV - VH is above -2 dB (the cross-polarised return stays below the co-polarised one for
natural and built surfaces; the real Sen1Floods11 chip after a 5 x 5 boxcar, about a
seasonal mean's speckle, has its minimum at -1.9 dB and 0.01 % below +0.3 dB), so a decoded
VV - VH below MIN_VV_MINUS_VH_DB (-5 dB) is a wrap. Which polarisation wrapped is decided by
the smaller excursion beyond the cast's range (VH below -30 dB by 0.118 - VH, or VV above
0 dB by VV + 30.118): true values lie close outside the range. Where the two excursions are
within WRAP_MARGIN_DB of each other the pixel is marked nodata. Measured on the real chip
(5 x 5 boxcar, cast as geetiles does; ``benchmarks/uint8_wraps.py``): 99.6 % of single
wraps are detected, no pixel without a wrap is touched, 6.0 % of the detected are marked
nodata and 98.7 % of the rest are unwrapped in the right polarisation. A double wrap (VV and VH both
below -30 dB, or both above 0 dB) keeps VV - VH and cannot be detected.

Band names, ours and geetiles', are read by `sarssl.dataset.bands.parse_band`. Pure functions
over arrays; the caller reads the file.
"""

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, cast, get_args

import numpy as np

from .bands import (
    BAND_ORBITS,
    BOTH,
    EXPORT_BANDS,
    POLARISATIONS,
    SEASONS,
    VH,
    VV,
    BandKey,
    OrbitPass,
    band_name,
    geetiles_band_name,
    is_geetiles_band,
    parse_band,
)
from .geotiff import Raster

S1Format = Literal["float_db", "geetiles_uint8", "geetiles_uint16", "geetiles_uint16_unnamed"]
S1_FORMATS: tuple[S1Format, ...] = get_args(S1Format)

UINT8_DB_RANGE = (-30.0, 0.0)
UINT8_STEP_DB = (UINT8_DB_RANGE[1] - UINT8_DB_RANGE[0]) / 255
UINT8_WRAP_DB = 256 * UINT8_STEP_DB  # one wrap of the uint8 cast: 30.118 dB
# See "Wraps" in the module docstring for both thresholds.
MIN_VV_MINUS_VH_DB = -5.0
WRAP_MARGIN_DB = 2.0
# The integer codes a forced layout requires: (low, high) of the values as read.
CODE_RANGES = {
    "geetiles_uint8": (0, 255),
    # uint16 codes, or the same bits read as int16 (M3LEO).
    "geetiles_uint16": (-(2**15), 2**16 - 1),
    "geetiles_uint16_unnamed": (-(2**15), 2**16 - 1),
}
# Seasonal means of C-band backscatter over land and water lie well inside this range; a file
# with more values outside it holds something else (raw codes, amplitudes, another product).
PLAUSIBLE_DB = (-50.0, 20.0)
MAX_IMPLAUSIBLE_SHARE = 0.01
# Backscatter in dB is below 0 dB almost everywhere (VV above 0 dB only at strong urban
# scatterers); linear power is never negative.
MIN_NEGATIVE_SHARE = 0.5

# M3LEO's positional band order (S1GRD_BANDS in spaceml-org/M3LEO src/fdlsar/io/io.py).
M3LEO_BAND_ORDER: tuple[str, ...] = tuple(
    geetiles_band_name(season, pol, orbit)
    for season in SEASONS
    for pol in POLARISATIONS
    for orbit in BAND_ORBITS
)

_FIRST, _LAST = (SEASONS[0], POLARISATIONS[0]), (SEASONS[-1], POLARISATIONS[-1])
ACCEPTED = (
    f"float dB bands {EXPORT_BANDS[0]} ... {EXPORT_BANDS[-1]}, with both passes "
    f"{band_name(*_FIRST, BAND_ORBITS[0])} ... {band_name(*_LAST, BAND_ORBITS[-1])} (Earth "
    f"Engine export, synthetic); geetiles s1grd bands {M3LEO_BAND_ORDER[0]} ... "
    f"{M3LEO_BAND_ORDER[-1]} as uint8 (geetiles 0.1.7) or uint16/int16 (geetiles 2023, M3LEO)"
)


class LayoutError(ValueError):
    """The file is not a seasonal S1 layout we can read; the message says what it holds."""


def detect_format(band_names: Sequence[str], dtype: str, forced: str = "auto") -> S1Format:
    """The encoding of a file from its band names and dtype, or `forced` (an AOI's
    `s1_format`) when set. Raises LayoutError naming what the file holds."""
    if forced == "geetiles_uint16_unnamed":
        if len(band_names) != len(M3LEO_BAND_ORDER):
            raise LayoutError(
                f"s1_format geetiles_uint16_unnamed reads {len(M3LEO_BAND_ORDER)} bands by "
                f"position (M3LEO's order), the file has {len(band_names)}: {list(band_names)}"
            )
        return forced  # type: ignore[return-value]
    unknown = [n for n in band_names if parse_band(n) is None]
    if unknown or not band_names:
        raise LayoutError(
            f"unknown S1 layout: bands {list(band_names)} ({dtype}); accepted: {ACCEPTED}"
        )
    if forced != "auto":
        return forced  # type: ignore[return-value]
    kind = np.dtype(dtype)
    if kind.kind == "f":
        return "float_db"
    if kind == np.uint8:
        return "geetiles_uint8"
    if kind in (np.uint16, np.int16):
        return "geetiles_uint16"
    raise LayoutError(
        f"unknown S1 layout: bands {list(band_names)} ({dtype}); accepted: {ACCEPTED}; "
        "set the AOI's s1_format if the values are one of these encodings"
    )


@dataclass(frozen=True)
class CastCounts:
    """What decoding met in a file (summed over bands): values at the extremes of geetiles'
    integer casts, and uint8 wraps (see the module docstring)."""

    fmt: S1Format
    at_min: int = 0  # code 0
    at_max: int = 0  # uint8 code 255
    extreme_nodata: int = 0  # pixel-pairs with VV and VH at one extreme code: nodata
    wraps_unwrapped: int = 0  # single uint8 wraps undone
    wraps_nodata: int = 0  # single uint8 wraps whose polarisation is unclear: nodata

    def note(self) -> str:
        """For messages about nodata: what the codes say about the download."""
        wraps = (
            f"; {self.wraps_unwrapped} wrapped values unwrapped, {self.wraps_nodata} "
            "ambiguous wraps marked nodata"
        ) * bool(self.wraps_unwrapped or self.wraps_nodata)
        if self.fmt == "geetiles_uint8":
            return (
                f"geetiles uint8: {self.at_min} values at code 0, {self.at_max} at 255, "
                f"{self.extreme_nodata} VV/VH pairs at one of them (masked or NaN before "
                f"the cast){wraps}"
            )
        if self.fmt.startswith("geetiles_uint16"):
            return (
                f"geetiles uint16: {self.at_min} values at code 0, {self.extreme_nodata} "
                "VV/VH pairs at it (NaN or masked)"
            )
        return ""


def polarisation_pairs(keys: Sequence[BandKey]) -> list[tuple[int, int]]:
    """(VV band, VH band) of each season and pass (or unnamed acquisition) of a file."""
    vh_of = {(k.season, k.orbit): i for i, k in enumerate(keys) if k.pol == VH}
    return [
        (i, vh_of[k.season, k.orbit])
        for i, k in enumerate(keys)
        if k.pol == VV and (k.season, k.orbit) in vh_of
    ]


def _extremes(raw: np.ndarray, fmt: S1Format) -> tuple[np.ndarray, np.ndarray]:
    """(code of each value where it is an extreme code else -1, dB of the codes)."""
    if fmt == "float_db":
        db = raw.astype(np.float32)  # a copy: the NaN set later must not reach the caller
        return np.where(db == 0.0, 0, -1), db
    if fmt == "geetiles_uint8":
        codes = raw.astype(np.int64)
        db = (UINT8_DB_RANGE[0] + (codes + 0.5) * UINT8_STEP_DB).astype(np.float32)
        return np.where((codes == 0) | (codes == 255), codes, -1), db
    codes = raw.astype(np.int64)
    # uint16 wrapped negative whole dB: the int16 reading of the same bits.
    whole = np.where(codes >= 2**15, codes - 2**16, codes)
    db = (whole + 0.5 * np.sign(whole)).astype(np.float32)  # away from zero; 0 -> 0 dB
    return np.where(whole == 0, 0, -1), db


def decode(
    raw: np.ndarray,
    valid: np.ndarray | None,
    fmt: S1Format,
    pairs: Sequence[tuple[int, int]] = (),
) -> tuple[np.ndarray, CastCounts]:
    """File values (band, row, col) -> float32 dB with NaN for nodata, and what decoding
    met. `valid` is the file's own mask (internal mask, nodata value, per-band masks);
    `pairs` the (VV, VH) bands of each season and pass: a pixel is nodata where both sit at
    the same extreme code, and uint8 wraps are undone on them (module docstring). A band
    without its partner is nodata at every extreme code."""
    extreme, db = _extremes(raw, fmt)
    nodata = ~np.isfinite(db)
    paired = np.zeros(len(db), bool)
    extreme_nodata = 0
    for vv, vh in pairs:
        both = (extreme[vv] >= 0) & (extreme[vv] == extreme[vh])
        nodata[vv] |= both
        nodata[vh] |= both
        paired[[vv, vh]] = True
        extreme_nodata += int(both.sum())
    nodata[~paired] |= extreme[~paired] >= 0
    if valid is not None:
        nodata |= ~valid
    db[nodata] = np.nan
    wraps = (0, 0)
    if fmt == "geetiles_uint8":
        wraps = unwrap_uint8(db, pairs)
    if fmt == "float_db":
        low = high = 0
    else:
        low = int((extreme == 0).sum())
        high = int((extreme == 255).sum())
    return db, CastCounts(fmt, low, high, extreme_nodata, *wraps)


def unwrap_uint8(db: np.ndarray, pairs: Sequence[tuple[int, int]]) -> tuple[int, int]:
    """Undo single wraps of geetiles' uint8 cast in decoded dB (band, row, col), in place
    (module docstring, "Wraps"). Returns (values unwrapped, pixels marked nodata)."""
    unwrapped = unclear = 0
    for vv_band, vh_band in pairs:
        vv, vh = db[vv_band], db[vh_band]
        wrapped = (vv - vh) < MIN_VV_MINUS_VH_DB  # False where either is NaN
        # The cast truncates towards zero: below -30 dB a code c - 256 holds the bin
        # below c's, one step lower than a floor would put it.
        vh_unwrapped = vh - UINT8_WRAP_DB - UINT8_STEP_DB
        vv_unwrapped = vv + UINT8_WRAP_DB
        # How far outside [-30, 0) dB each reading puts the true value.
        vh_below = UINT8_DB_RANGE[0] - vh_unwrapped
        vv_above = vv_unwrapped - UINT8_DB_RANGE[1]
        vh_wrapped = wrapped & (vh_below + WRAP_MARGIN_DB <= vv_above)
        vv_wrapped = wrapped & (vv_above + WRAP_MARGIN_DB <= vh_below)
        ambiguous = wrapped & ~vh_wrapped & ~vv_wrapped
        vh[vh_wrapped] = vh_unwrapped[vh_wrapped]
        vv[vv_wrapped] = vv_unwrapped[vv_wrapped]
        vv[ambiguous] = vh[ambiguous] = np.nan
        unwrapped += int(vh_wrapped.sum() + vv_wrapped.sum())
        unclear += int(ambiguous.sum())
    return unwrapped, unclear


def forced_codes_problem(raw: np.ndarray, fmt: S1Format) -> str | None:
    """Why a file's values cannot be the integer codes of a forced layout, or None."""
    if fmt not in CODE_RANGES:
        return None
    low, high = CODE_RANGES[fmt]
    finite = np.isfinite(raw) if raw.dtype.kind == "f" else np.ones(raw.shape, bool)
    values = raw[finite].astype(np.float64)
    fractional = float((values != np.round(values)).mean()) if values.size else 0.0
    outside = float(((values < low) | (values > high)).mean()) if values.size else 0.0
    not_finite = 1.0 - float(finite.mean())
    if not (fractional or outside or not_finite):
        return None
    what = (
        f"min {values.min():.4g}, median {np.median(values):.4g}, max {values.max():.4g}"
        if values.size
        else "no finite value"
    )
    return (
        f"s1_format {fmt} is forced, but the file holds {raw.dtype.name} values that are "
        f"not its codes (whole numbers in {low}..{high}): {fractional:.1%} not whole, "
        f"{outside:.1%} outside, {not_finite:.1%} not finite ({what})"
    )


def implausible_db(means: np.ndarray) -> str | None:
    """Why seasonal means (season, pol, row, col) decoded as dB cannot be dB (raw codes,
    linear power, amplitudes), or None. A strided sample is enough for the verdict."""
    sample = means[..., ::4, ::4]
    finite = sample[np.isfinite(sample)]
    if finite.size == 0:
        return None  # all nodata: reported by the gap rules
    outside = (finite < PLAUSIBLE_DB[0]) | (finite > PLAUSIBLE_DB[1])
    median = float(np.median(finite))
    if outside.mean() > MAX_IMPLAUSIBLE_SHARE:
        if np.array_equal(finite, np.round(finite)) and finite.min() >= 0:
            encoding = "geetiles_uint8" if finite.max() <= 255 else "geetiles_uint16"
            hint = f"they look like integer codes: set the AOI's s1_format: {encoding}"
        else:
            hint = "another product?"
        return (
            f"values are not dB: {outside.mean():.0%} lie outside "
            f"{PLAUSIBLE_DB[0]:g}..{PLAUSIBLE_DB[1]:+g} dB (median {median:.4g}); {hint}"
        )
    negative = float((finite < 0).mean())
    if negative < MIN_NEGATIVE_SHARE:
        vh = sample[:, POLARISATIONS.index(VH)]
        vh_median = float(np.median(vh[np.isfinite(vh)])) if np.isfinite(vh).any() else np.nan
        return (
            f"values are not dB: only {negative:.1%} are below 0 (median {median:.3g}, "
            f"VH median {vh_median:.3g}); this looks like linear power, and backscatter "
            "in dB is negative almost everywhere"
        )
    return None


def pass_groups(
    keys: Sequence[BandKey], band_names: Sequence[str], orbit_pass: OrbitPass
) -> tuple[dict[tuple[str, str], list[int]], str]:
    """Indices of the bands that make each (season, polarisation) channel, and the orbit pass
    they come from ('' when the file does not name passes).

    Bands that name a pass are used when it is `orbit_pass` (or for 'both', either pass);
    bands that name none (a single-pass export) are always used. Several bands of one group
    are averaged in dB. Raises KeyError naming the missing bands.
    """
    wanted = BAND_ORBITS if orbit_pass == BOTH else (orbit_pass,)
    named_passes = any(k.orbit is not None for k in keys)
    groups: dict[tuple[str, str], list[int]] = {}
    missing = []
    for season in SEASONS:
        for pol in POLARISATIONS:
            members = [i for i, k in enumerate(keys) if k.season == season and k.pol == pol]
            chosen = [i for i in members if keys[i].orbit in (None, *wanted)]
            if named_passes:
                have = {keys[i].orbit for i in chosen}
                missing += [
                    _band_name(band_names, season, pol, p)
                    for p in wanted
                    if p not in have and not any(keys[i].orbit is None for i in chosen)
                ]
            elif not chosen:
                missing.append(band_name(season, pol))
            groups[season, pol] = chosen
    if missing:
        raise KeyError(f"bands {missing} missing; the file has {list(band_names)}")
    return groups, (orbit_pass if named_passes else "")


def _band_name(band_names: Sequence[str], season: str, pol: str, orbit: str) -> str:
    """How the file's own naming would call a missing band (for the message)."""
    if any(is_geetiles_band(n) for n in band_names):
        return geetiles_band_name(season, pol, orbit)
    return band_name(season, pol, orbit)


def nan_mean(stack: np.ndarray) -> np.ndarray:
    """Mean over axis 0 ignoring NaN; NaN where nothing is finite. Unlike np.nanmean it
    warns about nothing (warning filters are not thread-safe, and tiles run in threads)."""
    finite = np.isfinite(stack)
    count = finite.sum(axis=0)
    total = np.where(finite, stack, 0.0).sum(axis=0, dtype=np.float32)
    out = np.full(total.shape, np.nan, dtype=np.float32)
    return np.divide(total, count, out=out, where=count > 0)


def seasonal_means(db: np.ndarray, groups: dict[tuple[str, str], list[int]]) -> np.ndarray:
    """(band, row, col) dB -> (season, pol, row, col): the mean in dB of each group's bands
    (passes or acquisitions), as Earth Engine composites the dB images of S1_GRD. A pixel
    without any value in a season stays NaN."""
    out = np.empty((len(SEASONS), len(POLARISATIONS), *db.shape[1:]), dtype=np.float32)
    for si, season in enumerate(SEASONS):
        for pi, pol in enumerate(POLARISATIONS):
            members = groups[season, pol]
            out[si, pi] = db[members[0]] if len(members) == 1 else nan_mean(db[members])
    return out


def passes_present(
    db: np.ndarray, keys: Sequence[BandKey], groups: dict[tuple[str, str], list[int]]
) -> str:
    """For 'both': the passes a file delivered, e.g. 'both; ascending missing in winter,
    spring' where a season had no acquisition of one pass (its band is all nodata, and
    the channels of that season come from the other pass)."""
    missing: dict[str, list[str]] = {}
    for season in SEASONS:
        bands = [i for pol in POLARISATIONS for i in groups[season, pol]]
        for orbit in BAND_ORBITS:
            of_orbit = [i for i in bands if keys[i].orbit == orbit]
            if of_orbit and not np.isfinite(db[of_orbit]).any():
                missing.setdefault(orbit, []).append(season)
    return "; ".join(
        [BOTH, *(f"{orbit} missing in {', '.join(s)}" for orbit, s in missing.items())]
    )


@dataclass(frozen=True)
class S1Bands:
    means: np.ndarray  # (season, pol, row, col) float32 dB, NaN where nodata
    # The pass the channels come from ('' when the file names none); for 'both', the
    # passes missing in some seasons (`passes_present`).
    orbit_pass: str
    casts: CastCounts


def read_s1_bands(raster: Raster, forced: str, orbit_pass: OrbitPass) -> S1Bands:
    """One file's seasonal dB means, whatever its layout. Raises LayoutError (unknown
    layout, or values that are not the codes of a forced layout) or KeyError (bands
    missing); check the values with `implausible_db`."""
    fmt = detect_format(raster.band_names, raster.data.dtype.name, forced)
    names = M3LEO_BAND_ORDER if fmt == "geetiles_uint16_unnamed" else raster.band_names
    if forced != "auto" and (problem := forced_codes_problem(raster.data, fmt)):
        raise LayoutError(problem)
    # detect_format has checked that every name parses.
    keys = cast(list[BandKey], [parse_band(n) for n in names])
    groups, used_pass = pass_groups(keys, names, orbit_pass)
    db, casts = decode(raster.data, raster.valid, fmt, polarisation_pairs(keys))
    if used_pass == BOTH:
        used_pass = passes_present(db, keys, groups)
    return S1Bands(seasonal_means(db, groups), used_pass, casts)
