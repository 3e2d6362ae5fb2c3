"""sarssl: DINO self-supervised learning on Sentinel-1 seasonal composites."""

__version__ = "0.1.0"
