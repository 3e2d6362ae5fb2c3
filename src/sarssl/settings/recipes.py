"""Named DINO recipes: the values a `dino.recipe` puts under the config's dino section.

- `paper`: what "Exploring DINO ... for SAR" states (PretrainSettings' defaults: student
  temperature 0.03, teacher 0.01 -> 0.001 over 5 epochs, center momentum 0.99, lr 1e-6,
  crops and flips only), DINO's defaults for the rest.
- `dino`: facebookresearch/dino's own defaults (main_dino.py), each with its flag below. The
  temperatures, center momentum and learning rate are DINO's where the paper's differ; the
  multi-crop is DINO's 8 local crops.

A run of DINO's recipe far shorter than DINO's 100 epochs takes its epoch-counted values
scaled by `scaled_to_run` (the rule is in its docstring); the config says so beside them.
"""

from collections.abc import Mapping
from typing import Any

PAPER = "paper"
DINO = "dino"

# DINO's defaults, main_dino.py's argparse flags (and DINOLoss's arguments), for ViT-S/16.
DINO_RECIPE: dict[str, Any] = {
    "student_temp": 0.1,  # DINOLoss(student_temp=0.1)
    "warmup_teacher_temp": 0.04,  # --warmup_teacher_temp 0.04
    # --teacher_temp: 0.04 by default; README's 100-epoch ViT-S/16 run warms it up to 0.07
    # over --warmup_teacher_temp_epochs 30, the option the issue of the recipe names.
    "teacher_temp": 0.07,
    "warmup_teacher_temp_epochs": 30,
    "center_momentum": 0.9,  # DINOLoss(center_momentum=0.9)
    "lr": 5e-4,  # --lr 0.0005, per 256 images, scaled linearly to the batch
    "lr_reference_batch": 256,
    "min_lr": 1e-6,  # --min_lr
    "warmup_epochs": 10,  # --warmup_epochs
    "weight_decay": 0.04,  # --weight_decay
    "weight_decay_end": 0.4,  # --weight_decay_end
    "teacher_momentum": 0.996,  # --momentum_teacher, cosine to 1
    "clip_grad": 3.0,  # --clip_grad
    "freeze_last_layer_epochs": 1,  # --freeze_last_layer
    "drop_path_rate": 0.1,  # --drop_path_rate
    "out_dim": 65536,  # --out_dim
    "local_crops": 8,  # --local_crops_number
    "global_scale": (0.4, 1.0),  # --global_crops_scale
    "local_scale": (0.05, 0.4),  # --local_crops_scale
}
RECIPES: dict[str, dict[str, Any]] = {PAPER: {}, DINO: DINO_RECIPE}

# DINO's centre (center momentum 0.9) averages the teacher's output over 10 steps.
CENTRE_WINDOW_STEPS = 1 / (1 - 0.9)
DINO_EPOCHS = 100  # --epochs: the run DINO's epoch-counted values belong to
# DINO's teacher averages over 1 / (1 - 0.996) = 250 steps of a run of 100 ImageNet epochs
# at its batch of 1024 (1,251 steps an epoch): 0.2 % of the run.
DINO_RUN_STEPS = DINO_EPOCHS * (1_281_167 // 1024)
EPOCH_COUNTED = ("warmup_epochs", "warmup_teacher_temp_epochs", "freeze_last_layer_epochs")


def scaled_to_run(recipe: Mapping[str, Any], epochs: int, steps: int) -> dict[str, Any]:
    """A recipe's values for a run of `epochs` epochs and `steps` steps in all, far shorter
    than DINO's, by the rule DINO's own schedules imply: they are shaped by the run's length.

    - Warm-ups and the frozen last layer are counted in epochs of a 100-epoch run: each keeps
      its share of the run (10 % for the lr warm-up, 30 % for the teacher temperature, 1 %
      for the last layer), rounded, and at least 1 epoch where DINO has one.
    - The teacher's EMA averages over 1 / (1 - m) steps, 250 in DINO: 0.2 % of its run. The
      window keeps that share of the run, but never falls below the 10 steps over which
      DINO's centre averages the teacher's output (center momentum 0.9): a teacher that
      moved faster than its centre adapts would outrun the centering that keeps it from
      collapse (and DINO shows a teacher copied from the student fails). So m = max(0.9,
      1 - 1 / (0.002 x steps)), at most DINO's 0.996; the cosine to 1 is kept.
    """
    values = dict(recipe)
    for key in EPOCH_COUNTED:
        if key in values:
            share = int(values[key]) / DINO_EPOCHS
            values[key] = max(1, round(share * epochs)) if share else 0
    if "teacher_momentum" in values:
        momentum = float(values["teacher_momentum"])
        window = max(steps / ((1 - momentum) * DINO_RUN_STEPS), CENTRE_WINDOW_STEPS)
        values["teacher_momentum"] = min(momentum, 1 - 1 / window)
    return values
