"""DINO pre-training of a timm ViT on the train tiles of one or more Zarr stores: the
networks, the training step and the loop (settings in sarssl.settings.pretrain, shared
utilities in sarssl.training, launching in sarssl.launch).

One process per GPU (torchrun or srun set RANK / WORLD_SIZE / LOCAL_RANK), or a single
process on one GPU or the CPU.

Run state lives in a run folder: `last.pt` (written atomically every `checkpoint_every`
steps and at the end), `metrics.csv` and `tensorboard/` (the telemetry of TELEMETRY_FIELDS
included) and, once the run is finished, its collapse verdict `collapse.json`
(sarssl.training.collapse_verdict; logged as a warning when it collapsed). A rerun with the
same settings resumes from `last.pt`: weights, optimizer, loss center, random state and the
step, which fixes the schedules and the data position.
"""

import itertools
import logging
import math
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from tqdm import tqdm

from .backbone import create_backbone, load_checkpoint
from .data import (
    MultiCropTiles,
    Normalisation,
    Standardiser,
    StepBatches,
    StoreTiles,
    make_loader,
    split_tiles,
)
from .dataset.bands import CHANNELS
from .devices import (
    autocast,
    autocast_dtype,
    device_description,
    mfu,
    peak_flops,
    peak_memory_gb,
)
from .dino import DINOHead, DINOLoss, cosine_schedule, ema_update, teacher_temperature_schedule
from .errors import SarsslError
from .multicrop import crop_batch
from .probe import PatchProbe
from .settings.crops import CropSpec
from .settings.pretrain import (
    CHECKPOINT_NAME,
    COLLAPSE_NAME,
    METRICS_NAME,
    PretrainSettings,
    settings_differ,
)
from .training import (
    DataWait,
    Distributed,
    MetricsLog,
    clip_gradients_per_parameter,
    collapse_verdict,
    counted_flops,
    parameter_groups,
    save_checkpoint,
)

log = logging.getLogger(__name__)

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
# How close the main process runs to its device, since the last row: model FLOP
# utilisation (empty without a known peak: sarssl.devices.peak_flops), the GPU memory peak
# since the start (GB, empty on the CPU) and the share of the wall time blocked on the
# loader (sarssl.training.DataWait).
TELEMETRY_FIELDS = ("mfu", "peak_memory_gb", "data_wait_share")
# The k-NN probe of the teacher on val tiles, in the rows of the steps it ran at.
PROBE_FIELDS = ("probe_accuracy", "probe_miou", "probe_s")


class NonFiniteLossError(SarsslError):
    pass


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


def pretrain_flops_per_tile(settings: PretrainSettings) -> float:
    """Model FLOPs of one DINO step per tile: forward and backward of the student over all
    crops, forward of the teacher over the global ones; counted on the `meta` device, from
    shapes alone."""
    with torch.device("meta"):
        student, teacher = create_network(settings, 0.0), create_network(settings, 0.0)
        spec = settings.crops
        crops = [
            torch.empty(1, len(CHANNELS), spec.size(v), spec.size(v)) for v in range(spec.n_crops)
        ]

    def step():
        student(crops).sum().backward()
        with torch.no_grad():
            teacher(crops[:2])

    return counted_flops(step)


def device_views(
    batch: tuple[torch.Tensor, ...],
    device: torch.device,
    standardise: Standardiser,
    spec: CropSpec,
    dtype: torch.dtype,
) -> list[torch.Tensor]:
    """A loader batch (stored tiles, crop boxes, flips; pinned on a GPU run) -> the
    standardised multi-crop views, computed on `device` in `dtype`: the precision in which
    the backbone reads its input under autocast anyway. A packed store's integer tiles
    cross to the device as they are stored, and are decoded there."""
    tiles, boxes, flips = (x.to(device, non_blocking=True) for x in batch)
    return crop_batch(standardise(tiles).to(dtype), boxes, flips, spec)


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

    # Per process: its share of the global batch, on its device.
    flops_per_step = pretrain_flops_per_tile(settings) * settings.batch_size / ranks.world_size
    peak = peak_flops(device)
    if ranks.is_main:
        run_dir.mkdir(parents=True, exist_ok=True)
        metrics = MetricsLog(
            run_dir / METRICS_NAME,
            start_step,
            METRIC_FIELDS,
            (*TELEMETRY_FIELDS, *PROBE_FIELDS),
            "pretrain",
        )
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
    waits = DataWait()
    for step, batch in enumerate(waits.batches(loader), start=start_step):
        epoch = step // batches.steps_per_epoch
        crops = device_views(batch, device, dataset.tiles.standardise, settings.crops, crop_dtype)
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
        seconds = now - logged_time
        row = {
            "step": done,
            "epoch": epoch,
            **dict(zip(STEP_TERMS, means, strict=True)),
            "lr": float(schedules.lr[step]),
            "weight_decay": float(schedules.weight_decay[step]),
            "teacher_momentum": float(schedules.teacher_momentum[step]),
            "teacher_temp": float(schedules.teacher_temp[epoch]),
            "images_per_s": (done - logged_step) * settings.batch_size / seconds,
            "elapsed_s": now - started,
            "mfu": mfu(flops_per_step, (done - logged_step) / seconds, peak),
            "peak_memory_gb": peak_memory_gb(device),
            "data_wait_share": waits.take() / seconds,
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
        # The indicators are computed per process, on its share of the batch.
        verdict = collapse_verdict(
            pd.read_csv(run_dir / METRICS_NAME),
            settings.out_dim,
            settings.batch_size // ranks.world_size,
        )
        verdict.write(run_dir / COLLAPSE_NAME)
        report = log.warning if verdict.collapsed else log.info
        report("%s: collapse verdict: %s", settings.name, verdict.sentence)
    if ranks.world_size > 1:
        dist.barrier()
        dist.destroy_process_group()
    return checkpoint_path
