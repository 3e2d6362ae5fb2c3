"""Seasonal C-band backscatter of the 11 WorldCover classes, as distributions over objects.

A class is not one signature. Each object (a field, a forest stand, a city block, a water
body) draws a subtype and offsets from its class's model, so that classes overlap per pixel
as they do in real Sentinel-1 data. Levels are seasonal means of sigma0 in dB (VV, VH) at the
reference incidence angle, for the seasons winter (DJF), spring (MAM), summer (JJA) and
autumn (SON). They are our reading of the sources below, not values copied from one table:

- Cropland subtypes and their cycles: winter cereals lose VV in spring as vertical stems
  attenuate it and gain VH with biomass, harvest in June-July; maize and sunflower rise in
  summer; rapeseed is high in VH from winter to flowering. Veloso et al. 2017, "Understanding
  the temporal behavior of crops using Sentinel-1 and Sentinel-2-like data for agricultural
  applications", Remote Sensing of Environment 199; Arias et al. 2020, "Crop type mapping
  based on Sentinel-1 backscatter time series" (Navarre, Spain), Remote Sensing 12(2) 278.
- Grassland: mowing and grazing drop VH by 1-3 dB for weeks (De Vroey et al. 2022,
  "Mowing detection using Sentinel-1 and Sentinel-2 time series for large scale grassland
  monitoring", Remote Sensing of Environment 280).
- Forest: conifers are stable over the year; broadleaf stands lose 1-2 dB of VH in leaf-off
  winter (Dostálová et al. 2021, "European wide forest classification based on Sentinel-1
  data", Remote Sensing 13(3) 337; Frison et al. 2018, "Potential of Sentinel-1 data for
  monitoring temperate mixed forest phenology", Remote Sensing 10(12) 2049).
- Built-up: dense blocks facing the sensor reach 0 to +5 dB VV by double bounce; the same
  buildings rotated away from the look direction lose up to ~10 dB (orientation effect,
  Kajimoto & Susaki 2013, "Urban-area extraction from polarimetric SAR images using
  polarization orientation angle", IEEE GRSL 10(2)); residential areas with gardens sit
  near vegetation levels.
- Water: calm water falls to the noise floor (IW NESZ about -22 dB or lower, ESA
  Sentinel-1 User Guide), wind-roughened water reaches -12 dB VV; a seasonal mean averages
  the winds of its acquisitions.
- Wet snow lowers C-band backscatter by 3 dB or more (Nagler & Rott 2000, "Retrieval of wet
  snow by means of multitemporal SAR data", IEEE TGRS 38(2)); dry snow is transparent.
- Flooded vegetation brightens by double bounce, open floods darken (Martinis & Rieke 2015,
  "Backscatter analysis using multi-temporal and multi-frequency SAR data in the context of
  flood mapping at River Saale, Germany", Remote Sensing 7(6)).
- Incidence-angle slopes (dB per degree of sigma0): near -0.06 for volume scattering
  (sigma0 = gamma0 cos(theta)), steeper for rough surfaces and steepest for water
  (Mladenova et al. 2013, "Incidence angle normalization of radar backscatter data", IEEE
  TGRS 51(3); Ulaby & Long 2014, "Microwave Radar and Radiometric Remote Sensing").
"""

from dataclasses import dataclass

import numpy as np

from ..worldcover import CODES

Seasonal = tuple[float, float, float, float]


@dataclass(frozen=True)
class Subtype:
    name: str
    share: float  # of the class's objects
    vv: Seasonal  # dB, winter, spring, summer, autumn
    vh: Seasonal


@dataclass(frozen=True)
class ClassModel:
    subtypes: tuple[Subtype, ...]
    layer: str  # the object layer whose objects carry the class (see scene.LAYERS)
    object_sd_db: float  # per-object offset: management, density, roughness, orientation
    season_sd_db: float  # per-object, per-season: dates of sowing or mowing, wind, rain
    texture_db: float  # std of the texture within an object (tens of metres)
    incidence_slope: float  # dB per degree of incidence angle
    moisture_db: float  # response to a seasonal soil-moisture anomaly of +-1
    phenology_sd: float = 0.0  # per-object shift of the seasonal cycle, in seasons
    floods_open: bool = False  # a flood darkens it (open water over the ground)
    floods_bright: bool = False  # a flood brightens it (double bounce with stems or trunks)


# fmt: off
CLASS_MODELS: dict[int, ClassModel] = {
    10: ClassModel(  # tree cover
        (
            Subtype("conifer", 0.4, (-7.6, -7.5, -7.3, -7.5), (-13.4, -13.3, -13.0, -13.3)),
            Subtype("broadleaf", 0.6, (-8.6, -7.8, -7.2, -7.9), (-15.2, -13.8, -12.9, -14.0)),
        ),
        layer="stand",
        object_sd_db=1.0,
        season_sd_db=0.4,
        texture_db=1.0,
        incidence_slope=-0.06,
        moisture_db=0.3,
        phenology_sd=0.1,
        floods_bright=True,
    ),
    20: ClassModel(  # shrubland
        (
            Subtype("sparse", 0.5, (-12.5, -12.0, -12.8, -12.3), (-20.0, -19.5, -20.5, -20.0)),
            Subtype("dense", 0.5, (-9.8, -9.3, -9.6, -9.7), (-16.3, -15.6, -16.0, -16.2)),
        ),
        layer="stand",
        object_sd_db=1.3,
        season_sd_db=0.5,
        texture_db=1.0,
        incidence_slope=-0.12,
        moisture_db=0.8,
        floods_bright=True,
    ),
    30: ClassModel(  # grassland
        (
            Subtype("meadow", 0.5, (-11.5, -10.5, -11.5, -11.5), (-18.5, -16.5, -18.5, -18.5)),
            Subtype("pasture", 0.3, (-12.0, -11.5, -12.8, -12.0), (-19.5, -18.5, -20.5, -19.5)),
            Subtype("dry", 0.2, (-12.5, -12.5, -15.0, -13.5), (-20.5, -20.0, -23.5, -21.5)),
        ),
        layer="parcel",
        object_sd_db=1.3,
        season_sd_db=0.8,
        texture_db=0.6,
        incidence_slope=-0.18,
        moisture_db=1.2,
        phenology_sd=0.2,
        floods_open=True,
    ),
    40: ClassModel(  # cropland
        (
            Subtype(
                "winter cereal", 0.45, (-12.0, -13.5, -11.0, -12.5), (-20.0, -17.0, -19.5, -20.5)
            ),
            Subtype("maize", 0.2, (-12.5, -12.0, -8.5, -10.5), (-20.0, -20.0, -13.5, -16.5)),
            Subtype("sunflower", 0.15, (-13.0, -12.5, -10.0, -13.0), (-21.0, -20.5, -15.5, -20.0)),
            Subtype("rapeseed", 0.1, (-10.5, -9.5, -12.0, -11.0), (-16.5, -14.5, -19.5, -18.0)),
            Subtype("fallow", 0.1, (-13.0, -12.5, -14.0, -13.0), (-21.0, -20.5, -22.0, -21.0)),
        ),
        layer="parcel",
        object_sd_db=1.0,
        season_sd_db=0.8,
        texture_db=0.5,
        incidence_slope=-0.2,
        moisture_db=1.5,
        phenology_sd=0.25,
        floods_open=True,
    ),
    50: ClassModel(  # built-up
        (
            Subtype("dense", 0.35, (0.5, 0.5, 0.5, 0.5), (-7.5, -7.5, -7.5, -7.5)),
            Subtype("residential", 0.65, (-5.5, -5.3, -5.2, -5.5), (-12.5, -12.2, -12.0, -12.5)),
        ),
        layer="block",
        object_sd_db=3.0,
        season_sd_db=0.3,
        texture_db=2.5,
        incidence_slope=-0.1,
        moisture_db=0.2,
    ),
    60: ClassModel(  # bare / sparse vegetation
        (
            Subtype("rock", 0.5, (-12.5, -12.5, -13.0, -12.5), (-20.5, -20.5, -21.5, -20.5)),
            Subtype("smooth soil", 0.5, (-17.0, -17.0, -18.5, -17.0), (-25.0, -25.0, -26.5, -25.0)),
        ),
        layer="stand",
        object_sd_db=1.8,
        season_sd_db=0.6,
        texture_db=0.8,
        incidence_slope=-0.25,
        moisture_db=1.5,
        floods_open=True,
    ),
    70: ClassModel(  # snow and ice: dry in winter, wet in the melt, firn and ice in summer
        (Subtype("snowfield", 1.0, (-11.0, -15.5, -14.0, -12.0), (-18.0, -23.0, -21.0, -19.0)),),
        layer="stand",
        object_sd_db=1.5,
        season_sd_db=1.0,
        texture_db=0.8,
        incidence_slope=-0.2,
        moisture_db=0.0,
    ),
    80: ClassModel(  # permanent water
        (
            Subtype("sheltered", 0.5, (-21.5, -22.0, -22.5, -21.5), (-28.0, -28.5, -29.0, -28.0)),
            Subtype("exposed", 0.5, (-15.5, -17.0, -18.5, -16.0), (-25.0, -26.0, -27.0, -25.5)),
        ),
        layer="water",
        object_sd_db=2.0,
        season_sd_db=1.5,
        texture_db=0.4,
        incidence_slope=-0.4,
        moisture_db=0.0,
    ),
    90: ClassModel(  # herbaceous wetland
        (
            Subtype("flooded reeds", 0.4, (-9.5, -7.5, -10.5, -9.5), (-17.0, -15.5, -17.5, -17.0)),
            Subtype("marsh", 0.6, (-14.0, -15.0, -12.5, -13.5), (-21.0, -22.0, -19.0, -20.5)),
        ),
        layer="stand",
        object_sd_db=1.5,
        season_sd_db=1.0,
        texture_db=0.8,
        incidence_slope=-0.2,
        moisture_db=1.0,
        floods_bright=True,
    ),
    95: ClassModel(  # mangroves
        (Subtype("mangrove", 1.0, (-6.5, -6.5, -6.5, -6.5), (-12.5, -12.5, -12.5, -12.5)),),
        layer="stand",
        object_sd_db=1.0,
        season_sd_db=0.4,
        texture_db=1.0,
        incidence_slope=-0.06,
        moisture_db=0.2,
        floods_bright=True,
    ),
    100: ClassModel(  # moss and lichen
        (Subtype("tundra", 1.0, (-14.0, -15.0, -13.0, -14.0), (-22.0, -23.0, -21.0, -22.0)),),
        layer="stand",
        object_sd_db=1.5,
        season_sd_db=0.6,
        texture_db=0.6,
        incidence_slope=-0.2,
        moisture_db=1.0,
    ),
}
# fmt: on
assert set(CLASS_MODELS) == set(CODES)
MAX_SUBTYPES = max(len(m.subtypes) for m in CLASS_MODELS.values())


@dataclass(frozen=True)
class ClassTables:
    """The class models as lookup tables indexed by WorldCover code (0-255)."""

    levels: np.ndarray  # (code, subtype, season, pol) dB
    cumulative_share: np.ndarray  # (code, subtype)
    object_sd_db: np.ndarray  # (code,)
    season_sd_db: np.ndarray
    texture_db: np.ndarray
    incidence_slope: np.ndarray
    moisture_db: np.ndarray
    phenology_sd: np.ndarray
    floods_open: np.ndarray  # bool
    floods_bright: np.ndarray  # bool


SCALAR_FIELDS = (
    "object_sd_db",
    "season_sd_db",
    "texture_db",
    "incidence_slope",
    "moisture_db",
    "phenology_sd",
)


def class_tables() -> ClassTables:
    levels = np.zeros((256, MAX_SUBTYPES, 4, 2), dtype=np.float32)
    cumulative = np.ones((256, MAX_SUBTYPES), dtype=np.float32)
    scalars = {name: np.zeros(256, dtype=np.float32) for name in SCALAR_FIELDS}
    flags = {name: np.zeros(256, dtype=bool) for name in ("floods_open", "floods_bright")}
    for code, model in CLASS_MODELS.items():
        for i, subtype in enumerate(model.subtypes):
            levels[code, i] = np.stack([subtype.vv, subtype.vh], axis=1)
        shares = np.cumsum([s.share for s in model.subtypes])
        cumulative[code, : len(shares)] = shares / shares[-1]
        for name, table in scalars.items():
            table[code] = getattr(model, name)
        for name, table in flags.items():
            table[code] = getattr(model, name)
    return ClassTables(levels, cumulative, **scalars, **flags)
