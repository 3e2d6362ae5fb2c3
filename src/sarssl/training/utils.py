"""The training utilities, as DINO's utils.py: the optimizer's parameter groups (of
pre-training and fine-tuning), and pre-training's per-parameter gradient clipping,
distributed setup, metrics log, model FLOPs, time spent waiting for data and the collapse
verdict of its metrics."""

import csv
import dataclasses
import io
import json
import math
import os
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import pandas as pd
import torch
import torch.distributed as dist
from torch import nn
from torch.utils.flop_counter import FlopCounterMode
from torch.utils.tensorboard import SummaryWriter

from sarssl.atomic import write_text_atomic


def parameter_groups(
    network: nn.Module,
    lr_scales: Mapping[str, float] | None = None,
    decay_biases_and_norms: bool = False,
) -> list[dict]:
    """The optimizer groups of the trainable parameters of `network`. Weight decay on weights
    only, not on biases and norms (DINO's get_params_groups: their groups have weight_decay
    0), unless `decay_biases_and_norms`. `lr_scales`: the factor on the learning rate of the
    parameters under a name prefix (a pre-trained backbone's), 1 elsewhere; each group holds
    its own as "lr_scale". Decayed groups first, then unscaled first; empty ones left out."""
    scales = {"": 1.0, **(lr_scales or {})}
    grouped: dict[tuple[bool, str], list[nn.Parameter]] = {
        (decayed, prefix): [] for decayed in (True, False) for prefix in scales
    }
    for name, parameter in network.named_parameters():
        if not parameter.requires_grad:
            continue
        prefix = next((p for p in scales if p and name.startswith(p)), "")
        is_bias_or_norm = name.endswith(".bias") or parameter.ndim == 1
        grouped[decay_biases_and_norms or not is_bias_or_norm, prefix].append(parameter)
    return [
        {"params": params, "lr_scale": scales[prefix]} | ({} if decayed else {"weight_decay": 0.0})
        for (decayed, prefix), params in grouped.items()
        if params
    ]


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

    def finish(self) -> None:
        """Wait for every process, then leave the process group."""
        if self.world_size > 1:
            dist.barrier()
            dist.destroy_process_group()


class MetricsLog:
    """Metric rows as CSV (rewritten up to the resume step on resume) and TensorBoard (in
    `tensorboard/` beside the CSV): every row has the `fields`, some also the `optional`
    ones."""

    def __init__(
        self,
        path: Path,
        start_step: int,
        fields: Sequence[str],
        optional: Sequence[str] = (),
        tag: str = "train",
    ):
        self.path = path
        self.required, self.fields, self.tag = tuple(fields), (*fields, *optional), tag
        kept = self._rows_up_to(start_step)
        write_text_atomic(self.path, self._format(kept))
        self.writer = SummaryWriter(
            str(path.parent / "tensorboard"), purge_step=start_step if start_step else None
        )

    def _rows_up_to(self, step: int) -> list[dict]:
        if not self.path.is_file():
            return []
        rows = csv.DictReader(io.StringIO(self.path.read_text()))
        # A row cut short by a kill has empty fields: dropped with the rows after the resume.
        return [r for r in rows if all(r.get(f) for f in self.required) and int(r["step"]) <= step]

    def _format(self, rows: list[dict]) -> str:
        out = io.StringIO()
        writer = csv.DictWriter(
            out, fieldnames=self.fields, lineterminator="\n", extrasaction="ignore"
        )
        writer.writeheader()
        writer.writerows(rows)
        return out.getvalue()

    def write(self, row: dict) -> None:
        with open(self.path, "a") as stream:
            csv.DictWriter(stream, fieldnames=self.fields, lineterminator="\n").writerow(row)
        for key in self.fields:
            if key != "step" and row.get(key) is not None:
                self.writer.add_scalar(f"{self.tag}/{key}", row[key], row["step"])
        self.writer.flush()

    def close(self) -> None:
        self.writer.close()


def counted_flops(run: Callable[[], object]) -> float:
    """Model FLOPs of `run()`, counted by torch.utils.flop_counter (matrix products,
    convolutions and attention; on the `meta` device from shapes alone)."""
    counter = FlopCounterMode(display=False)
    with counter:
        run()
    return float(counter.get_total_flops())


Batch = TypeVar("Batch")


class DataWait:
    """Seconds the training loop spends blocked on its loader's next batch, summed until
    taken. On a GPU the host runs ahead of the device, so this is the time the device may
    starve: near zero while the loader keeps up (its prefetched batches are ready), the
    loader's shortfall when it does not."""

    def __init__(self, clock: Callable[[], float] = time.perf_counter) -> None:
        self.seconds = 0.0
        self.clock = clock  # seconds; a test gives its own

    def batches(self, loader: Iterable[Batch]) -> Iterator[Batch]:
        """The loader's batches; starting its workers counts as waiting too."""
        start = self.clock()
        for batch in loader:
            self.seconds += self.clock() - start
            yield batch
            start = self.clock()

    def take(self) -> float:
        """The seconds waited since the last take."""
        seconds, self.seconds = self.seconds, 0.0
        return seconds


# The collapse verdict. A collapsed teacher gives every tile the same output, whatever that
# output is: uniform over the K prototypes, one prototype, or any fixed distribution. All
# three show in one number made of the two entropies logged per batch (sarssl.models.dino): the
# mutual information between a teacher output of the batch and its prototype,
#     I = batch_entropy - teacher_entropy = H(mean_i p_i) - mean_i H(p_i) >= 0,
# 0 exactly when all p_i are equal (Jensen). exp(I) counts the groups the teacher splits a
# batch into: b tiles one-hot on distinct prototypes give log b, g equal groups log g, equal
# outputs 0. Its ceiling, the capacity, is min(b, K) for b tiles per process once the two
# global crops of a tile agree, as DINO trains them to (2b before they do).
#
# Read over the last COLLAPSE_WINDOW of the run's steps (the rows logged there, at least the
# last one): collapse is where a run ends up, and healthy runs also pass through batches of
# few groups early (lr warm-up, frozen last layer, teacher temperature warm-up), while one
# row is the mean of only `log_every` batches.
COLLAPSE_WINDOW = 0.1
# Full collapse: closer to one group per batch than to two.
FULL_COLLAPSE_GROUPS = 1.5
# Partial collapse: fewer groups than half the capacity. A teacher that spread tiles at
# random over M equally used prototypes would give a batch of b about M (1 - exp(-b / M))
# distinct ones; half the batch is M = 0.63 b. Below it the teacher acts as if it had fewer
# prototypes than a batch has tiles, whereas the centering spreads all K >> b over the data
# and a learning DINO wins about one prototype per tile of a batch.
PARTIAL_COLLAPSE_SHARE = 0.5
# A full collapse is named uniform when each tile's teacher output is within log 2 of the
# uniform one (KL(p || uniform) = log K - H(p) <= log 2: spread over K / 2 prototypes or
# more), and one prototype when the batch-mean output has fewer than FULL_COLLAPSE_GROUPS
# prototypes' worth of entropy; otherwise every tile gets one and the same distribution.
UNIFORM_ENTROPY_GAP = math.log(2)


@dataclass(frozen=True)
class CollapseVerdict:
    """The collapse indicators of a pre-training, means over its metric rows of steps
    `first_step` to `last_step`, and the verdict they give (thresholds above)."""

    first_step: int
    last_step: int
    teacher_entropy: float
    batch_entropy: float
    prototypes: float
    tiles_per_batch: int  # per process, as the indicators are computed
    out_dim: int

    @property
    def groups(self) -> float:
        return math.exp(self.batch_entropy - self.teacher_entropy)

    @property
    def capacity(self) -> int:
        return min(self.tiles_per_batch, self.out_dim)

    @property
    def verdict(self) -> str:
        """ok, partial collapse, full collapse, or unknown: with one tile per process a
        batch cannot show whether the teacher tells tiles apart."""
        if self.capacity < 2:
            return "unknown"
        if self.groups < FULL_COLLAPSE_GROUPS:
            return "full collapse"
        if self.groups < PARTIAL_COLLAPSE_SHARE * self.capacity:
            return "partial collapse"
        return "ok"

    @property
    def kind(self) -> str | None:
        """What every tile gets in a full collapse."""
        if self.verdict != "full collapse":
            return None
        if self.teacher_entropy >= math.log(self.out_dim) - UNIFORM_ENTROPY_GAP:
            return "uniform"
        if self.batch_entropy < math.log(FULL_COLLAPSE_GROUPS):
            return "one prototype"
        return "one distribution"

    @property
    def collapsed(self) -> bool:
        return self.verdict in ("partial collapse", "full collapse")

    @property
    def sentence(self) -> str:
        name = f"{self.verdict} ({self.kind})" if self.kind else self.verdict
        return (
            f"{name}: {self.groups:.1f} groups of tiles told apart per batch of "
            f"{self.tiles_per_batch} = exp(batch-mean entropy {self.batch_entropy:.2f} - "
            f"per-tile entropy {self.teacher_entropy:.2f}), {self.groups / self.capacity:.0%} "
            f"of min(batch, out_dim) (partial collapse below {PARTIAL_COLLAPSE_SHARE:.0%}, "
            f"full below {FULL_COLLAPSE_GROUPS:g} groups); {self.prototypes:.1f} of "
            f"{self.out_dim} prototypes win per batch (log {self.out_dim} = "
            f"{math.log(self.out_dim):.2f}); metric rows of {self.steps}"
        )

    @property
    def steps(self) -> str:
        if self.first_step == self.last_step:
            return f"step {self.last_step}"
        return f"steps {self.first_step}-{self.last_step}"

    def as_dict(self) -> dict:
        return {
            "verdict": self.verdict,
            "kind": self.kind,
            "sentence": self.sentence,
            **dataclasses.asdict(self),
            "groups": self.groups,
            "capacity": self.capacity,
            "thresholds": {
                "window": COLLAPSE_WINDOW,
                "full_collapse_groups": FULL_COLLAPSE_GROUPS,
                "partial_collapse_share": PARTIAL_COLLAPSE_SHARE,
                "uniform_entropy_gap": UNIFORM_ENTROPY_GAP,
            },
        }

    def write(self, path: str | Path) -> None:
        write_text_atomic(path, json.dumps(self.as_dict(), indent=2) + "\n")

    @classmethod
    def read(cls, path: str | Path) -> "CollapseVerdict":
        """The indicators of a written verdict (the verdict follows from them)."""
        stored = json.loads(Path(path).read_text())
        return cls(**{field.name: stored[field.name] for field in dataclasses.fields(cls)})


def collapse_verdict(metrics: pd.DataFrame, out_dim: int, tiles_per_batch: int) -> CollapseVerdict:
    """The collapse verdict of the pre-training metric rows `metrics` (step,
    teacher_entropy, batch_entropy, prototypes) of a head of `out_dim` prototypes trained on
    `tiles_per_batch` tiles per process: their means over the last COLLAPSE_WINDOW of the
    steps."""
    last_step = int(metrics["step"].iloc[-1])
    window = metrics[metrics["step"] > last_step * (1 - COLLAPSE_WINDOW)]
    means = window[["teacher_entropy", "batch_entropy", "prototypes"]].mean()
    return CollapseVerdict(
        first_step=int(window["step"].iloc[0]),
        last_step=last_step,
        teacher_entropy=float(means["teacher_entropy"]),
        batch_entropy=float(means["batch_entropy"]),
        prototypes=float(means["prototypes"]),
        tiles_per_batch=tiles_per_batch,
        out_dim=out_dim,
    )
