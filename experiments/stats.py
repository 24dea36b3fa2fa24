"""The statistics the reports print: sampling intervals, paired differences and their tests.

Two sources of noise matter here: which test images are sampled (a binomial effect, largest
for one accuracy on its own) and the attacks' random starts (the spread over runs). Methods
are compared on the same images, so their difference is estimated per image (paired), which
removes most of the image-sampling noise.

Two attacks usually differ on few images (5-30 "discordant" images in 300), where a normal
interval is optimistic. So every paired comparison also gets an exact test of "no difference":

* one run each: the exact McNemar test, a two-sided binomial test with p = 1/2 on the
  discordant images (:func:`sign_test_p`, integer arithmetic);
* several runs: the exact sign-flip (permutation) test on the per-image differences of the
  number of runs still correct (:func:`sign_flip_p`): under "no difference" each image's
  difference is as likely positive as negative. Its null distribution is enumerated exactly
  (by convolution over the images, equal to listing all 2^n sign patterns) up to
  ``EXACT_SIGN_FLIP_LIMIT`` discordant images, and taken from the normal approximation
  beyond (the method is named beside every p-value).

:func:`holm` adjusts a family of p-values for multiplicity (Holm's step-down method).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction
from typing import Sequence

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


# Below this many discordant images the normal interval is flagged as approximate.
FEW_DISCORDANT = 30
# Up to this many nonzero per-image differences the sign-flip distribution is enumerated.
EXACT_SIGN_FLIP_LIMIT = 2000

MCNEMAR = "exact McNemar"
SIGN_FLIP = "exact sign-flip"
SIGN_FLIP_NORMAL = "sign-flip, normal approximation"


def sign_test_p(positive: int, negative: int) -> float:
    """Exact two-sided sign test (McNemar's exact test on discordant pairs).

    ``positive`` and ``negative`` discordant pairs, ``n`` = their sum: under the null each is
    Binomial(n, 1/2), and p = min(1, 2 * P(X <= min(positive, negative))), computed exactly
    with integers (``1.0`` when there is no discordant pair).
    """
    if positive < 0 or negative < 0:
        raise ValueError(f"counts must be >= 0, got {positive} and {negative}")
    n = positive + negative
    if n == 0:
        return 1.0
    tail = sum(math.comb(n, k) for k in range(min(positive, negative) + 1))
    return float(min(Fraction(1), Fraction(2 * tail, 2 ** n)))


def sign_flip_p(differences: Sequence[int]) -> tuple[float, str]:
    """Two-sided sign-flip permutation test of integer per-image differences.

    Under the null each nonzero difference ``d_i`` is ``+|d_i|`` or ``-|d_i|`` with
    probability 1/2, independently; p = P(|sum_i s_i |d_i|| >= |sum_i d_i|). Up to
    ``EXACT_SIGN_FLIP_LIMIT`` nonzero differences the distribution of the sum is built
    exactly by convolution (float64 probabilities); beyond, the normal approximation
    (variance ``sum d_i^2``) is used.

    Returns:
      ``(p, method)``: ``method`` is :data:`SIGN_FLIP` or :data:`SIGN_FLIP_NORMAL`.
    """
    d = np.asarray(differences)
    if d.size and not np.issubdtype(d.dtype, np.integer):
        raise ValueError("sign_flip_p takes integer differences (counts of runs)")
    mags = np.abs(d[d != 0]).astype(np.int64)
    observed = abs(int(d.sum()))
    if mags.size == 0:
        return 1.0, SIGN_FLIP
    if mags.size > EXACT_SIGN_FLIP_LIMIT:
        z = observed / math.sqrt(float(np.sum(mags.astype(np.float64) ** 2)))
        return min(1.0, math.erfc(z / math.sqrt(2))), SIGN_FLIP_NORMAL
    total = int(mags.sum())
    dist = np.zeros(2 * total + 1)  # index i <-> sum i - total
    dist[total] = 1.0
    for m in mags:
        shifted = np.zeros_like(dist)
        shifted[m:] += dist[:-m]
        shifted[:-m] += dist[m:]
        dist = 0.5 * shifted
    sums = np.arange(-total, total + 1)
    return min(1.0, float(dist[np.abs(sums) >= observed].sum())), SIGN_FLIP


def holm(pvalues: Sequence[float]) -> list[float]:
    """Holm's step-down adjusted p-values of one family, in the order given."""
    m = len(pvalues)
    order = sorted(range(m), key=lambda i: pvalues[i])
    adjusted = [0.0] * m
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (m - rank) * pvalues[i]))
        adjusted[i] = running
    return adjusted


def format_p(p: float) -> str:
    """Three significant digits: ``0.0625`` -> ``"0.0625"``, ``0.5`` -> ``"0.5"``."""
    return f"{p:.3g}"


@dataclass(frozen=True)
class PairedDifference:
    """Mean accuracy difference ``a - b`` over the same images: a 95% interval and a test.

    Each image contributes its fraction of runs classified correctly under ``a`` minus the
    same under ``b``; the interval is mean +- 1.96 standard errors of those per-image values
    (normal, so approximate when ``discordant`` is small). ``p`` is the two-sided p-value of
    the exact test named by ``test`` (see the module docstring); ``discordant`` counts the
    images whose outcomes differ.
    """

    mean: float
    low: float
    high: float
    n: int
    p: float = 1.0
    test: str = SIGN_FLIP
    discordant: int = 0

    @property
    def resolved(self) -> bool:
        """True when the test rejects "no difference" at the 5% level (unadjusted)."""
        return self.p < 0.05

    @property
    def few_discordant(self) -> bool:
        """Fewer than ``FEW_DISCORDANT`` discordant images: read ``p``, not the interval."""
        return self.discordant < FEW_DISCORDANT

    def points(self) -> str:
        """``"-1.33 [-2.10, -0.56]"`` in accuracy points."""
        return f"{100 * self.mean:+.2f} [{100 * self.low:+.2f}, {100 * self.high:+.2f}]"

    def test_text(self) -> str:
        """``"p = 0.063, exact sign-flip, 7 discordant"``."""
        return f"p = {format_p(self.p)}, {self.test}, {self.discordant} discordant"

    def describe(self) -> str:
        """The interval and the test in one table cell."""
        return f"{self.points()}; {self.test_text()}"


def paired_difference(outcomes_a: np.ndarray, outcomes_b: np.ndarray) -> PairedDifference:
    """Compares two attacks' ``(runs, N)`` bool "still correct" outcomes on the same N images.

    With one run each the test is the exact McNemar test; otherwise the sign-flip test of the
    per-image differences ``R_b * (runs of a correct) - R_a * (runs of b correct)`` (integers,
    proportional to the differences of fractions).
    """
    a = np.asarray(outcomes_a)
    b = np.asarray(outcomes_b)
    if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[1]:
        raise ValueError(f"outcomes must be (runs, N) on the same N images, got {a.shape} and {b.shape}")
    counts_a = a.astype(np.int64).sum(axis=0)
    counts_b = b.astype(np.int64).sum(axis=0)
    d_int = counts_a * b.shape[0] - counts_b * a.shape[0]
    discordant = int(np.count_nonzero(d_int))
    if a.shape[0] == 1 and b.shape[0] == 1:
        p, test = sign_test_p(int(np.sum(d_int > 0)), int(np.sum(d_int < 0))), MCNEMAR
    else:
        p, test = sign_flip_p(d_int)
    d = counts_a / a.shape[0] - counts_b / b.shape[0]
    n = d.size
    mean = float(d.mean())
    se = float(d.std(ddof=1) / math.sqrt(n)) if n > 1 else float("inf")
    return PairedDifference(mean=mean, low=mean - Z95 * se, high=mean + Z95 * se, n=n, p=p,
                            test=test, discordant=discordant)


def run_spread(accuracies: np.ndarray) -> tuple[float, float, float]:
    """``(min, max, standard deviation)`` of per-run accuracies (sd 0 for a single run)."""
    acc = np.asarray(accuracies, dtype=np.float64)
    sd = float(acc.std(ddof=1)) if acc.size > 1 else 0.0
    return float(acc.min()), float(acc.max()), sd
