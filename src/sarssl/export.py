"""Pre-trained weights others can use: a pre-training's backbone as timm loads it, with the
band order and normalisation that go with it, and a model card.

An export folder holds:
- `model.safetensors`: the backbone's weights only (the teacher by default, as DINO
  publishes it; no head, no optimizer), timm's key names;
- `config.json`: timm's pretrained-config form (architecture, `model_args` with
  `in_chans` 12 and `img_size`, `num_classes` 0, `pretrained_cfg` with `mean`/`std` per
  channel in dB), and under `sarssl` the channel names in order, their units and what the
  data were (AOIs, year, source, orbit pass, composite);
- `README.md`: the model card.

Both `timm.create_model(architecture, pretrained=True,
pretrained_cfg_overlay=dict(config["pretrained_cfg"], file=".../model.safetensors"),
in_chans=12, img_size=448, num_classes=0)` and
`timm.create_model("local-dir:<folder>", pretrained=True)` load it without sarssl.

An export folder also serves as a pre-training of the pipeline (`weights:` on a pretrain
entry): `read_export` checks its config against the pipeline's channels and tile size.
"""

import hashlib
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import timm
import torch
from safetensors.torch import save_file

from .atomic import atomic_path, write_text_atomic
from .backbone import backbone_weights, load_checkpoint
from .data import Normalisation
from .dataset.bands import CHANNELS
from .errors import ConfigError, SarsslError
from .paths import CARD_NAME, CONFIG_NAME, WEIGHTS_NAME
from .probe import probe_summary
from .results import frame_markdown
from .settings.pretrain import schedule_readings
from .training import CollapseVerdict

UNITS = "dB"
PAPER = (
    "Gallego-Mejia, J. A., Jungbluth, A., Martínez-Ferrer, L., Allen, M., Dorr, F., "
    "Kalaitzis, F., Ramos-Pollán, R. Exploring DINO: Emergent Properties and Limitations for "
    "Synthetic Aperture Radar Imagery. arXiv:2310.03513 (2023)."
)
# The original DINO's defaults of the settings the card compares against.
DINO_DEFAULTS = {
    "out_dim": 65536,
    "head_hidden_dim": 2048,
    "bottleneck_dim": 256,
    "drop_path_rate": 0.1,
    "student_temp": 0.1,
    "warmup_teacher_temp": 0.04,
    "teacher_temp": 0.04,
    "warmup_teacher_temp_epochs": 0,
    "center_momentum": 0.9,
    "lr": 0.0005,
    "lr_reference_batch": 256,
    "min_lr": 1e-06,
    "warmup_epochs": 10,
    "weight_decay": 0.04,
    "weight_decay_end": 0.4,
    "teacher_momentum": 0.996,
    "clip_grad": 3.0,
    "freeze_last_layer_epochs": 1,
    "global_scale": [0.4, 1.0],
    "local_scale": [0.05, 0.4],
    "local_crops": 8,
}


class ExportError(SarsslError):
    """A checkpoint cannot be exported (weights not finite)."""


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


COMPOSITE_OF_FORMAT = {
    "geetiles_uint8": "median of the dB images per season and pass (geetiles 0.1.7)",
    "geetiles_uint16": "mean of the dB images per season and pass, whole dB (geetiles 2023)",
}


def describe_data(aois: list[str], config: Mapping, stats: Mapping[str, dict]) -> DataDescription:
    """What a pre-training's data were, from the config and its AOIs' stats.json."""
    entries = {entry["name"]: entry for entry in config["aois"]}
    sources = {aoi: entries[aoi]["source"] for aoi in aois}
    orbit_pass, composite = {}, {}
    for aoi in aois:
        source, files = sources[aoi], stats[aoi]["s1"]
        passes = {p for p in files["orbit_pass"] if p != "as in the file"}
        formats = set(files["formats"])
        if source == "gee":
            orbit_pass[aoi] = config["gee"]["orbit_pass"].lower()
            composite[aoi] = f"{config['gee']['composite']} of the dB images per season"
        elif source == "synthetic":
            orbit_pass[aoi] = "none (synthetic)"
            composite[aoi] = "synthetic seasonal means"
        else:
            orbit_pass[aoi] = ", ".join(sorted(passes)) or "as in the files"
            composite[aoi] = "; ".join(COMPOSITE_OF_FORMAT.get(f, f"as in the files ({f})")
                                       for f in sorted(formats))  # fmt: skip
    return DataDescription(
        aois=list(aois),
        year=config["data"]["year"],
        tiles={aoi: stats[aoi]["tiles"] for aoi in aois},
        split=config["split"],
        sources=sources,
        orbit_pass=orbit_pass,
        composite=composite,
    )


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def timm_config(
    settings: Mapping,
    normalisation: Normalisation,
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
            "aois": data.aois,
            "sources": data.sources,
            "orbit_pass": data.orbit_pass,
            "composite": data.composite,
        },
    }


def export_backbone(
    checkpoint: str | Path,
    out_dir: str | Path,
    data: DataDescription,
    which: str = "teacher",
    metrics: str | Path | None = None,
    probe: str | Path | None = None,
    emergent: str | Path | None = None,
    collapse: str | Path | None = None,
) -> Path:
    """Write model.safetensors, config.json and README.md into `out_dir`, each atomically.
    `collapse`: the run's collapse verdict (collapse.json, sarssl.training)."""
    out_dir = Path(out_dir)
    state = load_checkpoint(checkpoint)
    settings = state["settings"]
    weights = {k: v.contiguous() for k, v in backbone_weights(state[which]).items()}
    bad = [key for key, value in weights.items() if not torch.isfinite(value).all()]
    if bad:
        raise ExportError(
            f"{checkpoint}: the {which}'s weights are not finite in {bad[:5]}: not exported"
        )
    weights_path = out_dir / WEIGHTS_NAME
    with atomic_path(weights_path) as tmp:
        save_file(weights, str(tmp), metadata={"format": "pt"})
    normalisation = Normalisation.from_dict(state["normalisation"])
    config = timm_config(settings, normalisation, which, data, weights["norm.weight"].numel())
    write_text_atomic(out_dir / CONFIG_NAME, json.dumps(config, indent=2))
    card = model_card(
        settings, state, config, data, which, sha256(weights_path), weights_path, metrics, probe,
        emergent, collapse,
    )  # fmt: skip
    write_text_atomic(out_dir / CARD_NAME, card)
    return out_dir


def hardware_use(metrics: pd.DataFrame) -> list[str]:
    """The model card's sentences on MFU and data wait, from metrics.csv's telemetry columns
    (left out where a column is absent or empty, e.g. MFU on a CPU)."""
    means = {
        column: metrics[column].mean()
        for column in ("mfu", "data_wait_share")
        if column in metrics and metrics[column].notna().any()
    }
    lines = []
    if "mfu" in means:
        lines.append(
            f"- Hardware use: mean MFU {means['mfu']:.1%} of the device's dense bf16 peak (the "
            "model FLOPs of a step, counted once at the start with torch.utils.flop_counter, "
            "over the measured step rate)."
        )
    if "data_wait_share" in means:
        lines.append(
            f"- The training loop waited for data {means['data_wait_share']:.1%} of its wall "
            "time (time blocked on the loader's next batch over the time between metric rows; "
            "the first row includes the workers' start)."
        )
    return [*lines, ""] if lines else []


def model_card(
    settings: Mapping,
    state: Mapping,
    config: dict,
    data: DataDescription,
    which: str,
    digest: str,
    weights_path: Path,
    metrics: str | Path | None,
    probe: str | Path | None,
    emergent: str | Path | None,
    collapse: str | Path | None,
) -> str:
    """The README.md of an export: data, training, results, limitations, licences, use."""
    name, architecture = settings["name"], settings["architecture"]
    differ = {
        key: (settings.get(key), default)
        for key, default in DINO_DEFAULTS.items()
        if _normal(settings.get(key)) != _normal(default)
    }
    tiles = "\n".join(
        f"| {aoi} | {data.sources[aoi]} | "
        + " | ".join(f"{data.tiles[aoi][s]['valid']:,}" for s in ("train", "val", "test"))
        + " |"
        for aoi in data.aois
    )
    lines = [
        f"# {name}: DINO-pre-trained {architecture} for Sentinel-1 seasonal composites",
        "",
        f"A timm Vision Transformer ({architecture}, patch 16, {settings['tile_px']} px, "
        f"{len(CHANNELS)} input channels) pre-trained with DINO (self-distillation, no labels) "
        "by sarssl, which reproduces *Exploring DINO: Emergent Properties and Limitations for "
        "Synthetic Aperture Radar Imagery*. "
        f"These are the weights of the {which} backbone: no projection head, no optimizer.",
        "",
        "## Files",
        "",
        f"- `{WEIGHTS_NAME}`: {weights_path.stat().st_size / 1e6:.1f} MB, SHA-256 `{digest}`",
        f"- `{CONFIG_NAME}`: timm's pretrained config: architecture, input size, channel mean "
        "and std, and under `sarssl` the channel names, units and data",
        "",
        "## Input",
        "",
        f"{len(CHANNELS)} channels in this order, {UNITS}: " + ", ".join(CHANNELS) + ". "
        "Seasonal means of Sentinel-1 GRD backscatter (winter = December of the previous year "
        "to February); VV-VH is the difference in dB. Standardise each channel with `mean` "
        "and `std` of `config.json` (statistics of the valid train pixels).",
        "",
        "## Data",
        "",
        f"- Year {data.year}; AOIs: {', '.join(data.aois)}; tiles of "
        f"{settings['tile_px']} px at 10 m (geetiles grid).",
        f"- Split: geographic bands (geetiles), {data.split['nbands']} bands at "
        f"{data.split['angle']} rad, train/val/test fractions "
        + "/".join(f"{data.split['fractions'][s]:g}" for s in ("train", "val", "test"))
        + ".",
        "- Composite and orbit pass: "
        + "; ".join(f"{aoi}: {data.composite[aoi]}, {data.orbit_pass[aoi]}" for aoi in data.aois)
        + ".",
        "",
        "| AOI | source | train tiles | val tiles | test tiles |",
        "|---|---|---|---|---|",
        tiles,
        "",
        "## Training",
        "",
        f"- {settings['epochs']} epochs, {state['step']:,} steps of {settings['batch_size']} "
        f"tiles, {state['tiles']:,} train tiles; crops {settings['global_scale']} of the tile "
        f"at {settings['tile_px']} px (2), {settings['local_scale']} at "
        f"{settings['local_px']} px ({settings['local_crops']}); flips only.",
        "- DINO settings that differ from the original DINO's defaults:",
        "",
        "| setting | this run | DINO |",
        "|---|---|---|",
        *(f"| {key} | {mine} | {theirs} |" for key, (mine, theirs) in differ.items()),
        "",
        *(f"- {sentence}" for sentence in schedule_readings(settings)),
        "",
    ]
    if metrics and Path(metrics).is_file():
        frame = pd.read_csv(metrics)
        last = frame.iloc[-1]
        lines += [
            f"- Wall time {last['elapsed_s'] / 60:.1f} min; final loss {last['loss']:.4f}, "
            f"teacher entropy {last['teacher_entropy']:.4f}, entropy of the batch-mean "
            f"teacher {last['batch_entropy']:.3f}, prototypes per batch {last['prototypes']:.1f}.",
            "",
            *hardware_use(frame),
        ]
    verdict = CollapseVerdict.read(collapse) if collapse else None
    if verdict:
        lines += [f"- Collapse verdict over the last steps: {verdict.sentence}.", ""]
    device = state.get("device")
    if device:
        lines += [f"- Device: {device}.", ""]
    lines += ["## Evaluation", ""]
    evaluations = (
        ("k-NN probe of patch features", probe, probe_summary),
        ("Emergent segmentation", emergent, lambda table: table),
    )
    for title, path, shown in evaluations:
        if path and Path(path).is_file():
            table = shown(pd.read_csv(path))
            lines += [frame_markdown(table, f"{title} (`{Path(path).name}`)")]
    if not any(p and Path(p).is_file() for p in (probe, emergent)):
        lines += ["No evaluation was run with these weights.", ""]
    lines += [
        "## Limitations",
        "",
        "- Trained on one year of seasonal composites of one orbit pass: other years, single "
        "acquisitions, other passes or other products (e.g. gamma0, linear power) are out of "
        "distribution; inputs must be dB with this channel order and normalisation.",
        "- Tiles of sources other than Earth Engine (geetiles uint8/uint16 files) carry their "
        "quantisation (0.12 dB or whole dB).",
        "- A model pre-trained on synthetic scenes (source `synthetic`) demonstrates the "
        "pipeline and carries no knowledge of real radar.",
    ]
    if verdict and verdict.collapsed:
        lines += [
            f"- The pre-training ended in {verdict.verdict} (see Training): its teacher "
            "told few or no tiles apart, so these features may be worth little more than "
            "random ones; compare the k-NN probe with the random-init row."
        ]
    lines += [
        "",
        "## Licences and attribution",
        "",
        "- Contains modified Copernicus Sentinel data (Sentinel-1 GRD), used under the "
        "Copernicus Sentinel data terms (free, full and open access; attribution required).",
        "- ESA WorldCover (used for the evaluation and fine-tuning labels): © ESA WorldCover "
        "project, CC BY 4.0.",
        "- If you use these weights, cite the paper:",
        "",
        f"  {PAPER}",
        "",
        "## Loading",
        "",
        "```python",
        "import json, timm, torch",
        f'config = json.load(open("{CONFIG_NAME}"))',
        "model = timm.create_model(",
        f'    "{architecture}", pretrained=True,',
        f'    pretrained_cfg_overlay=dict(config["pretrained_cfg"], file="{WEIGHTS_NAME}"),',
        f"    in_chans={len(CHANNELS)}, img_size={settings['tile_px']}, num_classes=0,",
        ").eval()",
        '# or: timm.create_model("local-dir:<this folder>", pretrained=True)',
        'mean = torch.tensor(config["pretrained_cfg"]["mean"])[:, None, None]',
        'std = torch.tensor(config["pretrained_cfg"]["std"])[:, None, None]',
        "features = model.forward_features((tiles_db - mean) / std)  # (batch, 1 + tokens, D)",
        "```",
        "",
    ]
    return "\n".join(lines)


def _normal(value):
    """Settings compared as values (lists and tuples alike)."""
    return list(value) if isinstance(value, tuple | list) else value


def read_export(folder: str | Path, tile_px: int, what: str) -> dict:
    """The config.json of an export folder, checked against the pipeline's channels and tile
    size; errors name the key. `what` names the config entry for the messages."""
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
    if not timm.is_model(architecture):
        raise ConfigError(f"{what}: {path}: architecture {architecture!r} is not a timm model")
    if key("model_args", "in_chans") != len(CHANNELS):
        raise ConfigError(
            f"{what}: {path}: model_args.in_chans is {key('model_args', 'in_chans')}, "
            f"expected {len(CHANNELS)}"
        )
    if key("model_args", "img_size") != tile_px:
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
