"""The settings of a DINO pre-training run and the files of its run folder, apart from the
trainer: what the workflow checks at DAG build and what a launcher hands to the training
processes.

What the paper states is taken as stated (student temperature 0.03, teacher temperature
0.01 -> 0.001 over 5 epochs, center momentum 0.99, learning rate 1e-6, flips and crops
only); everything else is the original DINO's default and says so. The config's
`dino.recipe` (sarssl.settings.recipes) selects DINO's own values instead.
"""

import dataclasses
import json
import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field

from ..errors import ConfigError
from .architectures import is_timm_model
from .augment import SarAugmentSpec
from .crops import CropSpec
from .precision import Precision
from .probe import ProbeSettings, probe_settings
from .recipes import PAPER, RECIPES

# The run folder: the latest checkpoint (written atomically, resumed from), the metric rows,
# the collapse verdict of a finished run and the settings the training processes read.
CHECKPOINT_NAME = "last.pt"
METRICS_NAME = "metrics.csv"
COLLAPSE_NAME = "collapse.json"
SETTINGS_NAME = "settings.json"


@dataclass(frozen=True)
class PretrainSettings:
    name: str
    architecture: str  # a timm ViT, created with pretrained=False
    stores: tuple[str, ...]  # Zarr stores whose train tiles are trained on
    epochs: int
    batch_size: int  # global, over all processes
    tile_px: int = 448
    # The recipe whose values the config's dino section starts from (recipes.RECIPES).
    recipe: str = PAPER
    # Head (DINO's defaults).
    out_dim: int = 65536
    head_hidden_dim: int = 2048
    bottleneck_dim: int = 256
    drop_path_rate: float = 0.1  # student only, as DINO
    # Loss (the paper).
    student_temp: float = 0.03
    warmup_teacher_temp: float = 0.01
    teacher_temp: float = 0.001
    warmup_teacher_temp_epochs: int = 5
    center_momentum: float = 0.99
    # Optimisation. `lr` is DINO's --lr: the peak for a batch of 256, scaled linearly to
    # the batch (the paper's 1e-6 is read as this argument, i.e. before scaling).
    lr: float = 1e-6
    lr_reference_batch: int = 256
    min_lr: float = 1e-6
    warmup_epochs: int = 10
    weight_decay: float = 0.04
    weight_decay_end: float = 0.4
    teacher_momentum: float = 0.996
    clip_grad: float = 3.0
    freeze_last_layer_epochs: int = 1
    # Multi-crop: CropSpec's (the global crops are tile_px).
    global_scale: tuple[float, float] = CropSpec.global_scale
    local_px: int = CropSpec.local_px
    local_scale: tuple[float, float] = CropSpec.local_scale
    local_crops: int = CropSpec.local_crops
    # The SAR photometric augmentation of the views (off: the paper's crops and flips).
    augment: SarAugmentSpec = field(default_factory=SarAugmentSpec)
    seed: int = 0
    precision: Precision = "auto"
    # Execution.
    compile: bool = False
    loader_workers: int = 4
    checkpoint_every: int = 500
    log_every: int = 20
    # k-NN probe of the teacher on val tiles every `probe_every` steps (0: once per epoch;
    # -1: never), with the probe section's settings (sarssl.evaluation.probe) and the run's seed.
    probe_every: int = 0
    probe: ProbeSettings = field(default_factory=ProbeSettings)

    def __post_init__(self):
        if self.probe.seed != self.seed:  # frozen: set once, here
            object.__setattr__(self, "probe", dataclasses.replace(self.probe, seed=self.seed))
        if self.recipe not in RECIPES:
            raise ConfigError(
                f"pretrain {self.name}: dino.recipe {self.recipe!r} is not one of {list(RECIPES)}"
            )
        if not is_timm_model(self.architecture):
            raise ConfigError(
                f"pretrain {self.name}: architecture {self.architecture!r} is not a timm model"
            )
        for key in ("epochs", "batch_size", "checkpoint_every", "log_every", "local_px"):
            if getattr(self, key) < 1:
                raise ConfigError(f"pretrain {self.name}: {key} must be at least 1")
        for key in ("warmup_epochs", "warmup_teacher_temp_epochs", "freeze_last_layer_epochs"):
            if not 0 <= getattr(self, key) <= self.epochs:
                raise ConfigError(
                    f"pretrain {self.name}: {key}={getattr(self, key)} must be within "
                    f"0..epochs ({self.epochs})"
                )

    @property
    def crops(self) -> CropSpec:
        return CropSpec(
            self.tile_px, self.global_scale, self.local_px, self.local_scale, self.local_crops
        )

    @property
    def scaled_lr(self) -> float:
        return self.lr * self.batch_size / self.lr_reference_batch

    def as_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict) -> "PretrainSettings":
        tuples = {"stores", "global_scale", "local_scale"}
        values = {k: tuple(v) if k in tuples else v for k, v in values.items()}
        return cls(
            **values
            | {
                "probe": ProbeSettings(**values.get("probe", {})),
                "augment": SarAugmentSpec.from_dict(values.get("augment", {})),
            }
        )


# Settings that change how a run executes, not what it computes: a checkpoint written under
# other values of these still resumes. The probe only reads the weights.
EXECUTION_ONLY = frozenset(
    {"loader_workers", "checkpoint_every", "log_every", "compile", "probe_every", "probe"}
)
RUN_KEYS = frozenset({"name", "architecture", "stores", "epochs", "batch_size", "tile_px"})


def settings_from_config(
    run: Mapping, dino: Mapping, stores: list[str], tile_px: int, probe: Mapping | None = None
) -> PretrainSettings:
    """A pretrain run of the config: its recipe's values (sarssl.settings.recipes), under the
    shared dino section (and probe section), under the run's overrides."""
    overrides = run.get("dino", {})
    # The probe's own settings come from the probe section, never a run's dino overrides.
    tunable = {f.name for f in dataclasses.fields(PretrainSettings)} - RUN_KEYS - {"probe"}
    unknown = sorted(set(overrides) - tunable)
    if unknown:
        raise ConfigError(
            f"config pretrain {run['name']}: dino overrides {unknown} are unknown; "
            f"known keys: {sorted(tunable)}"
        )
    probe = probe or {}
    # An unknown recipe adds nothing here and is refused, named, by PretrainSettings.
    recipe = overrides.get("recipe", dino.get("recipe", PAPER))
    values = {
        **RECIPES.get(recipe, {}),
        **dino,
        # The probe section's `every`; a run's own dino override beats it.
        **({"probe_every": probe["every"]} if "every" in probe else {}),
        **overrides,
        "name": run["name"],
        "architecture": run["architecture"],
        "stores": stores,
        "epochs": run["epochs"],
        "batch_size": run["batch_size"],
        "tile_px": tile_px,
    }
    seed = values.get("seed", PretrainSettings.seed)
    return PretrainSettings.from_dict(values | {"probe": asdict(probe_settings(probe, seed))})


# Each key's default (the run's own keys have none and are left out).
DEFAULTS = {
    f.name: f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default
    for f in dataclasses.fields(PretrainSettings)
    if f.default is not dataclasses.MISSING or f.default_factory is not dataclasses.MISSING
}


def settings_differ(saved: dict, settings: PretrainSettings) -> list[str]:
    """The keys that compute differently in `saved` settings (a checkpoint's) and these;
    both as JSON holds them (tuples as lists). A key a checkpoint predates counts as its
    default, the value the run computed with."""
    saved, current = (json.loads(json.dumps(values)) for values in (saved, settings.as_dict()))
    defaults = json.loads(json.dumps(DEFAULTS, default=asdict))
    return sorted(
        key
        for key in current.keys() | saved.keys()
        # Run folders written before the probe's settings were nested keep them flat.
        if key not in EXECUTION_ONLY
        and not key.startswith("probe_")
        and saved.get(key, defaults.get(key)) != current.get(key)
    )


def schedule_readings(settings: Mapping) -> list[str]:
    """What the learning-rate and teacher-temperature schedules of a run are, in words, with
    the paper's readings they follow (its Table 3 states lr 1e-6, which reads two ways)."""
    peak = settings["lr"] * settings["batch_size"] / settings["lr_reference_batch"]
    lr = (
        f"Learning rate: {settings['lr']:g} per {settings['lr_reference_batch']} tiles, i.e. "
        f"{peak:.3g} at the batch of {settings['batch_size']}, after "
        f"{settings['warmup_epochs']} warm-up epochs, then a cosine to {settings['min_lr']:g}"
    )
    if math.isclose(peak, settings["min_lr"], rel_tol=1e-6):
        lr += (
            ": flat. This is the paper's lr 1e-6 read as DINO's --lr, which equals DINO's "
            "min_lr at this batch; config/paper_dino_lr.yaml reads it as min_lr instead"
        )
    warmup, final = settings["warmup_teacher_temp"], settings["teacher_temp"]
    direction = "falls" if final < warmup else "rises" if final > warmup else "stays"
    temp = (
        f"Teacher temperature: {direction} from {warmup:g} to {final:g} over "
        f"{settings['warmup_teacher_temp_epochs']} epochs"
    )
    if final < warmup:
        temp += " (the paper's schedule, as stated; DINO's warm-up rises, 0.04 to 0.07)"
    return [lr + ".", temp + "."]
