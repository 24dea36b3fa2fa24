"""Independent runs and their resumable state."""
import numpy as np
import pytest

from attacks import AttackConfig, RunsState, attack, attack_runs

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


def _numpy_predictions(model, x: np.ndarray) -> np.ndarray:
    """Classes of ``tiny_model`` (Dense-tanh-Dense) computed in float64 numpy."""
    w1, b1, w2, b2 = (np.asarray(v, dtype=np.float64) for v in model.weights)
    return np.argmax(np.tanh(x.astype(np.float64) @ w1 + b1) @ w2 + b2, axis=1)


def test_runs_differ_and_worst_is_the_lowest_run(tiny_model, data):
    x = data[0]
    y = _numpy_predictions(tiny_model, x)  # every example starts classified correctly
    # A wide random start and one tiny step: what a run breaks depends on its own start.
    config = AttackConfig(method="pqgd", b=50, epsilon=0.1, steps=1, step_size=0.001,
                          batch_size=16)
    seed = 0
    state = attack_runs(tiny_model, x, y, config, runs=3, restarts=1, seed=seed)
    assert len(state.run_accuracies) == 3 and state.current is None
    # Run k is the attack seeded [seed, k] (its restart r draws from default_rng([seed, k, r])).
    images = [attack(tiny_model, x, y, config, seed=[seed, k]).x_adv for k in range(3)]
    accuracies = [float(np.mean(_numpy_predictions(tiny_model, im) == y)) for im in images]
    assert state.run_accuracies == pytest.approx(accuracies)
    for i in range(3):
        for j in range(i + 1, 3):
            assert not np.array_equal(images[i], images[j]), (i, j)
    assert len(set(accuracies)) > 1, "the runs must reach different accuracies"
    lowest = min(accuracies)
    assert accuracies.count(lowest) == 1, "the test needs one strictly lowest run"
    assert state.worst_accuracy == pytest.approx(lowest)
    assert state.average_accuracy == pytest.approx(np.mean(accuracies))
    np.testing.assert_array_equal(state.worst_x_adv, images[accuracies.index(lowest)])
    assert np.mean(_numpy_predictions(tiny_model, state.worst_x_adv) == y) == pytest.approx(lowest)


def test_attack_runs_refuses_unresumable_settings(tiny_model, data):
    x, y = data
    with pytest.raises(ValueError, match="needs a seed"):
        attack_runs(tiny_model, x, y, CONFIG, seed=None)
    with pytest.raises(ValueError, match="runs must be"):
        attack_runs(tiny_model, x, y, CONFIG, runs=0)
