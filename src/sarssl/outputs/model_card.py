"""The model card (README.md) of an export folder, section by section: each function below
writes one section's lines, each ending with a blank line, and `model_card` joins them."""

from collections.abc import Mapping
from pathlib import Path

import pandas as pd

from sarssl.dataset.bands import CHANNELS
from sarssl.dataset.grid import SPLITS
from sarssl.evaluation.probe import probe_summary
from sarssl.models.checkpoint import Checkpoint
from sarssl.outputs.export_format import DINO_DEFAULTS, UNITS, DataDescription
from sarssl.outputs.tables import frame_markdown
from sarssl.paths import CONFIG_NAME, WEIGHTS_NAME
from sarssl.settings.pretrain import schedule_readings
from sarssl.training.utils import CollapseVerdict

PAPER = (
    "Gallego-Mejia, J. A., Jungbluth, A., Martínez-Ferrer, L., Allen, M., Dorr, F., "
    "Kalaitzis, F., Ramos-Pollán, R. Exploring DINO: Emergent Properties and Limitations for "
    "Synthetic Aperture Radar Imagery. arXiv:2310.03513 (2023)."
)


def model_card(
    run: Checkpoint,
    data: DataDescription,
    which: str,
    weights: Path,
    digest: str,
    metrics: str | Path | None = None,
    probe: str | Path | None = None,
    emergent: str | Path | None = None,
    collapse: str | Path | None = None,
) -> str:
    """The README.md of an export: data, training, results, limitations, licences, use.
    `digest`: the SHA-256 of `weights`; `collapse`: the run's collapse verdict
    (collapse.json, sarssl.training.utils); the other files are left out when absent."""
    settings = run.settings
    verdict = CollapseVerdict.read(collapse) if collapse else None
    return "\n".join(
        [
            *title_section(settings, which),
            *files_section(weights, digest),
            *input_section(),
            *data_section(settings, data),
            *training_section(run, metrics, verdict),
            *evaluation_section(probe, emergent),
            *limitations_section(verdict),
            *licences_section(),
            *loading_section(settings),
        ]
    )


def title_section(settings: Mapping, which: str) -> list[str]:
    architecture = settings["architecture"]
    return [
        f"# {settings['name']}: DINO-pre-trained {architecture} for Sentinel-1 seasonal composites",
        "",
        f"A timm Vision Transformer ({architecture}, patch 16, {settings['tile_px']} px, "
        f"{len(CHANNELS)} input channels) pre-trained with DINO (self-distillation, no labels) "
        "by sarssl, which reproduces *Exploring DINO: Emergent Properties and Limitations for "
        "Synthetic Aperture Radar Imagery*. "
        f"These are the weights of the {which} backbone: no projection head, no optimizer.",
        "",
    ]


def files_section(weights: Path, digest: str) -> list[str]:
    return [
        "## Files",
        "",
        f"- `{WEIGHTS_NAME}`: {weights.stat().st_size / 1e6:.1f} MB, SHA-256 `{digest}`",
        f"- `{CONFIG_NAME}`: timm's pretrained config: architecture, input size, channel mean "
        "and std, and under `sarssl` the channel names, units and data",
        "",
    ]


def input_section() -> list[str]:
    return [
        "## Input",
        "",
        f"{len(CHANNELS)} channels in this order, {UNITS}: " + ", ".join(CHANNELS) + ". "
        "Seasonal means of Sentinel-1 GRD backscatter (winter = December of the previous year "
        "to February); VV-VH is the difference in dB. Standardise each channel with `mean` "
        "and `std` of `config.json` (statistics of the valid train pixels).",
        "",
    ]


def data_section(settings: Mapping, data: DataDescription) -> list[str]:
    """The year, AOIs, split, composites and the valid tiles per AOI and split."""
    fractions = data.split["fractions"]
    return [
        "## Data",
        "",
        f"- Year {data.year}; AOIs: {', '.join(data.aois)}; tiles of "
        f"{settings['tile_px']} px at 10 m (geetiles grid).",
        f"- Split: geographic bands (geetiles), {data.split['nbands']} bands at "
        f"{data.split['angle']} rad, train/val/test fractions "
        + "/".join(f"{fractions[s]:g}" for s in SPLITS)
        + ".",
        "- Composite and orbit pass: "
        + "; ".join(f"{aoi}: {data.composite[aoi]}, {data.orbit_pass[aoi]}" for aoi in data.aois)
        + ".",
        "",
        "| AOI | source | train tiles | val tiles | test tiles |",
        "|---|---|---|---|---|",
        *(
            f"| {aoi} | {data.sources[aoi]} | "
            + " | ".join(f"{data.tiles[aoi][s]['valid']:,}" for s in SPLITS)
            + " |"
            for aoi in data.aois
        ),
        "",
    ]


def dino_differences(settings: Mapping) -> dict[str, tuple]:
    """The run's settings that differ from the original DINO's defaults: key -> (this run's,
    DINO's)."""
    return {
        key: (settings.get(key), default)
        for key, default in DINO_DEFAULTS.items()
        if _as_value(settings.get(key)) != _as_value(default)
    }


def _as_value(setting):
    """A setting compared as a value (lists and tuples alike)."""
    return list(setting) if isinstance(setting, tuple | list) else setting


def training_section(
    run: Checkpoint, metrics: str | Path | None, verdict: CollapseVerdict | None
) -> list[str]:
    """Steps and crops, the settings that differ from DINO's, the schedules, and what the
    run's metrics, collapse verdict and device say."""
    settings = run.settings
    lines = [
        "## Training",
        "",
        f"- {settings['epochs']} epochs, {run.step:,} steps of {settings['batch_size']} "
        f"tiles, {run.tiles:,} train tiles; crops {settings['global_scale']} of the tile "
        f"at {settings['tile_px']} px (2), {settings['local_scale']} at "
        f"{settings['local_px']} px ({settings['local_crops']}); flips only.",
        "- DINO settings that differ from the original DINO's defaults:",
        "",
        "| setting | this run | DINO |",
        "|---|---|---|",
        *(
            f"| {key} | {mine} | {dino} |"
            for key, (mine, dino) in dino_differences(settings).items()
        ),
        "",
        *(f"- {sentence}" for sentence in schedule_readings(settings)),
        "",
    ]
    if metrics and Path(metrics).is_file():
        lines += metrics_summary(pd.read_csv(metrics))
    if verdict:
        lines += [f"- Collapse verdict over the last steps: {verdict.sentence}.", ""]
    if run.device:
        lines += [f"- Device: {run.device}.", ""]
    return lines


def metrics_summary(metrics: pd.DataFrame) -> list[str]:
    """The wall time and the last row of metrics.csv, and the hardware use."""
    last = metrics.iloc[-1]
    return [
        f"- Wall time {last['elapsed_s'] / 60:.1f} min; final loss {last['loss']:.4f}, "
        f"teacher entropy {last['teacher_entropy']:.4f}, entropy of the batch-mean "
        f"teacher {last['batch_entropy']:.3f}, prototypes per batch {last['prototypes']:.1f}.",
        "",
        *hardware_use(metrics),
    ]


def hardware_use(metrics: pd.DataFrame) -> list[str]:
    """The sentences on MFU and data wait, from metrics.csv's telemetry columns (left out
    where a column is absent or empty, e.g. MFU on a CPU)."""
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


def evaluation_section(probe: str | Path | None, emergent: str | Path | None) -> list[str]:
    """The k-NN probe's and the emergent segmentation's tables, where they were run."""
    evaluations = (
        ("k-NN probe of CLS and patch features", probe, probe_summary),
        ("Emergent segmentation", emergent, lambda table: table),
    )
    tables = [
        frame_markdown(shown(pd.read_csv(path)), f"{title} (`{Path(path).name}`)")
        for title, path, shown in evaluations
        if path and Path(path).is_file()
    ]
    return ["## Evaluation", "", *(tables or ["No evaluation was run with these weights.", ""])]


def limitations_section(verdict: CollapseVerdict | None) -> list[str]:
    lines = [
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
        lines.append(
            f"- The pre-training ended in {verdict.verdict} (see Training): its teacher "
            "told few or no tiles apart, so these features may be worth little more than "
            "random ones; compare the k-NN probe with the random-init row."
        )
    return [*lines, ""]


def licences_section() -> list[str]:
    return [
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
    ]


def loading_section(settings: Mapping) -> list[str]:
    """Python that loads the weights with timm alone and standardises the input."""
    return [
        "## Loading",
        "",
        "```python",
        "import json, timm, torch",
        f'config = json.load(open("{CONFIG_NAME}"))',
        "model = timm.create_model(",
        f'    "{settings["architecture"]}", pretrained=True,',
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
