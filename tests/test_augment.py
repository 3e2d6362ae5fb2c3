"""The SAR photometric augmentation (sarssl.tiles.augment) against values worked out by hand from
its definition: offsets in dB through the standardisation, VV-VH as the difference of the
polarisations' changes, the speckle's sd, a blur that keeps the mean, the crops unchanged by
switching it on, and DINO's recipe scaled to a short run (sarssl.settings.recipes)."""

import numpy as np
import pytest
import torch

from sarssl.dataset.bands import CHANNELS
from sarssl.settings.augment import SarAugmentSpec
from sarssl.settings.crops import CropSpec
from sarssl.settings.recipes import DINO_RECIPE, scaled_to_run
from sarssl.tiles.augment import PARAMETERS, blur_matrices, draw_photometric, shift_and_speckle
from sarssl.tiles.multicrop import crop_batch, crop_params

STD = torch.tensor([2.0, 4.0, 5.0] * 4)  # dB per standardised unit, per channel


def parameters(vv=0.0, vh=0.0, speckle=0.0, blur=0.0, batch=1) -> torch.Tensor:
    return torch.tensor([[vv, vh, speckle, blur]] * batch)


def test_offsets_move_vv_vh_and_their_difference_by_the_dB_drawn_over_each_std():
    views = torch.zeros(1, 12, 4, 4)
    shifted = shift_and_speckle(views, parameters(vv=1.5, vh=-0.5), 1 / STD)
    # VV +1.5 dB / 2, VH -0.5 dB / 4, VV-VH (1.5 - -0.5) = 2 dB / 5, in every season.
    expected = torch.tensor([0.75, -0.125, 0.4] * 4)[:, None, None].expand(12, 4, 4)
    torch.testing.assert_close(shifted[0], expected)


def test_speckle_has_the_sd_drawn_and_vv_minus_vh_carries_the_difference_of_the_noises():
    torch.manual_seed(0)
    views = torch.zeros(1, 12, 256, 256)
    noisy = shift_and_speckle(views, parameters(speckle=0.7), torch.ones(12))
    db = noisy[0].reshape(4, 3, -1)  # season, (VV, VH, VV-VH), pixel
    assert db[:, :2].std(dim=-1).numpy() == pytest.approx(np.full((4, 2), 0.7), rel=0.02)
    torch.testing.assert_close(db[:, 2], db[:, 0] - db[:, 1])
    assert abs(db.mean().item()) < 0.01


def test_the_blur_is_a_gaussian_that_keeps_the_mean_and_no_blur_is_the_identity():
    blur = blur_matrices(torch.tensor([0.0, 1.0]), 9)
    torch.testing.assert_close(blur[0], torch.eye(9))
    assert torch.allclose(blur.sum(dim=-1), torch.ones(2, 9))
    centre = blur[1, 4]
    # exp(-d^2 / 2) at distances 0, 1, 2, ..., normalised over the 9 taps.
    weights = torch.exp(-0.5 * (torch.arange(9) - 4.0) ** 2)
    torch.testing.assert_close(centre, weights / weights.sum())


def test_blurred_views_equal_the_blur_applied_to_the_unblurred_view():
    spec = CropSpec(global_px=16, local_px=8, local_crops=1)
    tiles = torch.randn(2, 12, 24, 24)
    drawn = [crop_params(np.random.default_rng(t), 24, 24, spec) for t in range(2)]
    boxes, flips = (torch.stack([tile[i] for tile in drawn]) for i in range(2))
    sigma = torch.tensor([[1.5, 0.0, 0.7], [0.0, 2.0, 0.0]])
    plain = crop_batch(tiles, boxes, flips, spec)
    blurred = crop_batch(tiles, boxes, flips, spec, sigma)
    for view in range(spec.n_crops):
        blur = blur_matrices(sigma[:, view], spec.size(view))[:, None]
        expected = blur @ plain[view] @ blur.transpose(-1, -2)
        torch.testing.assert_close(blurred[view], expected, rtol=1e-4, atol=1e-5)


def test_draws_follow_the_spec_and_leave_the_crops_as_they_were():
    spec = SarAugmentSpec(enabled=True)
    draws = torch.cat([draw_photometric(np.random.default_rng(i), 10, spec) for i in range(400)])
    columns = dict(zip(PARAMETERS, draws.T, strict=True))
    # VV and VH: common sd 1.0 plus own 0.3: sd sqrt(1.09), correlation 1 / 1.09.
    assert columns["vv_offset_db"].std().item() == pytest.approx(1.09**0.5, rel=0.05)
    correlation = np.corrcoef(columns["vv_offset_db"], columns["vh_offset_db"])[0, 1]
    assert correlation == pytest.approx(1 / 1.09, abs=0.02)
    assert columns["speckle_db"].min() >= 0 and columns["speckle_db"].max() <= 0.7
    blurred = (draws.reshape(400, 10, 4)[..., 3] > 0).float().mean(dim=0)
    assert blurred[0] == 1.0 and blurred[1] == pytest.approx(0.1, abs=0.05)
    assert blurred[2:].mean() == pytest.approx(0.5, abs=0.03)
    # The crops are drawn first: switching the augmentation on does not change them.
    crops = CropSpec(global_px=16, local_px=8, local_crops=8)
    rng = np.random.default_rng(3)
    first = crop_params(rng, 32, 32, crops)
    draw_photometric(rng, crops.n_crops, spec)
    again = crop_params(np.random.default_rng(3), 32, 32, crops)
    assert all(torch.equal(a, b) for a, b in zip(first, again, strict=True))


def test_the_channels_are_season_major_vv_vh_and_their_difference():
    assert CHANNELS[:3] == ("winter_VV", "winter_VH", "winter_VV-VH") and len(CHANNELS) == 12


def test_dinos_recipe_scaled_to_a_short_run_keeps_its_shares_of_the_run():
    # 20 epochs of 400 steps in all: warm-ups 10 % and 30 % of the run, the last layer at
    # least 1 epoch, the teacher's window 0.2 % of 400 steps = 0.8 steps, below the centre's
    # 10: m = 1 - 1 / 10.
    scaled = scaled_to_run(DINO_RECIPE, epochs=20, steps=400)
    assert scaled["warmup_epochs"] == 2 and scaled["warmup_teacher_temp_epochs"] == 6
    assert scaled["freeze_last_layer_epochs"] == 1
    assert scaled["teacher_momentum"] == pytest.approx(0.9)
    # A run of 50,040 steps (0.4 x DINO's 125,100): window 0.4 x 250 = 100 steps.
    assert scaled_to_run(DINO_RECIPE, 40, 50_040)["teacher_momentum"] == pytest.approx(0.99)
    # DINO's own length leaves DINO's values.
    assert scaled_to_run(DINO_RECIPE, 100, 125_100) == DINO_RECIPE


def test_a_recipe_gives_the_values_the_dino_section_and_a_run_override():
    from sarssl.errors import ConfigError
    from sarssl.settings.pretrain import settings_from_config

    run = {"name": "r", "architecture": "vit_tiny_patch16_224", "epochs": 100, "batch_size": 8}
    paper = settings_from_config(run, {}, ["s"], 224)
    assert (paper.recipe, paper.student_temp, paper.center_momentum) == ("paper", 0.03, 0.99)
    dino = settings_from_config(run, {"recipe": "dino", "center_momentum": 0.95}, ["s"], 224)
    assert (dino.student_temp, dino.teacher_temp, dino.center_momentum) == (0.1, 0.07, 0.95)
    assert dino.scaled_lr == pytest.approx(5e-4 * 8 / 256) and not dino.augment.enabled
    overridden = settings_from_config(
        run | {"dino": {"recipe": "paper", "augment": {"enabled": True}}}, {"recipe": "dino"},
        ["s"], 224,
    )  # fmt: skip
    assert overridden.student_temp == 0.03 and overridden.augment.enabled
    with pytest.raises(ConfigError, match="recipe 'byol'"):
        settings_from_config(run, {"recipe": "byol"}, ["s"], 224)


def test_the_loader_and_the_device_apply_the_augmentation_of_the_run(tiny_store):
    """Through the training path (MultiCropTiles -> device_views): with every amount at 0
    the views are the plain ones; with the defaults they move, by a common offset and noise
    whose VV-VH channels are the difference of VV's and VH's (in dB)."""
    from sarssl.tiles.loader import MultiCropTiles, Normalisation, StoreTiles, split_tiles
    from sarssl.training.pretrain import device_views

    tiles = split_tiles(tiny_store, ["train"])[:4]
    normalisation = Normalisation.of_stores([tiny_store])
    reader = StoreTiles(tiles, normalisation)
    spec = CropSpec(global_px=32, local_px=16, local_crops=2)
    nothing = SarAugmentSpec(True, 0.0, 0.0, 0.0, (0.1, 2.0), (0.0, 0.0, 0.0))

    def views(augment):
        items = [MultiCropTiles(reader, spec, 0, augment)[0, p] for p in range(len(tiles))]
        batch = tuple(torch.stack(part) for part in zip(*items, strict=True))
        cpu = torch.device("cpu")
        return device_views(batch, cpu, reader.standardise, spec, torch.float32, normalisation)

    torch.manual_seed(0)
    plain, unchanged, moved = views(None), views(nothing), views(SarAugmentSpec(enabled=True))
    for view in range(spec.n_crops):
        torch.testing.assert_close(unchanged[view], plain[view])
        db = (moved[view] - plain[view]) * torch.as_tensor(normalisation.std)[:, None, None]
        db = db.reshape(len(tiles), 4, 3, *db.shape[-2:]).float()
        assert db.abs().mean() > 0.05
        # Within float16's rounding of the stored channels (0.016 dB steps at 16-32 dB): the
        # blur acts on the stored VV-VH, which is VV - VH only to that rounding.
        torch.testing.assert_close(db[:, :, 2], db[:, :, 0] - db[:, :, 1], atol=0.02, rtol=0)
