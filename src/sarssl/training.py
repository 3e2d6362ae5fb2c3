"""What the training loops share, as DINO's utils.py: parameter groups, per-parameter
gradient clipping, the distributed setup, the metrics log and atomic checkpoints."""

import csv
import io
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.distributed as dist
from torch import nn
from torch.utils.tensorboard import SummaryWriter

from .atomic import atomic_path, write_text_atomic


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


def save_checkpoint(path: Path, state: dict) -> None:
    with atomic_path(path) as tmp:
        torch.save(state, tmp)
