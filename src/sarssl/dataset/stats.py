"""Per-channel normalisation statistics, accumulated tile by tile.

Each tile contributes (count n_i, mean m_i, M2_i = sum of squared deviations from m_i) per
channel. Tiles are pooled exactly (the parallel-axis form of Chan, Golub and LeVeque, 1979):

    N    = sum n_i
    mean = sum n_i m_i / N
    M2   = sum M2_i + sum n_i (m_i - mean)^2

so the statistics of a million tiles never need the pixels again, and stay accurate where the
naive sum of squares would cancel.
"""

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Moments:
    count: np.ndarray  # (channel,) float64
    mean: np.ndarray
    m2: np.ndarray

    @classmethod
    def of_pixels(cls, channels: np.ndarray, mask: np.ndarray) -> "Moments":
        """Moments of (channel, row, col) values where `mask` (row, col) is True."""
        # No masked copy when every pixel counts (most tiles).
        values = channels.reshape(len(channels), -1) if mask.all() else channels[:, mask]
        n_channels, n_pixels = values.shape
        if n_pixels == 0:
            zeros = np.zeros(n_channels, dtype=np.float64)
            return cls(zeros, zeros.copy(), zeros.copy())
        mean = values.mean(axis=1, dtype=np.float64)
        m2 = ((values - mean[:, None]) ** 2).sum(axis=1)
        return cls(np.full(n_channels, float(n_pixels)), mean, m2)

    @classmethod
    def pooled(cls, count: np.ndarray, mean: np.ndarray, m2: np.ndarray) -> "Moments":
        """Pool per-tile moments given as (tile, channel) arrays; empty tiles add nothing."""
        total = count.sum(axis=0)
        safe_total = np.where(total > 0, total, 1.0)
        pooled_mean = (count * mean).sum(axis=0) / safe_total
        pooled_m2 = m2.sum(axis=0) + (count * (mean - pooled_mean) ** 2).sum(axis=0)
        return cls(total, pooled_mean, pooled_m2)

    @property
    def std(self) -> np.ndarray:
        """Population standard deviation (ddof=0)."""
        return np.sqrt(self.m2 / np.where(self.count > 0, self.count, 1.0))
