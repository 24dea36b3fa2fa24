"""Cells: segmented attacks equal whole ones, restarts merge per example, work resumes and extends."""
import numpy as np
import pytest

import attacks
from experiments.cells import CellSpec, run_cell, stored_attacks
from mnist_challenge_compat import CompatError, load_dataset, load_model
from workflow.evaluate import default_model_dir

N = 12


@pytest.fixture(scope="module")
def mnist_model_and_data(mnist_dir):
    model = load_model(default_model_dir("mnist"))
    x, y = load_dataset("mnist", "test", mnist_dir)
    return model, x[:N], y[:N]


def _spec(**kw):
    settings = dict(dataset="mnist", method="pgd", epsilon=0.3, step_size=0.01, milestones=(10, 30),
                    num_examples=N, batch_size=N)
    settings.update(kw)
    return CellSpec(**settings)


@pytest.mark.parametrize("method,b", [("pgd", None), ("pqgd", 100.0)])
def test_each_milestone_scores_exactly_the_attack_of_that_many_steps(mnist_model_and_data, tmp_path, method, b):
    model, x, y = mnist_model_and_data
    spec = _spec(method=method, b=b)
    cell = run_cell(spec, model, x, y, attacks=2, cache_dir=tmp_path, model_digest="m")
    assert cell.correct.shape == (2, 2, N)
    for k in range(2):
        for j, steps in enumerate(spec.milestones):
            whole = attacks.perturb(model, x, y, method=method, b=b, epsilon=0.3, steps=steps,
                                    step_size=0.01, seed=[0, k, 0], batch_size=N)
            expected = attacks.predict(model, whole) == y
            np.testing.assert_array_equal(cell.correct[k, j], expected)


def test_restarts_merge_per_example_over_consecutive_attacks(mnist_model_and_data, tmp_path):
    model, x, y = mnist_model_and_data
    cell = run_cell(_spec(), model, x, y, attacks=4, cache_dir=tmp_path, model_digest="m")
    c = cell.correct[:, -1, :]
    merged = cell.outcomes(runs=2, restarts=2)
    np.testing.assert_array_equal(merged[0], c[0] & c[1])
    np.testing.assert_array_equal(merged[1], c[2] & c[3])
    np.testing.assert_allclose(cell.accuracies(steps=10), cell.correct[:, 0, :].mean(axis=1))
    with pytest.raises(ValueError, match="need 6 attacks"):
        cell.outcomes(runs=3, restarts=2)
    with pytest.raises(KeyError, match="no milestone at 20"):
        cell.outcomes(steps=20)


def test_an_interrupted_cell_resumes_to_the_uninterrupted_result(mnist_model_and_data, tmp_path):
    model, x, y = mnist_model_and_data
    spec = _spec(method="pqgd", b=200.0)
    whole = run_cell(spec, model, x, y, attacks=2, cache_dir=tmp_path / "whole", model_digest="m")

    class Stop(Exception):
        pass

    def stop_after_first_segment_of_attack_2(spec, k, j, done):
        if (k, j) == (1, 0):
            raise Stop

    with pytest.raises(Stop):
        run_cell(spec, model, x, y, attacks=2, cache_dir=tmp_path / "cut", model_digest="m",
                 on_segment=stop_after_first_segment_of_attack_2)
    assert stored_attacks(spec, tmp_path / "cut", "m") == 1
    resumed = run_cell(spec, model, x, y, attacks=2, cache_dir=tmp_path / "cut", model_digest="m")
    np.testing.assert_array_equal(resumed.correct, whole.correct)


def test_asking_for_more_attacks_extends_and_keeps_the_stored_ones(mnist_model_and_data, tmp_path):
    model, x, y = mnist_model_and_data
    calls = []
    first = run_cell(_spec(), model, x, y, attacks=1, cache_dir=tmp_path, model_digest="m")
    more = run_cell(_spec(), model, x, y, attacks=3, cache_dir=tmp_path, model_digest="m",
                    on_segment=lambda *a: calls.append(a[1]))
    assert more.attacks == 3 and sorted(set(calls)) == [1, 2]  # attack 0 was read back
    np.testing.assert_array_equal(more.correct[:1], first.correct)
    again = run_cell(_spec(), model, x, y, attacks=2, cache_dir=tmp_path, model_digest="m",
                     on_segment=lambda *a: calls.append("recomputed"))
    assert again.attacks == 3 and "recomputed" not in calls


def test_a_cell_is_stored_per_model_digest_and_refuses_a_damaged_store(mnist_model_and_data, tmp_path):
    model, x, y = mnist_model_and_data
    spec = _spec(milestones=(10,))
    run_cell(spec, model, x, y, attacks=1, cache_dir=tmp_path, model_digest="m")
    assert stored_attacks(spec, tmp_path, "m") == 1 and stored_attacks(spec, tmp_path, "other") == 0
    path = tmp_path / f"{spec.key('m')}.npz"
    path.write_bytes(b"not a zip")
    with pytest.raises(CompatError, match="corrupt state file"):
        run_cell(spec, model, x, y, attacks=1, cache_dir=tmp_path, model_digest="m")


def test_a_cell_refuses_images_of_another_size(mnist_model_and_data, tmp_path):
    model, x, y = mnist_model_and_data
    with pytest.raises(ValueError, match="defined on 12 images"):
        run_cell(_spec(), model, x[:5], y[:5], attacks=1, cache_dir=tmp_path, model_digest="m")
