"""The record a DINO pre-training saves (`last.pt` in its run folder, published as
`checkpoint.pt`): each field named once here, and the dict the file holds, whose keys are
the field names, as in every checkpoint written so far.

Torch-free: the networks' state dicts and the random state are held as they are, loosely
typed; reading and writing the file with torch is sarssl.models.backbone's and
sarssl.training.pretrain's.
"""

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

# The two networks of a checkpoint, by the field that holds each.
Network = Literal["student", "teacher"]


@dataclass(frozen=True)
class Checkpoint:
    step: int  # steps done: it fixes the schedules and the data position of a resumption
    settings: Mapping[str, Any]  # PretrainSettings.as_dict() of the run
    normalisation: Mapping[str, Any]  # Normalisation.as_dict() of the train tiles
    tiles: int  # train tiles
    student: Mapping[str, Any]  # state dicts of the networks, the optimizer and the loss
    teacher: Mapping[str, Any]
    optimizer: Mapping[str, Any]
    loss: Mapping[str, Any]  # DINO's loss center
    torch_rng: Any  # torch.get_rng_state()
    device: str | None = None  # "<device> x <processes>"; absent from the earliest files

    def network(self, which: Network) -> Mapping[str, Any]:
        """The state dict of the student or the teacher (head included)."""
        return self.student if which == "student" else self.teacher

    def to_dict(self) -> dict[str, Any]:
        # Not dataclasses.asdict: it would deep-copy every tensor.
        return {field.name: getattr(self, field.name) for field in dataclasses.fields(self)}

    @classmethod
    def from_dict(cls, stored: Mapping[str, Any]) -> "Checkpoint":
        names = {field.name for field in dataclasses.fields(cls)}
        return cls(**{key: value for key, value in stored.items() if key in names})
