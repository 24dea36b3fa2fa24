"""The experiments' progress estimate: each dataset at its own measured rate."""
from collections import Counter

import pytest

from experiments.common import remaining_seconds


def test_nothing_measured_yet_has_no_estimate():
    assert remaining_seconds(Counter(mnist=100), Counter(), Counter()) is None


def test_each_dataset_is_estimated_at_its_own_rate():
    todo = Counter(mnist=1000, fashion=600)
    done = Counter(mnist=400, fashion=100)
    spent = Counter(mnist=2.0, fashion=1.0)  # 200/s and 100/s
    assert remaining_seconds(todo, done, spent) == pytest.approx(600 / 200 + 500 / 100)


def test_a_dataset_not_started_uses_the_overall_rate():
    todo = Counter(mnist=1000, fashion=600)
    done = Counter(mnist=500)
    spent = Counter(mnist=5.0)
    assert remaining_seconds(todo, done, spent) == pytest.approx(500 / 100 + 600 / 100)


def test_finished_datasets_add_nothing():
    todo = Counter(mnist=100, fashion=50)
    done = Counter(mnist=100, fashion=50)
    assert remaining_seconds(todo, done, Counter(mnist=1.0, fashion=1.0)) == 0
