"""Exported weights in other people's hands: `load(folder)` returns the timm backbone of an
export folder (sarssl.outputs.export_format) and its `prepare`, which turns what a user
holds into the input the backbone was trained on, or refuses it with the band, the file and
the expected value. `timm_arguments` and `terratorch_arguments` build the same backbone in
timm and in TerraTorch's EncoderDecoderFactory.

The contract is the export's config.json: 12 channels in its order (per season VV, VH and
VV-VH), seasonal means of backscatter in dB, standardised by its mean and std, at its pixel
size, on a grid of whole patches. `prepare` reads, by band name:

- a GeoTIFF path, its bands named by their descriptions: ours and geetiles' seasonal
  layouts, float dB or geetiles' uint8/uint16 codes, decoded by the pipeline's own decoder
  (sarssl.dataset.s1layout), or a single date's `VV` and `VH`;
- an xarray DataArray with a `band` dimension (or rioxarray's `long_name`) or a Dataset
  with one variable per band.

Float data must say their units (the band's or variable's `units`, or `units=`): dB or
linear power, which is converted to dB. It refuses a missing channel, unknown units,
values impossible in the stated units (dB whose median is above 0 looks linear; linear
power below 0), VV weaker than VH (cross-polarised backscatter is the weaker one, so the
descriptions are swapped), a pixel size more than 25 % off the export's, and a size the
patch grid cannot tile unless `resize=True`. One date in place of four seasons is the
caller's choice (`seasons="replicate"`), never implicit. VV-VH is computed from VV and VH;
pixels without data take the pipeline's gap filling (sarssl.dataset.seasonal.fill_gaps).
"""

from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Literal

import numpy as np
import timm
import torch
import torch.nn.functional as F
import xarray as xr
from rasterio.transform import Affine

from sarssl.dataset.bands import ASCENDING, CHANNELS, POLARISATIONS, SEASONS, VH, VV, parse_band
from sarssl.dataset.geotiff import Raster, read_raster
from sarssl.dataset.s1layout import LayoutError, implausible_db, read_s1_bands
from sarssl.dataset.seasonal import fill_gaps, to_channels
from sarssl.dataset.storeinfo import StoreInfo
from sarssl.errors import InputError
from sarssl.outputs.export_format import read_export
from sarssl.outputs.realism import pixel_metres
from sarssl.paths import WEIGHTS_NAME
from sarssl.settings.finetune import FinetuneSettings, uses_vit

Seasons = Literal["seasonal", "replicate"]
DB, LINEAR = "dB", "linear"
# Spellings of the two units a float input may state.
UNIT_NAMES = {"db": DB, "decibel": DB, "decibels": DB, "linear": LINEAR, "power": LINEAR,
              "linear power": LINEAR, "intensity": LINEAR}  # fmt: skip
# A pixel size this far from the export's, as a ratio either way, is refused: the patches
# would cover another area on the ground than in training.
MAX_PIXEL_RATIO = 1.25
POLARISATION_NAMES = {VV.lower(): VV, VH.lower(): VH}


@dataclass(frozen=True)
class Contract:
    """What an export's backbone expects (its config.json, whose channels and units
    read_export has checked)."""

    mean: np.ndarray  # (12,) dB, in the order of sarssl.dataset.bands.CHANNELS
    std: np.ndarray  # (12,) dB
    pixel_m: float | None  # None for exports written before it was recorded
    patch_px: int

    @classmethod
    def of_config(cls, config: dict, patch_px: int) -> "Contract":
        return cls(
            mean=np.asarray(config["pretrained_cfg"]["mean"], dtype=np.float32),
            std=np.asarray(config["pretrained_cfg"]["std"], dtype=np.float32),
            pixel_m=config["sarssl"].get("pixel_m"),
            patch_px=patch_px,
        )


@dataclass(frozen=True)
class Bands:
    """An input as read: its bands by name, their declared units, and its pixel size."""

    names: tuple[str, ...]
    data: np.ndarray  # (band, row, col), as stored
    units: tuple[str | None, ...]
    pixel_m: float | None
    origin: str  # the file or object, for the messages
    valid: np.ndarray | None = None  # (band, row, col) False where masked


def pixel_size_m(transform: Affine, crs: object, rows: int) -> float | None:
    """The mean side of a pixel on the ground, in metres (at the middle latitude for
    degrees); None without a CRS."""
    if not crs:
        return None
    return float(np.mean(pixel_metres(str(crs), transform, rows)))


def read_geotiff(path: str | Path) -> Bands:
    raster = read_raster(path, Path(path).name, what="input")
    return Bands(
        raster.band_names,
        raster.data,
        raster.units,
        pixel_size_m(raster.transform, raster.crs, raster.shape[0]),
        str(path),
        raster.valid,
    )


def read_xarray(data: xr.DataArray | xr.Dataset) -> Bands:
    if isinstance(data, xr.Dataset):
        names = tuple(str(name) for name in data.data_vars)
        units = tuple(data[name].attrs.get("units") for name in names)
        array = np.stack([data[name].values for name in names])
        origin, first = f"Dataset with variables {list(names)}", data[names[0]]
    else:
        if "band" not in data.dims:
            raise InputError(f"DataArray with dims {data.dims}: expected a 'band' dimension")
        labels = data.attrs.get("long_name")
        if isinstance(labels, (tuple, list)) and len(labels) == data.sizes["band"]:
            names = tuple(str(label) for label in labels)  # rioxarray: the descriptions
        else:
            names = tuple(str(label) for label in data["band"].values)
        declared = data.attrs.get("units")
        units = tuple(declared) if isinstance(declared, (tuple, list)) else (declared,) * len(names)
        array = data.transpose("band", ...).values
        origin, first = f"DataArray with bands {list(names)}", data
    pixel_m = None
    if hasattr(first, "rio") and first.rio.crs is not None:
        pixel_m = pixel_size_m(first.rio.transform(), first.rio.crs, first.rio.shape[0])
    return Bands(names, array, units, pixel_m, origin)


def stated_units(bands: Bands, units: str | None) -> str:
    """dB or linear, from `units` or else the bands' own; unknown or unstated units of float
    data are refused."""
    declared = {u for u in bands.units if u}
    if units is None:
        if len(declared) != 1:
            raise InputError(
                f"{bands.origin}: units of the float bands {list(bands.names)} are "
                f"{sorted(declared) or 'not stated'}; state them: units='dB' or units='linear'"
            )
        units = declared.pop()
    resolved = UNIT_NAMES.get(units.strip().lower())
    if resolved is None:
        raise InputError(
            f"{bands.origin}: unknown units {units!r}; expected one of "
            f"{sorted(set(UNIT_NAMES))} (backscatter in dB or linear power)"
        )
    return resolved


def to_db(bands: Bands, units: str) -> np.ndarray:
    """Float data in dB; linear power is converted (10 log10), after checking it is
    power: never negative."""
    data = bands.data.astype(np.float32)
    if bands.valid is not None:
        data = np.where(bands.valid, data, np.nan)
    if units == DB:
        return data
    negative = np.isfinite(data) & (data < 0)
    if negative.any():
        band = bands.names[int(np.argwhere(negative)[0][0])]
        raise InputError(
            f"{bands.origin}: band {band!r} has values below 0 ({np.nanmin(data):.3g}) "
            "but its units are linear power, which is never negative: are they dB?"
        )
    with np.errstate(divide="ignore"):
        return np.where(data > 0, 10 * np.log10(data), np.nan).astype(np.float32)


def single_date(names: Sequence[str]) -> dict[str, int] | None:
    """Band index of VV and VH when the bands are one date's (named VV and VH, any case,
    VV-VH allowed and recomputed), else None."""
    index = {POLARISATION_NAMES[n.lower()]: i for i, n in enumerate(names)
             if n.lower() in POLARISATION_NAMES}  # fmt: skip
    others = [n for n in names if n.lower() not in POLARISATION_NAMES and n.upper() != "VV-VH"]
    return index if index and not others else None


def seasonal_means(bands: Bands, units: str | None, seasons: Seasons) -> np.ndarray:
    """(season, pol, row, col) dB means of the input, NaN where it has no data."""
    one_date = single_date(bands.names)
    if one_date is not None:
        missing = [p for p in POLARISATIONS if p not in one_date]
        if missing:
            raise InputError(
                f"{bands.origin}: no band {missing[0]!r} among {list(bands.names)}; the "
                f"export's channels are {list(CHANNELS)}"
            )
        if seasons != "replicate":
            raise InputError(
                f"{bands.origin}: bands {list(bands.names)} are one date, the export was "
                "trained on four seasonal means; pass seasons='replicate' to use the date "
                "for every season"
            )
        db = db_of_float(bands, units)
        pols = np.stack([db[one_date[p]] for p in POLARISATIONS])
        return np.broadcast_to(pols, (len(SEASONS), *pols.shape)).copy()
    unknown = [n for n in bands.names if parse_band(n) is None]
    if unknown:
        raise InputError(
            f"{bands.origin}: bands {unknown} name no season and polarisation; expected the "
            f"export's channels {list(CHANNELS)}, geetiles' seasonal bands, or one date's "
            "VV and VH"
        )
    data = bands.data
    if data.dtype.kind == "f":
        data = db_of_float(bands, units)
    raster = Raster(data, bands.names, "", Affine.identity(), bands.valid)
    try:
        return read_s1_bands(raster, "auto", ASCENDING).means
    except (LayoutError, KeyError) as err:
        raise InputError(f"{bands.origin}: {err.args[0]}") from None


def db_of_float(bands: Bands, units: str | None) -> np.ndarray:
    if bands.data.dtype.kind != "f":
        raise InputError(
            f"{bands.origin}: {bands.data.dtype} bands named {list(bands.names)}: integer "
            "codes are read only in geetiles' seasonal layouts"
        )
    return to_db(bands, stated_units(bands, units))


def check_backscatter(means: np.ndarray, origin: str) -> None:
    """dB values that are backscatter in dB, with VV and VH where they belong."""
    if problem := implausible_db(means):
        raise InputError(f"{origin}: {problem}")
    vv, vh = (means[:, POLARISATIONS.index(p)] for p in (VV, VH))
    vv_median, vh_median = (float(np.nanmedian(x)) for x in (vv, vh))
    if vh_median > vv_median:
        raise InputError(
            f"{origin}: the band named VH (median {vh_median:.1f} dB) is stronger than the "
            f"band named VV (median {vv_median:.1f} dB); cross-polarised backscatter (VH) "
            "is the weaker one over land and water: are the band names swapped?"
        )


class Prepare:
    """What a user holds -> the backbone's input tensor (1, 12, rows, cols)."""

    def __init__(self, contract: Contract):
        self.contract = contract

    def __call__(
        self,
        source: str | Path | xr.DataArray | xr.Dataset,
        *,
        units: str | None = None,
        seasons: Seasons = "seasonal",
        resize: bool = False,
    ) -> torch.Tensor:
        bands = read_xarray(source) if isinstance(source, xr.DataArray | xr.Dataset) else (
            read_geotiff(source))  # fmt: skip
        self.check_pixel_size(bands)
        means = seasonal_means(bands, units, seasons)
        check_backscatter(means, bands.origin)
        filled, _ = fill_gaps(means.astype(np.float32))
        channels = to_channels(filled)
        mean, std = self.contract.mean[:, None, None], self.contract.std[:, None, None]
        standard = torch.from_numpy(((channels - mean) / std).astype(np.float32))[None]
        return self.fit_patches(standard, bands.origin, resize)

    def check_pixel_size(self, bands: Bands) -> None:
        expected = self.contract.pixel_m
        if expected is None or bands.pixel_m is None:
            return
        ratio = bands.pixel_m / expected
        if not 1 / MAX_PIXEL_RATIO <= ratio <= MAX_PIXEL_RATIO:
            raise InputError(
                f"{bands.origin}: pixels of {bands.pixel_m:.1f} m, the export was trained on "
                f"{expected:g} m; resample the input to {expected:g} m"
            )

    def fit_patches(self, tensor: torch.Tensor, origin: str, resize: bool) -> torch.Tensor:
        """The input on whole patches: as it is, or with `resize` bilinearly to the nearest
        multiple of the patch size each way."""
        patch = self.contract.patch_px
        rows, cols = tensor.shape[-2:]
        if rows % patch == 0 and cols % patch == 0:
            return tensor
        if not resize:
            raise InputError(
                f"{origin}: {rows} x {cols} px is not a whole number of {patch} px patches; "
                f"crop it, or pass resize=True to resample it to "
                f"{nearest_multiple(rows, patch)} x {nearest_multiple(cols, patch)} px"
            )
        size = (nearest_multiple(rows, patch), nearest_multiple(cols, patch))
        return F.interpolate(tensor, size=size, mode="bilinear", align_corners=False)


def nearest_multiple(size: int, patch: int) -> int:
    return max(patch, round(size / patch) * patch)


def check_store(folder: str | Path, store: str | Path) -> dict:
    """An export checked against a Zarr store it is to be fine-tuned on (`sarssl finetune
    --weights`): the store's channels in the export's order, its units, tile size (a whole
    number of the export's patches at the export's size) and pixel size within 25 %; the
    export's config.json, else an InputError naming both."""
    what = f"sarssl finetune --weights {folder}"
    config = read_export(folder, None, what)
    info = StoreInfo.read(store)
    expected = list(config["sarssl"]["channels"])
    if list(info.channels) != expected:
        missing = sorted(set(expected) - set(info.channels))
        raise InputError(
            f"{what}: store {store} has channels {list(info.channels)}, the export expects "
            f"{expected} in that order" + (f" (missing {missing})" if missing else "")
        )
    if info.units != config["sarssl"]["units"]:
        raise InputError(
            f"{what}: store {store} holds channels in {info.units!r}, the export expects "
            f"{config['sarssl']['units']!r}"
        )
    img_size = config["model_args"]["img_size"]
    if info.tile_px != img_size:
        raise InputError(
            f"{what}: store {store} has {info.tile_px} px tiles, the export was trained on "
            f"{img_size} px (model_args.img_size); build the store with data.tile_px "
            f"{img_size}"
        )
    trained_m = config["sarssl"].get("pixel_m")
    if (
        trained_m
        and info.pixel_m
        and not 1 / MAX_PIXEL_RATIO <= info.pixel_m / trained_m <= (MAX_PIXEL_RATIO)
    ):
        raise InputError(
            f"{what}: store {store} has {info.pixel_m:g} m pixels, the export was trained on "
            f"{trained_m:g} m"
        )
    return config


def with_weights(settings: FinetuneSettings, folder: str | Path) -> FinetuneSettings:
    """A fine-tuning run's settings with an export folder in place of its pre-training,
    once the export is checked against the run's store (check_store)."""
    if not uses_vit(settings.model):
        raise InputError(f"sarssl finetune --weights {folder}: {settings.model} runs no ViT")
    check_store(folder, settings.store)
    return replace(settings, checkpoint=str(folder))


def timm_arguments(folder: str | Path) -> dict:
    """`timm.create_model`'s arguments that build an export's backbone with its weights (the
    architecture under "model_name"): timm reads the weights from the file that the export's
    pretrained_cfg names, so a model built this way is the export whatever wraps it."""
    folder = Path(folder)
    config = read_export(folder, None, f"export {folder}")
    return {
        "model_name": config["architecture"],
        "pretrained": True,
        "pretrained_cfg_overlay": dict(config["pretrained_cfg"], file=str(folder / WEIGHTS_NAME)),
        **config["model_args"],
    }


def terratorch_arguments(folder: str | Path) -> dict:
    """The backbone's part of the `model_args` of TerraTorch's EncoderDecoderFactory (its
    timm source, "timm_<architecture>", and every timm argument prefixed "backbone_"); add
    a decoder and the classes. The factory builds the ViT with `features_only`, so the
    decoder reads the output of its last blocks, without the final norm."""
    arguments = timm_arguments(folder)
    return {"backbone": f"timm_{arguments.pop('model_name')}"} | {
        f"backbone_{name}": value for name, value in arguments.items()
    }


def load(folder: str | Path) -> tuple[torch.nn.Module, Prepare]:
    """The export's backbone (timm, eval mode, no head: it returns the pooled features, and
    `forward_features` the tokens) and the `prepare` of its contract."""
    folder = Path(folder)
    config = read_export(folder, None, f"export {folder}")
    model = timm.create_model(**timm_arguments(folder), num_classes=0)
    patch_px = model.patch_embed.patch_size[0]
    return model.eval(), Prepare(Contract.of_config(config, patch_px))
