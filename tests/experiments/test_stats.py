"""Intervals and paired differences, against values worked out by hand."""
import math

import numpy as np
import pytest

from experiments.stats import paired_difference, run_spread, wilson_interval


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
