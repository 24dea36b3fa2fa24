"""Intervals and paired differences, against values worked out by hand."""
import math
from pathlib import Path

import numpy as np
import pytest

from experiments import stats
from mnist_challenge_compat import load_state
from experiments.stats import (MCNEMAR, SIGN_FLIP, SIGN_FLIP_NORMAL, holm, paired_difference,
                               run_spread, sign_flip_p, sign_test_p, wilson_interval)


def test_wilson_interval_matches_the_closed_form_and_known_values():
    # p = 0.5, n = 100: the textbook Wilson interval is [0.4038, 0.5962].
    low, high = wilson_interval(0.5, 100)
    assert low == pytest.approx(0.4038, abs=1e-4) and high == pytest.approx(0.5962, abs=1e-4)
    # p = 0.9, n = 300, from the formula written out independently.
    z, p, n = 1.96, 0.9, 300
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z / (1 + z * z / n) * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    low, high = wilson_interval(p, n)
    assert low == pytest.approx(centre - half, abs=1e-4) and high == pytest.approx(centre + half, abs=1e-4)


def test_wilson_interval_stays_inside_0_1_at_the_edges():
    assert wilson_interval(1.0, 20)[1] == 1.0 and wilson_interval(1.0, 20)[0] < 1.0
    assert wilson_interval(0.0, 20)[0] == 0.0 and wilson_interval(0.0, 20)[1] > 0.0


def test_wilson_interval_rejects_impossible_inputs():
    with pytest.raises(ValueError):
        wilson_interval(0.5, 0)
    with pytest.raises(ValueError):
        wilson_interval(1.5, 10)


def test_many_discordant_runs_get_the_normal_interval_of_the_per_image_differences():
    # 2 runs on 40 images: 30 images where a keeps one run of two and b both (d = -0.5),
    # 4 where a keeps both and b none (d = +1), 6 where both keep both (d = 0).
    a = np.array([[1] * 30 + [1] * 4 + [1] * 6, [0] * 30 + [1] * 4 + [1] * 6], bool)
    b = np.array([[1] * 30 + [0] * 4 + [1] * 6, [1] * 30 + [0] * 4 + [1] * 6], bool)
    d = np.array([-0.5] * 30 + [1.0] * 4 + [0.0] * 6)
    se = d.std(ddof=1) / math.sqrt(40)
    diff = paired_difference(a, b)
    assert (diff.interval, diff.discordant) == (stats.NORMAL, 34)
    assert diff.mean == pytest.approx(d.mean())
    assert diff.low == pytest.approx(d.mean() - 1.96 * se, abs=1e-3)
    assert diff.high == pytest.approx(d.mean() + 1.96 * se, abs=1e-3)
    assert diff.sd == pytest.approx(d.std(ddof=1))
    assert diff.points().startswith("-27.50 [") and diff.points().endswith("] normal")


def test_few_discordant_runs_get_no_interval_only_the_exact_test():
    a = np.array([[1, 1, 0, 1, 0, 1], [1, 0, 0, 1, 1, 1]], bool)
    b = np.array([[1, 1, 1, 1, 0, 1], [1, 1, 1, 1, 1, 1]], bool)
    diff = paired_difference(a, b)
    assert diff.mean == pytest.approx(-0.25)  # per image 0, -0.5, -1, 0, 0, 0 (mean -1.5 / 6)
    assert (diff.low, diff.high, diff.interval) == (None, None, stats.NO_INTERVAL)
    assert diff.describe() == ("-25.00 [no interval, < 30 discordant]; "
                               "p = 0.5, exact sign-flip, 2 discordant")  # 2 patterns of 4
    strong = paired_difference(np.zeros((1, 50), bool), np.ones((1, 50), bool))
    assert strong.resolved and strong.mean == -1.0


def test_identical_attacks_differ_by_exactly_zero_and_are_not_resolved():
    a = np.array([[1, 0, 1, 1]], bool)
    diff = paired_difference(a, a)
    assert (diff.mean, diff.low, diff.high) == (0.0, 0.0, 0.0) and not diff.resolved
    assert paired_difference(np.ones((3, 4), bool), np.ones((3, 4), bool)).p == 1.0


def test_paired_difference_needs_the_same_images():
    with pytest.raises(ValueError):
        paired_difference(np.ones((2, 5), bool), np.ones((2, 6), bool))


def test_run_spread_reports_min_max_and_sample_sd():
    low, high, sd = run_spread([0.8, 0.9, 0.85])
    assert (low, high) == (0.8, 0.9) and sd == pytest.approx(0.05)
    assert run_spread([0.7])[2] == 0.0


@pytest.mark.parametrize("positive,negative,expected", [
    (5, 0, 2 * 0.5 ** 5),                       # 0.0625
    (0, 5, 2 * 0.5 ** 5),
    (6, 1, 2 * (1 + 7) / 2 ** 7),               # n = 7: (C(7,0) + C(7,1)) / 2^7 -> 0.125
    (3, 3, 1.0),                                # 2 * 42/64 > 1 -> 1
    (0, 0, 1.0),
])
def test_sign_test_equals_the_hand_computed_binomial_tail(positive, negative, expected):
    assert sign_test_p(positive, negative) == pytest.approx(expected, rel=1e-12)


def test_sign_test_tail_for_12_discordant_written_out():
    # n = 12, 10 vs 2: P(X <= 2) = (C(12,0) + C(12,1) + C(12,2)) / 2^12 = (1 + 12 + 66) / 4096
    assert sign_test_p(10, 2) == pytest.approx(2 * 79 / 4096, rel=1e-12)


def test_sign_flip_with_equal_magnitudes_is_the_sign_test():
    assert sign_flip_p([1, 1, 1, 1, 1]) == (pytest.approx(0.0625), SIGN_FLIP)
    assert sign_flip_p([2, 2, -2, 2, 2, 2, 2, 0, 0])[0] == pytest.approx(sign_test_p(6, 1))


def test_sign_flip_counts_sign_patterns_by_hand():
    # magnitudes 2, 1, 1: sums over the 8 patterns are +-4, +-2, +-2, 0, 0.
    assert sign_flip_p([2, 1, 1])[0] == pytest.approx(2 / 8)      # |sum| >= 4
    assert sign_flip_p([2, -1, 1])[0] == pytest.approx(6 / 8)     # |sum| >= 2
    assert sign_flip_p([0, 0])[0] == 1.0


def test_sign_flip_matches_brute_force_enumeration():
    rng = np.random.default_rng(3)
    d = rng.integers(-4, 5, size=14)
    d[d == 0] = 3
    signs = np.array(np.meshgrid(*[[-1, 1]] * d.size)).reshape(d.size, -1).T
    sums = signs @ np.abs(d)
    expected = np.mean(np.abs(sums) >= abs(d.sum()))
    assert sign_flip_p(d)[0] == pytest.approx(expected, rel=1e-9)


def test_sign_flip_beyond_the_limit_uses_and_names_the_normal_approximation(monkeypatch):
    monkeypatch.setattr(stats, "EXACT_SIGN_FLIP_LIMIT", 3)
    d = [2, 1, 1, 1, -1]
    p, method = sign_flip_p(d)
    assert method == SIGN_FLIP_NORMAL
    assert p == pytest.approx(math.erfc(4 / math.sqrt(8) / math.sqrt(2)))


def test_sign_flip_refuses_fractions():
    with pytest.raises(ValueError, match="integer"):
        sign_flip_p([0.2, -0.4])


def test_holm_adjusts_in_step_down_order():
    # sorted 0.01, 0.03, 0.04 -> 3*0.01, max(0.03, 2*0.03), max(0.06, 1*0.04)
    assert holm([0.01, 0.04, 0.03]) == pytest.approx([0.03, 0.06, 0.06])
    assert holm([0.5, 0.9]) == [1.0, 1.0]
    assert holm([]) == []


def test_one_run_each_is_tested_with_exact_mcnemar_on_the_discordant_images():
    a = np.array([[0, 0, 0, 0, 0, 1, 1, 0]], bool)
    b = np.array([[1, 1, 1, 1, 1, 1, 1, 0]], bool)  # 5 discordant, all one way
    diff = paired_difference(a, b)
    assert (diff.test, diff.discordant) == (MCNEMAR, 5)
    assert diff.p == pytest.approx(0.0625) and not diff.resolved and diff.few_discordant
    assert "p = 0.0625, exact McNemar, 5 discordant" in diff.describe()


def test_several_runs_are_tested_on_differences_of_runs_correct():
    a = np.array([[0, 1, 0, 1], [0, 0, 0, 1]], bool)  # runs correct per image: 0, 1, 0, 2
    b = np.array([[1, 1, 1, 1], [1, 1, 0, 1]], bool)  # 2, 2, 1, 2 -> differences -2, -1, -1, 0
    diff = paired_difference(a, b)
    assert (diff.test, diff.discordant) == (SIGN_FLIP, 3)
    assert diff.p == pytest.approx(sign_flip_p([2, 1, 1])[0]) == pytest.approx(0.25)


def _upper_tail(k: int, n: int, pi: float) -> float:
    """P(X >= k), X ~ Binomial(n, pi), written out with math.comb."""
    return sum(math.comb(n, j) * pi ** j * (1 - pi) ** (n - j) for j in range(k, n + 1))


@pytest.mark.parametrize("k,n", [(3, 10), (0, 5), (5, 5), (7, 12), (1, 30)])
def test_clopper_pearson_ends_leave_alpha_over_2_in_each_binomial_tail(k, n):
    low, high = stats.clopper_pearson(k, n)
    if k == 0:
        assert low == 0.0
    else:
        assert _upper_tail(k, n, low) == pytest.approx(0.025, abs=1e-9)
    if k == n:
        assert high == 1.0
    else:
        assert 1 - _upper_tail(k + 1, n, high) == pytest.approx(0.025, abs=1e-9)
    # A textbook value: 3 of 10 -> [0.0667, 0.6525].
    if (k, n) == (3, 10):
        assert (low, high) == (pytest.approx(0.06674, abs=1e-4), pytest.approx(0.65245, abs=1e-4))
    # 0 of 5: the upper end solves (1 - pi)^5 = 0.025.
    if (k, n) == (0, 5):
        assert high == pytest.approx(1 - 0.025 ** (1 / 5), rel=1e-9)


def test_one_run_gets_the_exact_conditional_interval_consistent_with_mcnemar():
    # 8 images correct under a only, 2 under b only, of 300: pi's interval scaled by 10/300.
    a = np.array([[1] * 8 + [0] * 2 + [1] * 290], bool)
    b = np.array([[0] * 8 + [1] * 2 + [1] * 290], bool)
    diff = paired_difference(a, b)
    low_pi, high_pi = stats.clopper_pearson(8, 10)
    assert diff.interval == stats.EXACT_CONDITIONAL
    assert diff.low == pytest.approx(10 / 300 * (2 * low_pi - 1))
    assert diff.high == pytest.approx(10 / 300 * (2 * high_pi - 1))
    assert diff.p == pytest.approx(2 * (1 + 10 + 45) / 2 ** 10)  # P(X <= 2) doubled
    # The interval excludes 0 exactly when the exact McNemar p is below 0.05.
    for pos in range(0, 16):
        for neg in range(0, 16 - pos):
            low, high = stats.mcnemar_exact_interval(pos, neg, 300)
            excludes = low > 0 or high < 0
            assert excludes == (sign_test_p(pos, neg) < 0.05), (pos, neg)


def test_images_for_power_is_the_normal_sample_size_formula():
    # sd 0.09, gap 0.4 points, 80% power at two-sided 5%: ((1.95996 + 0.84162) * 0.09 / 0.004)^2
    expected = ((1.959964 + 0.841621) * 0.09 / 0.004) ** 2
    assert stats.images_for_power(0.09, -0.004) == pytest.approx(expected, rel=1e-5)
    assert stats.images_for_power(0.0, 0.004) is None


CELLS = Path(__file__).resolve().parents[2] / "results" / "cells"


def _shipped_outcomes(pattern: str, method: str, b, steps: int) -> np.ndarray:
    """``(5, 300)`` outcomes at ``steps`` of the one shipped 300-image (quick preset) cell
    whose file matches (the paper preset's larger cells share the file name pattern)."""
    stored = [load_state(path) for path in CELLS.glob(pattern)]
    [(arrays, meta)] = [s for s in stored if s[1]["spec"]["num_examples"] == 300]
    spec = meta["spec"]
    assert (spec["method"], spec["b"]) == (method, b)
    return arrays["correct"].astype(bool)[:5, spec["milestones"].index(steps), :]


@pytest.mark.skipif(not CELLS.is_dir(), reason=f"no shipped cells in {CELLS}")
def test_shipped_pqgd2_vs_pgd_is_the_hand_computed_binomial_tail_not_a_resolved_interval():
    pqgd2 = _shipped_outcomes("mnist-PQGD_2-eps0.3-100steps-*.npz", "pqgd", 2.0, 100)
    pgd = _shipped_outcomes("mnist-PGD-eps0.3-200steps-*.npz", "pgd", None, 100)
    d = pqgd2.sum(axis=0).astype(int) - pgd.sum(axis=0).astype(int)  # runs correct, per image
    nonzero = d[d != 0]
    # 5 discordant images, all with PQGD_2 breaking more runs: of the 2^5 equally likely sign
    # patterns only the two all-equal ones reach |sum| = sum |d_i|.
    assert nonzero.size == 5 and np.all(nonzero < 0)
    expected = 2 * math.comb(5, 0) / 2 ** 5
    diff = paired_difference(pqgd2, pgd)
    assert diff.discordant == 5 and diff.test == SIGN_FLIP
    assert diff.p == pytest.approx(expected, rel=1e-12) and not diff.resolved  # 0.0625
    # The normal interval would have called it resolved (its upper end below 0); with 5
    # discordant images none is given.
    per_image = d / 5
    se = per_image.std(ddof=1) / math.sqrt(per_image.size)
    assert per_image.mean() + 1.96 * se < 0
    assert diff.interval == stats.NO_INTERVAL and diff.low is None
    # At 20 steps: 9 discordant, all the same way -> 2 / 2^9.
    pqgd2_20 = _shipped_outcomes("mnist-PQGD_2-eps0.3-100steps-*.npz", "pqgd", 2.0, 20)
    pgd_20 = _shipped_outcomes("mnist-PGD-eps0.3-200steps-*.npz", "pgd", None, 20)
    d20 = pqgd2_20.sum(axis=0).astype(int) - pgd_20.sum(axis=0).astype(int)
    k = int(np.count_nonzero(d20))
    assert k == 9 and (np.all(d20[d20 != 0] < 0) or np.all(d20[d20 != 0] > 0))
    assert paired_difference(pqgd2_20, pgd_20).p == pytest.approx(2 / 2 ** k, rel=1e-12)
