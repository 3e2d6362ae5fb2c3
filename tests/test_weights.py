"""Exported weights in a user's hands (sarssl.weights): the real Sen1Floods11 chip reaches
the backbone changed only by the documented steps; linear power, a missing band, swapped
band names, unstated or unknown units, another pixel size and a size off the patch grid
are refused, naming the problem; `sarssl finetune --weights` checks an export against the
store it is given."""

import dataclasses
import json
import shutil

import numpy as np
import pytest
import rasterio
import rioxarray
import torch
import zarr
from conftest import S1_CHIP
from rasterio.transform import Affine
from safetensors.torch import load_file

from sarssl.cli import main
from sarssl.dataset.bands import CHANNELS, SEASONS
from sarssl.errors import ConfigError
from sarssl.models.segmentation import TOKEN_DECODER_VIT
from sarssl.outputs.export_format import read_export
from sarssl.paths import CONFIG_NAME, WEIGHTS_NAME
from sarssl.settings.finetune import FinetuneSettings, Init, Model
from sarssl.weights import InputError, load


@pytest.fixture(scope="module")
def export(tiny_export):
    return tiny_export


@pytest.fixture(scope="module")
def loaded(export):
    return load(export)


@pytest.fixture(scope="module")
def chip():
    """The chip's VV and VH (dB, NaN nodata) and its georeferencing."""
    with rasterio.open(S1_CHIP) as source:
        return source.read().astype(np.float32), source.profile


def write(path, bands, profile, descriptions, units=None, transform=None):
    profile = profile | {"count": len(bands), "dtype": "float32"}
    if transform is not None:
        profile["transform"] = transform
    with rasterio.open(path, "w", **profile) as target:
        target.write(np.asarray(bands, dtype=np.float32))
        for index, description in enumerate(descriptions, start=1):
            target.set_band_description(index, description)
            if units:
                target.set_band_unit(index, units)
    return path


def test_the_real_chip_reaches_the_backbone_changed_only_by_the_documented_steps(loaded, chip):
    """With seasons='replicate' every season holds the date; each channel is the dB value
    (VV, VH, or VV - VH) minus the export's mean, over its std; the backbone then runs
    forward."""
    model, prepare = loaded
    (vv, vh), _ = chip
    tensor = prepare(S1_CHIP, units="dB", seasons="replicate")
    assert tensor.shape == (1, len(CHANNELS), 512, 512) and tensor.dtype == torch.float32
    mean, std = prepare.contract.mean, prepare.contract.std
    assert np.isfinite(vv).all() and np.isfinite(vh).all()  # no gap: every pixel compared
    for season_index, _season in enumerate(SEASONS):
        for offset, values in enumerate((vv, vh, vv - vh)):
            channel = 3 * season_index + offset
            expected = (values - mean[channel]) / std[channel]
            got = tensor[0, channel].numpy()
            np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5)
    features = model.forward_features(tensor)
    assert features.shape == (1, 1 + (512 // 16) ** 2, model.num_features)
    assert torch.isfinite(features).all()


def test_a_dataarray_from_rioxarray_gives_the_geotiffs_tensor(loaded):
    _, prepare = loaded
    data = rioxarray.open_rasterio(S1_CHIP, masked=True)
    from_file = prepare(S1_CHIP, units="dB", seasons="replicate")
    torch.testing.assert_close(prepare(data, units="dB", seasons="replicate"), from_file)


def test_linear_power_is_converted_when_stated_and_refused_as_db(loaded, chip, tmp_path):
    _, prepare = loaded
    (vv, vh), profile = chip
    linear = write(tmp_path / "linear.tif", 10 ** (np.stack([vv, vh]) / 10), profile, ["VV", "VH"])
    as_db = prepare(S1_CHIP, units="dB", seasons="replicate")
    torch.testing.assert_close(
        prepare(linear, units="linear", seasons="replicate"), as_db, rtol=1e-4, atol=1e-4
    )
    with pytest.raises(InputError, match="linear power"):
        prepare(linear, units="dB", seasons="replicate")
    with pytest.raises(InputError, match=r"units .* not stated; state them"):
        prepare(linear, seasons="replicate")
    with pytest.raises(InputError, match="unknown units 'amplitude'"):
        prepare(linear, units="amplitude", seasons="replicate")
    declared = write(tmp_path / "declared.tif", [vv, vh], profile, ["VV", "VH"], units="dB")
    torch.testing.assert_close(prepare(declared, seasons="replicate"), as_db)


def test_a_missing_band_swapped_names_and_one_date_unstated_are_refused(loaded, chip, tmp_path):
    _, prepare = loaded
    (vv, vh), profile = chip
    only_vv = write(tmp_path / "vv.tif", [vv], profile, ["VV"])
    with pytest.raises(InputError, match=r"vv.tif: no band 'VH'"):
        prepare(only_vv, units="dB", seasons="replicate")
    swapped = write(tmp_path / "swapped.tif", [vv, vh], profile, ["VH", "VV"])
    with pytest.raises(InputError, match="swapped"):
        prepare(swapped, units="dB", seasons="replicate")
    with pytest.raises(InputError, match="seasons='replicate'"):
        prepare(S1_CHIP, units="dB")


def test_another_pixel_size_and_a_size_off_the_patch_grid_are_refused(loaded, chip, tmp_path):
    _, prepare = loaded
    (vv, vh), profile = chip
    coarse = profile["transform"] @ Affine.scale(2, 2)
    coarse_file = write(tmp_path / "coarse.tif", [vv, vh], profile, ["VV", "VH"], None, coarse)
    with pytest.raises(InputError, match=r"pixels of 1\d\.\d m, the export was trained on 10 m"):
        prepare(coarse_file, units="dB", seasons="replicate")
    cropped = write(tmp_path / "cropped.tif", [vv[:500, :500], vh[:500, :500]],
                    profile | {"height": 500, "width": 500}, ["VV", "VH"])  # fmt: skip
    with pytest.raises(InputError, match=r"500 x 500 px is not a whole number of 16 px"):
        prepare(cropped, units="dB", seasons="replicate")
    resized = prepare(cropped, units="dB", seasons="replicate", resize=True)
    assert resized.shape[-2:] == (496, 496)


def test_seasonal_bands_are_read_by_name_in_any_order(loaded, chip, tmp_path):
    """Twelve of the export's channels written in reverse order, VV-VH left out: read by
    name, VV-VH recomputed; each season its own values."""
    _, prepare = loaded
    (vv, vh), profile = chip
    shift = {season: 0.5 * i for i, season in enumerate(SEASONS)}  # dB per season
    bands = {
        f"{s}_{p}": values + shift[s] for s in SEASONS for p, values in (("VV", vv), ("VH", vh))
    }
    names = list(bands)[::-1]
    seasonal = write(tmp_path / "seasonal.tif", [bands[n] for n in names], profile, names)
    tensor = prepare(seasonal, units="dB")
    observed = np.isfinite(vv) & np.isfinite(vh)
    mean, std = prepare.contract.mean, prepare.contract.std
    for season in SEASONS:
        channel = CHANNELS.index(f"{season}_VV")
        expected = (vv + shift[season] - mean[channel]) / std[channel]
        np.testing.assert_allclose(tensor[0, channel].numpy()[observed], expected[observed],
                                   rtol=1e-5, atol=1e-5)  # fmt: skip


def test_an_export_in_other_units_is_refused_naming_the_key(export, tmp_path):
    import json
    import shutil

    folder = shutil.copytree(export, tmp_path / "linear-export")
    config = json.loads((folder / "config.json").read_text())
    config["sarssl"]["units"] = "linear"
    (folder / "config.json").write_text(json.dumps(config))
    with pytest.raises(ConfigError, match=r"sarssl\.units is 'linear'"):
        read_export(folder, None, "export")


def finetune_command(tmp_path, settings, weights) -> list[str]:
    path = tmp_path / "settings.json"
    path.write_text(json.dumps(settings.as_dict()))
    outputs = {name: str(tmp_path / name) for name in ("metrics.json", "p.npz", "model.pt")}
    return ["finetune", "--settings", str(path), "--metrics", outputs["metrics.json"],
            "--predictions", outputs["p.npz"], "--model", outputs["model.pt"],
            "--weights", str(weights)]  # fmt: skip


def edited_export(export, folder, **edits):
    """A copy of the export whose config.json has `edits` (section -> key -> value)."""
    shutil.copytree(export, folder)
    config = json.loads((folder / CONFIG_NAME).read_text())
    for section, values in edits.items():
        config[section] |= values
    (folder / CONFIG_NAME).write_text(json.dumps(config))
    return folder


def test_finetune_with_weights_trains_the_export_it_was_given_and_refuses_a_store_it_does_not_fit(
    export, tiny_store, tiny_checkpoint, tmp_path, capsys
):
    """The frozen run's ViT is the export's, bit for bit; a store of another tile or pixel
    size, and a model without a ViT, are refused naming the store and the expected value."""
    settings = FinetuneSettings(
        pretrain="elsewhere", model=Model.TOKENS_DECODER, init=Init.FROZEN, fraction=100,
        store=str(tiny_store), checkpoint=str(tiny_checkpoint), epochs=1, batch_size=4,
        width=4, loader_workers=0, prediction_tiles=1,
    )  # fmt: skip
    assert main(finetune_command(tmp_path, settings, export)) == 0
    state = torch.load(tmp_path / "model.pt", weights_only=True)
    exported = load_file(str(export / WEIGHTS_NAME))
    for key, value in exported.items():
        torch.testing.assert_close(state[TOKEN_DECODER_VIT + key], value, rtol=0, atol=0)
    larger = edited_export(export, tmp_path / "larger", model_args={"img_size": 64})
    coarser = edited_export(export, tmp_path / "coarser", sarssl={"pixel_m": 30.0})
    # The pipeline's stores record their pixel size (init_store); the test store does not.
    recorded = shutil.copytree(tiny_store, tmp_path / "recorded.zarr")
    zarr.open_group(recorded, mode="r+").attrs["pixel_m"] = 10.0
    on_recorded = dataclasses.replace(settings, store=str(recorded))
    unet = dataclasses.replace(settings, model=Model.S1GRD_UNET, init=Init.SCRATCH)
    for weights, run, message in (
        (larger, settings, f"store {tiny_store} has 32 px tiles, the export was trained on 64 px"),
        (coarser, on_recorded, f"store {recorded} has 10 m pixels, the export was trained on 30 m"),
        (export, unet, "s1grd-unet runs no ViT"),
    ):
        assert main(finetune_command(tmp_path, run, weights)) == 2
        assert message in capsys.readouterr().err
