"""DINO pre-training of a timm ViT on the train tiles of one or more Zarr stores: the
networks, the training step and the loop (settings in sarssl.settings.pretrain, shared
utilities in sarssl.training.utils, launching in sarssl.launch).

One process per GPU (torchrun or srun set RANK / WORLD_SIZE / LOCAL_RANK), or a single
process on one GPU or the CPU.

Run state lives in a run folder: `last.pt` (a sarssl.models.checkpoint.Checkpoint, written
atomically every `checkpoint_every` steps and at the end), `metrics.csv` and `tensorboard/`
(the telemetry of TELEMETRY_FIELDS included) and, once the run is finished, its collapse
verdict `collapse.json` (sarssl.training.utils.collapse_verdict; logged as a warning when it
collapsed). A rerun with the same settings resumes from `last.pt`: weights, optimizer, loss
center, random state and the step, which fixes the schedules and the data position.

`train` reads as DINO's main_dino.py: `set_up` (ranks, data, trainer, resumption), then
`train_steps` (one step per batch with the values the schedules give it, and a metric row
of those values every few steps), then the collapse verdict.
"""

import dataclasses
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
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader
from tqdm import tqdm

from sarssl.atomic import atomic_path
from sarssl.dataset.bands import CHANNELS
from sarssl.dataset.storeinfo import StoreInfo
from sarssl.devices import (
    autocast,
    autocast_dtype,
    device_description,
    mfu,
    peak_flops,
    peak_memory_gb,
)
from sarssl.errors import ConfigError, SarsslError
from sarssl.evaluation.probe import CLS, PATCH, PatchProbe
from sarssl.models.backbone import create_backbone, read_checkpoint
from sarssl.models.checkpoint import Checkpoint
from sarssl.models.dino import (
    DINOHead,
    DINOLoss,
    cosine_schedule,
    ema_update,
    teacher_temperature_schedule,
)
from sarssl.settings.crops import CropSpec
from sarssl.settings.pretrain import (
    CHECKPOINT_NAME,
    COLLAPSE_NAME,
    METRICS_NAME,
    PretrainSettings,
    settings_differ,
)
from sarssl.tiles.augment import PARAMETERS, shift_and_speckle
from sarssl.tiles.loader import (
    MultiCropTiles,
    Normalisation,
    Standardiser,
    StepBatches,
    StoreTiles,
    make_loader,
    split_tiles,
)
from sarssl.tiles.multicrop import crop_batch
from sarssl.training.utils import (
    DataWait,
    Distributed,
    MetricsLog,
    clip_gradients_per_parameter,
    collapse_verdict,
    counted_flops,
    parameter_groups,
)

log = logging.getLogger(__name__)

# Averages over the steps since the last row: the loss and what tells learning from
# collapse (sarssl.models.dino.LossTerms).
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
# loader (sarssl.training.utils.DataWait).
TELEMETRY_FIELDS = ("mfu", "peak_memory_gb", "data_wait_share")
# The k-NN probe of the teacher on val tiles, in the rows of the steps it ran at: its patch
# reading, its CLS reading and its seconds.
PROBE_FIELDS = ("probe_accuracy", "probe_miou", "probe_cls_accuracy", "probe_cls_miou", "probe_s")


class NonFiniteLossError(SarsslError):
    pass


@dataclass(frozen=True)
class StepValues:
    """The schedules' values at one step: what the step trains with, and what the metric row
    it ends shows."""

    lr: float
    weight_decay: float
    teacher_momentum: float
    teacher_temp: float

    def as_dict(self) -> dict[str, float]:
        return dataclasses.asdict(self)


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

    def at(self, step: int, epoch: int) -> StepValues:
        return StepValues(
            lr=float(self.lr[step]),
            weight_decay=float(self.weight_decay[step]),
            teacher_momentum=float(self.teacher_momentum[step]),
            teacher_temp=float(self.teacher_temp[epoch]),
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
    normalisation: Normalisation | None = None,
) -> list[torch.Tensor]:
    """A loader batch (stored tiles, crop boxes, flips, and the views' photometric
    parameters where the run augments; pinned on a GPU run) -> the standardised multi-crop
    views, computed on `device` in `dtype`: the precision in which the backbone reads its
    input under autocast anyway. A packed store's integer tiles cross to the device as they
    are stored, and are decoded there. The augmentation's dB changes are standardised with
    `normalisation`'s std."""
    tiles, boxes, flips, *photometric = (x.to(device, non_blocking=True) for x in batch)
    if not photometric:
        return crop_batch(standardise(tiles).to(dtype), boxes, flips, spec)
    if normalisation is None:
        raise ValueError("augmented views need the normalisation to standardise dB changes")
    parameters = photometric[0]
    blur = parameters[..., PARAMETERS.index("blur_sigma")]
    views = crop_batch(standardise(tiles).to(dtype), boxes, flips, spec, blur)
    channel_scale = torch.as_tensor(1.0 / normalisation.std, dtype=torch.float32)
    return [
        shift_and_speckle(view, parameters[:, index], channel_scale)
        for index, view in enumerate(views)
    ]


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

    def checkpoint(
        self, step: int, normalisation: Normalisation, tiles: int, device: str
    ) -> Checkpoint:
        """The run's record after `step` steps, with what it trained on and where."""
        return Checkpoint(
            step=step,
            settings=self.settings.as_dict(),
            normalisation=normalisation.as_dict(),
            tiles=tiles,
            device=device,
            student=self.student.state_dict(),
            teacher=self.teacher.state_dict(),
            optimizer=self.optimizer.state_dict(),
            loss=self.loss.state_dict(),
            torch_rng=torch.get_rng_state(),
        )

    def resume(self, checkpoint: Checkpoint) -> None:
        self.student.load_state_dict(checkpoint.student)
        self.teacher.load_state_dict(checkpoint.teacher)
        self.optimizer.load_state_dict(checkpoint.optimizer)
        self.loss.load_state_dict(checkpoint.loss)
        torch.set_rng_state(checkpoint.torch_rng)


def save_checkpoint(path: Path, checkpoint: Checkpoint) -> None:
    with atomic_path(path) as tmp:
        torch.save(checkpoint.to_dict(), tmp)


def resumed_step(trainer: DINOTrainer, checkpoint_path: Path) -> int:
    """The step to start from: 0, or the step of the checkpoint at `checkpoint_path`, whose
    state is then loaded into `trainer`, when it holds a run of the trainer's settings."""
    if not checkpoint_path.is_file():
        return 0
    checkpoint = read_checkpoint(checkpoint_path)
    changed = settings_differ(checkpoint.settings, trainer.settings)
    if changed:
        log.warning(
            "%s holds a run with other settings (%s): starting afresh",
            checkpoint_path,
            ", ".join(changed),
        )
        return 0
    trainer.resume(checkpoint)
    log.info("resuming %s from step %d", checkpoint_path, checkpoint.step)
    return checkpoint.step


@dataclass(frozen=True)
class PretrainRun:
    """A run set up in this process: its ranks, data and trainer, resumed at `start_step`."""

    settings: PretrainSettings
    checkpoint_path: Path
    ranks: Distributed
    device: torch.device
    normalisation: Normalisation
    tiles: int  # train tiles
    trainer: DINOTrainer
    start_step: int
    batches: StepBatches
    schedules: Schedules
    dataset: MultiCropTiles
    loader: DataLoader
    probe: PatchProbe | None  # on every rank: its steps are log steps, with a collective
    probe_every: int

    def checkpoint(self, step: int) -> Checkpoint:
        device = f"{device_description(self.device)} x {self.ranks.world_size}"
        return self.trainer.checkpoint(step, self.normalisation, self.tiles, device)


def check_tile_size(settings: PretrainSettings, stores: list[StoreInfo]) -> None:
    """The settings' tile_px (the global crops, the ViT's position embedding) is the size
    of the stores' tiles: the stores, not the config, say what the data are."""
    for path, store in zip(settings.stores, stores, strict=True):
        if store.tile_px != settings.tile_px:
            raise ConfigError(
                f"pretrain {settings.name}: store {path} holds tiles of {store.tile_px} px, "
                f"the run's tile_px (config data.tile_px) is {settings.tile_px}: rebuild the "
                "store or set data.tile_px to its size"
            )


def set_up(settings: PretrainSettings, run_dir: Path) -> PretrainRun:
    """The ranks and the device, the trainer on the train tiles (resumed from the run
    folder's checkpoint of a run of these settings), the data from the start step on, the
    schedules and the k-NN probe on the val tiles."""
    ranks = Distributed.from_environment()
    device = ranks.device()
    ranks.start(device)
    torch.manual_seed(settings.seed)

    stores = [StoreInfo.read(store) for store in settings.stores]
    check_tile_size(settings, stores)
    tiles = [t for store in settings.stores for t in split_tiles(store, ["train"])]
    normalisation = Normalisation.pooled([store.normalisation for store in stores])
    trainer = DINOTrainer(settings, device, ranks.world_size)
    checkpoint_path = run_dir / CHECKPOINT_NAME
    start_step = resumed_step(trainer, checkpoint_path)

    batches = StepBatches(
        len(tiles),
        settings.batch_size,
        settings.epochs,
        settings.seed,
        start_step,
        ranks.rank,
        ranks.world_size,
    )
    dataset = MultiCropTiles(
        StoreTiles(tiles, normalisation), settings.crops, settings.seed, settings.augment
    )
    loader = make_loader(dataset, batches, settings.loader_workers, device.type == "cuda")
    val_tiles = [t for store in settings.stores for t in split_tiles(store, ["val"])]
    probe = None
    if settings.probe_every >= 0 and val_tiles:
        probe = PatchProbe(tiles, {"val": val_tiles}, normalisation, settings.probe)
    elif settings.probe_every >= 0:
        log.warning("%s: no valid val tile, so no k-NN probe during training", settings.name)
    return PretrainRun(
        settings=settings,
        checkpoint_path=checkpoint_path,
        ranks=ranks,
        device=device,
        normalisation=normalisation,
        tiles=len(tiles),
        trainer=trainer,
        start_step=start_step,
        batches=batches,
        schedules=Schedules.of(settings, batches.steps_per_epoch),
        dataset=dataset,
        loader=loader,
        probe=probe,
        probe_every=settings.probe_every or batches.steps_per_epoch,
    )


def log_start(run: PretrainRun) -> None:
    settings = run.settings
    log.info(
        "%s: %s on %s (%s), %d processes, %d train tiles, %d steps of %d tiles, "
        "lr %.3g (%.3g x %d / %d)",
        settings.name,
        settings.architecture,
        run.device,
        run.trainer.student.autocast_dtype or torch.float32,
        run.ranks.world_size,
        run.tiles,
        run.batches.total_steps,
        settings.batch_size,
        settings.scaled_lr,
        settings.lr,
        settings.batch_size,
        settings.lr_reference_batch,
    )


class Telemetry:
    """The throughput and TELEMETRY_FIELDS of the steps since the last metric row."""

    def __init__(self, run: PretrainRun):
        settings = run.settings
        # Per process: its share of the global batch, on its device.
        world_size = run.ranks.world_size
        self.flops_per_step = pretrain_flops_per_tile(settings) * settings.batch_size / world_size
        self.peak = peak_flops(run.device)
        self.batch_size, self.device = settings.batch_size, run.device
        self.waits = DataWait()
        self.last_step, self.last_time = run.start_step, time.perf_counter()
        self.started = self.last_time

    def fields(self, step: int) -> dict[str, float | None]:
        """The fields of the row at `step`; the next row counts from here."""
        now = time.perf_counter()
        steps, seconds = step - self.last_step, now - self.last_time
        self.last_step, self.last_time = step, now
        return {
            "images_per_s": steps * self.batch_size / seconds,
            "elapsed_s": now - self.started,
            "mfu": mfu(self.flops_per_step, steps / seconds, self.peak),
            "peak_memory_gb": peak_memory_gb(self.device),
            "data_wait_share": self.waits.take() / seconds,
        }

    def skip(self) -> None:
        """Leave the time since the last row (a probe's) out of the next row's rates."""
        self.last_time = time.perf_counter()


def metric_row(step: int, epoch: int, means: list[float], values: StepValues) -> dict:
    """A metric row's training fields: the STEP_TERMS averaged since the last row, and the
    schedules' values as its last step used them."""
    return {
        "step": step,
        "epoch": epoch,
        **dict(zip(STEP_TERMS, means, strict=True)),
        **values.as_dict(),
    }


def progress_bar(run: PretrainRun) -> tqdm:
    """Steps done of the run, on the main process."""
    return tqdm(
        total=run.batches.total_steps,
        initial=run.start_step,
        disable=not run.ranks.is_main,
        desc=run.settings.name,
        file=sys.stderr,
        mininterval=1 if sys.stderr.isatty() else 30,
    )


def finite_means(run: PretrainRun, sums: torch.Tensor, since: int, done: int) -> list[float]:
    """The step terms' averages since step `since` over every process: the loop's only host
    sync, checked before any checkpoint is written."""
    means = (run.ranks.all_reduce_mean(sums) / (done - since)).tolist()
    if not all(math.isfinite(v) for v in means):
        raise NonFiniteLossError(
            f"pretrain {run.settings.name}: non-finite loss between steps {since} and "
            f"{done}; the last good checkpoint {run.checkpoint_path} is kept"
        )
    return means


def probe_fields(probe: PatchProbe, teacher: MultiCropNetwork) -> dict[str, float]:
    """The k-NN probe of the teacher on the val tiles, patch and CLS readings, and its time."""
    started = time.perf_counter()
    scores = probe.score(teacher.backbone, teacher.autocast_dtype)["val"]
    patch, cls = scores[PATCH], scores[CLS]
    return {
        "probe_accuracy": patch.accuracy,
        "probe_miou": patch.miou,
        "probe_cls_accuracy": cls.accuracy,
        "probe_cls_miou": cls.miou,
        "probe_s": time.perf_counter() - started,
    }


def train_steps(run: PretrainRun, metrics: MetricsLog | None) -> None:
    """The step loop, from the run's start step: a DINO step per batch, and at every log,
    checkpoint and probe step a metric row, written with the checkpoint by the main process
    (the one given `metrics`)."""
    settings, trainer, batches = run.settings, run.trainer, run.batches
    progress = progress_bar(run)
    sums = torch.zeros(len(STEP_TERMS), device=run.device)  # since the last row
    telemetry = Telemetry(run)
    trainer.student.train()
    trainer.teacher.train()
    crop_dtype = trainer.student.autocast_dtype or torch.float32
    standardise = run.dataset.tiles.standardise
    for step, batch in enumerate(telemetry.waits.batches(run.loader), start=run.start_step):
        epoch = step // batches.steps_per_epoch
        values = run.schedules.at(step, epoch)
        crops = device_views(
            batch, run.device, standardise, settings.crops, crop_dtype, run.normalisation
        )
        freeze_last_layer = epoch < settings.freeze_last_layer_epochs
        sums += trainer.step(crops, **values.as_dict(), freeze_last_layer=freeze_last_layer)

        done = step + 1
        at_checkpoint = done % settings.checkpoint_every == 0 or done == batches.total_steps
        at_probe = run.probe is not None and done % run.probe_every == 0
        if done % settings.log_every and not at_checkpoint and not at_probe:
            continue
        means = finite_means(run, sums, telemetry.last_step, done)
        row = metric_row(done, epoch, means, values) | telemetry.fields(done)
        sums.zero_()
        if at_probe and run.ranks.is_main:
            row |= probe_fields(run.probe, trainer.teacher)
            telemetry.skip()
        progress.update(done - progress.n)
        progress.set_postfix(loss=f"{means[0]:.4f}", prototypes=f"{means[4]:.0f}")
        if metrics is not None:
            metrics.write(row)
            if at_checkpoint:
                save_checkpoint(run.checkpoint_path, run.checkpoint(done))
    progress.close()


def judge_collapse(settings: PretrainSettings, run_dir: Path, world_size: int) -> None:
    """Write the collapse verdict of the run's metric rows; a collapse is logged as a
    warning."""
    # The indicators are computed per process, on its share of the batch.
    verdict = collapse_verdict(
        pd.read_csv(run_dir / METRICS_NAME), settings.out_dim, settings.batch_size // world_size
    )
    verdict.write(run_dir / COLLAPSE_NAME)
    report = log.warning if verdict.collapsed else log.info
    report("%s: collapse verdict: %s", settings.name, verdict.sentence)


def train(settings: PretrainSettings, run_dir: str | Path) -> Path:
    """Train (or resume) and return the path of the final checkpoint in `run_dir`."""
    run_dir = Path(run_dir)
    run = set_up(settings, run_dir)
    metrics = None
    if run.ranks.is_main:
        run_dir.mkdir(parents=True, exist_ok=True)
        metrics = MetricsLog(
            run_dir / METRICS_NAME,
            run.start_step,
            METRIC_FIELDS,
            (*TELEMETRY_FIELDS, *PROBE_FIELDS),
            "pretrain",
        )
        log_start(run)
    train_steps(run, metrics)
    if metrics is not None:
        metrics.close()
        if run.start_step == run.batches.total_steps:
            log.info("%s: already complete at step %d", run.checkpoint_path, run.start_step)
        judge_collapse(settings, run_dir, run.ranks.world_size)
    run.ranks.finish()
    return run.checkpoint_path
