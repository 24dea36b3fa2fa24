"""Rendering helpers of the artifacts, and where a report says its numbers were computed."""
import dataclasses
import json

import numpy as np
import pytest
import tensorflow as tf

from experiments import paper, plan, report
from experiments.artifacts import (ARTIFACTS, _run_range, compute_provenance,
                                   step_representations)
from experiments.cells import CellResult, run_cell
from experiments.common import Target
from mnist_challenge_compat import load_dataset, load_model
from workflow.evaluate import default_model_dir


def test_error_bars_span_lowest_to_highest_run_and_are_never_negative():
    accs = np.array([[0.7, 0.7, 0.7], [0.8, 0.9, 1.0]])
    avg = accs.mean(axis=1)  # 0.7 averages to 0.7000000000000001 in float64
    bars = _run_range(accs, avg)
    assert bars.shape == (2, 2) and (bars >= 0).all()
    np.testing.assert_allclose(bars[:, 1], [10.0, 10.0])
    np.testing.assert_allclose(bars[:, 0], [0.0, 0.0], atol=1e-12)


def test_step_representations_are_sign_normalised_and_quantized_per_image():
    g = np.array([[0.5, -0.004, 0.0, 0.05], [2.0, 1.0, -0.019, 0.0]], np.float32)
    reps = step_representations(g)
    np.testing.assert_array_equal(reps["sign"], np.sign(g))
    np.testing.assert_allclose(reps["raw g / max|g|"], g / np.abs(g).max(axis=1, keepdims=True))
    # b = 10: image 0 -> 10*[1, -0.008, 0, 0.1] -> [10, -1, 0, 1]; image 1 -> [10, 5, -1, 0]
    np.testing.assert_array_equal(reps["quantized b=10"], [[10, -1, 0, 1], [10, 5, -1, 0]])


@pytest.mark.slow
def test_a_rerender_on_another_machine_keeps_the_cells_provenance(tmp_path, monkeypatch):
    model_dir = default_model_dir("mnist")
    x, y = load_dataset("mnist", "test")
    x, y = x[:4], y[:4]
    target = Target("mnist", load_model(model_dir), str(model_dir), x, y, "m", {}, "d")
    sizes = plan.sizes_for("figure4", num_examples=4, runs=1)
    artifact = ARTIFACTS["figure4"]
    cells = tmp_path / "cells"

    def cells_of_figure4(on_segment):
        return {spec: run_cell(spec, target.model, x, y, attacks=n, cache_dir=cells,
                               model_digest="m", data_digest="d", on_segment=on_segment)
                for _, spec, n in artifact.jobs({"mnist": target}, sizes)}

    monkeypatch.setattr(report, "machine", lambda: "Machine A (3 cores)")
    computed = cells_of_figure4(None)
    monkeypatch.setattr(report, "machine", lambda: "Machine B (64 cores)")
    recomputed = []
    results = cells_of_figure4(lambda *a: recomputed.append(a))
    assert not recomputed
    artifact.render({"mnist": target}, results, sizes, tmp_path)
    text = (tmp_path / "figure4.md").read_text()
    minutes = sum(c.seconds for c in computed.values()) / 60
    assert f"{minutes:.1f} min on Machine A (3 cores), TensorFlow {tf.__version__}" in text
    assert "Machine B" not in text
    [entry] = json.loads((tmp_path / "figure4.json").read_text())["compute"]
    assert entry["machine"] == "Machine A (3 cores)"
    assert entry["seconds"] == pytest.approx(sum(c.seconds for c in computed.values()))


def test_provenance_lists_each_machine_once_with_its_time():
    spec_a, spec_b = (plan.spec("mnist", "pgd", None, 4), plan.spec("mnist", "pqgd", 100, 4))
    a = {"machine": "A", "tensorflow": "2.21"}
    b = {"machine": "B", "tensorflow": "2.22.0"}
    results = {
        spec_a: CellResult(spec_a, np.zeros((1, 6, 4), bool), 90.0,
                           [{**a, "first_date": "2026-11", "last_date": "2026-11", "seconds": 60.0},
                            {**b, "first_date": "2026-12-02", "last_date": "2026-12-03",
                             "seconds": 30.0}]),
        spec_b: CellResult(spec_b, np.zeros((1, 6, 4), bool), 120.0,
                           [{**b, "first_date": "2026-12-01", "last_date": "2026-12-01",
                             "seconds": 120.0}]),
    }
    merged = compute_provenance(results, [spec_a, spec_b, spec_a])  # spec_a counted once
    assert merged == [{**a, "first_date": "2026-11", "last_date": "2026-11", "seconds": 60.0},
                      {**b, "first_date": "2026-12-01", "last_date": "2026-12-03",
                       "seconds": 150.0}]


def _mnist_target(n):
    """An MNIST target of ``n`` images with no model behind it: the tables read only its clean
    accuracy (1.0) and digests."""
    target = Target("mnist", None, "elsewhere", np.zeros(n), None, "m", {}, "d")
    target.__dict__["clean_accuracy"] = 1.0
    return target


def _synthetic_results(name, sizes, correct_of):
    """Cells of artifact ``name`` whose outcomes are ``correct_of(label)`` ((K, N) bool) at
    every milestone, computed nowhere."""
    results = {}
    for spec, attacks in plan.artifact_cells(name, sizes):
        c = correct_of(spec.label)[:attacks]
        results[spec] = CellResult(spec, np.repeat(c[:, None, :], len(spec.milestones), axis=1),
                                   1.0, [])
    return results


def test_table2_puts_the_papers_numbers_beside_ours_with_exact_tests_and_holm(tmp_path):
    n = 40
    sizes = plan.sizes_for("table2", num_examples=n)
    target = Target("mnist", None, str(default_model_dir("mnist")), np.zeros(n), None, "m", {},
                    "d")
    target.__dict__["clean_accuracy"] = 1.0  # no model: the table needs only this number
    pgd = np.ones((5, n), bool)

    def correct_of(label):
        out = pgd.copy()
        if label == "PQGD_100":
            out[:, :6] = False  # 6 images broken in every run, all one way: p = 2 / 2^6
        if label == "PQGD_200":
            out[:, :12] = False  # 12 discordant: enough to size a study from
        return out

    ARTIFACTS["table2"].render({"mnist": target}, _synthetic_results("table2", sizes, correct_of),
                               sizes, tmp_path)
    data = json.loads((tmp_path / "table2.json").read_text())
    rows = {r["attack"]: r for r in data["rows"]}
    assert rows["PGD"]["paper"] == list(paper.TABLES["table2"].numbers["PGD"])
    pq = rows["PQGD_100"]["diff_vs_sign_counterpart"]
    assert pq["p"] == pytest.approx(2 / 2 ** 6) and pq["discordant"] == 6
    assert pq["test"] == "exact sign-flip"
    # Holm over the 4 primary comparisons: PQGD_200's p = 2 / 2^12 is the smallest (times 4),
    # PQGD_100's the second (times 3); the others (p = 1) stay 1.
    assert pq["p_holm"] == pytest.approx(3 * 2 / 2 ** 6)
    assert rows["PQGD_200"]["diff_vs_sign_counterpart"]["p_holm"] == pytest.approx(4 * 2 / 2 ** 12)
    assert rows["BLOB_QG_100"]["diff_vs_sign_counterpart"]["p_holm"] == 1.0
    assert [r["attack"] for r in data["rows"] if r["primary"]] == [
        "PQGD_100", "PQGD_200", "BLOB_QG_100", "BLOB_QG_200"]
    assert data["comparisons"] == {"total": 7, "primary": 4}
    # The paper's own gap for PQGD_200 (92.33 - 92.79 = -0.46 points) at 80% power, from our
    # per-image differences (12 of 40 at -1, the rest 0).
    d = np.array([-1.0] * 12 + [0.0] * (n - 12))
    needed = ((1.959964 + 0.841621) * d.std(ddof=1) / 0.0046) ** 2
    power = rows["PQGD_200"]["power"]
    assert power["versus"] == "PGD" and power["paper_gap_points"] == pytest.approx(-0.46)
    assert power["images_for_80pct_power"] == pytest.approx(needed, rel=1e-4)
    # 6 discordant images (PQGD_100) or none (BLOB_QG_100) are too few to size a study from.
    assert rows["PQGD_100"]["power"]["images_for_80pct_power"] is None
    assert rows["BLOB_QG_100"]["power"]["images_for_80pct_power"] is None
    text = (tmp_path / "table2.md").read_text()
    assert f"PQGD_200 vs PGD (-0.46): about {round(needed, -2):,.0f}" in text
    assert "PQGD_100 vs PGD (-0.42): - (6 discordant image(s), too few to scale from)" in text
    assert "| PGD | 92.56 / 92.79 |" in text
    assert "images: ours the first 40, the paper's 10,000" in text
    assert "Same runs:" in text and "Multiplicity: 7 distinct" in text


def test_tables_mark_the_papers_attacks_we_do_not_run(tmp_path):
    n = 10
    sizes = plan.sizes_for("table3", num_examples=n)
    target = _mnist_target(n)
    ARTIFACTS["table3"].render({"mnist": target},
                               _synthetic_results("table3", sizes, lambda l: np.ones((5, n), bool)),
                               sizes, tmp_path)
    text = (tmp_path / "table3.md").read_text()
    for baseline, method in paper.PENDING_BASELINES.items():
        value = paper.TABLES["table3"].numbers[baseline][0]
        assert (f"| {baseline} | {value:.2f} | pending: no cells yet (the attack exists, "
                f"method={method}; --table3_baselines computes them) |") in text
    assert "| BLOB_QG_200 (100 restarts) | 88.32 | not run (100 restarts) |" in text
    assert "model: ours `elsewhere`" in text  # not the shipped model: named by its folder
    data = json.loads((tmp_path / "table3.json").read_text())
    assert set(data["paper"]["not_run_here"]) == {"Interval Attack", "Surrogate",
                                                   "BLOB_QG_200 (100 restarts)"}


# --------------------------------------------------------------------------- CIFAR-10

def _cifar10_stand_in():
    """A small NHWC CNN on 32x32x3 images on the 0-255 scale, and 6 random images labelled
    with its own clean predictions (clean accuracy 100%)."""
    import keras
    keras.utils.set_random_seed(0)
    inputs = keras.Input((32, 32, 3))
    h = keras.layers.Rescaling(1 / 255)(inputs)
    h = keras.layers.Conv2D(4, 3, strides=2, activation="relu")(h)
    h = keras.layers.Flatten()(h)
    model = keras.Model(inputs, keras.layers.Dense(10)(h))
    x = np.random.default_rng(1).integers(0, 256, (6, 32, 32, 3)).astype(np.float32)
    y = attacks_predict(model, x)
    return model, x, y


def attacks_predict(model, x):
    from attacks import predict
    return predict(model, x)


@pytest.mark.slow
def test_table6_and_figure5_render_the_cells_of_one_set_of_cifar10_attacks(tmp_path):
    pytest.importorskip("matplotlib", reason="figures need matplotlib (pip install -e '.[test]')")
    import attacks
    model, x, y = _cifar10_stand_in()
    target = Target("cifar10", model, str(tmp_path / "stand_in"), x, y, "m", {}, "d")
    cells = tmp_path / "cells"
    results, computed = {}, []
    for name in ("table6", "figure5"):  # figure5 reads table6's cells back
        sizes = plan.sizes_for(name, num_examples=len(x))
        for _, spec, n in ARTIFACTS[name].jobs({"cifar10": target}, sizes):
            assert spec.bounds == (0.0, 255.0) and spec.step_size == 2.0
            results[spec] = run_cell(spec, model, x, y, attacks=n, cache_dir=cells,
                                     model_digest="m", data_digest="d",
                                     on_segment=lambda *a, name=name: computed.append(name))
        ARTIFACTS[name].render({"cifar10": target}, results, sizes, tmp_path)
    assert "figure5" not in computed
    # Independently: PGD of 100 and of 10 steps from the start the cells use for attack 0.
    expected = {}
    for eps in (8.0, 16.0):
        for steps in (10, 100):
            x_adv = attacks.perturb(model, x, y, method="pgd", epsilon=eps, steps=steps,
                                    step_size=2.0, bounds=(0.0, 255.0), seed=[0, 0, 0])
            assert np.abs(x_adv - x).max() <= eps + 1e-3 and x_adv.min() >= 0 and x_adv.max() <= 255
            expected[(eps, steps)] = float(np.mean(attacks_predict(model, x_adv) == y))
    table = json.loads((tmp_path / "table6.json").read_text())
    for eps in (8, 16):
        rows = {r["attack"]: r for r in table["epsilons"][str(eps)]["rows"]}
        assert list(rows) == ["PGD", "PQGD_100", "PQGD_200", "PQGD_500", "PQGD_1000"]
        assert rows["PGD"]["avg"] == pytest.approx(expected[(float(eps), 100)])
        assert rows["PGD"]["paper"] == paper.TABLES[f"table6_eps{eps}"].numbers["PGD"][0]
        diff = rows["PQGD_1000"]["diff_vs_pgd"]
        assert diff["mean"] == pytest.approx(rows["PQGD_1000"]["avg"] - rows["PGD"]["avg"])
    text = (tmp_path / "table6.md").read_text()
    assert "| PGD | 45.31 |" in text and "| 14.02 |" in text and "0-255" in text
    figure = json.loads((tmp_path / "figure5.json").read_text())
    assert figure["steps"] == [10, 20, 30, 40, 100]
    for eps in (8, 16):
        curve = figure["panels"][str(eps)]["curves"]["PGD"]["avg"]
        assert curve[0] == pytest.approx(expected[(float(eps), 10)])
        assert curve[-1] == pytest.approx(expected[(float(eps), 100)])
    assert figure["panels"]["16"]["paper"]["numbers"] == {"PGD": 28.98, "PQGD_1000": 24.91}
    assert (tmp_path / "figure5.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_table3_shows_stored_baseline_cells_as_rows_and_marks_missing_ones_pending(tmp_path):
    n = 10
    sizes = plan.sizes_for("table3", num_examples=n, table3_baselines=True)
    target = _mnist_target(n)

    def correct_of(label):
        out = np.ones((5, n), bool)
        if label == "MultiTargeted":
            out[2, :3] = False  # one restart of five breaks 3 images: merged, 3 broken
        return out

    results = _synthetic_results("table3", sizes, correct_of)
    interval = plan.table3_baseline_specs(sizes)["Interval Attack"]
    del results[interval]  # its cell was never computed
    ARTIFACTS["table3"].render({"mnist": target}, results, sizes, tmp_path)
    text = (tmp_path / "table3.md").read_text()
    assert "| Surrogate (MultiTargeted) | 88.36 | 70.00 | 70.00 |" in text
    assert ("| Interval Attack | 88.42 | pending: no cells yet (the attack exists, "
            "method=interval; --table3_baselines computes them) |") in text
    rows = {r["attack"]: r for r in json.loads((tmp_path / "table3.json").read_text())["rows"]}
    surrogate = rows["Surrogate"]
    assert (surrogate["method"], surrogate["loss"]) == ("multitargeted", "logit_margin")
    diff = surrogate["diff_vs_pgd"]
    # 3 discordant images, all broken by MultiTargeted only: exact McNemar 2 / 2^3, and the
    # exact conditional interval from Clopper-Pearson of 0 in 3 (upper end 1 - 0.025^(1/3)).
    assert (diff["test"], diff["discordant"], diff["interval"]) == ("exact McNemar", 3,
                                                                    "exact conditional")
    assert diff["p"] == pytest.approx(2 / 2 ** 3)
    assert diff["low"] == pytest.approx(-3 / n)
    assert diff["high"] == pytest.approx(3 / n * (2 * (1 - 0.025 ** (1 / 3)) - 1), rel=1e-6)


def test_table3_tests_the_papers_claim_that_blob_qg_200_is_below_each_baseline(tmp_path):
    n = 10
    sizes = plan.sizes_for("table3", num_examples=n, table3_baselines=True)
    target = _mnist_target(n)

    def correct_of(label):
        out = np.ones((5, n), bool)
        if label == "BLOB_QG_200":
            out[0, :6] = False  # merged over the 5 restarts: images 0-5 broken
        if label == "MultiTargeted":
            out[4, 5] = False  # image 5 only: 5 discordant images, all broken by BLOB_QG_200
        return out

    results = _synthetic_results("table3", sizes, correct_of)
    del results[plan.table3_baseline_specs(sizes)["Interval Attack"]]  # pending: no rival test
    ARTIFACTS["table3"].render({"mnist": target}, results, sizes, tmp_path)
    data = json.loads((tmp_path / "table3.json").read_text())
    surrogate = {r["attack"]: r for r in data["rows"]}["Surrogate"]
    assert surrogate["rival"] == "BLOB_QG_200"
    diff = surrogate["diff_rival_minus_this"]
    assert (diff["test"], diff["discordant"]) == ("exact McNemar", 5)
    assert diff["mean"] == pytest.approx(-5 / n)
    assert diff["p"] == pytest.approx(2 / 2 ** 5)
    assert diff["high"] == pytest.approx(5 / n * (2 * (1 - 0.025 ** (1 / 5)) - 1), rel=1e-6)
    text = (tmp_path / "table3.md").read_text()
    assert "BLOB_QG_200 - Surrogate: -50.00 [" in text
    assert "BLOB_QG_200 - Interval Attack" not in text
    # 5 rows against PGD, the 2 BLOB_QG rows against BLOB, the Surrogate against PGD and BLOB_QG_200.
    assert data["comparisons"]["total"] == 5 + 2 + 2


def test_table3_counts_the_compute_of_its_baseline_cells(tmp_path):
    n = 10
    sizes = plan.sizes_for("table3", num_examples=n, table3_baselines=True)
    target = _mnist_target(n)
    results = _synthetic_results("table3", sizes, lambda label: np.ones((5, n), bool))
    where = {"machine": "Baseline CPU", "tensorflow": "9.9"}
    surrogate = plan.table3_baseline_specs(sizes)["Surrogate"]
    results[surrogate] = dataclasses.replace(results[surrogate], provenance=[
        {**where, "first_date": "2026-12-04", "last_date": "2026-12-05", "seconds": 600.0}])
    ARTIFACTS["table3"].render({"mnist": target}, results, sizes, tmp_path)
    assert ("10.0 min on Baseline CPU, TensorFlow 9.9, 2026-12-04 to 2026-12-05"
            in (tmp_path / "table3.md").read_text())
    compute = json.loads((tmp_path / "table3.json").read_text())["compute"]
    assert [{**where, "first_date": "2026-12-04", "last_date": "2026-12-05",
             "seconds": 600.0}] == compute


def test_a_table_marks_the_rows_whose_cells_are_not_finished_as_pending(tmp_path):
    n = 20
    sizes = plan.sizes_for("table2", num_examples=n)
    target = _mnist_target(n)

    def correct_of(label):
        out = np.ones((5, n), bool)
        if label == "PQGD_200":
            out[:, :4] = False  # 4 images broken in every run: p = 2 / 2^4
        return out

    results = _synthetic_results("table2", sizes, correct_of)
    specs = {c.label: c for c in results}
    del results[specs["BLOB_QG_100"]]  # never started
    blob = specs["BLOB"]  # 3 of its 5 attacks finished
    results[blob] = dataclasses.replace(results[blob], correct=results[blob].correct[:3])
    ARTIFACTS["table2"].render({"mnist": target}, results, sizes, tmp_path)
    text = (tmp_path / "table2.md").read_text()
    steps = n * 200
    paper_of = {label: " / ".join(f"{v:.2f}" for v in paper.TABLES["table2"].numbers[label])
                for label in ("BLOB", "BLOB_QG_100")}
    assert (f"| BLOB_QG_100 | {paper_of['BLOB_QG_100']} | pending: cell not finished (0 of 5 "
            f"attacks; {5 * steps:,} example-steps to compute) | - | - | - | - | - |") in text
    assert (f"| BLOB | {paper_of['BLOB']} | pending: cell not finished (3 of 5 attacks; "
            f"{2 * steps:,} example-steps to compute) |") in text
    data = json.loads((tmp_path / "table2.json").read_text())
    assert data["pending"] == ["BLOB", "BLOB_QG_100"]
    assert ("Pending: BLOB, BLOB_QG_100: their cells are not finished; this table was rendered "
            "with `--stored_only`, and `python -m experiments.table2 --num_examples=20` computes "
            "them (resumable).") in text
    rows = {r["attack"]: r for r in data["rows"]}
    assert list(rows) == ["PGD", "PQGD_100", "PQGD_200", "BLOB_QG_200"]
    # BLOB_QG_200 has no sign-step row to compare with; Holm runs over the two PQGD rows.
    assert rows["BLOB_QG_200"]["diff_vs_sign_counterpart"] is None
    assert [r["attack"] for r in data["rows"] if r["primary"]] == ["PQGD_100", "PQGD_200"]
    assert rows["PQGD_200"]["diff_vs_sign_counterpart"]["p_holm"] == pytest.approx(2 * 2 / 2 ** 4)
    assert data["comparisons"] == {"total": 3, "primary": 2}
    assert "BLOB" not in data["paper"]["not_run_here"]


def test_table3_baselines_are_read_only_if_stored_unless_asked_for():
    quick = dict(plan.artifact_cells("table3", plan.sizes_for("table3")))
    asked = dict(plan.artifact_cells("table3", plan.sizes_for("table3", table3_baselines=True)))
    baselines = plan.table3_baseline_specs(plan.sizes_for("table3"))
    assert {c.method for c in baselines.values()} == {"interval", "multitargeted"}
    for c in baselines.values():
        assert c.milestones == (200,) and c.num_examples == 300 and c.epsilon == 0.3
        assert quick[c] == 0 and asked[c] == 5  # 1 run x 5 restarts
    assert baselines["Surrogate"].loss == "logit_margin"


def test_a_rerender_reports_the_cells_recorded_machine_not_the_rendering_one(tmp_path,
                                                                             monkeypatch):
    n = 8
    sizes = plan.sizes_for("table2", num_examples=n)
    target = _mnist_target(n)
    where = {"machine": "Machine A (3 cores, 8 GiB)", "tensorflow": "2.20.0"}
    results = {spec: CellResult(spec, np.ones((attacks, len(spec.milestones), n), bool), 60.0,
                                [{**where, "first_date": "2026-11-02", "last_date": "2026-11-03",
                                  "seconds": 60.0}])
               for spec, attacks in plan.artifact_cells("table2", sizes)}
    monkeypatch.setattr(report, "machine", lambda: "Machine B (64 cores)")
    ARTIFACTS["table2"].render({"mnist": target}, results, sizes, tmp_path)
    text = (tmp_path / "table2.md").read_text()
    # 6 cells of 60 s each, all on machine A.
    assert ("6.0 min on Machine A (3 cores, 8 GiB), TensorFlow 2.20.0, 2026-11-02 to "
            "2026-11-03") in text
    assert "Machine B" not in text and tf.__version__ not in text.replace("2.20.0", "")
    [entry] = json.loads((tmp_path / "table2.json").read_text())["compute"]
    assert entry == {**where, "first_date": "2026-11-02", "last_date": "2026-11-03",
                     "seconds": 360.0}


def test_figure4b_puts_the_papers_fashion_numbers_at_20_steps_and_names_the_eps_difference(
        tmp_path):
    n = 10
    sizes = plan.sizes_for("figure4b", num_examples=n)  # quick: eps 0.1, cells of their own
    target = Target("fashion_mnist", None, "elsewhere", np.zeros(n), None, "m", {}, "d")
    target.__dict__["clean_accuracy"] = 1.0
    ARTIFACTS["figure4b"].render({"fashion_mnist": target},
                                 _synthetic_results("figure4b", sizes,
                                                    lambda label: np.ones((5, n), bool)),
                                 sizes, tmp_path)
    text = (tmp_path / "figure4b.md").read_text()
    assert "| 20 | PGD 75.27 / PQGD_500 72.68 | 100.00 |" in text
    assert "eps: ours 0.1, the paper's 0.2" in text
    assert (tmp_path / "figure4b.png").stat().st_size > 0
    data = json.loads((tmp_path / "figure4b.json").read_text())
    assert data["paper"]["numbers"] == {"PGD": 75.27, "PQGD_500": 72.68}
    assert set(data["curves"]) == {"PGD", "PQGD_100", "PQGD_500", "PQGD_1000"}
