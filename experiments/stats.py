"""The statistics the reports print: sampling intervals, paired differences and their tests.

Two sources of noise matter here: which test images are sampled (a binomial effect, largest
for one accuracy on its own) and the attacks' random starts (the spread over runs). Methods
are compared on the same images, so their difference is estimated per image (paired), which
removes most of the image-sampling noise.

Two attacks usually differ on few images (5-30 "discordant" images in 300), where a normal
interval is optimistic. So every paired comparison gets an exact test of "no difference":

* one run each: the exact McNemar test, a two-sided binomial test with p = 1/2 on the
  discordant images (:func:`sign_test_p`, integer arithmetic);
* several runs: the exact sign-flip (permutation) test on the per-image differences of the
  number of runs still correct (:func:`sign_flip_p`): under "no difference" each image's
  difference is as likely positive as negative. Its null distribution is enumerated exactly
  (by convolution over the images, equal to listing all 2^n sign patterns) up to
  ``EXACT_SIGN_FLIP_LIMIT`` discordant images, and taken from the normal approximation
  beyond (the method is named beside every p-value).

The interval beside a difference names its method (:data:`INTERVAL_METHODS`):

* one run each: the **exact conditional** interval (:func:`mcnemar_exact_interval`): given
  the ``n`` discordant images, the number on which ``a`` is the one still correct is
  Binomial(n, pi); the Clopper-Pearson interval of pi maps to the difference
  ``n / N * (2 pi - 1)``. It excludes 0 exactly when the exact McNemar p is below 0.05.
* several runs, at least ``FEW_DISCORDANT`` discordant images: the **normal** interval (mean
  +- 1.96 standard errors of the per-image differences of fractions of runs correct);
* several runs, fewer discordant images: **no interval** (the normal one is optimistic there
  and the differences of fractions have no exact interval of the same simplicity); read the
  exact sign-flip p.

:func:`holm` adjusts a family of p-values for multiplicity (Holm's step-down method);
:func:`images_for_power` turns the per-image spread of a difference into the number of images
a given gap needs.
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


# Below this many discordant images a several-run difference gets no (normal) interval.
FEW_DISCORDANT = 30
# Up to this many nonzero per-image differences the sign-flip distribution is enumerated.
EXACT_SIGN_FLIP_LIMIT = 2000

MCNEMAR = "exact McNemar"
SIGN_FLIP = "exact sign-flip"
SIGN_FLIP_NORMAL = "sign-flip, normal approximation"

# How the 95% interval of a paired difference was computed (see the module docstring).
EXACT_CONDITIONAL = "exact conditional"
NORMAL = "normal"
NO_INTERVAL = "none"
INTERVAL_METHODS = (EXACT_CONDITIONAL, NORMAL, NO_INTERVAL)
Z80 = 0.8416212335729143  # one-sided 80% normal quantile (power 0.8)


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


def binomial_tail_ge(k: int, n: int, pi: float) -> float:
    """``P(X >= k)`` for ``X ~ Binomial(n, pi)`` (exact sum of the terms)."""
    if k <= 0:
        return 1.0
    return float(sum(math.comb(n, j) * pi ** j * (1 - pi) ** (n - j) for j in range(k, n + 1)))


def _bisect(f, low: float, high: float, iterations: int = 200) -> float:
    """The root of the increasing function ``f`` on ``[low, high]`` (bisection)."""
    for _ in range(iterations):
        mid = 0.5 * (low + high)
        if f(mid) < 0:
            low = mid
        else:
            high = mid
    return 0.5 * (low + high)


def clopper_pearson(k: int, n: int, alpha: float = 0.05) -> tuple[float, float]:
    """Exact (Clopper-Pearson) ``1 - alpha`` interval of a binomial proportion, ``k`` of ``n``.

    The lower end solves ``P(X >= k | pi) = alpha / 2`` (0 when ``k = 0``), the upper end
    ``P(X <= k | pi) = alpha / 2`` (1 when ``k = n``).
    """
    if not 0 <= k <= n or n < 1:
        raise ValueError(f"need 0 <= k <= n and n >= 1, got k={k}, n={n}")
    low = 0.0 if k == 0 else _bisect(lambda pi: binomial_tail_ge(k, n, pi) - alpha / 2, 0.0, 1.0)
    high = 1.0 if k == n else _bisect(
        lambda pi: alpha / 2 - (1 - binomial_tail_ge(k + 1, n, pi)), 0.0, 1.0)
    return low, high


def mcnemar_exact_interval(positive: int, negative: int, n_images: int,
                           alpha: float = 0.05) -> tuple[float, float]:
    """Exact conditional ``1 - alpha`` interval of a one-run accuracy difference ``a - b``.

    ``positive`` images are correct under ``a`` only, ``negative`` under ``b`` only, of
    ``n_images``. Given the ``n = positive + negative`` discordant images, ``positive`` is
    Binomial(n, pi) and the difference is ``n / n_images * (2 pi - 1)``; the Clopper-Pearson
    interval of pi gives the interval (``(0, 0)`` when nothing is discordant).
    """
    n = positive + negative
    if n == 0:
        return 0.0, 0.0
    low, high = clopper_pearson(positive, n, alpha)
    scale = n / n_images
    return scale * (2 * low - 1), scale * (2 * high - 1)


def images_for_power(per_image_sd: float, gap: float, power_z: float = Z80,
                     z: float = Z95) -> float | None:
    """Images a paired comparison needs to detect a true mean difference ``gap`` with the
    power of ``power_z`` (default 80%) in a two-sided 5% test, when per-image differences
    have standard deviation ``per_image_sd``: ``((z + power_z) * sd / gap)^2`` (normal
    approximation). ``None`` when ``sd`` or ``gap`` is 0 (no spread to scale from)."""
    if per_image_sd <= 0 or gap == 0:
        return None
    return ((z + power_z) * per_image_sd / abs(gap)) ** 2


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
    same under ``b``. ``interval`` names how ``low``/``high`` were computed (one of
    :data:`INTERVAL_METHODS`; both ``None`` for :data:`NO_INTERVAL`). ``p`` is the two-sided
    p-value of the exact test named by ``test`` (see the module docstring); ``discordant``
    counts the images whose outcomes differ; ``sd`` is the standard deviation of the per-image
    differences (what :func:`images_for_power` scales from).
    """

    mean: float
    low: float | None
    high: float | None
    n: int
    p: float = 1.0
    test: str = SIGN_FLIP
    discordant: int = 0
    interval: str = NORMAL
    sd: float = 0.0

    @property
    def resolved(self) -> bool:
        """True when the test rejects "no difference" at the 5% level (unadjusted)."""
        return self.p < 0.05

    @property
    def few_discordant(self) -> bool:
        """Fewer than ``FEW_DISCORDANT`` discordant images."""
        return self.discordant < FEW_DISCORDANT

    def points(self) -> str:
        """``"-1.33 [-2.10, -0.56] normal"``, ``"-0.33 [no interval, < 30 discordant]"``,
        in accuracy points."""
        if self.low is None or self.high is None:
            return f"{100 * self.mean:+.2f} [no interval, < {FEW_DISCORDANT} discordant]"
        return (f"{100 * self.mean:+.2f} [{100 * self.low:+.2f}, {100 * self.high:+.2f}] "
                f"{self.interval}")

    def test_text(self) -> str:
        """``"p = 0.063, exact sign-flip, 7 discordant"``."""
        return f"p = {format_p(self.p)}, {self.test}, {self.discordant} discordant"

    def describe(self) -> str:
        """The interval and the test in one table cell."""
        return f"{self.points()}; {self.test_text()}"


def paired_difference(outcomes_a: np.ndarray, outcomes_b: np.ndarray) -> PairedDifference:
    """Compares two attacks' ``(runs, N)`` bool "still correct" outcomes on the same N images.

    With one run each: the exact McNemar test and the exact conditional interval. Otherwise
    the sign-flip test of the per-image differences ``R_b * (runs of a correct) - R_a * (runs
    of b correct)`` (integers, proportional to the differences of fractions), with the normal
    interval when at least ``FEW_DISCORDANT`` images are discordant and none below.
    """
    a = np.asarray(outcomes_a)
    b = np.asarray(outcomes_b)
    if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[1]:
        raise ValueError(f"outcomes must be (runs, N) on the same N images, got {a.shape} and {b.shape}")
    counts_a = a.astype(np.int64).sum(axis=0)
    counts_b = b.astype(np.int64).sum(axis=0)
    d_int = counts_a * b.shape[0] - counts_b * a.shape[0]
    discordant = int(np.count_nonzero(d_int))
    d = counts_a / a.shape[0] - counts_b / b.shape[0]
    n = d.size
    mean = float(d.mean())
    sd = float(d.std(ddof=1)) if n > 1 else 0.0
    if a.shape[0] == 1 and b.shape[0] == 1:
        positive, negative = int(np.sum(d_int > 0)), int(np.sum(d_int < 0))
        low, high = mcnemar_exact_interval(positive, negative, n)
        return PairedDifference(mean=mean, low=low, high=high, n=n,
                                p=sign_test_p(positive, negative), test=MCNEMAR,
                                discordant=discordant, interval=EXACT_CONDITIONAL, sd=sd)
    p, test = sign_flip_p(d_int)
    if discordant >= FEW_DISCORDANT:
        se = sd / math.sqrt(n)
        low, high, method = mean - Z95 * se, mean + Z95 * se, NORMAL
    else:
        low = high = None
        method = NO_INTERVAL
    return PairedDifference(mean=mean, low=low, high=high, n=n, p=p, test=test,
                            discordant=discordant, interval=method, sd=sd)


def run_spread(accuracies: np.ndarray) -> tuple[float, float, float]:
    """``(min, max, standard deviation)`` of per-run accuracies (sd 0 for a single run)."""
    acc = np.asarray(accuracies, dtype=np.float64)
    sd = float(acc.std(ddof=1)) if acc.size > 1 else 0.0
    return float(acc.min()), float(acc.max()), sd
