"""The k-NN patch probe's settings (sarssl.evaluation.probe runs it)."""

from collections.abc import Mapping
from dataclasses import dataclass, fields


@dataclass(frozen=True)
class ProbeSettings:
    k: int = 20  # DINO's default
    temperature: float = 0.07  # DINO's default
    train_tiles: int = 256  # tiles sampled for the bank
    eval_tiles: int = 64  # tiles sampled for the queries
    bank_patches: int = 256  # labelled patches kept per bank tile
    batch_size: int = 16  # tiles per forward pass
    seed: int = 0


def probe_settings(section: Mapping, seed: int) -> ProbeSettings:
    """The config's probe section (its own keys; `every`, `gpu` and `threads` are the jobs')
    with the seed of the run it probes."""
    given = {f.name: section[f.name] for f in fields(ProbeSettings) if f.name in section}
    return ProbeSettings(**given | {"seed": seed})
