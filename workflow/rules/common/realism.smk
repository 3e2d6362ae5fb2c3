import os
from dataclasses import fields

from sarssl.realism import REALISM_FIGURE, SEPARABILITY_TABLE
from sarssl.separability import SeparabilitySettings

REALISM = config["realism"]


def separability_settings():
    """sarssl.separability.SeparabilitySettings from the realism section (the dataclass
    holds the defaults)."""
    names = {f.name for f in fields(SeparabilitySettings)}
    return {key: REALISM[key] for key in names if key in REALISM}


def realism_reference(wildcards):
    """The real Sentinel-1 chip, an input when it is there: without it the rule still
    writes the table and a figure that says the real panels are missing."""
    reference = REALISM["reference_s1"]
    return [reference] if reference and os.path.isfile(reference) else []


def realism_targets():
    return [
        target
        for aoi in AOIS
        for target in (
            paths.path(SEPARABILITY_TABLE, aoi=aoi, format="md"),
            paths.path(REALISM_FIGURE, aoi=aoi),
        )
    ]
