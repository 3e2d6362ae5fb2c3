"""Names and order of the SAR bands and of the 12 model channels: the one place where seasons,
polarisations and orbit passes are spelled, written into band names (`band_name`,
`geetiles_band_name`) and read back from them (`parse_band`).

Export GeoTIFFs (Earth Engine, geetiles layout or the synthetic source) carry one band per
season and polarisation, named ``{season}_{pol}`` (e.g. ``winter_VV``), float32 dB. Several
acquisitions or orbit passes of one season may come as ``{season}_{pol}_{suffix}`` (our
export with both passes writes ``winter_VV_asc`` and ``winter_VV_des``); they are averaged.
geetiles names its 16 bands ``{season}_{pol}{pass}`` in lower case with autumn called fall
(``fall_vvasc``). The Zarr store holds 12 channels, season-major:

    winter_VV, winter_VH, winter_VV-VH, spring_VV, ..., autumn_VV-VH
"""

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Literal, get_args

AUTUMN = "autumn"
SEASONS: tuple[str, ...] = ("winter", "spring", "summer", AUTUMN)
POLARISATIONS: tuple[str, ...] = ("VV", "VH")
VV, VH = POLARISATIONS
# The third quantity per season: the VV/VH ratio, a difference in dB.
RATIO = "VV-VH"
QUANTITIES: tuple[str, ...] = (*POLARISATIONS, RATIO)

# Sentinel-1 orbit passes as the build reads them (an AOI's `orbit_pass`); the export spells
# them in capitals (`export_spelling`). BOTH is a choice of the two, never a band's pass.
OrbitPass = Literal["ascending", "descending", "both"]
ORBIT_PASSES: tuple[OrbitPass, ...] = get_args(OrbitPass)
ASCENDING, DESCENDING, BOTH = ORBIT_PASSES
BAND_ORBITS: tuple[OrbitPass, ...] = (ASCENDING, DESCENDING)

# The suffixes that name a band's orbit pass: the first is the one written (ours after an
# underscore, geetiles' right after the polarisation); the others are read too.
ORBIT_SUFFIXES: dict[str, tuple[str, ...]] = {
    ASCENDING: ("asc", ASCENDING),
    DESCENDING: ("des", "desc", DESCENDING),
}
# geetiles' names of seasons where they differ from ours.
GEETILES_SEASONS: dict[str, str] = {AUTUMN: "fall"}


def export_spelling(orbit_pass: OrbitPass) -> str:
    """An orbit pass as Earth Engine (orbitProperties_pass) and the config's gee.orbit_pass
    spell it: ASCENDING, DESCENDING, BOTH."""
    return orbit_pass.upper()


def band_name(season: str, polarisation: str, orbit: str | None = None) -> str:
    """Our name of a band (or channel: `polarisation` may be RATIO): ``winter_VV``, or with
    the orbit pass it comes from, ``winter_VV_asc``."""
    name = f"{season}_{polarisation}"
    return name if orbit is None else f"{name}_{ORBIT_SUFFIXES[orbit][0]}"


def geetiles_band_name(season: str, polarisation: str, orbit: str) -> str:
    """geetiles' name of a band: ``fall_vvasc``."""
    geetiles_season = GEETILES_SEASONS.get(season, season)
    return f"{geetiles_season}_{polarisation.lower()}{ORBIT_SUFFIXES[orbit][0]}"


CHANNELS: tuple[str, ...] = tuple(band_name(s, q) for s in SEASONS for q in QUANTITIES)
EXPORT_BANDS: tuple[str, ...] = tuple(band_name(s, p) for s in SEASONS for p in POLARISATIONS)
LABEL_BAND = "Map"


@dataclass(frozen=True)
class BandKey:
    season: str  # one of SEASONS
    pol: str  # one of POLARISATIONS
    orbit: str | None  # one of BAND_ORBITS, or None when the band does not say


def _one_of(words: Iterable[str]) -> str:
    return "(" + "|".join(re.escape(w) for w in words) + ")"


# Either naming's season spelling -> ours.
_SEASON_OF = {s: s for s in SEASONS} | {g: s for s, g in GEETILES_SEASONS.items()}
_ORBIT_OF_SUFFIX = {
    suffix: orbit for orbit, suffixes in ORBIT_SUFFIXES.items() for suffix in suffixes
}
# Ours: winter_VV, winter_VV_asc (another suffix: one more acquisition, averaged).
_OUR_BAND = re.compile(_one_of(_SEASON_OF) + "_" + _one_of(POLARISATIONS) + r"(?:_(\w+))?")
# geetiles: fall_vvasc.
_GEETILES_BAND = re.compile(
    _one_of(_SEASON_OF)
    + "_"
    + _one_of(p.lower() for p in POLARISATIONS)
    + _one_of(suffixes[0] for suffixes in ORBIT_SUFFIXES.values())
)


def is_geetiles_band(name: str) -> bool:
    return _GEETILES_BAND.fullmatch(name) is not None


def parse_band(name: str) -> BandKey | None:
    """The season, polarisation and orbit pass a band name (ours or geetiles') stands for;
    None if none."""
    if match := _GEETILES_BAND.fullmatch(name):
        season, pol, suffix = match.groups()
        return BandKey(_SEASON_OF[season], pol.upper(), _ORBIT_OF_SUFFIX[suffix])
    if match := _OUR_BAND.fullmatch(name):
        season, pol, suffix = match.groups()
        return BandKey(_SEASON_OF[season], pol, _ORBIT_OF_SUFFIX.get((suffix or "").lower()))
    return None


def s1_dataset_name(year: int) -> str:
    """geetiles dataset folder of the seasonal Sentinel-1 export."""
    return f"s1grd-{year}"


def labels_dataset_name(year: int) -> str:
    """geetiles dataset folder of the ESA WorldCover export."""
    return f"esaworldcover-{year}"


def aoi_datasets(aoi: Mapping, year: int) -> dict[str, str]:
    """Dataset folders of an AOI's config entry: its own names, else the defaults."""
    return {
        "s1": aoi.get("s1_dataset", s1_dataset_name(year)),
        "labels": aoi.get("labels_dataset", labels_dataset_name(year)),
    }
