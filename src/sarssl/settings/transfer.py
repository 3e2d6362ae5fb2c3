"""The transfer benchmark's vocabulary, without torch: the runs a config's transfer section
makes and the settings of one run (sarssl.transfer runs them).

A run fine-tunes an exported backbone on a public Sentinel-1 task in its dataset's layout
(TRANSFER_TASKS: Sen1Floods11's water / not water, Copernicus-Bench's DFC2020-S1 land cover):
with the grid's decoders (`tokens`: patch tokens -> convolutional
decoder; `attention`: attention maps -> U-Net), its ViT `frozen` or `finetuned`; beside them
the U-Net from scratch on the same 12 channels, the reference every pre-trained run is
compared with. Each on `fraction` % of the task's train chips, with `seed` (the subset,
the initialisation of what is trained, the data order), as a run of the grid.
"""

import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from typing import Any

from ..dataset.dfc2020 import DFC2020_S1
from ..dataset.sen1floods11 import SEN1FLOODS11
from ..dataset.transfer_task import TransferTask
from ..errors import ConfigError
from .finetune import ENCODING_MODELS, Init, Model, format_fraction

# The tasks by the name config transfer.task gives them.
TRANSFER_TASKS = {task.name: task for task in (SEN1FLOODS11, DFC2020_S1)}
# The reference of every pre-trained run: the U-Net on the 12 channels, from scratch.
REFERENCE = (Model.S1GRD_UNET, Init.SCRATCH)


@dataclass(frozen=True)
class TransferSettings:
    """One run of the benchmark: its model, initialisation, fraction and seed, and how it
    trains (the config's transfer section; the training fields are a grid run's)."""

    model: str
    init: str
    fraction: float  # percent of the task's train chips
    seed: int
    epochs: int = 30
    batch_size: int = 4
    lr: float = 1e-3
    backbone_lr_scale: float = 0.1
    weight_decay: float = 1e-4
    width: int = 16
    precision: str = "auto"
    loader_workers: int = 0

    @property
    def name(self) -> str:
        return f"{self.model}/{self.init}/frac{format_fraction(self.fraction)}/seed{self.seed}"

    def as_dict(self) -> dict:
        return json.loads(json.dumps(asdict(self)))


# The runs of a transfer section that does not name them (as in config/schema.yaml).
SECTION_DEFAULTS: dict[str, Any] = {
    "encodings": ["tokens", "attention"],
    "inits": [Init.FROZEN.value, Init.FINETUNED.value],
    "percents": [100],
    "seeds": 1,
    "seed": 0,
    "task": SEN1FLOODS11.name,
}


def transfer_task(section: Mapping) -> TransferTask:
    """The task of a transfer section (its `task`, Sen1Floods11 without one)."""
    name = section.get("task", SECTION_DEFAULTS["task"])
    if name not in TRANSFER_TASKS:
        raise ConfigError(f"config transfer.task: {name!r} is not one of {list(TRANSFER_TASKS)}")
    return TRANSFER_TASKS[name]


def transfer_runs(section: Mapping) -> list[TransferSettings]:
    """Every run of a transfer section: each encoding x init x fraction x seed, and the
    U-Net from scratch at each fraction and seed."""
    section = {**SECTION_DEFAULTS, **section}
    training = {f.name for f in fields(TransferSettings)} - {"model", "init", "fraction", "seed"}
    seeds = range(section["seed"], section["seed"] + section["seeds"])
    models = [(ENCODING_MODELS[e], Init(i)) for e in section["encodings"] for i in section["inits"]]
    return [
        TransferSettings(
            model, init, float(fraction), seed, **{k: section[k] for k in training & set(section)}
        )
        for model, init in [*models, REFERENCE]
        for fraction in section["percents"]
        for seed in seeds
    ]
