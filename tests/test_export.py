"""Exported weights: loaded by timm alone in a fresh process, fine-tuned like the checkpoint,
refused when not finite, checked when named by a config, and documented by a model card."""

import hashlib
import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from conftest import TEST_TILE_PX

from sarssl.dataset.bands import CHANNELS
from sarssl.errors import ConfigError
from sarssl.models.backbone import load_backbone, load_checkpoint
from sarssl.outputs.export import ExportError, export_backbone
from sarssl.outputs.export_format import DataDescription, read_export
from sarssl.outputs.model_card import hardware_use
from sarssl.settings.finetune import FinetuneSettings
from sarssl.tiles.loader import StoreTiles, split_tiles
from sarssl.training.finetune import finetune
from sarssl.training.utils import CollapseVerdict

DATA = DataDescription(
    aois=["tiny"],
    year=2020,
    tiles={
        "tiny": {
            s: {"valid": n, "rejected": 0} for s, n in (("train", 26), ("val", 8), ("test", 8))
        }
    },
    split={"nbands": 5, "angle": 0.0, "fractions": {"train": 0.6, "val": 0.2, "test": 0.2}},
    sources={"tiny": "synthetic"},
    orbit_pass={"tiny": "none (synthetic)"},
    composite={"tiny": "synthetic seasonal means"},
)


@pytest.fixture(scope="module")
def exported(tiny_checkpoint, tmp_path_factory) -> Path:
    run = tiny_checkpoint.parent
    probe = tmp_path_factory.mktemp("probe") / "probe_tiny-vit.csv"
    scores = {"": 0.9, "_low": 0.85, "_high": 0.95, "_gain": 0.1, "_gain_low": 0.05,
              "_gain_high": 0.15}  # fmt: skip
    row = {"pretrain": "tiny-vit", "backbone": "pre-trained (teacher)", "split": "test"}
    for score in ("patch_accuracy", "patch_miou", "cls_accuracy", "cls_miou"):
        row |= {f"{score}{end}": value for end, value in scores.items()}
    pd.DataFrame([row | {"patches": 24, "query_tiles": 6}]).to_csv(probe, index=False)
    return export_backbone(
        tiny_checkpoint,
        tmp_path_factory.mktemp("export"),
        DATA,
        metrics=run / "metrics.csv",
        probe=probe,
        collapse=run / "collapse.json",
    )


FRESH_TIMM = """
import json, sys
import numpy as np, timm, torch
folder, arch, px = sys.argv[1], sys.argv[2], int(sys.argv[3])
config = json.load(open(f"{folder}/config.json"))
model = timm.create_model(
    arch, pretrained=True,
    pretrained_cfg_overlay=dict(config["pretrained_cfg"], file=f"{folder}/model.safetensors"),
    in_chans=12, img_size=px, num_classes=0,
).eval()
data_mean = timm.data.resolve_data_config({}, model=model)["mean"]
assert list(data_mean) == config["pretrained_cfg"]["mean"], data_mean
local = timm.create_model(f"local-dir:{folder}", pretrained=True).eval()
images = torch.from_numpy(np.load(sys.argv[4]))
with torch.no_grad():
    np.save(sys.argv[5], model.forward_features(images).numpy())
    np.save(sys.argv[6], local.forward_features(images).numpy())
assert not any(name.startswith("sarssl") for name in sys.modules), "sarssl was imported"
"""


def test_timm_alone_loads_the_export_into_the_teachers_backbone(
    exported, tiny_checkpoint, tiny_store, tmp_path
):
    teacher = load_backbone(tiny_checkpoint, "teacher")
    reader = StoreTiles(split_tiles(tiny_store, ["test"])[:3], teacher.normalisation)
    images = torch.stack([reader.image(i) for i in range(3)])
    np.save(tmp_path / "images.npy", images.numpy())
    config = json.loads((exported / "config.json").read_text())
    arguments = [str(exported), config["architecture"], str(TEST_TILE_PX)]
    outputs = [str(tmp_path / f"{name}.npy") for name in ("overlay", "local")]
    subprocess.run(
        [sys.executable, "-c", FRESH_TIMM, *arguments, str(tmp_path / "images.npy"), *outputs],
        check=True,
        cwd=tmp_path,  # not the repository: nothing of sarssl on the path but the venv
    )
    with torch.no_grad():
        expected = teacher.network.forward_features(images).numpy()
    for output in outputs:
        np.testing.assert_allclose(np.load(output), expected, atol=1e-5, rtol=0)
    assert config["pretrained_cfg"]["mean"] == pytest.approx(list(teacher.normalisation.mean))
    assert config["sarssl"]["channels"] == list(CHANNELS) and config["sarssl"]["units"] == "dB"
    assert config["model_args"] == {
        "img_size": TEST_TILE_PX,
        "in_chans": 12,
        "dynamic_img_size": True,
    }
    assert config["num_classes"] == 0 and config["pretrained_cfg"]["input_size"][0] == 12


def test_fine_tuning_the_export_equals_fine_tuning_the_checkpoint(
    exported, tiny_checkpoint, tiny_store
):
    common = dict(
        pretrain="tiny-vit", model="tokens-decoder", init="finetuned", fraction=50,
        store=str(tiny_store), epochs=1, batch_size=4, width=4, loader_workers=0,
        prediction_tiles=1,
    )  # fmt: skip
    from_checkpoint, _ = finetune(
        FinetuneSettings(**common, checkpoint=str(tiny_checkpoint), backbone="teacher")
    )
    from_export, _ = finetune(FinetuneSettings(**common, checkpoint=str(exported)))
    assert from_export["confusion_matrix"] == from_checkpoint["confusion_matrix"]
    assert from_export["miou"] == from_checkpoint["miou"]


def test_the_model_card_holds_every_section_and_the_file_hash(exported, tiny_checkpoint):
    card = (exported / "README.md").read_text()
    digest = hashlib.sha256((exported / "model.safetensors").read_bytes()).hexdigest()
    assert f"SHA-256 `{digest}`" in card
    for section in ("## Files", "## Input", "## Data", "## Training", "## Evaluation",
                    "## Limitations", "## Licences and attribution", "## Loading"):  # fmt: skip
        assert section in card, section
    for words in ("| tiny | synthetic | 26 | 8 | 8 |", "geographic bands",
                  "| student_temp | 0.03 | 0.1 |", "Copernicus Sentinel data", "CC BY 4.0",
                  "arXiv:2310.03513", "Wall time", "final loss", "timm.create_model(",
                  "Device: CPU", "| 0.900 [0.850, 0.950] | +10.0 [+5.0, +15.0] |"):  # fmt: skip
        assert words in card, words
    verdict = CollapseVerdict.read(tiny_checkpoint.parent / "collapse.json")
    assert f"Collapse verdict over the last steps: {verdict.sentence}." in card
    assert ("The pre-training ended in" in card) == verdict.collapsed


def test_a_checkpoint_with_weights_that_are_not_finite_is_refused(tiny_checkpoint, tmp_path):
    state = load_checkpoint(tiny_checkpoint)
    state["teacher"]["backbone.blocks.0.mlp.fc1.weight"][0, 0] = float("nan")
    broken = tmp_path / "broken.pt"
    torch.save(state, broken)
    with pytest.raises(ExportError, match=r"not finite in \['blocks.0.mlp.fc1.weight'\]"):
        export_backbone(broken, tmp_path / "export", DATA)
    assert not (tmp_path / "export" / "model.safetensors").exists()


def broken_copy(exported: Path, folder: Path, change) -> Path:
    shutil.copytree(exported, folder)
    config = json.loads((folder / "config.json").read_text())
    change(config)
    (folder / "config.json").write_text(json.dumps(config))
    return folder


@pytest.mark.parametrize(
    ("change", "named"),
    [
        (
            lambda c: c["pretrained_cfg"].update(mean=[0.0] * 13),
            "pretrained_cfg.mean has 13 values",
        ),
        (lambda c: c["pretrained_cfg"].update(std=[1.0] * 11), "pretrained_cfg.std has 11 values"),
        (lambda c: c["model_args"].update(in_chans=13), "model_args.in_chans is 13, expected 12"),
        (lambda c: c["sarssl"]["channels"].reverse(), "sarssl.channels"),
        (lambda c: c.pop("sarssl"), "lacks sarssl.channels"),
        (lambda c: c["model_args"].update(img_size=64), "model_args.img_size is 64"),
        (lambda c: c.update(architecture="vit_nonsense"), "'vit_nonsense' is not a timm model"),
    ],
)
def test_an_inconsistent_export_folder_is_named_with_its_key(exported, tmp_path, change, named):
    folder = broken_copy(exported, tmp_path / "bad", change)
    with pytest.raises(ConfigError, match="config pretrain x: weights") as err:
        read_export(folder, TEST_TILE_PX, "config pretrain x: weights")
    assert named in str(err.value)


def test_a_folder_without_weights_or_config_is_named(exported, tmp_path):
    folder = tmp_path / "empty"
    folder.mkdir()
    with pytest.raises(ConfigError, match=r"model\.safetensors does not exist"):
        read_export(folder, TEST_TILE_PX, "w")
    shutil.copy(exported / "model.safetensors", folder)
    with pytest.raises(ConfigError, match=r"config\.json does not exist"):
        read_export(folder, TEST_TILE_PX, "w")


def test_the_card_reports_mean_mfu_and_data_wait_where_measured():
    metrics = pd.DataFrame({"mfu": [0.2, 0.3, np.nan], "data_wait_share": [0.5, 0.1, 0.3]})
    lines = hardware_use(metrics)
    assert lines[0].startswith("- Hardware use: mean MFU 25.0% of the device's dense bf16 peak")
    assert lines[1].startswith("- The training loop waited for data 30.0% of its wall time")
    cpu = pd.DataFrame({"mfu": [np.nan, np.nan], "data_wait_share": [0.2, 0.4]})
    assert len(hardware_use(cpu)) == 2 and "MFU" not in hardware_use(cpu)[0]
    assert hardware_use(pd.DataFrame({"loss": [1.0]})) == []
