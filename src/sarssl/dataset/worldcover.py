"""ESA WorldCover classes: codes, names, official colours, and the code -> index mapping."""

from dataclasses import dataclass

import numpy as np

IGNORE_INDEX = 255
WORLDCOVER_NODATA = 0


@dataclass(frozen=True)
class LandCoverClass:
    code: int
    name: str
    colour: str  # official ESA WorldCover legend colour


CLASSES: tuple[LandCoverClass, ...] = (
    LandCoverClass(10, "Tree cover", "#006400"),
    LandCoverClass(20, "Shrubland", "#ffbb22"),
    LandCoverClass(30, "Grassland", "#ffff4c"),
    LandCoverClass(40, "Cropland", "#f096ff"),
    LandCoverClass(50, "Built-up", "#fa0000"),
    LandCoverClass(60, "Bare / sparse vegetation", "#b4b4b4"),
    LandCoverClass(70, "Snow and ice", "#f0f0f0"),
    LandCoverClass(80, "Permanent water bodies", "#0064c8"),
    LandCoverClass(90, "Herbaceous wetland", "#0096a0"),
    LandCoverClass(95, "Mangroves", "#00cf75"),
    LandCoverClass(100, "Moss and lichen", "#fae6a0"),
)
CODES: tuple[int, ...] = tuple(c.code for c in CLASSES)
NUM_CLASSES = len(CLASSES)

# Lookup table over every uint8 value: class index, IGNORE_INDEX for nodata, and a sentinel for
# codes that are not WorldCover classes so that they can be reported.
_UNKNOWN = 254
_LUT = np.full(256, _UNKNOWN, dtype=np.uint8)
_LUT[WORLDCOVER_NODATA] = IGNORE_INDEX
for _index, _code in enumerate(CODES):
    _LUT[_code] = _index


def unknown_codes(codes: np.ndarray) -> list[int]:
    """Values in `codes` that are neither WorldCover classes nor nodata."""
    values = np.unique(codes)
    out_of_range = values[(values < 0) | (values > 255)]
    in_range = values[(values >= 0) & (values <= 255)].astype(np.int64)
    return sorted(int(v) for v in (*out_of_range, *in_range[_LUT[in_range] == _UNKNOWN]))


def codes_to_indices(codes: np.ndarray) -> np.ndarray:
    """Map WorldCover codes to class indices 0..10 and nodata (0) to IGNORE_INDEX.

    Raises ValueError listing the values that are not WorldCover codes.
    """
    bad = unknown_codes(codes)
    if bad:
        raise ValueError(f"label codes {bad} are not ESA WorldCover classes {list(CODES)}")
    return _LUT[codes.astype(np.uint8)]
