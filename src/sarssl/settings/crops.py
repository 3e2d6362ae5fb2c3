"""DINO's multi-crop, as data: the sizes, scales and number of the views cut from a tile
(sarssl.tiles.multicrop cuts them)."""

from dataclasses import dataclass


@dataclass(frozen=True)
class CropSpec:
    global_px: int = 448
    global_scale: tuple[float, float] = (0.4, 1.0)
    local_px: int = 192
    local_scale: tuple[float, float] = (0.05, 0.4)
    local_crops: int = 8

    @property
    def n_crops(self) -> int:
        return 2 + self.local_crops

    def size(self, view: int) -> int:
        """Output side of view `view` (the two global views first)."""
        return self.global_px if view < 2 else self.local_px
