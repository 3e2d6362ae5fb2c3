import os
from dataclasses import asdict


def separability_settings():
    return asdict(CONFIG.separability())


def realism_reference(wildcards):
    """The real Sentinel-1 chip, an input when it is there: without it the rule still
    writes the table and a figure that says the real panels are missing."""
    reference = CONFIG.realism_reference
    return [reference] if reference and os.path.isfile(reference) else []


def realism_inputs(wildcards):
    """The store's statistics, the real chip where it is there, and the context check's
    U-Net where the config asks for one."""
    inputs = {"stats": stats(wildcards.aoi), "reference": realism_reference(wildcards)}
    if CONFIG.context(wildcards.aoi):
        inputs["context"] = paths.path(paths.CONTEXT_METRICS, aoi=wildcards.aoi)
    return inputs


def context_unet_settings(wildcards):
    return CONFIG.context(wildcards.aoi).as_dict()


def realism_targets():
    return [
        target
        for aoi in AOIS
        for target in (
            paths.path(paths.SEPARABILITY_TABLE, aoi=aoi, format="md"),
            paths.path(paths.REALISM_FIGURE, aoi=aoi),
        )
    ]
