"""The photometric augmentation of DINO's views for SAR, as data (sarssl.tiles.augment applies it).

DINO's colour jitter, grey scale and solarisation act on RGB and have no meaning for
backscatter in dB; the paper keeps crops and flips only, and so do its runs here (`enabled`
false). Without any photometric change, though, two views of a tile can be matched by their
mean backscatter alone. What differs between two real looks at the same ground, in dB:

- **Level** (`offset_db`, `polarisation_offset_db`): Sentinel-1's absolute radiometric
  calibration is specified to 1 dB (3 sigma), and the backscatter of land falls by roughly
  0.1-0.25 dB per degree of incidence angle, which spans 29-46 degrees across the IW swaths:
  the same field seen from another relative orbit is 1-3 dB brighter or darker. Each view
  draws one offset for both polarisations (sd `offset_db`) plus one of its own per
  polarisation (sd `polarisation_offset_db`: VH depends on the angle less than VV), so its
  VV-VH channels move by the difference, as they would.
- **Speckle level** (`speckle_db`): a seasonal mean of n GRD acquisitions (about 4.4 looks
  each, 2.2 dB of speckle in dB) keeps 2.2 / sqrt(n) dB: 0.6-0.8 dB for the 8-15 passes of a
  season. Each view adds zero-mean noise to VV and VH of every season with an sd drawn
  uniformly up to `speckle_db` (0.7 dB: at most a season with half its passes), and its
  VV-VH channels take the difference of the two noises.
- **Resolution** (`blur_sigma`, `blur_probability`): a Gaussian blur stands for coarser
  multi-looking; DINO's own blur, with its sigma range in view pixels and its probability
  per view (1.0 for the first global view, 0.1 for the second, 0.5 for the local ones).
"""

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class SarAugmentSpec:
    enabled: bool = False  # the paper's runs: crops and flips only
    offset_db: float = 1.0
    polarisation_offset_db: float = 0.3
    speckle_db: float = 0.7
    blur_sigma: tuple[float, float] = (0.1, 2.0)  # DINO's GaussianBlur, in view pixels
    # DINO's probabilities: the first global view, the second, each local view.
    blur_probability: tuple[float, float, float] = (1.0, 0.1, 0.5)

    def blur_probability_of(self, view: int) -> float:
        """The blur probability of view `view` (the two global views first)."""
        return self.blur_probability[min(view, 2)]

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> "SarAugmentSpec":
        tuples = {"blur_sigma", "blur_probability"}
        given: dict[str, Any] = {k: tuple(v) if k in tuples else v for k, v in values.items()}
        return cls(**given)
