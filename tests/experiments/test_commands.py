"""The experiment commands end to end, as a user runs them: outputs, sharing, resume, errors."""
import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import zipfile

import numpy as np
import pytest

import attacks
from experiments.artifacts import ARTIFACTS
from mnist_challenge_compat import load_dataset, load_model, load_state, save_state
from tests.conftest import assert_help_lists
from workflow.evaluate import default_model_dir

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
ENV = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONUNBUFFERED": "1"}
N, RUNS = 6, 2


def _run(command, *args, **kw):
    return subprocess.run([sys.executable, "-m", f"experiments.{command}", *map(str, args)],
                          cwd=REPO, env=ENV, capture_output=True, text=True, timeout=900, **kw)


def _errors(command, stderr):
    return [line for line in stderr.splitlines() if line.startswith(f"{command}:")]


@pytest.fixture(scope="module")
def table2_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("results")
    proc = _run("table2", f"--num_examples={N}", f"--runs={RUNS}", f"--output_dir={out}")
    assert proc.returncode == 0, proc.stderr[-2000:]
    return out


def _pgd_outcomes(model, x, y, attack):
    """PGD-200 from the start the cells use for attack ``attack``, computed independently."""
    x_adv = attacks.perturb(model, x, y, method="pgd", epsilon=0.3, steps=200, step_size=0.01,
                            seed=[0, attack, 0])
    return attacks.predict(model, x_adv) == y


@pytest.mark.slow
def test_table2_reports_each_runs_accuracy_of_the_attack_it_names(table2_dir):
    data = json.loads((table2_dir / "table2.json").read_text())
    rows = {r["attack"]: r for r in data["rows"]}
    assert list(rows) == ["PGD", "PQGD_100", "PQGD_200", "BLOB", "BLOB_QG_100", "BLOB_QG_200"]
    model = load_model(default_model_dir("mnist"))
    x, y = load_dataset("mnist", "test")
    x, y = x[:N], y[:N]
    expected = [_pgd_outcomes(model, x, y, k).mean() for k in range(RUNS)]
    np.testing.assert_allclose(rows["PGD"]["run_accuracies"], expected)
    for row in rows.values():
        assert row["worst"] == min(row["run_accuracies"])
        assert row["avg"] == pytest.approx(np.mean(row["run_accuracies"]))
    for quantized, sign in (("PQGD_100", "PGD"), ("BLOB_QG_200", "BLOB")):
        diff = rows[quantized]["diff_vs_sign_counterpart"]
        assert diff["mean"] == pytest.approx(rows[quantized]["avg"] - rows[sign]["avg"])
        assert diff["low"] <= diff["mean"] <= diff["high"]
    assert rows["BLOB"]["diff_vs_sign_counterpart"] is None
    text = (table2_dir / "table2.md").read_text()
    assert "| PGD |" in text and "200 steps, no restarts" in text and f"first {N} official" in text


@pytest.mark.slow
def test_table3_merges_restarts_per_example_reusing_table2s_attacks(table2_dir):
    proc = _run("table3", f"--num_examples={N}", "--runs=1", f"--restarts={RUNS}",
                f"--output_dir={table2_dir}")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "0 example-steps to compute" in proc.stdout  # every cell came from Table 2's runs
    rows = {r["attack"]: r for r in json.loads((table2_dir / "table3.json").read_text())["rows"]}
    model = load_model(default_model_dir("mnist"))
    x, y = load_dataset("mnist", "test")
    merged = np.logical_and.reduce([_pgd_outcomes(model, x[:N], y[:N], k) for k in range(RUNS)])
    assert rows["PGD"]["run_accuracies"] == [pytest.approx(merged.mean())]
    assert f"{RUNS} random restarts merged per example" in (table2_dir / "table3.md").read_text()


@pytest.mark.slow
def test_an_interrupted_command_exits_130_and_resumes_to_the_same_table(table2_dir, tmp_path):
    args = [sys.executable, "-m", "experiments.table2", f"--num_examples={N}", f"--runs={RUNS}",
            f"--output_dir={tmp_path}"]
    proc = subprocess.Popen(args, cwd=REPO, env=ENV, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    for line in proc.stdout:
        if "PQGD_100 eps=0.3: attack 1/2 at step 20/200" in line:
            proc.send_signal(signal.SIGTERM)
            break
    proc.stdout.read()
    assert proc.wait(timeout=300) == 130
    assert "rerun the same command to resume" in proc.stderr.read()
    resumed = _run("table2", f"--num_examples={N}", f"--runs={RUNS}", f"--output_dir={tmp_path}")
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    first_line = resumed.stdout.splitlines()[1]
    assert "example-steps to compute" in first_line and not first_line.startswith("6 cell(s); 14,400")
    a = json.loads((table2_dir / "table2.json").read_text())["rows"]
    b = json.loads((tmp_path / "table2.json").read_text())["rows"]
    assert [r["run_accuracies"] for r in a] == [r["run_accuracies"] for r in b]


@pytest.mark.slow
def test_figure2_histograms_count_the_models_real_gradients(tmp_path):
    pytest.importorskip("matplotlib", reason="figures need matplotlib (pip install -e '.[test]')")
    import tensorflow as tf
    proc = _run("figure2", "--num_examples=20", f"--output_dir={tmp_path}")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert (tmp_path / "figure2.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    reps = json.loads((tmp_path / "figure2.json").read_text())["representations"]
    model = load_model(default_model_dir("mnist"))
    x, y = load_dataset("mnist", "test")
    xt = tf.constant(x[:20])
    with tf.GradientTape() as tape:
        tape.watch(xt)
        loss = tf.reduce_sum(tf.nn.sparse_softmax_cross_entropy_with_logits(y[:20], model(xt)))
    g = tape.gradient(loss, xt).numpy()
    assert reps["sign"]["zero"] == pytest.approx(np.mean(g == 0))
    assert reps["sign"]["abs_gt_1"] == 0 and reps["sign"]["max_abs"] == 1
    for b in (10, 100, 200, 1000):
        r = reps[f"quantized b={b}"]
        assert r["max_abs"] == b  # the largest component of every image maps to b
        assert r["zero"] == pytest.approx(np.mean(g == 0))  # zeta keeps exact zeros only
    assert reps["quantized b=10"]["abs_gt_eps_over_a"] == 0  # 10 < eps/a = 30


def _zip_dir(path, files):
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in files.items():
            zf.writestr(name, data)
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.mark.slow
def test_secret_model_command_downloads_verifies_extracts_and_runs_tables_2_and_3(tmp_path):
    shipped = default_model_dir("mnist")
    files = {f"secret/{p.name}": p.read_bytes() for p in shipped.glob("checkpoint-6000.*")}
    files["secret/checkpoint"] = ('model_checkpoint_path: "checkpoint-6000"\n'
                                  'all_model_checkpoint_paths: "checkpoint-6000"\n')
    digest = _zip_dir(tmp_path / "secret.zip", files)
    out, downloads = tmp_path / "out", tmp_path / "dl"
    proc = _run("secret_model", f"--url=file://{tmp_path / 'secret.zip'}", f"--sha256={digest}",
                f"--download_dir={downloads}", f"--output_dir={out}", "--num_examples=4",
                "--runs=1")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert f"sha256 {digest} (verified)" in proc.stdout
    assert (downloads / "secret" / "checkpoint-6000.index").read_bytes() == files["secret/checkpoint-6000.index"]
    for name in ("table2", "table3"):
        data = json.loads((out / f"{name}.json").read_text())
        assert data["model"]["model_dir"].endswith("dl/secret")
        assert data["model"]["clean_accuracy"] == 1.0  # the shipped model gets the first 4 right


@pytest.mark.slow
def test_secret_model_command_refuses_a_wrong_digest_and_a_path_escaping_zip(tmp_path):
    _zip_dir(tmp_path / "secret.zip", {"secret/checkpoint": "x"})
    proc = _run("secret_model", f"--url=file://{tmp_path / 'secret.zip'}",
                f"--download_dir={tmp_path / 'a'}", f"--output_dir={tmp_path / 'o'}")
    lines = _errors("secret_model", proc.stderr)
    assert proc.returncode == 1 and len(lines) == 1 and "14eea09c" in lines[0]
    assert not (tmp_path / "a" / "secret").exists()
    digest = _zip_dir(tmp_path / "evil.zip", {"../evil.txt": "x", "secret/checkpoint": "x"})
    proc = _run("secret_model", f"--url=file://{tmp_path / 'evil.zip'}", f"--sha256={digest}",
                f"--download_dir={tmp_path / 'b'}", f"--output_dir={tmp_path / 'o'}")
    lines = _errors("secret_model", proc.stderr)
    assert proc.returncode == 1 and len(lines) == 1 and "evil.txt" in lines[0]
    assert not (tmp_path / "evil.txt").exists() and not (tmp_path / "b" / "secret").exists()


@pytest.mark.parametrize("command,args,message", [
    ("table2", ["--num_examples=0"], "num_examples"),
    ("table4", ["--num_examples=20000"], "at most 10000"),
    ("figure3", ["--runs=x"], "runs"),
    ("run_all", ["--only=table9"], "--only takes names from"),
    ("table2", ["--preset=huge"], "preset"),
    ("table2", ["surplus"], "unexpected arguments"),
    ("run_all", ["table9"], "unknown artifact(s) table9; known: table2,"),
    ("run_all", ["table2", "--only=table3"], "either as arguments or with --only"),
    ("ship_cells", [], "name the artifacts whose cells to ship"),
    ("ship_cells", ["table9"], "unknown: table9"),
])
def test_bad_flags_give_one_line_and_exit_1(command, args, message, tmp_path):
    proc = _run(command, *args, f"--output_dir={tmp_path}")
    lines = _errors(command, proc.stderr)
    assert proc.returncode == 1 and len(lines) == 1 and message in lines[0], proc.stderr[-1000:]


def test_figures_without_matplotlib_name_the_extra_to_install(monkeypatch):
    from experiments.report import pyplot
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    with pytest.raises(ImportError, match=r"pip install -e '\.\[experiments\]'"):
        pyplot()


@pytest.mark.slow
def test_other_images_in_another_data_dir_do_not_reuse_the_cells(table2_dir, mnist_dir, tmp_path):
    # Same images in another folder (the shared copy of the official test set): all reused.
    same = _run("table3", f"--num_examples={N}", "--runs=1", f"--restarts={RUNS}",
                f"--mnist_data_dir={mnist_dir}", f"--cache_dir={table2_dir / 'cells'}",
                f"--output_dir={tmp_path / 'same'}")
    assert same.returncode == 0 and "0 example-steps to compute" in same.stdout
    # Other images (the training files served as the test split): nothing reused.
    other = tmp_path / "other_images"
    other.mkdir()
    for kind in ("images-idx3", "labels-idx1"):
        shutil.copy(mnist_dir / f"train-{kind}-ubyte.gz", other / f"t10k-{kind}-ubyte.gz")
    proc = subprocess.Popen([sys.executable, "-m", "experiments.table3", f"--num_examples={N}",
                             "--runs=1", f"--restarts={RUNS}", f"--mnist_data_dir={other}",
                             f"--cache_dir={table2_dir / 'cells'}",
                             f"--output_dir={tmp_path / 'other'}"],
                            cwd=REPO, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                            text=True)
    for line in proc.stdout:
        if "example-steps to compute" in line:
            proc.send_signal(signal.SIGTERM)
            break
    proc.stdout.read()
    assert proc.wait(timeout=300) == 130
    assert line.startswith(f"6 cell(s); {6 * RUNS * N * 200:,} example-steps to compute"), line


@pytest.mark.slow
def test_stored_only_rerenders_finished_cells_to_the_same_rows(table2_dir, tmp_path):
    proc = _run("table2", f"--num_examples={N}", f"--runs={RUNS}", "--stored_only",
                f"--cache_dir={table2_dir / 'cells'}", f"--output_dir={tmp_path}")
    assert proc.returncode == 0 and "0 example-steps to compute" in proc.stdout, proc.stderr[-1000:]
    again = json.loads((tmp_path / "table2.json").read_text())
    first = json.loads((table2_dir / "table2.json").read_text())
    assert again["rows"] == first["rows"] and again["pending"] == []


def test_stored_only_marks_a_partly_stored_cell_pending_with_the_attacks_it_holds(table2_dir,
                                                                                 tmp_path):
    cache = tmp_path / "cells"
    shutil.copytree(table2_dir / "cells", cache)
    [blob] = cache.glob("mnist-BLOB-eps0.3-*.npz")
    arrays, meta = load_state(blob)
    save_state(blob, {"correct": arrays["correct"][:1]}, meta)  # 1 of its 2 attacks stored
    proc = _run("table2", f"--num_examples={N}", f"--runs={RUNS}", "--stored_only",
                f"--cache_dir={cache}", "--shipped_cells=", f"--output_dir={tmp_path}")
    assert proc.returncode == 0, proc.stderr[-1000:]
    assert "5 cell(s); 0 example-steps to compute" in proc.stdout
    text = (tmp_path / "table2.md").read_text()
    assert (f"| BLOB | 90.48 / 90.56 | pending: cell not finished (1 of {RUNS} attacks; "
            f"{(RUNS - 1) * N * 200:,} example-steps to compute) |") in text
    assert json.loads((tmp_path / "table2.json").read_text())["pending"] == ["BLOB"]
    assert load_state(blob)[0]["correct"].shape[0] == 1  # read, not extended


def test_ship_cells_copies_a_runs_finished_cells_that_rerender_the_same_table(table2_dir,
                                                                             tmp_path):
    shipped, out = tmp_path / "shipped", tmp_path / "out"
    args = ("table2", f"--num_examples={N}", f"--runs={RUNS}", f"--output_dir={table2_dir}",
            f"--shipped_cells={shipped}")
    proc = _run("ship_cells", *args)
    assert proc.returncode == 0, proc.stderr[-1000:]
    assert "6 cell(s) shipped into" in proc.stdout and "not finished" not in proc.stdout
    copies = sorted(shipped.iterdir())
    assert len(copies) == 6
    for path in copies:
        assert path.read_bytes() == (table2_dir / "cells" / path.name).read_bytes()
    again = _run("ship_cells", *args)
    assert again.returncode == 0 and "0 cell(s) shipped into" in again.stdout
    render = _run("table2", f"--num_examples={N}", f"--runs={RUNS}", "--stored_only",
                  f"--cache_dir={shipped}", "--shipped_cells=", f"--output_dir={out}")
    assert render.returncode == 0, render.stderr[-1000:]
    assert (json.loads((out / "table2.json").read_text())["rows"]
            == json.loads((table2_dir / "table2.json").read_text())["rows"])
    same = _run("ship_cells", "table2", f"--num_examples={N}", f"--cache_dir={shipped}",
                f"--shipped_cells={shipped}")
    [line] = _errors("ship_cells", same.stderr)
    assert same.returncode == 1 and "are the same folder" in line


@pytest.mark.parametrize("command, needs", [("table2", "needs its PGD cell finished"),
                                            ("figure4", "needs every cell finished")])
def test_stored_only_without_the_cells_it_needs_fails_in_one_line_computing_nothing(
        command, needs, tmp_path):
    proc = _run(command, "--num_examples=2", "--runs=1", "--stored_only", "--shipped_cells=",
                f"--output_dir={tmp_path}")
    lines = _errors(command, proc.stderr)
    assert proc.returncode == 1 and len(lines) == 1, proc.stderr[-1000:]
    assert f"--stored_only: {command} {needs}; not finished: mnist PGD" in lines[0]
    assert "0 example-steps to compute" in proc.stdout and "attack 1/" not in proc.stdout
    assert not list((tmp_path / "cells").glob("*.npz"))  # nothing computed, nothing stored


def test_an_unwritable_output_folder_fails_in_one_line_before_any_work(tmp_path):
    blocker = tmp_path / "a_file"
    blocker.write_text("")
    proc = _run("table2", "--num_examples=2", f"--output_dir={blocker / 'out'}")
    lines = _errors("table2", proc.stderr)
    assert proc.returncode == 1 and len(lines) == 1, proc.stderr[-1000:]
    assert f"output folder {blocker / 'out'} is not writable" in lines[0]
    assert proc.stdout == ""  # nothing loaded, nothing computed


# command -> a flag its --help must list: the shared flags live in experiments/common.py.
HELP_FLAGS = {**{name: "num_examples" for name in sorted(ARTIFACTS)},
              "run_all": "only", "secret_model": "sha256", "ship_cells": "shipped_cells"}


@pytest.mark.parametrize("command", [
    pytest.param(name, marks=() if name == "table2" else pytest.mark.slow) for name in HELP_FLAGS])
def test_help_and_helpfull_exit_0_and_list_the_commands_flags(command):
    assert_help_lists(["-m", f"experiments.{command}"], HELP_FLAGS[command])


def test_dry_run_prints_the_paper_presets_cells_and_computes_nothing(tmp_path):
    out = tmp_path / "out"
    proc = _run("run_all", "--preset=paper", "--dry_run", f"--output_dir={out}")
    assert proc.returncode == 0, proc.stderr[-2000:]
    lines = proc.stdout.splitlines()
    assert "table2: Table 2 analog: MNIST, 200 steps, no restarts [preset paper]" in lines
    assert ("  mnist BLOB_QG_200 eps=0.3 milestones=20,40,60,80,100,200 images=4000 attacks=5 "
            "(4,000,000 example-steps if none is stored)") in lines
    assert ("  fashion_mnist PQGD_200 eps=0.2 milestones=20,40,60,80,100,200 images=2000 "
            "attacks=10 (4,000,000 example-steps if none is stored)") in lines
    assert "figure4b: Figure 4b analog: average accuracy vs number of steps (Fashion-MNIST) [preset paper]" in lines
    assert ("  fashion_mnist PQGD_500 eps=0.2 milestones=20,40,60,80,100 images=2000 attacks=5 "
            "(1,000,000 example-steps if none is stored)") in lines
    assert ("  mnist MultiTargeted eps=0.3 milestones=200 images=4000 attacks=0 (read only if "
            "stored; --table3_baselines computes it)") in lines
    assert not out.exists()  # nothing written, not even the output folder


def test_cifar10_commands_offline_stop_in_one_line_naming_what_is_missing(tmp_path):
    proc = _run("table6", f"--output_dir={tmp_path / 'out'}")
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    [line] = _errors("table6", proc.stderr)
    assert "python -m mnist_challenge_compat.model_download cifar10_adv_trained" in line
    assert "--cifar10_model_dir" in line
    model = tmp_path / "model"
    model.mkdir()
    (model / "checkpoint").write_text('model_checkpoint_path: "checkpoint-70000"\n')
    proc = _run("figure5", f"--cifar10_model_dir={model}",
                f"--cifar10_data_dir={tmp_path / 'no_data'}", f"--output_dir={tmp_path / 'out'}")
    assert proc.returncode == 1
    [line] = _errors("figure5", proc.stderr)
    assert "cifar-10-batches-bin" in line and "--cifar10_data_dir" in line
    assert not list((tmp_path / "out").glob("figure5.*"))
