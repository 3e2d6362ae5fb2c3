"""Writing an export folder (its format: sarssl.outputs.export_format): a pre-training's backbone as
timm loads it, the config with the band order and normalisation that go with it, and the
model card (sarssl.outputs.model_card), each file written atomically."""

import hashlib
import json
from pathlib import Path

import torch
from safetensors.torch import save_file

from sarssl.atomic import atomic_path, write_text_atomic
from sarssl.errors import SarsslError
from sarssl.models.backbone import backbone_weights, read_checkpoint
from sarssl.models.checkpoint import Network
from sarssl.outputs.export_format import DataDescription, timm_config
from sarssl.outputs.model_card import model_card
from sarssl.paths import CARD_NAME, CONFIG_NAME, WEIGHTS_NAME
from sarssl.tiles.loader import Normalisation


class ExportError(SarsslError):
    """A checkpoint cannot be exported (weights not finite)."""


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def export_backbone(
    checkpoint: str | Path,
    out_dir: str | Path,
    data: DataDescription,
    which: Network = "teacher",
    metrics: str | Path | None = None,
    probe: str | Path | None = None,
    emergent: str | Path | None = None,
    collapse: str | Path | None = None,
) -> Path:
    """Write model.safetensors, config.json and README.md into `out_dir`, each atomically.
    `collapse`: the run's collapse verdict (collapse.json, sarssl.training.utils)."""
    out_dir = Path(out_dir)
    run = read_checkpoint(checkpoint)
    weights = {k: v.contiguous() for k, v in backbone_weights(run.network(which)).items()}
    bad = [key for key, value in weights.items() if not torch.isfinite(value).all()]
    if bad:
        raise ExportError(
            f"{checkpoint}: the {which}'s weights are not finite in {bad[:5]}: not exported"
        )
    weights_path = out_dir / WEIGHTS_NAME
    with atomic_path(weights_path) as tmp:
        save_file(weights, str(tmp), metadata={"format": "pt"})
    normalisation = Normalisation.from_dict(run.normalisation)
    config = timm_config(run.settings, normalisation, which, data, weights["norm.weight"].numel())
    write_text_atomic(out_dir / CONFIG_NAME, json.dumps(config, indent=2))
    card = model_card(
        run, data, which, weights_path, sha256(weights_path), metrics, probe, emergent, collapse
    )
    write_text_atomic(out_dir / CARD_NAME, card)
    return out_dir
