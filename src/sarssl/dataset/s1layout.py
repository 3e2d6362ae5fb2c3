"""Layouts of seasonal Sentinel-1 GeoTIFFs, recognised from the file itself and decoded to dB.

Three encodings are written in the wild, all with one band per season, polarisation and
(optionally) orbit pass:

- ``float_db``: float dB, as our Earth Engine export and the synthetic source write
  (``winter_VV``, ..., ``autumn_VH``; with ``gee.orbit_pass: BOTH``, ``winter_VV_asc`` and
  ``winter_VV_des``). Earth Engine encodes masked pixels as zeros, and a seasonal mean of
  exactly 0.0 dB does not occur, so an exact 0.0 is nodata like NaN.
- ``geetiles_uint8``: geetiles 0.1.7 (2024 on): the median per season and pass, cast with
  ``uint8(255 * (dB + 30) / 30)``, i.e. floor for dB in [-30, 0). A code decodes to the
  centre of its bin (steps of 30/255 = 0.118 dB). Codes 0 and 255 are nodata: NaN becomes 0
  in that cast and a masked pixel (filled with 0.0 by Earth Engine or by ``rasterio.mask``)
  becomes 255. Read as values they would turn a season without data into a constant -29.9
  or -0.06 dB. True seasonal means in [-30, -29.88) or [0, 0.118) dB are lost with them:
  both are rare (the first only over very calm water, the second only at strong urban
  scatterers). dB values outside [-30, 0) wrap around in the cast and cannot be recovered.
- ``geetiles_uint16``: geetiles of 2023, which made the paper's data and M3LEO: the mean per
  season and pass, cast to uint16, which truncates towards zero and wraps negative values
  (-12.7 -> -12 -> 65524). Read as int16 this gives the whole dB back (as M3LEO's loader
  does); a code decodes to the centre of its 1 dB bin (-12 -> -12.5). Code 0 (NaN, masked
  pixels, and true means in (-1, 1) dB) is nodata.

geetiles names its 16 bands ``{winter,spring,summer,fall}_{vv,vh}{asc,des}``. Pure functions
over arrays; the caller reads the file.
"""

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np

from .bands import POLARISATIONS, SEASONS
from .geotiff import Raster

S1Format = Literal["float_db", "geetiles_uint8", "geetiles_uint16"]
S1_FORMATS: tuple[str, ...] = ("float_db", "geetiles_uint8", "geetiles_uint16")
OrbitPass = Literal["ascending", "descending", "both"]
ORBIT_PASSES: tuple[str, ...] = ("ascending", "descending", "both")

UINT8_DB_RANGE = (-30.0, 0.0)
UINT8_STEP_DB = (UINT8_DB_RANGE[1] - UINT8_DB_RANGE[0]) / 255
# Seasonal means of C-band backscatter over land and water lie well inside this range; a file
# with more values outside it holds something else (raw codes, amplitudes, another product).
PLAUSIBLE_DB = (-50.0, 20.0)
MAX_IMPLAUSIBLE_SHARE = 0.01
# Backscatter in dB is below 0 dB almost everywhere (VV above 0 dB only at strong urban
# scatterers); linear power is never negative.
MIN_NEGATIVE_SHARE = 0.5

SEASON_ALIASES = {"fall": "autumn"}
_PASS_SUFFIXES = {
    "asc": "ascending",
    "ascending": "ascending",
    "des": "descending",
    "desc": "descending",
    "descending": "descending",
}
_SEASON = r"(winter|spring|summer|autumn|fall)"
# Ours: winter_VV, winter_VV_asc (another suffix: one more acquisition, averaged).
_SARSSL_BAND = re.compile(_SEASON + r"_(VV|VH)(?:_(\w+))?")
# geetiles: winter_vvasc.
_GEETILES_BAND = re.compile(_SEASON + r"_(vv|vh)(asc|des)")

ACCEPTED = (
    "float dB bands {season}_{VV|VH}[_asc|_des] (Earth Engine export, synthetic); "
    "geetiles s1grd bands {winter,spring,summer,fall}_{vv,vh}{asc,des} as uint8 "
    "(geetiles 0.1.7) or uint16/int16 (geetiles 2023, M3LEO)"
)


@dataclass(frozen=True)
class BandKey:
    season: str  # one of SEASONS
    pol: str  # VV or VH
    orbit: str | None  # ascending, descending, or None when the band does not say


def parse_band(name: str) -> BandKey | None:
    """The season, polarisation and orbit pass a band name stands for; None if none."""
    if match := _GEETILES_BAND.fullmatch(name):
        season, pol, orbit = match.groups()
        return BandKey(SEASON_ALIASES.get(season, season), pol.upper(), _PASS_SUFFIXES[orbit])
    if match := _SARSSL_BAND.fullmatch(name):
        season, pol, suffix = match.groups()
        orbit = _PASS_SUFFIXES.get((suffix or "").lower())
        return BandKey(SEASON_ALIASES.get(season, season), pol, orbit)
    return None


class LayoutError(ValueError):
    """The file is not a seasonal S1 layout we can read; the message says what it holds."""


def detect_format(band_names: Sequence[str], dtype: str, forced: str = "auto") -> S1Format:
    """The encoding of a file from its band names and dtype, or `forced` (an AOI's
    `s1_format`) when set. Raises LayoutError naming what the file holds."""
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
    """Values of a file at the extremes of geetiles' integer casts (summed over bands)."""

    fmt: S1Format
    at_min: int = 0  # code 0: NaN before the cast (and masked pixels, for uint16)
    at_max: int = 0  # uint8 code 255: masked pixels, filled with 0.0 dB before the cast

    def note(self) -> str:
        """For messages about nodata: what the codes say about the download."""
        if self.fmt == "geetiles_uint8":
            return (
                f"geetiles uint8: {self.at_min} values at code 0 (NaN before the cast), "
                f"{self.at_max} at 255 (masked or 0.0 dB before the cast)"
            )
        if self.fmt == "geetiles_uint16":
            return f"geetiles uint16: {self.at_min} values at code 0 (NaN or masked)"
        return ""


def decode(
    raw: np.ndarray, valid: np.ndarray | None, fmt: S1Format
) -> tuple[np.ndarray, CastCounts]:
    """File values (band, row, col) -> float32 dB with NaN for nodata (see the module
    docstring), and the counts at the cast's extremes. `valid` is the file's own mask
    (internal mask, nodata value, per-band masks)."""
    low = high = 0
    if fmt == "float_db":
        db = raw.astype(np.float32)  # a copy: the NaN below must not reach the caller's array
        nodata = ~np.isfinite(db) | (db == 0.0)
    elif fmt == "geetiles_uint8":
        codes = raw.astype(np.float32)
        is_low, is_high = codes == 0, codes == 255
        low, high = int(is_low.sum()), int(is_high.sum())
        db = UINT8_DB_RANGE[0] + (codes + 0.5) * np.float32(UINT8_STEP_DB)
        nodata = is_low | is_high
    else:
        codes = raw.astype(np.int64)
        # uint16 wrapped negative whole dB: the int16 reading of the same bits.
        whole = np.where(codes >= 2**15, codes - 2**16, codes)
        is_low = whole == 0
        low = int(is_low.sum())
        db = (whole + 0.5 * np.sign(whole)).astype(np.float32)  # away from zero
        nodata = is_low
    if valid is not None:
        nodata |= ~valid
    db[nodata] = np.nan
    return db, CastCounts(fmt, low, high)


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
        vh = sample[:, POLARISATIONS.index("VH")]
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
    wanted = {"both": ("ascending", "descending")}.get(orbit_pass, (orbit_pass,))
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
                missing.append(f"{season}_{pol}")
            groups[season, pol] = chosen
    if missing:
        raise KeyError(f"bands {missing} missing; the file has {list(band_names)}")
    return groups, (orbit_pass if named_passes else "")


def _band_name(band_names: Sequence[str], season: str, pol: str, orbit: str) -> str:
    """How the file's own naming would call a missing band (for the message)."""
    if any(_GEETILES_BAND.fullmatch(n) for n in band_names):
        geetiles_season = {ours: theirs for theirs, ours in SEASON_ALIASES.items()}.get(season)
        return f"{geetiles_season or season}_{pol.lower()}{orbit[:3]}"
    return f"{season}_{pol}_{orbit[:3]}"


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


@dataclass(frozen=True)
class S1Bands:
    means: np.ndarray  # (season, pol, row, col) float32 dB, NaN where nodata
    orbit_pass: str  # the pass the channels come from; '' when the file names none
    casts: CastCounts


def read_s1_bands(raster: Raster, forced: str, orbit_pass: OrbitPass) -> S1Bands:
    """One file's seasonal dB means, whatever its layout. Raises LayoutError (unknown
    layout) or KeyError (bands missing); check the values with `implausible_db`."""
    fmt = detect_format(raster.band_names, raster.data.dtype.name, forced)
    keys = [parse_band(n) for n in raster.band_names]
    groups, used_pass = pass_groups(keys, raster.band_names, orbit_pass)  # type: ignore[arg-type]
    db, casts = decode(raster.data, raster.valid, fmt)
    return S1Bands(seasonal_means(db, groups), used_pass, casts)
