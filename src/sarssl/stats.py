"""Per-channel normalisation statistics, accumulated tile by tile.

Each tile contributes (count, mean, M2) per channel; tiles are combined with the pairwise
update of Chan, Golub and LeVeque (1979):

    n = n_a + n_b,  delta = mean_b - mean_a
    mean = mean_a + delta * n_b / n
    M2   = M2_a + M2_b + delta^2 * n_a * n_b / n

so the statistics of a million tiles never need the pixels in memory again, and stay
accurate where the naive sum of squares would cancel.
"""

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Moments:
    count: np.ndarray  # (channel,) float64
    mean: np.ndarray
    m2: np.ndarray

    @classmethod
    def empty(cls, channels: int) -> "Moments":
        zeros = np.zeros(channels, dtype=np.float64)
        return cls(zeros, zeros.copy(), zeros.copy())

    @classmethod
    def of_pixels(cls, channels: np.ndarray, mask: np.ndarray) -> "Moments":
        """Moments of (channel, row, col) values where `mask` (row, col) is True."""
        # No masked copy when every pixel counts (most tiles).
        values = channels.reshape(len(channels), -1) if mask.all() else channels[:, mask]
        if values.shape[1] == 0:
            return cls.empty(values.shape[0])
        count = np.full(values.shape[0], values.shape[1], dtype=np.float64)
        mean = values.mean(axis=1, dtype=np.float64)
        m2 = ((values - mean[:, None]) ** 2).sum(axis=1)
        return cls(count, mean, m2)

    def combine(self, other: "Moments") -> "Moments":
        n = self.count + other.count
        safe_n = np.where(n > 0, n, 1.0)
        delta = other.mean - self.mean
        mean = self.mean + delta * other.count / safe_n
        m2 = self.m2 + other.m2 + delta**2 * self.count * other.count / safe_n
        return Moments(n, mean, m2)

    @property
    def std(self) -> np.ndarray:
        """Population standard deviation (ddof=0)."""
        return np.sqrt(self.m2 / np.where(self.count > 0, self.count, 1.0))


def combine_all(parts: list[Moments], channels: int) -> Moments:
    total = Moments.empty(channels)
    for part in parts:
        total = total.combine(part)
    return total
