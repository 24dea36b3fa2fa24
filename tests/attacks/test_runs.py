"""Independent runs and their resumable state."""
import numpy as np
import pytest

from attacks import AttackConfig, RunsState, attack_runs

CONFIG = AttackConfig(method="pqgd", b=50, epsilon=0.2, steps=3, step_size=0.05, batch_size=16)


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(0)
    return rng.random((40, 784), dtype=np.float32), rng.integers(0, 10, 40)


class _Stop(Exception):
    pass


@pytest.mark.parametrize("stop_after", [1, 2, 3, 5])
def test_resuming_from_any_saved_restart_gives_the_uninterrupted_result(tiny_model, data, stop_after):
    x, y = data
    full = attack_runs(tiny_model, x, y, CONFIG, runs=3, restarts=2, seed=9)
    saved = []

    def save_then_stop(state, run):
        saved.append(state.to_record())
        if len(saved) == stop_after:
            raise _Stop

    with pytest.raises(_Stop):
        attack_runs(tiny_model, x, y, CONFIG, runs=3, restarts=2, seed=9, on_update=save_then_stop)
    arrays, meta = saved[-1]
    resumed = attack_runs(tiny_model, x, y, CONFIG, runs=3, restarts=2, seed=9,
                          resume=RunsState.from_record({k: v.copy() for k, v in arrays.items()}, meta))
    np.testing.assert_array_equal(resumed.worst_x_adv, full.worst_x_adv)
    assert resumed.run_accuracies == full.run_accuracies
    assert resumed.run_restart_accuracies == full.run_restart_accuracies


def test_runs_differ_and_worst_is_the_lowest_run(tiny_model, data):
    x, y = data
    state = attack_runs(tiny_model, x, y, CONFIG, runs=3, restarts=1, seed=1)
    assert len(state.run_accuracies) == 3 and state.current is None
    assert state.worst_accuracy == min(state.run_accuracies)
    assert state.average_accuracy == pytest.approx(np.mean(state.run_accuracies))
    assert len({tuple(r) for r in state.run_restart_accuracies}) >= 1


def test_attack_runs_refuses_unresumable_settings(tiny_model, data):
    x, y = data
    with pytest.raises(ValueError, match="needs a seed"):
        attack_runs(tiny_model, x, y, CONFIG, seed=None)
    with pytest.raises(ValueError, match="runs must be"):
        attack_runs(tiny_model, x, y, CONFIG, runs=0)
