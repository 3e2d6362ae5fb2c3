"""The WorldCover map of a scene: the land cover as ESA WorldCover would label it.

The radar sees the land cover; the labels are a map made from Sentinel-1 and Sentinel-2,
with its own errors. WorldCover 2020 v100 agrees with independent reference points at 74.4 %
overall (Zanaga et al. 2021, ESA WorldCover 10 m 2020 v100, Product Validation Report; higher
in Europe than globally). Its errors are thematic and spatially coherent: whole fields or
stands take a neighbouring class, most often grassland for cropland and shrubland or the
other way round, shrubland for tree cover, grassland for herbaceous wetland. Here each
object is mislabelled with a class-dependent probability, to a partner drawn from the usual
confusions; over typical European scenes about 80 % of pixels keep their class.
"""

import numpy as np

from .noise import keyed_uniform

# code -> (probability that an object is mislabelled, ((partner, share), ...))
CONFUSIONS: dict[int, tuple[float, tuple[tuple[int, float], ...]]] = {
    10: (0.10, ((20, 0.6), (30, 0.4))),  # tree cover
    20: (0.35, ((30, 0.5), (10, 0.3), (60, 0.2))),  # shrubland
    30: (0.30, ((40, 0.5), (20, 0.3), (60, 0.2))),  # grassland
    40: (0.20, ((30, 0.8), (60, 0.2))),  # cropland
    50: (0.10, ((30, 0.5), (60, 0.5))),  # built-up
    60: (0.30, ((30, 0.5), (20, 0.5))),  # bare / sparse vegetation
    70: (0.10, ((60, 1.0),)),  # snow and ice
    80: (0.05, ((90, 1.0),)),  # permanent water
    90: (0.35, ((30, 0.7), (80, 0.3))),  # herbaceous wetland
    95: (0.10, ((10, 1.0),)),  # mangroves
    100: (0.30, ((60, 0.5), (30, 0.5))),  # moss and lichen
}


def worldcover_labels(codes: np.ndarray, objects: np.ndarray) -> np.ndarray:
    """WorldCover codes of each pixel: the object's true class, or for a mislabelled object
    one partner class, the same over the whole object."""
    labels = codes.copy()
    mislabelled = keyed_uniform(objects, 30)
    pick = keyed_uniform(objects, 31)
    for code, (probability, partners) in CONFUSIONS.items():
        wrong = (codes == code) & (mislabelled < probability)
        cumulative = np.cumsum([share for _, share in partners])
        choice = np.searchsorted(cumulative / cumulative[-1], pick[wrong], side="right")
        labels[wrong] = np.array([partner for partner, _ in partners], dtype=codes.dtype)[
            np.minimum(choice, len(partners) - 1)
        ]
    return labels
