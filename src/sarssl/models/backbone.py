"""The ViT backbone: creating one, and reading a pre-trained one from a pre-training's
checkpoint (sarssl.models.checkpoint) or from an export folder (sarssl.outputs.export)."""

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import timm
import torch
from safetensors.torch import load_file
from timm.layers import PatchEmbed
from torch import nn

from sarssl.dataset.bands import CHANNELS
from sarssl.errors import ConfigError
from sarssl.models.checkpoint import Checkpoint, Network
from sarssl.paths import CONFIG_NAME, WEIGHTS_NAME
from sarssl.tiles.loader import Normalisation

BACKBONE_PREFIX = "backbone."


class Float32PatchEmbed(PatchEmbed):
    """timm's patch embedding, computed in float32 under autocast.

    Measured with torch 2.14.1 on a CPU with native bf16 (AMX): oneDNN's bf16 convolution
    of a 16 x 16, stride-16 kernel over 12 (or 16) input channels returns values 117 % off
    float32 (relative error of the output), while the same product as a matrix multiply,
    and the convolution over 3 or 32 channels, are within bf16 rounding (0.3 %); with bf16
    emulated (ONEDNN_MAX_CPU_ISA=AVX512_CORE) it is within rounding too. The embedding is
    a tenth of ViT-Tiny's FLOPs and 3 % of ViT-Base's, and on a GPU a float32 convolution
    runs on TF32 tensor cores: one path on every device costs little. Same parameters and
    state-dict keys as timm's PatchEmbed, so weights load either way.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not torch.amp.is_autocast_available(x.device.type):  # `meta`, counting FLOPs
            return super().forward(x)
        with torch.autocast(x.device.type, enabled=False):
            return super().forward(x.float())


def create_backbone(architecture: str, tile_px: int, drop_path_rate: float = 0.0) -> nn.Module:
    """A randomly initialised timm ViT for 12-channel tiles, without classifier; it accepts
    other input sizes (local crops) by interpolating its position embedding. Its patch
    embedding runs in float32 (Float32PatchEmbed)."""
    try:
        return timm.create_model(
            architecture,
            pretrained=False,
            img_size=tile_px,
            in_chans=len(CHANNELS),
            num_classes=0,
            dynamic_img_size=True,
            drop_path_rate=drop_path_rate,
            embed_layer=Float32PatchEmbed,
        )
    except RuntimeError as err:  # timm: "Unknown model (...)"
        raise ConfigError(f"architecture {architecture!r}: {err}") from err


def load_checkpoint(path: str | Path) -> dict:
    """A pre-training checkpoint file as stored: Checkpoint.to_dict()'s keys."""
    # Our own files: they hold numpy arrays and settings besides tensors.
    return torch.load(path, map_location="cpu", weights_only=False)


def read_checkpoint(path: str | Path) -> Checkpoint:
    return Checkpoint.from_dict(load_checkpoint(path))


def backbone_weights(network_state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The backbone's entries of a student or teacher state dict, without the prefix; the
    head is dropped (as DINO's load_pretrained_weights)."""
    return {
        key.removeprefix(BACKBONE_PREFIX): value
        for key, value in network_state.items()
        if key.startswith(BACKBONE_PREFIX)
    }


@dataclass(frozen=True)
class PretrainedBackbone:
    network: nn.Module  # eval mode, on the CPU
    normalisation: Normalisation  # of the tiles it was trained on
    architecture: str
    tile_px: int
    name: str  # the pre-training run

    def random_twin(self, seed: int) -> nn.Module:
        """A randomly initialised backbone of the same architecture (the reference)."""
        torch.manual_seed(seed)
        return create_backbone(self.architecture, self.tile_px).eval()


def load_backbone(source: str | Path, which: Network = "student") -> PretrainedBackbone:
    """The backbone of a pre-training checkpoint (its weights only; `which` network) or of
    an export folder (the one it holds), with the input normalisation it was trained with."""
    if Path(source).is_dir():
        return load_export(source)
    return backbone_of_checkpoint(read_checkpoint(source), which)


def backbone_of_checkpoint(checkpoint: Checkpoint, which: Network) -> PretrainedBackbone:
    """The `which` backbone of a checkpoint already read (read_checkpoint)."""
    settings = checkpoint.settings
    network = create_backbone(settings["architecture"], settings["tile_px"])
    network.load_state_dict(backbone_weights(checkpoint.network(which)))
    return PretrainedBackbone(
        network.eval(),
        Normalisation.from_dict(checkpoint.normalisation),
        settings["architecture"],
        settings["tile_px"],
        settings["name"],
    )


def load_export(folder: str | Path) -> PretrainedBackbone:
    """The backbone of an export folder (model.safetensors and timm's config.json)."""
    folder = Path(folder)
    config = json.loads((folder / CONFIG_NAME).read_text())
    tile_px = config["model_args"]["img_size"]
    network = create_backbone(config["architecture"], tile_px)
    network.load_state_dict(load_file(str(folder / WEIGHTS_NAME)))
    statistics = config["pretrained_cfg"]
    return PretrainedBackbone(
        network.eval(),
        Normalisation.from_dict({"mean": statistics["mean"], "std": statistics["std"]}),
        config["architecture"],
        tile_px,
        config.get("sarssl", {}).get("pretrain", folder.name),
    )
