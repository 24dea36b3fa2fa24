"""The statistics the reports print: sampling intervals and paired differences.

Two sources of noise matter here: which test images are sampled (a binomial effect, largest
for one accuracy on its own) and the attacks' random starts (the spread over runs). Methods
are compared on the same images, so their difference is estimated per image (paired), which
removes most of the image-sampling noise.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

Z95 = 1.959963984540054  # two-sided 95% normal quantile


def wilson_interval(accuracy: float, n: int, z: float = Z95) -> tuple[float, float]:
    """95% Wilson score interval of a proportion ``accuracy`` observed on ``n`` images."""
    if n <= 0:
        raise ValueError(f"n must be >= 1, got {n}")
    if not 0.0 <= accuracy <= 1.0:
        raise ValueError(f"accuracy must be in [0, 1], got {accuracy}")
    denom = 1 + z * z / n
    centre = (accuracy + z * z / (2 * n)) / denom
    half = z * math.sqrt(accuracy * (1 - accuracy) / n + z * z / (4 * n * n)) / denom
    return max(0.0, centre - half), min(1.0, centre + half)


@dataclass(frozen=True)
class PairedDifference:
    """Mean accuracy difference ``a - b`` over the same images, with a 95% interval.

    Each image contributes its fraction of runs classified correctly under ``a`` minus the
    same under ``b``; the interval is mean +- 1.96 standard errors of those per-image values.
    """

    mean: float
    low: float
    high: float
    n: int

    @property
    def resolved(self) -> bool:
        """True when the interval excludes zero."""
        return self.low > 0 or self.high < 0

    def points(self) -> str:
        """``"-1.33 [-2.10, -0.56]"`` in accuracy points."""
        return f"{100 * self.mean:+.2f} [{100 * self.low:+.2f}, {100 * self.high:+.2f}]"


def paired_difference(outcomes_a: np.ndarray, outcomes_b: np.ndarray) -> PairedDifference:
    """Compares two attacks' ``(runs, N)`` bool "still correct" outcomes on the same N images."""
    a = np.asarray(outcomes_a, dtype=np.float64)
    b = np.asarray(outcomes_b, dtype=np.float64)
    if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[1]:
        raise ValueError(f"outcomes must be (runs, N) on the same N images, got {a.shape} and {b.shape}")
    d = a.mean(axis=0) - b.mean(axis=0)
    n = d.size
    mean = float(d.mean())
    se = float(d.std(ddof=1) / math.sqrt(n)) if n > 1 else float("inf")
    return PairedDifference(mean=mean, low=mean - Z95 * se, high=mean + Z95 * se, n=n)


def run_spread(accuracies: np.ndarray) -> tuple[float, float, float]:
    """``(min, max, standard deviation)`` of per-run accuracies (sd 0 for a single run)."""
    acc = np.asarray(accuracies, dtype=np.float64)
    sd = float(acc.std(ddof=1)) if acc.size > 1 else 0.0
    return float(acc.min()), float(acc.max()), sd
