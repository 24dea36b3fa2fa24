"""Intervals and paired differences, against values worked out by hand."""
import math

import numpy as np
import pytest

from experiments import stats
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


def test_paired_difference_is_the_mean_per_image_difference_with_its_standard_error():
    a = np.array([[1, 1, 0, 1, 0, 1], [1, 0, 0, 1, 1, 1]], bool)
    b = np.array([[1, 1, 1, 1, 0, 1], [1, 1, 1, 1, 1, 1]], bool)
    d = np.array([0.0, -0.5, -1.0, 0.0, 0.0, 0.0])  # per image, fraction-correct a minus b
    se = d.std(ddof=1) / math.sqrt(6)
    diff = paired_difference(a, b)
    assert diff.mean == pytest.approx(d.mean())
    assert diff.low == pytest.approx(d.mean() - 1.96 * se, abs=1e-3)
    assert diff.high == pytest.approx(d.mean() + 1.96 * se, abs=1e-3)
    assert not diff.resolved  # -0.25 +- 0.335 includes 0
    assert diff.points().startswith("-25.00 [")
    strong = paired_difference(np.zeros((1, 50), bool), np.ones((1, 50), bool))
    assert strong.resolved and strong.mean == -1.0


def test_identical_attacks_differ_by_exactly_zero_and_are_not_resolved():
    a = np.array([[1, 0, 1, 1]], bool)
    diff = paired_difference(a, a)
    assert (diff.mean, diff.low, diff.high) == (0.0, 0.0, 0.0) and not diff.resolved


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
