import os
from dataclasses import asdict, fields

from sarssl.realism import REALISM_FIGURE, SEPARABILITY_TABLE
from sarssl.settings.finetune import context_settings
from sarssl.settings.separability import SeparabilitySettings

REALISM = config["realism"]
CONTEXT = REALISM["context_unet"]


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


def realism_inputs(wildcards):
    """The store's statistics, the real chip where it is there, and the context check's
    U-Net where the config asks for one."""
    inputs = {"stats": stats(wildcards.aoi), "reference": realism_reference(wildcards)}
    if CONTEXT:
        inputs["context"] = paths.path(paths.CONTEXT_METRICS, aoi=wildcards.aoi)
    return inputs


def context_unet_settings(wildcards):
    return asdict(context_settings(FINETUNE, CONTEXT, store(wildcards.aoi)))


def realism_targets():
    return [
        target
        for aoi in AOIS
        for target in (
            paths.path(SEPARABILITY_TABLE, aoi=aoi, format="md"),
            paths.path(REALISM_FIGURE, aoi=aoi),
        )
    ]
