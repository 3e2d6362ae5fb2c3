"""The format of an export folder, free of torch, timm and pandas: the Snakefile reads export
folders (`read_export`) while it parses, and sarssl.outputs.export writes them.

An export folder holds:
- `model.safetensors`: the backbone's weights only (the teacher by default, as DINO
  publishes it; no head, no optimizer), timm's key names;
- `config.json`: timm's pretrained-config form (architecture, `model_args` with
  `in_chans` 12 and `img_size`, `num_classes` 0, `pretrained_cfg` with `mean`/`std` per
  channel in dB), and under `sarssl` the channel names in order, their units and what the
  data were (AOIs, year, source, orbit pass, composite);
- `README.md`: the model card (sarssl.outputs.model_card).

Both `timm.create_model(architecture, pretrained=True,
pretrained_cfg_overlay=dict(config["pretrained_cfg"], file=".../model.safetensors"),
in_chans=12, img_size=448, num_classes=0)` and
`timm.create_model("local-dir:<folder>", pretrained=True)` load it without sarssl.

An export folder also serves as a pre-training of the pipeline (`weights:` on a pretrain
entry): `read_export` checks its config against the pipeline's channels and tile size.
"""

import dataclasses
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from sarssl.dataset.bands import CHANNELS
from sarssl.errors import ConfigError, SarsslError
from sarssl.paths import CONFIG_NAME, WEIGHTS_NAME
from sarssl.settings.architectures import is_timm_model
from sarssl.settings.pretrain import EXECUTION_ONLY, RUN_KEYS, PretrainSettings
from sarssl.settings.recipes import DINO_RECIPE

if TYPE_CHECKING:  # annotations only: the Snakefile's parse imports neither torch nor xarray
    from sarssl.dataset.storeinfo import StoreInfo
    from sarssl.tiles.loader import Normalisation

UNITS = "dB"

# The original DINO's values of the settings where the paper states its own (those are
# PretrainSettings' defaults); every other default of PretrainSettings is DINO's.
DINO_WHERE_THE_PAPER_DIFFERS = {
    key: value
    for key, value in DINO_RECIPE.items()
    if value != getattr(PretrainSettings, key, None) and key != "lr_reference_batch"
}
# Settings DINO has no default for: the run's own, how it executes, and the local crops'
# size, which follows the tile size.
NOT_DINO_SETTINGS = (
    RUN_KEYS
    | EXECUTION_ONLY
    | {
        "seed",
        "precision",
        "local_px",
        "recipe",
        "augment",
    }
)
# The original DINO's defaults of the settings the model card compares a run against, in
# PretrainSettings' order (lists where PretrainSettings holds tuples, as JSON shows them).
DINO_DEFAULTS = {
    field.name: DINO_WHERE_THE_PAPER_DIFFERS.get(
        field.name, list(field.default) if isinstance(field.default, tuple) else field.default
    )
    for field in dataclasses.fields(PretrainSettings)
    if field.name not in NOT_DINO_SETTINGS
}


@dataclass(frozen=True)
class DataDescription:
    """What the pre-training data were, for the config and the card."""

    aois: list[str]
    year: int
    tiles: dict  # AOI -> split -> {valid, rejected}
    split: dict  # the config's split section
    sources: dict  # AOI -> synthetic / gee / geetiles_dir
    orbit_pass: dict  # AOI -> the orbit pass of its channels
    composite: dict  # AOI -> how its seasons were composited
    pixel_m: float | None = None  # the stores' pixel size; None where they differ


COMPOSITE_OF_FORMAT = {
    "geetiles_uint8": "median of the dB images per season and pass (geetiles 0.1.7)",
    "geetiles_uint16": "mean of the dB images per season and pass, whole dB (geetiles 2023)",
}


def describe_data(stores: Mapping[str, "StoreInfo"], split: dict) -> DataDescription:
    """What a pre-training's data were, from its AOIs' stores (AOI -> its store's record)
    and the config's split section (the store records each tile's split, not how the
    bands were drawn)."""
    years = {info.year for info in stores.values()}
    if len(years) != 1 or None in years:
        raise SarsslError(f"the stores of AOIs {list(stores)} record the years {years}, not one")
    unrecorded = [aoi for aoi, info in stores.items() if info.source is None]
    if unrecorded:
        raise SarsslError(f"the stores of AOIs {unrecorded} record no source: rebuild them")
    orbit_pass, composite = {}, {}
    for aoi, info in stores.items():
        if info.source == "gee":
            # Bands of one pass do not name it: the store records what the export asked.
            orbit_pass[aoi] = info.gee_export["orbit_pass"].lower()
            composite[aoi] = f"{info.gee_export['composite']} of the dB images per season"
        elif info.source == "synthetic":
            orbit_pass[aoi] = "none (synthetic)"
            composite[aoi] = "synthetic seasonal means"
        else:
            orbit_pass[aoi] = ", ".join(info.orbit_passes) or "as in the files"
            composite[aoi] = "; ".join(COMPOSITE_OF_FORMAT.get(f, f"as in the files ({f})")
                                       for f in info.formats)  # fmt: skip
    pixel_sizes = {info.pixel_m for info in stores.values()}
    return DataDescription(
        pixel_m=pixel_sizes.pop() if len(pixel_sizes) == 1 else None,
        aois=list(stores),
        year=years.pop(),
        tiles={aoi: info.tiles for aoi, info in stores.items()},
        split=split,
        sources={aoi: info.source for aoi, info in stores.items()},
        orbit_pass=orbit_pass,
        composite=composite,
    )


def timm_config(
    settings: Mapping,
    normalisation: "Normalisation",
    which: str,
    data: DataDescription,
    num_features: int,
) -> dict:
    """config.json: timm's pretrained-config form and the data under `sarssl`."""
    architecture, tile_px = settings["architecture"], settings["tile_px"]
    return {
        "architecture": architecture,
        "num_classes": 0,
        "num_features": num_features,
        "global_pool": "token",
        "model_args": {"img_size": tile_px, "in_chans": len(CHANNELS), "dynamic_img_size": True},
        "pretrained_cfg": {
            "tag": f"sarssl_dino_{settings['name']}",
            "custom_load": False,
            "input_size": [len(CHANNELS), tile_px, tile_px],
            "fixed_input_size": False,
            "interpolation": "bicubic",
            "crop_pct": 1.0,
            "crop_mode": "center",
            "mean": [float(v) for v in normalisation.mean],
            "std": [float(v) for v in normalisation.std],
            "num_classes": 0,
            "pool_size": None,
            "first_conv": "patch_embed.proj",
            "classifier": "head",
        },
        "sarssl": {
            "pretrain": settings["name"],
            "backbone": which,
            "channels": list(CHANNELS),
            "units": UNITS,
            "channels_note": "seasonal means of Sentinel-1 GRD backscatter in dB: VV, VH and "
            "VV-VH (the dB difference) for winter (Dec-Feb), spring, summer, autumn",
            "year": data.year,
            "pixel_m": data.pixel_m,
            "aois": data.aois,
            "sources": data.sources,
            "orbit_pass": data.orbit_pass,
            "composite": data.composite,
        },
    }


def read_export(folder: str | Path, tile_px: int | None, what: str) -> dict:
    """The config.json of an export folder, checked against the pipeline's channels, units
    and tile size (with `tile_px`); errors name the key. `what` names the config entry for
    the messages."""
    folder = Path(folder)
    path = folder / CONFIG_NAME
    if not (folder / WEIGHTS_NAME).is_file():
        raise ConfigError(f"{what}: {folder / WEIGHTS_NAME} does not exist")
    if not path.is_file():
        raise ConfigError(f"{what}: {path} does not exist")
    try:
        config = json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise ConfigError(f"{what}: {path} is not JSON: {err}") from err

    def key(*names):
        value = config
        for name in names:
            if not isinstance(value, dict) or name not in value:
                raise ConfigError(f"{what}: {path} lacks {'.'.join(names)}")
            value = value[name]
        return value

    architecture = key("architecture")
    if not is_timm_model(architecture):
        raise ConfigError(f"{what}: {path}: architecture {architecture!r} is not a timm model")
    if key("model_args", "in_chans") != len(CHANNELS):
        raise ConfigError(
            f"{what}: {path}: model_args.in_chans is {key('model_args', 'in_chans')}, "
            f"expected {len(CHANNELS)}"
        )
    if tile_px is not None and key("model_args", "img_size") != tile_px:
        raise ConfigError(
            f"{what}: {path}: model_args.img_size is {key('model_args', 'img_size')}, the "
            f"pipeline's tiles are {tile_px} px (data.tile_px)"
        )
    channels = key("sarssl", "channels")
    if list(channels) != list(CHANNELS):
        raise ConfigError(
            f"{what}: {path}: sarssl.channels {channels} are not the pipeline's channels in "
            f"order {list(CHANNELS)}"
        )
    if key("sarssl", "units") != UNITS:
        raise ConfigError(
            f"{what}: {path}: sarssl.units is {key('sarssl', 'units')!r}; the pipeline's "
            f"channels are in {UNITS}"
        )
    for stat in ("mean", "std"):
        values = key("pretrained_cfg", stat)
        if len(values) != len(CHANNELS) or not all(
            isinstance(v, int | float) and math.isfinite(v) for v in values
        ):
            raise ConfigError(
                f"{what}: {path}: pretrained_cfg.{stat} has {len(values)} values, expected "
                f"{len(CHANNELS)} finite numbers (one per channel)"
            )
    if not all(v > 0 for v in key("pretrained_cfg", "std")):
        raise ConfigError(f"{what}: {path}: pretrained_cfg.std must be positive")
    return config
