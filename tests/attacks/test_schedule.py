"""Grouping and regrouping of the DAA schedule, and the PGD batching."""
import numpy as np
import pytest

from attacks.api import group_schedule, merge_restart, RestartState
from attacks.config import AttackConfig


def _schedule(method, n, steps, batch, spg, seed=0):
    cfg = AttackConfig(method=method, epsilon=0.3, steps=steps, step_size=0.01, batch_size=batch,
                       steps_per_group=spg, b=100 if method in ("pqgd", "blob_qg") else None)
    return list(group_schedule(n, cfg, np.random.default_rng(seed)))


def test_pgd_batches_are_consecutive_and_take_all_steps():
    sched = _schedule("pgd", 450, 37, 200, 10)
    assert [len(i) for i, _ in sched] == [200, 200, 50]
    assert all(n == 37 for _, n in sched)
    np.testing.assert_array_equal(np.concatenate([i for i, _ in sched]), np.arange(450))


@pytest.mark.parametrize("steps,spg,expected", [(20, 10, [10, 10]), (25, 10, [10, 10, 5]),
                                                (7, 10, [7]), (200, 10, [10] * 20)])
def test_blob_rounds_cover_exactly_the_requested_steps(steps, spg, expected):
    sched = _schedule("blob", 450, steps, 200, spg)
    groups_per_round = 3
    rounds = [sched[i:i + groups_per_round] for i in range(0, len(sched), groups_per_round)]
    assert [r[0][1] for r in rounds] == expected
    for r in rounds:
        assert all(n == r[0][1] for _, n in r)
        np.testing.assert_array_equal(np.sort(np.concatenate([i for i, _ in r])), np.arange(450))
    per_example = np.zeros(450, int)
    for idx, n in sched:
        per_example[idx] += n
    assert np.all(per_example == steps)


def test_blob_regroups_the_whole_set_every_round():
    sched = _schedule("blob_qg", 400, 30, 200, 10)
    first_groups = [set(i) for i, _ in sched[:2]]
    second_groups = [set(i) for i, _ in sched[2:4]]
    assert first_groups != second_groups
    assert first_groups[0] != set(range(200))


def test_merge_keeps_the_first_fooling_image_and_counts_per_restart_accuracy():
    state = RestartState(x_adv=np.zeros((4, 2), np.float32), broken=np.zeros(4, bool))
    merge_restart(state, np.full((4, 2), 1, np.float32), np.array([True, False, True, True]))
    merge_restart(state, np.full((4, 2), 2, np.float32), np.array([False, False, True, True]))
    merge_restart(state, np.full((4, 2), 3, np.float32), np.array([False, True, False, True]))
    np.testing.assert_array_equal(state.x_adv[:, 0], [2, 1, 3, 1])
    np.testing.assert_array_equal(state.broken, [True, True, True, False])
    assert state.restart_accuracies == [0.75, 0.5, 0.5]
    assert state.accuracy == 0.25 and state.completed == 3
