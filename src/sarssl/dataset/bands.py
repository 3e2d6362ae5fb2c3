"""Names and order of the SAR bands and of the 12 model channels.

Export GeoTIFFs (Earth Engine, geetiles layout or the synthetic source) carry one band per
season and polarisation, named ``{season}_{pol}`` (e.g. ``winter_VV``), float32 dB. Several
acquisitions or orbit passes of one season may come as ``{season}_{pol}_{suffix}``; they are
averaged. The Zarr store holds 12 channels, season-major:

    winter_VV, winter_VH, winter_VV-VH, spring_VV, ..., autumn_VV-VH
"""

SEASONS: tuple[str, ...] = ("winter", "spring", "summer", "autumn")
POLARISATIONS: tuple[str, ...] = ("VV", "VH")
# The third quantity per season: the VV/VH ratio, a difference in dB.
RATIO = "VV-VH"
QUANTITIES: tuple[str, ...] = (*POLARISATIONS, RATIO)

CHANNELS: tuple[str, ...] = tuple(f"{s}_{q}" for s in SEASONS for q in QUANTITIES)

EXPORT_BANDS: tuple[str, ...] = tuple(f"{s}_{p}" for s in SEASONS for p in POLARISATIONS)
LABEL_BAND = "Map"


def s1_dataset_name(year: int) -> str:
    """geetiles dataset folder of the seasonal Sentinel-1 export."""
    return f"s1grd-{year}"


def labels_dataset_name(year: int) -> str:
    """geetiles dataset folder of the ESA WorldCover export."""
    return f"esaworldcover-{year}"


def aoi_datasets(aoi: dict, year: int) -> dict[str, str]:
    """Dataset folders of an AOI's config entry: its own names, else the defaults."""
    return {
        "s1": aoi.get("s1_dataset", s1_dataset_name(year)),
        "labels": aoi.get("labels_dataset", labels_dataset_name(year)),
    }
