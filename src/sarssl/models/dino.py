"""DINO (Caron et al. 2021) for SAR: projection head, loss with teacher centering, schedules
and the teacher's exponential moving average.

Where the paper ("Exploring DINO ... for SAR") is silent, this follows the original DINO:
head MLP 3 layers (hidden 2048, GELU), bottleneck 256, L2-normalised, weight-normalised last
layer with its norm fixed to 1 (norm_last_layer); cross-entropy between the teacher's
softmax of each global crop and the student's log-softmax of every other crop; centering
of the teacher with an EMA of its batch mean.
Head outputs and the loss are always computed in float32: temperatures of 0.03 (student) and
0.001 (teacher) would amplify bf16 rounding into the logits.
"""

import itertools
import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn


class DINOHead(nn.Module):
    def __init__(
        self,
        in_dim: int,
        out_dim: int = 65536,
        hidden_dim: int = 2048,
        bottleneck_dim: int = 256,
        layers: int = 3,
        norm_last_layer: bool = True,
    ):
        super().__init__()
        dims = [in_dim] + [hidden_dim] * (layers - 1)
        blocks: list[nn.Module] = []
        for a, b in itertools.pairwise(dims):
            blocks += [nn.Linear(a, b), nn.GELU()]
        blocks.append(nn.Linear(dims[-1], bottleneck_dim))
        self.mlp = nn.Sequential(*blocks)
        for module in self.mlp:
            if isinstance(module, nn.Linear):
                nn.init.trunc_normal_(module.weight, std=0.02)
                nn.init.zeros_(module.bias)
        self.last_layer = nn.utils.parametrizations.weight_norm(
            nn.Linear(bottleneck_dim, out_dim, bias=False)
        )
        magnitude = self.last_layer.parametrizations.weight.original0
        with torch.no_grad():
            magnitude.fill_(1.0)
        # A fixed norm of 1 stabilises training (DINO's norm_last_layer).
        magnitude.requires_grad = not norm_last_layer

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.mlp(x.float())
        return self.last_layer(F.normalize(x, dim=-1, p=2))


@dataclass(frozen=True)
class LossTerms:
    """The loss and what tells learning from collapse (all detached but the loss).

    At the paper's teacher temperature of 0.001 each teacher distribution is one-hot by
    construction, so its entropy (`teacher_entropy`) is about 0 whether the run learns or
    collapses. Collapse shows in the distribution over the batch instead:
    `batch_entropy`, the entropy of the batch-mean teacher distribution, -> 0 when every
    tile lands on one prototype and -> log K when the teacher is uniform; `prototypes`, the
    number of prototypes that win (argmax) for some tile of the batch, -> 1 on collapse.
    """

    loss: torch.Tensor
    teacher_entropy: torch.Tensor  # mean entropy of the teacher's distributions
    kl: torch.Tensor  # mean KL(teacher || student) over the crop pairs of the loss
    batch_entropy: torch.Tensor  # entropy of the batch-mean teacher distribution
    prototypes: torch.Tensor  # distinct winning prototypes in this process's batch


def collapse_indicators(teacher_p: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(batch entropy, winning prototypes) of teacher distributions (n, K); no host sync."""
    mean = teacher_p.mean(dim=0)
    batch_entropy = -(mean * torch.log(mean.clamp_min(1e-30))).sum()
    winners = torch.zeros(teacher_p.shape[1], device=teacher_p.device)
    winners.index_fill_(0, teacher_p.argmax(dim=1), 1.0)
    return batch_entropy, winners.sum()


class DINOLoss(nn.Module):
    def __init__(self, out_dim: int, n_crops: int, student_temp: float, center_momentum: float):
        super().__init__()
        self.n_crops = n_crops
        self.student_temp = student_temp
        self.center_momentum = center_momentum
        self.register_buffer("center", torch.zeros(1, out_dim))

    def forward(
        self, student_output: torch.Tensor, teacher_output: torch.Tensor, teacher_temp: float
    ) -> LossTerms:
        """student_output: (n_crops * batch, K), global crops first; teacher_output: (2 *
        batch, K), the two global crops. Updates the center after computing the loss."""
        student_output, teacher_output = student_output.float(), teacher_output.float()
        student_logp = F.log_softmax(student_output / self.student_temp, dim=-1).chunk(self.n_crops)
        teacher_p = F.softmax((teacher_output - self.center) / teacher_temp, dim=-1).detach()
        teacher_crops = teacher_p.chunk(2)
        cross_entropy, pairs = teacher_output.new_zeros(()), 0
        for t_index, p in enumerate(teacher_crops):
            for s_index, logq in enumerate(student_logp):
                if s_index == t_index:  # the same view seen by both: skipped, as in DINO
                    continue
                cross_entropy = cross_entropy + (-p * logq).sum(dim=-1).mean()
                pairs += 1
        cross_entropy = cross_entropy / pairs
        entropy = (-teacher_p * torch.log(teacher_p.clamp_min(1e-30))).sum(dim=-1).mean()
        self.update_center(teacher_output)
        return LossTerms(
            cross_entropy,
            entropy.detach(),
            (cross_entropy - entropy).detach(),
            *collapse_indicators(teacher_p),
        )

    @torch.no_grad()
    def update_center(self, teacher_output: torch.Tensor) -> None:
        """center <- m * center + (1 - m) * mean of the teacher outputs over all processes."""
        batch_sum = teacher_output.sum(dim=0, keepdim=True)
        count = torch.tensor(float(len(teacher_output)), device=teacher_output.device)
        if dist.is_available() and dist.is_initialized():
            dist.all_reduce(batch_sum)
            dist.all_reduce(count)
        batch_mean = batch_sum / count
        self.center.mul_(self.center_momentum).add_(batch_mean, alpha=1 - self.center_momentum)


def cosine_schedule(
    base: float,
    final: float,
    epochs: int,
    steps_per_epoch: int,
    warmup_epochs: int = 0,
    warmup_start: float = 0.0,
) -> np.ndarray:
    """One value per step: linear warm-up from `warmup_start` to `base`, then a cosine from
    `base` to `final` (DINO's schedules of learning rate, weight decay, teacher momentum)."""
    warmup_steps = warmup_epochs * steps_per_epoch
    warmup = np.linspace(warmup_start, base, warmup_steps)
    steps = np.arange(epochs * steps_per_epoch - warmup_steps)
    cosine = final + 0.5 * (base - final) * (1 + np.cos(math.pi * steps / len(steps)))
    return np.concatenate([warmup, cosine])


def teacher_temperature_schedule(
    warmup_temp: float, temp: float, warmup_epochs: int, epochs: int
) -> np.ndarray:
    """One value per epoch: linear from `warmup_temp` to `temp` over `warmup_epochs`, then
    constant (the paper: 0.01 -> 0.001 over the first 5 epochs)."""
    return np.concatenate(
        [np.linspace(warmup_temp, temp, warmup_epochs), np.full(epochs - warmup_epochs, temp)]
    )


@torch.no_grad()
def ema_update(teacher: list[torch.Tensor], student: list[torch.Tensor], momentum: float) -> None:
    """teacher <- momentum * teacher + (1 - momentum) * student, in one fused pass."""
    torch._foreach_mul_(teacher, momentum)
    torch._foreach_add_(teacher, student, alpha=1 - momentum)
