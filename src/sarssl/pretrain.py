"""DINO pre-training of a timm ViT on the train tiles of one or more Zarr stores.

One process per GPU (torchrun or srun set RANK / WORLD_SIZE / LOCAL_RANK), or a single
process on one GPU or the CPU. What the paper states is taken as stated (student temperature
0.03, teacher temperature 0.01 -> 0.001 over 5 epochs, center momentum 0.99, learning rate
1e-6, flips and crops only); everything else is the original DINO's default and says so.

Run state lives in a run folder: `last.pt` (written atomically every `checkpoint_every`
steps and at the end), `metrics.csv` and `tensorboard/`. A rerun with the same settings
resumes from `last.pt`: weights, optimizer, loss center, random state and the step, which
fixes the schedules and the data position.
"""

import csv
import dataclasses
import io
import itertools
import json
import logging
import math
import os
import shutil
import socket
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import timm
import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.tensorboard import SummaryWriter
from tqdm import tqdm

from .atomic import atomic_path, write_text_atomic
from .backbone import create_backbone, load_checkpoint
from .child import run_sarssl
from .data import MultiCropTiles, Normalisation, StepBatches, StoreTiles, make_loader, split_tiles
from .devices import Precision, autocast, autocast_dtype, device_description
from .dino import DINOHead, DINOLoss, cosine_schedule, ema_update, teacher_temperature_schedule
from .errors import ConfigError, SarsslError
from .multicrop import CropSpec, crop_batch
from .probe import PatchProbe, ProbeSettings

log = logging.getLogger(__name__)

CHECKPOINT_NAME = "last.pt"
METRICS_NAME = "metrics.csv"
# Averages over the steps since the last row: the loss and what tells learning from
# collapse (sarssl.dino.LossTerms).
STEP_TERMS = ("loss", "teacher_entropy", "kl", "batch_entropy", "prototypes")
METRIC_FIELDS = (
    "step",
    "epoch",
    *STEP_TERMS,
    "lr",
    "weight_decay",
    "teacher_momentum",
    "teacher_temp",
    "images_per_s",
    "elapsed_s",
)
# The k-NN probe of the teacher on val tiles, in the rows of the steps it ran at.
PROBE_FIELDS = ("probe_accuracy", "probe_miou", "probe_s")


class NonFiniteLossError(SarsslError):
    pass


@dataclass(frozen=True)
class PretrainSettings:
    name: str
    architecture: str  # a timm ViT, created with pretrained=False
    stores: tuple[str, ...]  # Zarr stores whose train tiles are trained on
    epochs: int
    batch_size: int  # global, over all processes
    tile_px: int = 448
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
    # Multi-crop (sarssl.multicrop).
    global_scale: tuple[float, float] = (0.4, 1.0)
    local_px: int = 192
    local_scale: tuple[float, float] = (0.05, 0.4)
    local_crops: int = 8
    seed: int = 0
    precision: Precision = "auto"
    # Execution.
    compile: bool = False
    loader_workers: int = 4
    checkpoint_every: int = 500
    log_every: int = 20
    # k-NN probe of the teacher on val tiles every `probe_every` steps (0: once per epoch;
    # -1: never), see sarssl.probe.
    probe_every: int = 0
    probe_k: int = ProbeSettings.k
    probe_temperature: float = ProbeSettings.temperature
    probe_train_tiles: int = ProbeSettings.train_tiles
    probe_eval_tiles: int = ProbeSettings.eval_tiles
    probe_bank_patches: int = ProbeSettings.bank_patches
    probe_batch_size: int = ProbeSettings.batch_size

    def __post_init__(self):
        if not timm.is_model(self.architecture):
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
    def probe(self) -> ProbeSettings:
        return ProbeSettings(
            k=self.probe_k,
            temperature=self.probe_temperature,
            train_tiles=self.probe_train_tiles,
            eval_tiles=self.probe_eval_tiles,
            bank_patches=self.probe_bank_patches,
            batch_size=self.probe_batch_size,
            seed=self.seed,
        )

    @property
    def scaled_lr(self) -> float:
        return self.lr * self.batch_size / self.lr_reference_batch

    def as_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict) -> "PretrainSettings":
        tuples = {"stores", "global_scale", "local_scale"}
        return cls(**{k: tuple(v) if k in tuples else v for k, v in values.items()})


# Settings that change how a run executes, not what it computes: a checkpoint written under
# other values of these still resumes. The probe only reads the weights.
EXECUTION_ONLY = frozenset(
    {"loader_workers", "checkpoint_every", "log_every", "compile"}
    | {f.name for f in dataclasses.fields(PretrainSettings) if f.name.startswith("probe_")}
)
RUN_KEYS = frozenset({"name", "architecture", "stores", "epochs", "batch_size", "tile_px"})


def settings_from_config(
    run: dict, dino: dict, stores: list[str], tile_px: int, probe: dict | None = None
) -> PretrainSettings:
    """A pretrain run of the config: the shared dino section (and probe section) with the
    run's overrides."""
    overrides = run.get("dino", {})
    tunable = {f.name for f in dataclasses.fields(PretrainSettings)} - RUN_KEYS
    unknown = sorted(set(overrides) - tunable)
    if unknown:
        raise ConfigError(
            f"config pretrain {run['name']}: dino overrides {unknown} are unknown; "
            f"known keys: {sorted(tunable)}"
        )
    return PretrainSettings.from_dict(
        {
            **{
                f"probe_{key}": value
                for key, value in (probe or {}).items()
                if f"probe_{key}" in EXECUTION_ONLY
            },
            **dino,
            **overrides,
            "name": run["name"],
            "architecture": run["architecture"],
            "stores": stores,
            "epochs": run["epochs"],
            "batch_size": run["batch_size"],
            "tile_px": tile_px,
        }
    )


@dataclass(frozen=True)
class Schedules:
    """DINO's schedules as explicit arrays: one value per step, the teacher temperature one
    per epoch."""

    lr: np.ndarray
    weight_decay: np.ndarray
    teacher_momentum: np.ndarray
    teacher_temp: np.ndarray

    @classmethod
    def of(cls, settings: PretrainSettings, steps_per_epoch: int) -> "Schedules":
        epochs = settings.epochs
        return cls(
            lr=cosine_schedule(
                settings.scaled_lr,
                settings.min_lr,
                epochs,
                steps_per_epoch,
                warmup_epochs=settings.warmup_epochs,
            ),
            weight_decay=cosine_schedule(
                settings.weight_decay, settings.weight_decay_end, epochs, steps_per_epoch
            ),
            teacher_momentum=cosine_schedule(
                settings.teacher_momentum, 1.0, epochs, steps_per_epoch
            ),
            teacher_temp=teacher_temperature_schedule(
                settings.warmup_teacher_temp,
                settings.teacher_temp,
                settings.warmup_teacher_temp_epochs,
                epochs,
            ),
        )


class MultiCropNetwork(nn.Module):
    """Backbone and head over a list of crops: one backbone call per run of equal-sized
    crops (the global ones, then the local ones), as DINO's MultiCropWrapper. The backbone
    runs under autocast when `autocast_dtype` is set; the head always in float32."""

    def __init__(self, backbone: nn.Module, head: DINOHead):
        super().__init__()
        self.backbone, self.head = backbone, head
        self.autocast_dtype: torch.dtype | None = None

    def forward(self, crops: list[torch.Tensor]) -> torch.Tensor:
        features = []
        for _size, group in itertools.groupby(crops, key=lambda crop: crop.shape[-1]):
            batch = torch.cat(list(group))
            with autocast(batch.device.type, self.autocast_dtype):
                features.append(self.backbone(batch))
        return self.head(torch.cat(features).float())


def create_network(settings: PretrainSettings, drop_path_rate: float) -> MultiCropNetwork:
    backbone = create_backbone(settings.architecture, settings.tile_px, drop_path_rate)
    head = DINOHead(
        backbone.num_features,
        settings.out_dim,
        hidden_dim=settings.head_hidden_dim,
        bottleneck_dim=settings.bottleneck_dim,
    )
    return MultiCropNetwork(backbone, head)


def parameter_groups(network: nn.Module) -> list[dict]:
    """Weight decay on weights only, not on biases and norms (DINO's get_params_groups)."""
    decayed, not_decayed = [], []
    for name, parameter in network.named_parameters():
        if not parameter.requires_grad:
            continue
        is_bias_or_norm = name.endswith(".bias") or parameter.ndim == 1
        (not_decayed if is_bias_or_norm else decayed).append(parameter)
    return [{"params": decayed}, {"params": not_decayed, "weight_decay": 0.0}]


@torch.no_grad()
def clip_gradients_per_parameter(parameters: list[torch.Tensor], max_norm: float) -> None:
    """Scale each parameter's gradient to a norm of at most `max_norm` (DINO clips each
    parameter on its own, not the global norm), without a host sync."""
    grads = [p.grad for p in parameters if p.grad is not None]
    if not grads:
        return
    scale = torch._foreach_add(torch._foreach_norm(grads), 1e-6)
    torch._foreach_reciprocal_(scale)
    torch._foreach_mul_(scale, max_norm)
    torch._foreach_clamp_max_(scale, 1.0)
    torch._foreach_mul_(grads, scale)


def device_views(
    batch: tuple[torch.Tensor, ...],
    device: torch.device,
    normalisation: Normalisation,
    spec: CropSpec,
    dtype: torch.dtype,
) -> list[torch.Tensor]:
    """A loader batch (stored tiles, crop boxes, flips; pinned on a GPU run) -> the
    standardised multi-crop views, computed on `device` in `dtype`: the precision in which
    the backbone reads its input under autocast anyway."""
    tiles, boxes, flips = (x.to(device, non_blocking=True) for x in batch)
    return crop_batch(normalisation.standardise(tiles).to(dtype), boxes, flips, spec)


@dataclass
class Distributed:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @classmethod
    def from_environment(cls) -> "Distributed":
        """torchrun sets RANK/WORLD_SIZE/LOCAL_RANK; srun sets SLURM_PROCID/SLURM_NTASKS/
        SLURM_LOCALID (one task per GPU, MASTER_ADDR/MASTER_PORT exported by the job)."""
        env = os.environ
        if "WORLD_SIZE" in env:
            return cls(int(env["RANK"]), int(env["WORLD_SIZE"]), int(env.get("LOCAL_RANK", 0)))
        if int(env.get("SLURM_NTASKS", 1)) > 1 and "MASTER_ADDR" in env:
            return cls(
                int(env["SLURM_PROCID"]), int(env["SLURM_NTASKS"]), int(env["SLURM_LOCALID"])
            )
        return cls()

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def device(self) -> torch.device:
        if torch.cuda.is_available():
            torch.cuda.set_device(self.local_rank)
            return torch.device("cuda", self.local_rank)
        return torch.device("cpu")

    def start(self, device: torch.device) -> None:
        if self.world_size > 1 and not dist.is_initialized():
            backend = "nccl" if device.type == "cuda" else "gloo"
            dist.init_process_group(backend, rank=self.rank, world_size=self.world_size)

    def all_reduce_mean(self, values: torch.Tensor) -> torch.Tensor:
        if self.world_size > 1:
            dist.all_reduce(values)
            values = values / self.world_size
        return values


class MetricsLog:
    """Metric rows as CSV (rewritten up to the resume step on resume) and TensorBoard."""

    def __init__(self, run_dir: Path, start_step: int):
        self.path = run_dir / METRICS_NAME
        kept = self._rows_up_to(start_step)
        write_text_atomic(self.path, self._format(kept))
        self.writer = SummaryWriter(
            str(run_dir / "tensorboard"), purge_step=start_step if start_step else None
        )

    def _rows_up_to(self, step: int) -> list[dict]:
        if not self.path.is_file():
            return []
        rows = csv.DictReader(io.StringIO(self.path.read_text()))
        # A row cut short by a kill has empty fields: dropped with the rows after the resume.
        return [r for r in rows if all(r.get(f) for f in METRIC_FIELDS) and int(r["step"]) <= step]

    @staticmethod
    def _format(rows: list[dict]) -> str:
        out = io.StringIO()
        writer = csv.DictWriter(
            out, fieldnames=METRIC_FIELDS + PROBE_FIELDS, lineterminator="\n", extrasaction="ignore"
        )
        writer.writeheader()
        writer.writerows(rows)
        return out.getvalue()

    def write(self, row: dict) -> None:
        with open(self.path, "a") as stream:
            fields = METRIC_FIELDS + PROBE_FIELDS
            csv.DictWriter(stream, fieldnames=fields, lineterminator="\n").writerow(row)
        for key in (*METRIC_FIELDS[2:], *PROBE_FIELDS):
            if row.get(key) is not None:
                self.writer.add_scalar(f"pretrain/{key}", row[key], row["step"])
        self.writer.flush()

    def close(self) -> None:
        self.writer.close()


def save_checkpoint(path: Path, state: dict) -> None:
    with atomic_path(path) as tmp:
        torch.save(state, tmp)


def settings_differ(saved: dict, settings: PretrainSettings) -> list[str]:
    current = settings.as_dict()
    return sorted(
        key
        for key in current.keys() | saved.keys()
        if key not in EXECUTION_ONLY and saved.get(key) != current.get(key)
    )


EMAUpdate = Callable[[list[torch.Tensor], list[torch.Tensor], float], None]


class DINOTrainer:
    """Student, teacher, loss and optimizer, and the training step over one batch."""

    def __init__(
        self,
        settings: PretrainSettings,
        device: torch.device,
        world_size: int = 1,
        ema: EMAUpdate = ema_update,
        plain_optimizer: bool = False,
    ):
        self.settings, self.ema = settings, ema
        self.student = create_network(settings, settings.drop_path_rate).to(device)
        self.teacher = create_network(settings, 0.0).to(device)  # DINO: no drop path
        self.teacher.load_state_dict(self.student.state_dict())
        self.teacher.requires_grad_(False)
        self.loss = DINOLoss(
            settings.out_dim,
            settings.crops.n_crops,
            settings.student_temp,
            settings.center_momentum,
        ).to(device)
        # Fused AdamW on a GPU; `plain_optimizer` (a benchmark baseline) loops per tensor.
        fast = {"fused": device.type == "cuda"}
        self.optimizer = torch.optim.AdamW(
            parameter_groups(self.student),
            **({"fused": False, "foreach": False} if plain_optimizer else fast),
        )
        self.student.autocast_dtype = self.teacher.autocast_dtype = autocast_dtype(
            settings.precision, device
        )
        self.student_forward: nn.Module = self.student
        if world_size > 1:
            self.student_forward = DistributedDataParallel(
                self.student, device_ids=[device.index] if device.type == "cuda" else None
            )
        self.teacher_forward: nn.Module = self.teacher
        if settings.compile:
            self.student_forward = torch.compile(self.student_forward)
            self.teacher_forward = torch.compile(self.teacher)
        self.student_params = list(self.student.parameters())
        self.teacher_params = list(self.teacher.parameters())
        self.last_layer = [p for n, p in self.student.named_parameters() if "last_layer" in n]

    def step(
        self,
        crops: list[torch.Tensor],
        lr: float,
        weight_decay: float,
        teacher_momentum: float,
        teacher_temp: float,
        freeze_last_layer: bool,
    ) -> torch.Tensor:
        """One DINO step; returns the STEP_TERMS on the device, unsynced."""
        for i, group in enumerate(self.optimizer.param_groups):
            group["lr"] = lr
            if i == 0:  # the group of weights; biases and norms have none
                group["weight_decay"] = weight_decay
        with torch.no_grad():
            teacher_output = self.teacher_forward(crops[:2])
        terms = self.loss(self.student_forward(crops), teacher_output, teacher_temp)
        self.optimizer.zero_grad(set_to_none=True)
        terms.loss.backward()
        clip_gradients_per_parameter(self.student_params, self.settings.clip_grad)
        if freeze_last_layer:
            for parameter in self.last_layer:
                parameter.grad = None
        self.optimizer.step()
        self.ema(self.teacher_params, self.student_params, teacher_momentum)
        return torch.stack([terms.loss.detach(), *(getattr(terms, t) for t in STEP_TERMS[1:])])

    def state_dict(self) -> dict:
        return {
            "student": self.student.state_dict(),
            "teacher": self.teacher.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "loss": self.loss.state_dict(),
            "torch_rng": torch.get_rng_state(),
        }

    def load_state_dict(self, state: dict) -> None:
        self.student.load_state_dict(state["student"])
        self.teacher.load_state_dict(state["teacher"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.loss.load_state_dict(state["loss"])
        torch.set_rng_state(state["torch_rng"])


def train(settings: PretrainSettings, run_dir: str | Path) -> Path:
    """Train (or resume) and return the path of the final checkpoint in `run_dir`."""
    run_dir = Path(run_dir)
    checkpoint_path = run_dir / CHECKPOINT_NAME
    ranks = Distributed.from_environment()
    device = ranks.device()
    ranks.start(device)
    torch.manual_seed(settings.seed)

    tiles = [t for store in settings.stores for t in split_tiles(store, ["train"])]
    normalisation = Normalisation.of_stores(settings.stores)
    trainer = DINOTrainer(settings, device, ranks.world_size)
    start_step = 0
    if checkpoint_path.is_file():
        state = load_checkpoint(checkpoint_path)
        changed = settings_differ(state["settings"], settings)
        if changed:
            log.warning(
                "%s holds a run with other settings (%s): starting afresh",
                checkpoint_path,
                ", ".join(changed),
            )
        else:
            trainer.load_state_dict(state)
            start_step = state["step"]
            log.info("resuming %s from step %d", checkpoint_path, start_step)

    batches = StepBatches(
        len(tiles),
        settings.batch_size,
        settings.epochs,
        settings.seed,
        start_step,
        ranks.rank,
        ranks.world_size,
    )
    schedules = Schedules.of(settings, batches.steps_per_epoch)
    dataset = MultiCropTiles(StoreTiles(tiles, normalisation), settings.crops, settings.seed)
    loader = make_loader(dataset, batches, settings.loader_workers, device.type == "cuda")
    # Every rank knows the probe steps (they are log steps, with a collective); the main
    # rank alone runs the probe.
    val_tiles = [t for store in settings.stores for t in split_tiles(store, ["val"])]
    probe_every = settings.probe_every or batches.steps_per_epoch
    probing = settings.probe_every >= 0 and bool(val_tiles)
    probe = (
        PatchProbe(tiles, {"val": val_tiles}, normalisation, settings.probe) if probing else None
    )
    if settings.probe_every >= 0 and not val_tiles:
        log.warning("%s: no valid val tile, so no k-NN probe during training", settings.name)

    def checkpoint_state(step: int) -> dict:
        return {
            "step": step,
            "settings": settings.as_dict(),
            "normalisation": normalisation.as_dict(),
            "tiles": len(tiles),
            "device": f"{device_description(device)} x {ranks.world_size}",
            **trainer.state_dict(),
        }

    if ranks.is_main:
        run_dir.mkdir(parents=True, exist_ok=True)
        metrics = MetricsLog(run_dir, start_step)
        log.info(
            "%s: %s on %s (%s), %d processes, %d train tiles, %d steps of %d tiles, "
            "lr %.3g (%.3g x %d / %d)",
            settings.name,
            settings.architecture,
            device,
            trainer.student.autocast_dtype or torch.float32,
            ranks.world_size,
            len(tiles),
            batches.total_steps,
            settings.batch_size,
            settings.scaled_lr,
            settings.lr,
            settings.batch_size,
            settings.lr_reference_batch,
        )
    progress = tqdm(
        total=batches.total_steps,
        initial=start_step,
        disable=not ranks.is_main,
        desc=settings.name,
        file=sys.stderr,
        mininterval=1 if sys.stderr.isatty() else 30,
    )
    sums = torch.zeros(len(STEP_TERMS), device=device)  # since the last log
    logged_step, logged_time, started = start_step, time.perf_counter(), time.perf_counter()
    trainer.student.train()
    trainer.teacher.train()
    crop_dtype = trainer.student.autocast_dtype or torch.float32
    for step, batch in enumerate(loader, start=start_step):
        epoch = step // batches.steps_per_epoch
        crops = device_views(batch, device, normalisation, settings.crops, crop_dtype)
        sums += trainer.step(
            crops,
            lr=float(schedules.lr[step]),
            weight_decay=float(schedules.weight_decay[step]),
            teacher_momentum=float(schedules.teacher_momentum[step]),
            teacher_temp=float(schedules.teacher_temp[epoch]),
            freeze_last_layer=epoch < settings.freeze_last_layer_epochs,
        )

        done = step + 1
        at_checkpoint = done % settings.checkpoint_every == 0 or done == batches.total_steps
        at_probe = probing and done % probe_every == 0
        if done % settings.log_every and not at_checkpoint and not at_probe:
            continue
        # The only host sync: averages since the last log, checked before any checkpoint.
        means = (ranks.all_reduce_mean(sums) / (done - logged_step)).tolist()
        if not all(math.isfinite(v) for v in means):
            raise NonFiniteLossError(
                f"pretrain {settings.name}: non-finite loss between steps {logged_step} and "
                f"{done}; the last good checkpoint {checkpoint_path} is kept"
            )
        now = time.perf_counter()
        row = {
            "step": done,
            "epoch": epoch,
            **dict(zip(STEP_TERMS, means, strict=True)),
            "lr": float(schedules.lr[step]),
            "weight_decay": float(schedules.weight_decay[step]),
            "teacher_momentum": float(schedules.teacher_momentum[step]),
            "teacher_temp": float(schedules.teacher_temp[epoch]),
            "images_per_s": (done - logged_step) * settings.batch_size / (now - logged_time),
            "elapsed_s": now - started,
        }
        sums.zero_()
        if at_probe and ranks.is_main:
            scores = probe.score(trainer.teacher.backbone, trainer.teacher.autocast_dtype)["val"]
            row.update(probe_accuracy=scores.accuracy, probe_miou=scores.miou)
            row["probe_s"] = time.perf_counter() - now
            now = time.perf_counter()  # images/s of the next row without the probe
        logged_step, logged_time = done, now
        progress.update(done - progress.n)
        progress.set_postfix(loss=f"{means[0]:.4f}", prototypes=f"{means[4]:.0f}")
        if ranks.is_main:
            metrics.write(row)
            if at_checkpoint:
                save_checkpoint(checkpoint_path, checkpoint_state(done))
    progress.close()
    if ranks.is_main:
        metrics.close()
        if start_step == batches.total_steps:
            log.info("%s: already complete at step %d", checkpoint_path, start_step)
    if ranks.world_size > 1:
        dist.barrier()
        dist.destroy_process_group()
    return checkpoint_path


RENDEZVOUS_PORT = 29400  # torchrun's c10d rendezvous on the job's first node


def launcher_commands(
    gpus: int, nodes: int, rendezvous_host: str, job_id: str
) -> tuple[list[str], list[str]]:
    """(prefix, launcher) of the training command `prefix python launcher -m sarssl.cli`:
    nothing for one process; torchrun on this node for several GPUs; for several nodes,
    one torchrun per node started by srun, which meet at a c10d rendezvous on the first."""
    if nodes == 1:
        standalone = ["-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={gpus}"]
        return [], standalone if gpus > 1 else []
    prefix = ["srun", f"--nodes={nodes}", f"--ntasks={nodes}", "--ntasks-per-node=1"]
    launcher = [
        "-m",
        "torch.distributed.run",
        f"--nnodes={nodes}",
        f"--nproc-per-node={gpus}",
        "--rdzv-backend=c10d",
        f"--rdzv-endpoint={rendezvous_host}:{RENDEZVOUS_PORT}",
        f"--rdzv-id={job_id}",
    ]
    return prefix, launcher


def launch(settings: PretrainSettings, run_dir: str | Path, gpus: int, nodes: int = 1) -> Path:
    """Train in a child process (see sarssl.child), under torchrun on this node (one process
    per GPU; DDP), or on `nodes` nodes of a SLURM allocation (one torchrun per node)."""
    run_dir = Path(run_dir)
    settings_file = run_dir / "settings.json"
    write_text_atomic(settings_file, json.dumps(settings.as_dict(), indent=2))
    job_id = os.environ.get("SLURM_JOB_ID")
    if nodes > 1 and not job_id:
        raise ConfigError(
            f"pretrain {settings.name}: nodes: {nodes} starts one torchrun per node with srun, "
            f"which needs a SLURM allocation of {nodes} nodes (run with --profile slurm)"
        )
    # The batch script runs on the allocation's first node: the rendezvous is there.
    prefix, launcher = launcher_commands(gpus, nodes, socket.gethostname(), job_id or "")
    run_sarssl(
        ["pretrain", "--settings", str(settings_file), "--run-dir", str(run_dir)],
        launcher,
        prefix,
    )
    return run_dir / CHECKPOINT_NAME


def publish(run_dir: str | Path, checkpoint: str | Path, metrics: str | Path) -> None:
    """Copy a finished run's checkpoint and metrics to the workflow's outputs, atomically."""
    run_dir = Path(run_dir)
    for source, target in (
        (run_dir / CHECKPOINT_NAME, checkpoint),
        (run_dir / METRICS_NAME, metrics),
    ):
        with atomic_path(target) as tmp:
            shutil.copyfile(source, tmp)
