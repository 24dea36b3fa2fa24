"""Independent runs and their resumable state."""
import json

import numpy as np
import pytest

from attacks import AttackConfig, RunsState, attack, attack_runs
from attacks.runs import run_seed

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
    assert resumed.run_merged_accuracies == full.run_merged_accuracies


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


def test_merged_accuracies_are_those_of_the_first_restarts_of_each_run(tiny_model, data):
    x, y = data
    state = attack_runs(tiny_model, x, y, CONFIG, runs=2, restarts=3, seed=4)
    assert [len(m) for m in state.run_merged_accuracies] == [3, 3]
    for run, merged in enumerate(state.run_merged_accuracies):
        shorter = [attack(tiny_model, x, y, CONFIG, restarts=r, seed=run_seed(4, run)).accuracy
                   for r in (1, 2, 3)]
        assert merged == shorter
        assert merged[-1] == state.run_accuracies[run]
        assert merged[0] == state.run_restart_accuracies[run][0]


def test_a_state_saved_before_merged_accuracies_resumes_with_them_unknown(tiny_model, data):
    x, y = data
    saved = []

    def save_as_an_older_version_did(state, run):
        arrays, meta = state.to_record()
        saved.append(({k: v.copy() for k, v in arrays.items()},
                      {k: json.loads(json.dumps(v)) for k, v in meta.items() if "merged" not in k}))

    attack_runs(tiny_model, x, y, CONFIG, runs=2, restarts=2, seed=5,
                on_update=save_as_an_older_version_did)
    arrays, old_meta = saved[2]  # run 0 finished, run 1 after its first restart
    resumed = attack_runs(tiny_model, x, y, CONFIG, runs=2, restarts=2, seed=5,
                          resume=RunsState.from_record(arrays, old_meta))
    assert resumed.run_merged_accuracies[0] == [None, None]
    assert resumed.run_merged_accuracies[1][0] is None
    assert resumed.run_merged_accuracies[1][1] == resumed.run_accuracies[1]


def _record():
    """A consistent record: one finished run of 2 restarts, a second run 1 restart in."""
    x = np.full((4, 6), 0.5, np.float32)
    arrays = {"worst_x_adv": x, "current_x_adv": x, "current_broken": np.array([1, 0, 0, 1], bool)}
    meta = {"run_restart_accuracies": [[0.75, 0.5]], "run_accuracies": [0.5],
            "current_restart_accuracies": [0.25]}
    return arrays, meta


def test_a_consistent_record_reads_back():
    state = RunsState.from_record(*_record(), num_examples=4)
    assert state.run_accuracies == [0.5] and state.current.completed == 1
    assert state.current.accuracy == 0.5 and state.worst_x_adv.shape == (4, 6)


@pytest.mark.parametrize("damage,needle", [
    (lambda a, m: a.pop("worst_x_adv"), "'worst_x_adv' is missing"),
    (lambda a, m: a.pop("current_broken"), "'current_broken' is missing"),
    (lambda a, m: m.pop("run_accuracies"), "'run_accuracies' is missing"),
    (lambda a, m: m.update(run_accuracies=[0.5, 0.4]), "2 finished run"),
    (lambda a, m: m.update(current_restart_accuracies=["x"]), "'current_restart_accuracies'"),
    (lambda a, m: m.update(run_restart_accuracies=[[]]), "without restarts"),
    (lambda a, m: a.update(current_x_adv=np.zeros((3, 6), np.float32)), r"\(3, 6\), expected \(4, \.\.\.\)"),
    (lambda a, m: a.update(current_broken=np.zeros(4, np.float32)), "dtype float32, expected bool"),
    (lambda a, m: a.update(worst_x_adv=np.zeros(24, np.float32)), r"shape \(24,\)"),
])
def test_an_inconsistent_record_is_one_value_error_saying_what(damage, needle):
    arrays, meta = _record()
    damage(arrays, meta)
    with pytest.raises(ValueError, match=needle):
        RunsState.from_record(arrays, meta)


def test_a_record_of_image_shaped_examples_reads_back():
    arrays, meta = _record()
    arrays = {k: v.reshape(4, 1, 2, 3) if v.ndim == 2 else v for k, v in arrays.items()}
    state = RunsState.from_record(arrays, meta, num_examples=4)
    assert state.worst_x_adv.shape == (4, 1, 2, 3) and state.current.x_adv.shape == (4, 1, 2, 3)


def test_a_record_for_another_number_of_images_is_refused():
    with pytest.raises(ValueError, match=r"\(4, 6\), expected \(5, \.\.\.\)"):
        RunsState.from_record(*_record(), num_examples=5)
