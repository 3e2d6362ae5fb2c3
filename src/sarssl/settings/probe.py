"""The k-NN patch probe's settings (sarssl.probe runs it)."""

from dataclasses import dataclass


@dataclass(frozen=True)
class ProbeSettings:
    k: int = 20  # DINO's default
    temperature: float = 0.07  # DINO's default
    train_tiles: int = 256  # tiles sampled for the bank
    eval_tiles: int = 64  # tiles sampled for the queries
    bank_patches: int = 256  # labelled patches kept per bank tile
    batch_size: int = 16  # tiles per forward pass
    seed: int = 0
