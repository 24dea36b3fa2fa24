"""Cells: segmented attacks equal whole ones, restarts merge per example, work resumes and extends."""
import datetime

import numpy as np
import pytest
import tensorflow as tf

import attacks
from experiments import cells, report
from experiments.cells import (CellSpec, add_compute, run_cell, seed_from_shipped, ship_finished,
                               stored_attacks)
from mnist_challenge_compat import CompatError, load_dataset, load_model
from workflow.evaluate import default_model_dir
from workflow.fingerprint import data_sha256

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
    cell = run_cell(spec, model, x, y, attacks=2, cache_dir=tmp_path, model_digest="m", data_digest="d")
    assert cell.correct.shape == (2, 2, N)
    for k in range(2):
        for j, steps in enumerate(spec.milestones):
            whole = attacks.perturb(model, x, y, method=method, b=b, epsilon=0.3, steps=steps,
                                    step_size=0.01, seed=[0, k, 0], batch_size=N)
            expected = attacks.predict(model, whole) == y
            np.testing.assert_array_equal(cell.correct[k, j], expected)


def test_restarts_merge_per_example_over_consecutive_attacks(mnist_model_and_data, tmp_path):
    model, x, y = mnist_model_and_data
    cell = run_cell(_spec(), model, x, y, attacks=4, cache_dir=tmp_path, model_digest="m", data_digest="d")
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
    whole = run_cell(spec, model, x, y, attacks=2, cache_dir=tmp_path / "whole", model_digest="m", data_digest="d")

    class Stop(Exception):
        pass

    def stop_after_first_segment_of_attack_2(spec, k, j, done):
        if (k, j) == (1, 0):
            raise Stop

    with pytest.raises(Stop):
        run_cell(spec, model, x, y, attacks=2, cache_dir=tmp_path / "cut", model_digest="m", data_digest="d",
                 on_segment=stop_after_first_segment_of_attack_2)
    assert stored_attacks(spec, tmp_path / "cut", "m", "d") == 1
    resumed = run_cell(spec, model, x, y, attacks=2, cache_dir=tmp_path / "cut", model_digest="m", data_digest="d")
    np.testing.assert_array_equal(resumed.correct, whole.correct)


def test_asking_for_more_attacks_extends_and_keeps_the_stored_ones(mnist_model_and_data, tmp_path):
    model, x, y = mnist_model_and_data
    calls = []
    first = run_cell(_spec(), model, x, y, attacks=1, cache_dir=tmp_path, model_digest="m", data_digest="d")
    more = run_cell(_spec(), model, x, y, attacks=3, cache_dir=tmp_path, model_digest="m", data_digest="d",
                    on_segment=lambda *a: calls.append(a[1]))
    assert more.attacks == 3 and sorted(set(calls)) == [1, 2]  # attack 0 was read back
    np.testing.assert_array_equal(more.correct[:1], first.correct)
    again = run_cell(_spec(), model, x, y, attacks=2, cache_dir=tmp_path, model_digest="m", data_digest="d",
                     on_segment=lambda *a: calls.append("recomputed"))
    assert again.attacks == 3 and "recomputed" not in calls


def test_a_cell_is_stored_per_model_and_data_digest_and_refuses_a_damaged_store(
        mnist_model_and_data, tmp_path):
    model, x, y = mnist_model_and_data
    spec = _spec(milestones=(10,))
    run_cell(spec, model, x, y, attacks=1, cache_dir=tmp_path, model_digest="m", data_digest="d")
    assert stored_attacks(spec, tmp_path, "m", "d") == 1
    assert stored_attacks(spec, tmp_path, "other", "d") == 0
    assert stored_attacks(spec, tmp_path, "m", "other") == 0
    path = tmp_path / f"{spec.key('m', 'd')}.npz"
    path.write_bytes(b"not a zip")
    with pytest.raises(CompatError, match="corrupt state file"):
        run_cell(spec, model, x, y, attacks=1, cache_dir=tmp_path, model_digest="m", data_digest="d")


def test_a_cell_refuses_images_of_another_size(mnist_model_and_data, tmp_path):
    model, x, y = mnist_model_and_data
    with pytest.raises(ValueError, match="defined on 12 images"):
        run_cell(_spec(), model, x[:5], y[:5], attacks=1, cache_dir=tmp_path, model_digest="m", data_digest="d")


def test_other_images_of_the_same_count_get_their_own_cell(mnist_model_and_data, mnist_dir,
                                                           tmp_path):
    model, x, y = mnist_model_and_data
    x_train, y_train = load_dataset("mnist", "train", mnist_dir)
    x_other, y_other = x_train[:N], y_train[:N]
    spec = _spec(milestones=(10,))
    digest, other_digest = data_sha256(x, y), data_sha256(x_other, y_other)
    assert digest != other_digest
    first = run_cell(spec, model, x, y, attacks=1, cache_dir=tmp_path, model_digest="m",
                     data_digest=digest)
    computed = []
    second = run_cell(spec, model, x_other, y_other, attacks=1, cache_dir=tmp_path,
                      model_digest="m", data_digest=other_digest,
                      on_segment=lambda *a: computed.append(a))
    assert len(computed) == 1  # attacked, not read back from the first images' cell
    expected = attacks.predict(model, attacks.perturb(model, x_other, y_other, method="pgd",
                                                      epsilon=0.3, steps=10, step_size=0.01,
                                                      seed=[0, 0, 0], batch_size=N)) == y_other
    np.testing.assert_array_equal(second.correct[0, 0], expected)
    assert len(list(tmp_path.glob("*.npz"))) == 2
    np.testing.assert_array_equal(run_cell(spec, model, x, y, attacks=1, cache_dir=tmp_path,
                                           model_digest="m", data_digest=digest).correct,
                                  first.correct)


def test_compute_time_is_recorded_per_machine_with_its_dates():
    a = {"machine": "A (2 cores)", "tensorflow": "2.21.0"}
    b = {"machine": "B (8 cores)", "tensorflow": "2.21.0"}
    p = add_compute([], 10.0, a, "2026-11-24")
    p = add_compute(p, 5.0, b, "2026-11-25")
    p = add_compute(p, 2.5, a, "2026-11-26")
    assert p == [{**a, "first_date": "2026-11-24", "last_date": "2026-11-26", "seconds": 12.5},
                 {**b, "first_date": "2026-11-25", "last_date": "2026-11-25", "seconds": 5.0}]
    newer_tf = dict(a, tensorflow="2.22.0")
    assert len(add_compute(p, 1.0, newer_tf, "2026-11-27")) == 3


def test_a_computed_cell_records_where_its_segments_ran(mnist_model_and_data, tmp_path,
                                                        monkeypatch):
    model, x, y = mnist_model_and_data
    monkeypatch.setattr(report, "machine", lambda: "Machine A (3 cores)")
    cell = run_cell(_spec(), model, x, y, attacks=1, cache_dir=tmp_path, model_digest="m",
                    data_digest="d")
    monkeypatch.setattr(report, "machine", lambda: "Machine B (5 cores)")
    read_back = run_cell(_spec(), model, x, y, attacks=1, cache_dir=tmp_path, model_digest="m",
                         data_digest="d")
    for c in (cell, read_back):
        [entry] = c.provenance
        assert entry["machine"] == "Machine A (3 cores)"
        assert entry["tensorflow"] == tf.__version__
        assert entry["first_date"] == entry["last_date"] == datetime.date.today().isoformat()
        assert entry["seconds"] == pytest.approx(c.seconds) and c.seconds > 0


def test_a_shipped_cell_is_copied_with_its_provenance_and_not_recomputed(mnist_model_and_data,
                                                                         tmp_path, monkeypatch):
    model, x, y = mnist_model_and_data
    shipped, store = tmp_path / "shipped", tmp_path / "runs" / "cells"
    monkeypatch.setattr(report, "machine", lambda: "Machine A (3 cores)")
    original = run_cell(_spec(), model, x, y, attacks=1, cache_dir=shipped, model_digest="m",
                        data_digest="d")
    before = {p.name: p.read_bytes() for p in shipped.iterdir()}
    monkeypatch.setattr(report, "machine", lambda: "Machine B (5 cores)")
    assert seed_from_shipped(_spec(), store, shipped, "m", "d")
    assert not seed_from_shipped(_spec(), store, shipped, "m", "d")  # already there
    segments = []
    copy = run_cell(_spec(), model, x, y, attacks=1, cache_dir=store, model_digest="m",
                    data_digest="d", on_segment=lambda *a: segments.append(a))
    assert not segments
    np.testing.assert_array_equal(copy.correct, original.correct)
    assert copy.provenance == original.provenance
    assert copy.provenance[0]["machine"] == "Machine A (3 cores)"
    # Extending the copy computes in the store only; the shipped folder is left as it was.
    run_cell(_spec(), model, x, y, attacks=2, cache_dir=store, model_digest="m", data_digest="d")
    assert {p.name: p.read_bytes() for p in shipped.iterdir()} == before
    # Another model's or images' cell is not seeded from it.
    assert not seed_from_shipped(_spec(), tmp_path / "other", shipped, "m2", "d")


def test_a_shipped_cell_of_other_settings_is_refused(mnist_model_and_data, tmp_path):
    model, x, y = mnist_model_and_data
    shipped = tmp_path / "shipped"
    run_cell(_spec(), model, x, y, attacks=1, cache_dir=shipped, model_digest="m", data_digest="d")
    [path] = shipped.iterdir()
    other = _spec(method="pqgd", b=100.0)
    path.rename(shipped / f"{other.key('m', 'd')}.npz")  # a file under another cell's name
    with pytest.raises(CompatError, match="belongs to other settings"):
        seed_from_shipped(other, tmp_path / "store", shipped, "m", "d")
    assert not (tmp_path / "store").exists()


class _StopAfterFirstSegment(Exception):
    pass


def _stop_in_second_attack(spec, k, j, example_steps):
    if k == 1 and j == 0:
        raise _StopAfterFirstSegment


def test_a_run_ships_only_finished_cells_that_hold_the_attacks_read_and_more_than_shipped(
        mnist_model_and_data, tmp_path):
    model, x, y = mnist_model_and_data
    run, shipped = tmp_path / "run" / "cells", tmp_path / "shipped"
    run_cell(_spec(), model, x, y, attacks=1, cache_dir=run, model_digest="m", data_digest="d")
    assert ship_finished(_spec(), run, shipped, "m", "d", attacks=2) is None  # 1 of the 2 read
    assert not shipped.exists()
    assert ship_finished(_spec(), run, shipped, "m", "d", attacks=1) == (0, 1)
    [path] = shipped.iterdir()
    assert path.read_bytes() == (run / path.name).read_bytes()
    assert ship_finished(_spec(), run, shipped, "m", "d", attacks=1) is None  # not more than shipped
    # An attack in progress (second attack stopped after its first segment) does not ship.
    with pytest.raises(_StopAfterFirstSegment):
        run_cell(_spec(), model, x, y, attacks=2, cache_dir=run, model_digest="m",
                 data_digest="d", on_segment=_stop_in_second_attack)
    assert ship_finished(_spec(), run, shipped, "m", "d", attacks=1) is None
    assert stored_attacks(_spec(), shipped, "m", "d") == 1
    grown = run_cell(_spec(), model, x, y, attacks=2, cache_dir=run, model_digest="m",
                     data_digest="d")
    assert ship_finished(_spec(), run, shipped, "m", "d", attacks=2) == (1, 2)
    seeded = run_cell(_spec(), model, x, y, attacks=2, cache_dir=shipped, model_digest="m",
                      data_digest="d", on_segment=lambda *a: pytest.fail("recomputed"))
    np.testing.assert_array_equal(seeded.correct, grown.correct)
    assert seeded.provenance == grown.provenance


def test_shipping_copies_the_bytes_it_checked_when_a_run_replaces_the_cell_meanwhile(
        mnist_model_and_data, tmp_path, monkeypatch):
    model, x, y = mnist_model_and_data
    run, shipped = tmp_path / "run", tmp_path / "shipped"
    run_cell(_spec(), model, x, y, attacks=1, cache_dir=run, model_digest="m", data_digest="d")
    [path] = run.iterdir()
    finished = path.read_bytes()
    with pytest.raises(_StopAfterFirstSegment):
        run_cell(_spec(), model, x, y, attacks=2, cache_dir=run, model_digest="m",
                 data_digest="d", on_segment=_stop_in_second_attack)
    half_done = path.read_bytes()
    path.write_bytes(finished)
    real_load_state = cells.load_state

    def load_then_run_saves(where, content=None):  # the running job's atomic save lands here
        loaded = real_load_state(where, content)
        if where == path:
            path.write_bytes(half_done)
        return loaded
    monkeypatch.setattr(cells, "load_state", load_then_run_saves)
    assert ship_finished(_spec(), run, shipped, "m", "d", attacks=1) == (0, 1)
    assert (shipped / path.name).read_bytes() == finished  # never the half-finished attack


def test_shipping_refuses_a_run_cell_of_other_settings(mnist_model_and_data, tmp_path):
    model, x, y = mnist_model_and_data
    run, shipped = tmp_path / "run", tmp_path / "shipped"
    run_cell(_spec(), model, x, y, attacks=1, cache_dir=run, model_digest="m", data_digest="d")
    [path] = run.iterdir()
    other = _spec(method="pqgd", b=100.0)
    path.rename(run / f"{other.key('m', 'd')}.npz")
    with pytest.raises(CompatError, match="belongs to other settings"):
        ship_finished(other, run, shipped, "m", "d", attacks=1)
    assert not shipped.exists()
