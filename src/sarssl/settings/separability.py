"""The separability table's settings (sarssl.separability computes it)."""

from dataclasses import dataclass


@dataclass(frozen=True)
class SeparabilitySettings:
    max_tiles: int = 256  # tiles sampled (seeded) per split: bounds reading at paper scale
    pixels_per_tile: int = 2048  # labelled pixels sampled (seeded) per tile
    bank: int = 20_000  # train samples the k-NN searches (a seeded sample)
    k: int = 15
    patch_px: int = 16  # the ViT's patch
    ridge: float = 1e-3  # added to LDA's covariance, relative to its mean variance
    seed: int = 0
