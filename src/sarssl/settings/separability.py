"""The separability table's settings and goals (sarssl.evaluation.separability computes it)."""

from dataclasses import dataclass

# Goals of the synthetic data, for scenes as hard per pixel as real SAR: no per-pixel
# classifier above PIXEL_MIOU_GOAL, and a U-Net that sees context at least CONTEXT_GAIN_GOAL
# above the best per-pixel classifier (the paper's U-Net on real SAR, with context, scores
# 0.38-0.48 MIoU).
PIXEL_MIOU_GOAL = 0.30
CONTEXT_GAIN_GOAL = 0.05
# The input column of the context check's row (the per-pixel rows read one pixel).
CONTEXT_INPUT = "tile"


@dataclass(frozen=True)
class SeparabilitySettings:
    max_tiles: int = 256  # tiles sampled (seeded) per split: bounds reading at paper scale
    pixels_per_tile: int = 2048  # labelled pixels sampled (seeded) per tile
    bank: int = 20_000  # train samples the k-NN searches (a seeded sample)
    k: int = 15
    patch_px: int = 16  # the ViT's patch
    ridge: float = 1e-3  # added to LDA's covariance, relative to its mean variance
    seed: int = 0
