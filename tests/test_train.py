"""train.py end to end, as a program: resume exactness, checkpoints in the real TF1 graphs,
learning, ``--config`` handling and one-line errors. Real data only (``mnist_dir``)."""
from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

import attacks
import models
from mnist_challenge_compat import latest_checkpoint, load_dataset, load_model
from mnist_challenge_compat.checkpoint import read_global_step
from tests.conftest import assert_help_lists
from tests.tf1_reference import TF1Model, meta_for, restore_model_vars

REPO_ROOT = Path(__file__).resolve().parents[1]
TRAIN = REPO_ROOT / "train.py"
# TensorFlow's C++ start-up logging, which is not ours and ignores TF_CPP_MIN_LOG_LEVEL.
TF_NOISE = re.compile(r"^(WARNING: All log messages before absl|[IWEF]\d{4} \d\d:\d\d:\d\d)")


def train_args(mnist_dir: Path, model_dir: Path, **overrides) -> list[str]:
    """A tiny but adversarial run: 500 real training images (10 batches per epoch, so 30
    steps cross two epoch boundaries), PGD-2, eps warm-up over 10 steps."""
    values = dict(data_dir=mnist_dir, model_dir=model_dir, num_train_examples=500, k=2,
                  a=0.1, epsilon=0.3, epsilon_warmup_steps=10, learning_rate=1e-3,
                  num_checkpoint_steps=10, num_output_steps=5, random_seed=7)
    values.update(overrides)
    return [f"--{name}={value}" for name, value in values.items()]


def run_train(args: list[str], timeout: float = 120) -> subprocess.CompletedProcess:
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    return subprocess.run([sys.executable, str(TRAIN), *args], cwd=REPO_ROOT, env=env,
                          capture_output=True, text=True, timeout=timeout)


def our_stderr_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.strip() and not TF_NOISE.match(line)]


def checkpoint_tensors(prefix: str) -> dict[str, np.ndarray]:
    reader = tf.train.load_checkpoint(prefix)
    return {name: reader.get_tensor(name) for name in reader.get_variable_to_shape_map()}


def assert_same_checkpoint(a: str, b: str) -> None:
    ta, tb = checkpoint_tensors(a), checkpoint_tensors(b)
    assert sorted(ta) == sorted(tb)
    for name in ta:
        np.testing.assert_allclose(ta[name], tb[name], rtol=1e-4, atol=1e-6, err_msg=name)


def initial_tensors(arch: str = "madry_mnist", seed: int = 7) -> dict[str, np.ndarray]:
    """The fresh model's weights (``random_seed``) by their checkpoint (TF1) names."""
    from mnist_challenge_compat.checkpoint import tf1_variable_map
    return {name: variable.numpy()
            for name, variable in tf1_variable_map(models.build_model(arch, seed=seed)).items()}


def assert_same_up_to_summation_order(ours: str, theirs: str, rtol: float = 1e-5) -> None:
    """The checkpoints ``ours`` (data-parallel) and ``theirs`` (one device) of a run from
    :func:`initial_tensors` agree up to float summation order, tensor by tensor in norm:
    a weight's change from its initial value to ``rtol`` of that change, an Adam moment to
    ``rtol`` of its norm; the step and the beta powers exactly.

    Why in norm and not element by element: the summed gradient of a batch cut into shards
    differs from one device's by rounding of the sums (measured normwise about 1e-7 to 1e-6),
    but a coordinate whose gradient is a cancelling sum near Adam's epsilon (1e-8) gets a
    different normalised step (up to the learning rate), so a few coordinates in millions
    differ by far more than rel 1e-5 in any order of summation.
    """
    a, b = checkpoint_tensors(ours), checkpoint_tensors(theirs)
    start = initial_tensors()
    assert sorted(a) == sorted(b)
    for name in a:
        if name in start:
            scale = np.linalg.norm(b[name] - start[name])
            assert scale > 0, name  # the weights were trained
        elif "/Adam" in name:
            scale = np.linalg.norm(b[name])
        else:  # global_step, beta1_power, beta2_power
            np.testing.assert_array_equal(a[name], b[name], err_msg=name)
            continue
        assert np.linalg.norm(a[name] - b[name]) <= rtol * scale, \
            (name, float(np.linalg.norm(a[name] - b[name]) / scale))


def interrupt_after(args: list[str], marker: str, timeout: float = 120) -> int:
    """Runs train.py, sends SIGTERM once a stdout line contains ``marker``; returns rc."""
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    proc = subprocess.Popen([sys.executable, str(TRAIN), *args], cwd=REPO_ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        for line in proc.stdout:
            if marker in line:
                proc.send_signal(signal.SIGTERM)
                break
        proc.stdout.read()
        return proc.wait(timeout=timeout)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory, mnist_dir) -> str:
    """30 steps in one go; the prefix of its final checkpoint."""
    model_dir = tmp_path_factory.mktemp("uninterrupted")
    result = run_train(train_args(mnist_dir, model_dir, max_num_training_steps=30))
    assert result.returncode == 0, result.stderr[-2000:]
    prefix = latest_checkpoint(model_dir)
    assert prefix is not None and read_global_step(prefix) == 30
    return prefix


@pytest.mark.slow
def test_resume_after_stop_and_signal_equals_uninterrupted_run(tmp_path, mnist_dir,
                                                               uninterrupted):
    # 1) 15 steps, then the same command with a larger max continues from checkpoint-15.
    first = run_train(train_args(mnist_dir, tmp_path, max_num_training_steps=15))
    assert first.returncode == 0, first.stderr[-2000:]
    assert read_global_step(latest_checkpoint(tmp_path)) == 15
    # 2) SIGTERM mid-run: a checkpoint of the steps done so far, exit status 128 + 15.
    rc = interrupt_after(train_args(mnist_dir, tmp_path, max_num_training_steps=30,
                                    num_output_steps=1), marker="step 17/")
    assert rc == 128 + signal.SIGTERM
    stopped_at = read_global_step(latest_checkpoint(tmp_path))
    assert 15 < stopped_at < 30
    # 3) The same command again finishes the run.
    last = run_train(train_args(mnist_dir, tmp_path, max_num_training_steps=30))
    assert last.returncode == 0, last.stderr[-2000:]
    assert "resuming from" in last.stdout and f"at step {stopped_at}" in last.stdout
    assert "step 0/30" not in last.stdout
    resumed = latest_checkpoint(tmp_path)
    assert read_global_step(resumed) == 30
    # Weights AND Adam slots / beta powers equal those of the uninterrupted run.
    assert_same_checkpoint(resumed, uninterrupted)


@pytest.mark.slow
@pytest.mark.parametrize("arch", ["madry_mnist", "daa_fashion"])
def test_training_checkpoints_restore_in_the_real_tf1_graph(tmp_path, mnist_dir, shared_data,
                                                            arch):
    result = run_train(train_args(mnist_dir, tmp_path, arch=arch, max_num_training_steps=3,
                                  k=1, num_train_examples=150))
    assert result.returncode == 0, result.stderr[-2000:]
    prefix = latest_checkpoint(tmp_path)
    x, _ = load_dataset("mnist", "test", mnist_dir)
    x = x[:64]
    expected = np.asarray(load_model(prefix, arch=arch)(x))
    meta = meta_for(arch, shared_data)
    with restore_model_vars(meta, prefix) as graph:
        np.testing.assert_allclose(graph.logits(x), expected, rtol=1e-4, atol=1e-4)
    # The graph's own Saver (optimizer slots, beta powers, global_step) restores it too.
    stored = checkpoint_tensors(prefix)
    with TF1Model(meta, prefix) as graph:
        np.testing.assert_allclose(graph.logits(x), expected, rtol=1e-4, atol=1e-4)
        assert int(graph.variable_value("global_step")) == 3
        np.testing.assert_allclose(graph.variable_value("beta1_power"), 0.9 ** 4, rtol=1e-6)
        np.testing.assert_array_equal(graph.variable_value("Variable/Adam"),
                                      stored["Variable/Adam"])
        assert np.any(stored["Variable/Adam_1"] > 0)


def adversarial_accuracy(model, x, y, epsilon: float) -> float:
    config = attacks.AttackConfig(method="pgd", epsilon=epsilon, steps=10,
                                  step_size=epsilon / 4, batch_size=250)
    return attacks.attack(model, x, y, config, seed=0).accuracy


@pytest.mark.slow
def test_short_training_improves_adversarial_accuracy(tmp_path, mnist_dir):
    epsilon = 0.1
    result = run_train(train_args(mnist_dir, tmp_path, num_train_examples=10000,
                                  max_num_training_steps=200, epsilon=epsilon, k=2, a=0.05,
                                  epsilon_warmup_steps=50, num_checkpoint_steps=1000,
                                  num_output_steps=100), timeout=240)
    assert result.returncode == 0, result.stderr[-2000:]
    x, y = load_dataset("mnist", "test", mnist_dir)
    x, y = x[:500], y[:500]
    untrained = adversarial_accuracy(models.build_model("madry_mnist", seed=7), x, y, epsilon)
    trained_model = load_model(tmp_path)
    trained = adversarial_accuracy(trained_model, x, y, epsilon)
    clean = float(np.mean(attacks.predict(trained_model, x) == y))
    assert untrained < 0.2
    assert clean > 0.8
    assert trained > untrained + 0.3, (untrained, trained, clean)


@pytest.mark.slow
def test_challenge_config_is_honoured_and_explicit_flags_win(tmp_path, mnist_dir,
                                                             shared_data):
    config = shared_data / "mnist_challenge" / "config.json"
    result = run_train([f"--config={config}", f"--model_dir={tmp_path}",
                        f"--data_dir={mnist_dir}", "--max_num_training_steps=2", "--k=1",
                        "--num_train_examples=100"])
    assert result.returncode == 0, result.stderr[-2000:]
    written = json.loads((tmp_path / "config.json").read_text())
    # From the challenge file:
    assert written["epsilon"] == 0.3 and written["a"] == 0.01
    assert written["random_seed"] == 4557077 and written["num_checkpoint_steps"] == 300
    assert written["training_batch_size"] == 50 and written["loss_func"] == "xent"
    assert written["random_start"] is True
    # Given on the command line:
    assert written["k"] == 1 and written["max_num_training_steps"] == 2
    assert written["model_dir"] == str(tmp_path)
    assert read_global_step(latest_checkpoint(tmp_path)) == 2


@pytest.mark.parametrize("args, message", [
    (["--k=-1"], "--k"),
    (["--dataset=cifar10"], "--dataset"),
    (["--training_batch_size=0"], "--training_batch_size"),
    (["--learning_rate=0"], "learning_rate"),
    (["--epsilon=0.3", "--k=5", "--a=0"], "--a must be a finite number > 0"),
    (["--config=/nonexistent/config.json"], "file not found"),
    (["--data_dir=/nonexistent/mnist"], "does not exist"),
    (["--num_train_examples=10", "--training_batch_size=50"], "fewer than one batch"),
    (["stray_argument"], "unexpected arguments"),
])
def test_bad_flags_and_missing_data_fail_in_one_line(tmp_path, mnist_dir, args, message):
    defaults = [f"--model_dir={tmp_path / 'run'}"]
    if not any(a.startswith("--data_dir") for a in args):
        defaults.append(f"--data_dir={mnist_dir}")
    result = run_train(defaults + args)
    assert result.returncode == 1
    lines = our_stderr_lines(result.stderr)
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("train.py: ") and message in lines[0], lines[0]
    assert "Traceback" not in result.stderr
    assert latest_checkpoint(tmp_path / "run") is None


# --------------------------------------------------------------------------- resume settings

def swapped_split_dir(mnist_dir: Path, target: Path) -> Path:
    """A data folder whose TRAINING files are the real test files (other images, same format,
    same count of 10,000) and whose test files are the real training files."""
    target.mkdir()
    for ours, theirs in (("train", "t10k"), ("t10k", "train")):
        for kind in ("images-idx3", "labels-idx1"):
            shutil.copy(mnist_dir / f"{theirs}-{kind}-ubyte.gz", target / f"{ours}-{kind}-ubyte.gz")
    return target


@pytest.fixture(scope="module")
def two_steps(tmp_path_factory, mnist_dir) -> Path:
    """A model_dir trained for 2 steps with ``train_args`` (k=1, 100 examples)."""
    model_dir = tmp_path_factory.mktemp("two_steps")
    result = run_train(train_args(mnist_dir, model_dir, max_num_training_steps=2, k=1,
                                  num_train_examples=100))
    assert result.returncode == 0, result.stderr[-2000:]
    return model_dir


def copy_run(model_dir: Path, tmp_path: Path) -> Path:
    copy = tmp_path / "run"
    shutil.copytree(model_dir, copy)
    return copy


def test_config_json_records_the_settings_and_the_training_data_digest(two_steps, mnist_dir):
    written = json.loads((two_steps / "config.json").read_text())
    x, y = load_dataset("mnist", "train", mnist_dir)
    x, y = x[:100], y[:100]
    expected = hashlib.sha256(f"float32{x.shape} int64{y.shape}\n".encode()
                              + x.astype(np.float32).tobytes() + y.astype(np.int64).tobytes())
    assert written["train_data_sha256"] == expected.hexdigest()
    assert written["learning_rate"] == 1e-3 and written["k"] == 1
    assert written["num_train_examples"] == 100
    assert "setting_changes" not in written


@pytest.mark.parametrize("changed, named", [
    ({"learning_rate": 2e-3}, ["learning_rate 0.001 -> 0.002"]),
    ({"k": 2, "epsilon": 0.2}, ["k 1 -> 2", "epsilon 0.3 -> 0.2"]),
    ({"random_seed": 8, "training_batch_size": 25}, ["random_seed 7 -> 8",
                                                      "training_batch_size 50 -> 25"]),
    ({"num_train_examples": 150}, ["num_train_examples 100 -> 150", "train_data_sha256"]),
    ({"data_dir": "OTHER_IMAGES"}, ["train_data_sha256"]),
    ({"attack_dtype": "bfloat16"}, ["attack_dtype float32 -> bfloat16"]),
])
def test_resume_with_another_trajectory_setting_is_refused_naming_it(two_steps, mnist_dir,
                                                                     tmp_path, changed, named):
    if changed.get("data_dir") == "OTHER_IMAGES":
        changed = {"data_dir": swapped_split_dir(mnist_dir, tmp_path / "other")}
    config_before = (two_steps / "config.json").read_bytes()
    args = train_args(mnist_dir, two_steps, **{"max_num_training_steps": 4, "k": 1,
                                               "num_train_examples": 100, **changed})
    result = run_train(args)
    assert result.returncode == 1
    lines = our_stderr_lines(result.stderr)
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("train.py: ") and "--allow_setting_changes" in lines[0]
    for text in named:
        assert text in lines[0], lines[0]
    unchanged = {"learning_rate", "k", "epsilon", "random_seed", "training_batch_size",
                 "num_train_examples", "train_data_sha256"} - {t.split()[0] for t in named}
    assert not any(re.search(rf"[(,] ?{key} ", lines[0]) for key in unchanged), lines[0]
    # Refused before any compute: no step taken, config.json untouched.
    assert "step 2/" not in result.stdout
    assert read_global_step(latest_checkpoint(two_steps)) == 2
    assert (two_steps / "config.json").read_bytes() == config_before


@pytest.mark.slow
def test_step_counts_and_intervals_may_change_on_resume(two_steps, mnist_dir, tmp_path):
    run = copy_run(two_steps, tmp_path)
    result = run_train(train_args(mnist_dir, run, max_num_training_steps=3, k=1,
                                  num_train_examples=100, num_output_steps=1,
                                  num_summary_steps=7, num_checkpoint_steps=9))
    assert result.returncode == 0, result.stderr[-2000:]
    assert "resuming from" in result.stdout and "step 2/3" in result.stdout
    written = json.loads((run / "config.json").read_text())
    assert written["max_num_training_steps"] == 3 and written["num_output_steps"] == 1
    assert written["num_summary_steps"] == 7 and written["num_checkpoint_steps"] == 9
    assert "setting_changes" not in written
    assert read_global_step(latest_checkpoint(run)) == 3


@pytest.mark.slow
def test_allowed_setting_changes_are_recorded_with_their_step(two_steps, mnist_dir, tmp_path):
    run = copy_run(two_steps, tmp_path)
    base = dict(k=1, num_train_examples=100)
    first = run_train(train_args(mnist_dir, run, max_num_training_steps=3, learning_rate=5e-4,
                                 **base) + ["--allow_setting_changes"])
    assert first.returncode == 0, first.stderr[-2000:]
    second = run_train(train_args(mnist_dir, run, max_num_training_steps=4, learning_rate=5e-4,
                                  **dict(base, k=2)) + ["--allow_setting_changes"])
    assert second.returncode == 0, second.stderr[-2000:]
    # The same settings again need no flag, and the history is kept.
    third = run_train(train_args(mnist_dir, run, max_num_training_steps=5, learning_rate=5e-4,
                                 **dict(base, k=2)))
    assert third.returncode == 0, third.stderr[-2000:]
    written = json.loads((run / "config.json").read_text())
    assert written["learning_rate"] == 5e-4 and written["k"] == 2
    assert written["setting_changes"] == [
        {"setting": "learning_rate", "step": 2, "old": 1e-3, "new": 5e-4},
        {"setting": "k", "step": 3, "old": 1, "new": 2},
    ]
    assert read_global_step(latest_checkpoint(run)) == 5


def test_a_shipped_models_config_is_compared_key_by_key(tmp_path, mnist_dir):
    # The shipped config.json predates the data digest and leaves num_train_examples out:
    # with its own settings only the one changed setting is named.
    run = tmp_path / "madry_mnist"
    shutil.copytree(REPO_ROOT / "models" / "pretrained" / "madry_mnist", run)
    assert "train_data_sha256" not in json.loads((run / "config.json").read_text())
    refused = run_train([f"--config={run / 'config.json'}", f"--model_dir={run}",
                         f"--data_dir={mnist_dir}", "--max_num_training_steps=6001",
                         "--learning_rate=0.01"])
    assert refused.returncode == 1
    [line] = our_stderr_lines(refused.stderr)
    assert re.search(r"\(learning_rate 0\.001 -> 0\.01\);", line), line


@pytest.mark.slow
def test_a_config_without_the_data_digest_resumes_and_gains_it(two_steps, mnist_dir, tmp_path):
    run = copy_run(two_steps, tmp_path)
    current = json.loads((run / "config.json").read_text())
    digest = current.pop("train_data_sha256")
    (run / "config.json").write_text(json.dumps(current))
    result = run_train(train_args(mnist_dir, run, max_num_training_steps=3, k=1,
                                  num_train_examples=100))
    assert result.returncode == 0, result.stderr[-2000:]
    written = json.loads((run / "config.json").read_text())
    assert written == dict(current, train_data_sha256=digest, max_num_training_steps=3,
                           model_dir=str(run))


def _config_without_attack_dtype(two_steps: Path, tmp_path: Path) -> Path:
    """A copy of the 2-step run whose config.json predates --attack_dtype (no such key)."""
    run = copy_run(two_steps, tmp_path)
    current = json.loads((run / "config.json").read_text())
    assert current.pop("attack_dtype") == "float32"
    (run / "config.json").write_text(json.dumps(current))
    return run


def test_a_config_written_before_attack_dtype_means_float32(two_steps, mnist_dir, tmp_path):
    run = _config_without_attack_dtype(two_steps, tmp_path)
    # Absent means float32: asking for bfloat16 is a change of the trajectory, refused.
    refused = run_train(train_args(mnist_dir, run, max_num_training_steps=3, k=1,
                                   num_train_examples=100, attack_dtype="bfloat16"))
    assert refused.returncode == 1
    [line] = our_stderr_lines(refused.stderr)
    assert "attack_dtype float32 -> bfloat16" in line and "--allow_setting_changes" in line
    assert read_global_step(latest_checkpoint(run)) == 2


@pytest.mark.slow
def test_a_config_written_before_attack_dtype_resumes_as_float32(two_steps, mnist_dir, tmp_path):
    run = _config_without_attack_dtype(two_steps, tmp_path)
    result = run_train(train_args(mnist_dir, run, max_num_training_steps=3, k=1,
                                  num_train_examples=100))
    assert result.returncode == 0, result.stderr[-2000:]
    assert "resuming from" in result.stdout
    written = json.loads((run / "config.json").read_text())
    assert written["attack_dtype"] == "float32" and "setting_changes" not in written
    assert read_global_step(latest_checkpoint(run)) == 3


@pytest.mark.slow
def test_a_bfloat16_attack_run_trains_float32_weights(two_steps, mnist_dir, tmp_path):
    # The same 2 steps as the float32 fixture (same seed, data, PGD-1), attack in bfloat16.
    result = run_train(train_args(mnist_dir, tmp_path, max_num_training_steps=2, k=1,
                                  num_train_examples=100, attack_dtype="bfloat16"))
    assert result.returncode == 0, result.stderr[-2000:]
    written = json.loads((tmp_path / "config.json").read_text())
    assert written["attack_dtype"] == "bfloat16"
    prefix = latest_checkpoint(tmp_path)
    assert read_global_step(prefix) == 2
    ours, theirs = checkpoint_tensors(prefix), checkpoint_tensors(latest_checkpoint(two_steps))
    assert sorted(ours) == sorted(theirs)
    # The model's variables (the challenge's names), not the optimizer's slots.
    weights = [n for n in ours if re.fullmatch(r"Variable(_\d+)?", n)]
    assert weights and all(ours[n].dtype == np.float32 for n in weights)
    assert all(np.isfinite(ours[n]).all() for n in weights)
    # Both start from the same initial weights and take 2 Adam steps of lr 1e-3, each of
    # which moves a weight by at most lr in its first steps: the runs differ by at most
    # 2 x 2 x lr per weight, and they do differ (the bfloat16 attack took effect).
    assert max(float(np.max(np.abs(ours[n] - theirs[n]))) for n in weights) > 0
    for n in weights:
        np.testing.assert_allclose(ours[n], theirs[n], rtol=0, atol=4e-3 * (1 + 1e-3),
                                   err_msg=n)


def test_progress_eta_counts_hours_past_a_day():
    code = ("import train; s = train.Settings(random_seed=0, max_num_training_steps=100000, "
            "num_output_steps=1, num_summary_steps=1, num_checkpoint_steps=1, "
            "training_batch_size=50, epsilon=0.3, k=1, a=0.1, random_start=True, "
            "loss_func='xent', model_dir='m', dataset='mnist', data_dir=None, "
            "arch='madry_mnist', learning_rate=1e-3, epsilon_warmup_steps=0, "
            "num_train_examples=None); print(train.progress_line(10000, s, 1, 1, 50, 1.0))")
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True,
                         text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().endswith("ETA 25:00:00")  # 90,000 steps left at 1 s each


def test_help_and_helpfull_exit_0_and_list_the_flags():
    assert_help_lists(["train.py"], "max_num_training_steps")


@pytest.mark.slow
def test_mirrored_on_two_logical_cpus_gives_the_one_device_checkpoint_and_resumes(tmp_path,
                                                                                  mnist_dir):
    # 6 steps of PGD-2 training on batches of 50 split 25 + 25 over 2 logical CPU devices.
    mirrored = ["--strategy=mirrored", "--devices=2"]
    one = run_train(train_args(mnist_dir, tmp_path / "one", max_num_training_steps=6))
    assert one.returncode == 0, one.stderr[-2000:]
    first = run_train(train_args(mnist_dir, tmp_path / "two", max_num_training_steps=3) + mirrored)
    assert first.returncode == 0, first.stderr[-2000:]
    assert "on MirroredStrategy, 2 replica(s): cpu:0, cpu:1" in first.stdout
    again = run_train(train_args(mnist_dir, tmp_path / "two", max_num_training_steps=6) + mirrored)
    assert again.returncode == 0, again.stderr[-2000:]
    assert "resuming from" in again.stdout and "at step 3" in again.stdout
    ours, theirs = (latest_checkpoint(tmp_path / name) for name in ("two", "one"))
    assert read_global_step(ours) == 6
    assert_same_up_to_summation_order(ours, theirs)
    # Element by element all but a handful of coordinates agree to rel 1e-5 (those whose
    # gradient is float noise near Adam's epsilon; measured: at most 3 of a weight tensor's
    # 3.2 million, 1.1e-5 absolute after 6 steps of lr 1e-3), and none moves by more than
    # the learning rate per step.
    a, b = checkpoint_tensors(ours), checkpoint_tensors(theirs)
    for name in a:
        close = np.isclose(a[name], b[name], rtol=1e-5, atol=1e-7)
        assert np.sum(~close) <= max(2, (0.02 if "/Adam" in name else 1e-5) * close.size), name
        if "/Adam" not in name:
            assert np.abs(a[name] - b[name]).max() <= 2 * 1e-3 * 6, name
    moved = sum(np.abs(a[n] - checkpoint_tensors(str(tmp_path / "two" / "checkpoint-3"))[n]).sum()
                for n in a if n != "global_step")
    assert moved > 0  # the resumed steps did change the weights


def test_data_parallel_shards_craft_the_one_device_examples_and_gradients(tmp_path, mnist_dir):
    """What is exact and what is summation order, in one process on 2 logical CPU devices
    (a subprocess: the CPU is split before TensorFlow initialises it): the PGD examples
    crafted shard by shard equal the whole batch's bit for bit, and the summed gradient of
    the shards equals one device's to rel 1e-5 in norm, at the same weights."""
    code = f"""
import numpy as np, tensorflow as tf
from absl import flags
import train
flags.FLAGS(["train.py"])
from workflow.strategy import make_strategy
strategy = make_strategy("mirrored", "2")
s = train.Settings(random_seed=7, max_num_training_steps=2, num_output_steps=1,
    num_summary_steps=1, num_checkpoint_steps=1, training_batch_size=50, epsilon=0.3, k=3,
    a=0.1, random_start=True, loss_func="xent", model_dir="unused", dataset="mnist",
    data_dir={str(mnist_dir)!r}, arch="madry_mnist", learning_rate=1e-3,
    epsilon_warmup_steps=0, num_train_examples=100)
x_all, y_all = train.load_training_data(s)
x, y = x_all[:50], y_all[:50]
one = train.AdversarialTrainer(train.restore_or_build(s, None)[0], s)
two = train.AdversarialTrainer(train.restore_or_build(s, None, strategy)[0], s, strategy)
a1, a2 = one.adversarial_batch(x, y, 0), two.adversarial_batch(x, y, 0)
assert np.array_equal(a1, a2), int((a1 != a2).sum())
assert not np.array_equal(a1, x)
def grads(model, xs, ys):
    with tf.GradientTape() as tape:
        loss = tf.reduce_sum(tf.nn.sparse_softmax_cross_entropy_with_logits(
            labels=ys, logits=model(xs, training=True)))
    return [g.numpy() for g in tape.gradient(loss, model.trainable_variables)]
whole = grads(one.model, a1, y)
with tf.device("/cpu:0"):
    first = grads(one.model, a1[:25], y[:25])
with tf.device("/cpu:1"):
    second = grads(one.model, a1[25:], y[25:])
for g, p, q in zip(whole, first, second):
    assert np.linalg.norm(p + q - g) <= 1e-5 * np.linalg.norm(g), np.linalg.norm(p + q - g)
print("ok")
"""
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, env=env,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0 and result.stdout.strip().endswith("ok"), result.stderr[-3000:]


def test_bfloat16_training_attack_follows_the_weights_trained_since_the_last_batch():
    """The bfloat16 attack runs on a copy of the model made once; after updates, one tiny
    PGD step (no random start, unclipped) must point along the sign of the CURRENT float32
    model's input gradient, not the initial weights' (a stale copy agrees on about half the
    pixels)."""
    from train import AdversarialTrainer, Settings
    settings = Settings(random_seed=1, max_num_training_steps=10, num_output_steps=1,
                        num_summary_steps=1, num_checkpoint_steps=1, training_batch_size=8,
                        epsilon=0.2, k=1, a=0.001, random_start=False, loss_func="xent",
                        model_dir="unused", dataset="fashion_mnist", data_dir=None,
                        arch="daa_fashion", learning_rate=1e-2, epsilon_warmup_steps=0,
                        num_train_examples=None, attack_dtype="bfloat16")
    model = models.build_model("daa_fashion", seed=1)
    trainer = AdversarialTrainer(model, settings)
    rng = np.random.default_rng(0)
    x = (rng.random((8, 784), dtype=np.float32) * 0.5 + 0.25).astype(np.float32)
    y = np.arange(8, dtype=np.int64)
    for _ in range(5):
        trainer.update(x, y)
    xt = tf.constant(x)
    with tf.GradientTape() as tape:
        tape.watch(xt)
        loss = tf.reduce_sum(tf.nn.sparse_softmax_cross_entropy_with_logits(
            labels=y, logits=model(xt, training=False)))
    expected = np.sign(tape.gradient(loss, xt).numpy())
    step = np.sign(trainer.adversarial_batch(x, y, 5) - x)
    assert (step == expected).mean() > 0.9
