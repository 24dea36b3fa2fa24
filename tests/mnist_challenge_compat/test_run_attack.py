"""The verifier: ``evaluate_submission`` in process, and the command line as a subprocess.

The command-line runs use the REAL official test images and a genuine TF1 checkpoint of the
real challenge graph (random weights); the expected accuracy and predictions come from that
TF1 graph itself (``tests.tf1_reference.TF1Model``), not from our Keras loader.
"""
import os
import re
import subprocess
import sys

import numpy as np
import pytest

from mnist_challenge_compat.data import load_dataset
from mnist_challenge_compat.run_attack import evaluate_submission
from tests.conftest import REPO_ROOT, assert_help_lists

EPS = 0.3

# TensorFlow 2.21 prints these C++ log lines at import even with TF_CPP_MIN_LOG_LEVEL=3.
_TF_NOISE = re.compile(
    r"^(WARNING: All log messages before absl::InitializeLog\(\)"
    r"|[IWEF]\d{4} [\d:.]+\s+\d+ [\w.]+:\d+\] "
    r"|To enable the following instructions:)")


# --------------------------------------------------------------------------- in process

def _first_ten_pixels_model(x, training=False):
    """A fake model: logits = the first 10 pixels (so the argmax is easy to predict)."""
    assert training is False
    return np.asarray(x)[:, :10] * 2.0


def test_evaluate_submission_accuracy_and_predictions():
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 1, (23, 784)).astype(np.float32)
    expected = np.argmax(x[:, :10], axis=1)
    y = expected.copy()
    y[:5] = (y[:5] + 1) % 10  # 5 of 23 wrong
    accuracy, preds = evaluate_submission(x, _first_ten_pixels_model, y, batch_size=7)
    assert preds.dtype == np.int64 and preds.shape == (23,)
    assert np.array_equal(preds, expected)
    assert accuracy == pytest.approx(18 / 23)


def test_evaluate_submission_batch_size_does_not_matter():
    x = np.random.default_rng(1).uniform(0, 1, (10, 784))
    y = np.zeros(10, np.int64)
    results = [evaluate_submission(x, _first_ten_pixels_model, y, batch_size=b)
               for b in (1, 3, 10, 200)]
    for accuracy, preds in results[1:]:
        assert accuracy == results[0][0] and np.array_equal(preds, results[0][1])


@pytest.mark.parametrize("x_shape, y_len, batch_size", [
    ((5, 784), 4, 2), ((0, 784), 0, 2), ((5, 784), 5, 0), ((5, 28, 28), 5, 2)])
def test_evaluate_submission_rejects_bad_arguments(x_shape, y_len, batch_size):
    with pytest.raises(ValueError):
        evaluate_submission(np.zeros(x_shape), _first_ten_pixels_model,
                            np.zeros(y_len, np.int64), batch_size)


# --------------------------------------------------------------------------- command line

@pytest.fixture(scope="module")
def test_set(mnist_dir):
    return load_dataset("mnist", "test", mnist_dir)


@pytest.fixture(scope="module")
def checkpoint(secret_meta, tmp_path_factory):
    from tests.tf1_reference import make_tf1_checkpoint

    return make_tf1_checkpoint(secret_meta, tmp_path_factory.mktemp("secret"), seed=7)


def _run_cli(*args, cwd=REPO_ROOT):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", PYTHONPATH=str(REPO_ROOT))
    return subprocess.run([sys.executable, "-m", "mnist_challenge_compat.run_attack", *args],
                          cwd=cwd, env=env, capture_output=True, text=True, timeout=300)


def _our_stderr_lines(result):
    return [line for line in result.stderr.splitlines()
            if line.strip() and not _TF_NOISE.match(line)]


def _tf1_predictions(meta, prefix, x):
    from tests.tf1_reference import TF1Model

    with TF1Model(meta, prefix) as model:
        return np.concatenate([np.argmax(model.logits(x[i:i + 1000]), axis=1)
                               for i in range(0, len(x), 1000)])


@pytest.mark.slow
def test_cli_valid_submission_prints_accuracy_of_the_real_graph(
        tmp_path, test_set, checkpoint, secret_meta, mnist_dir):
    x_nat, y = test_set
    rng = np.random.default_rng(0)
    x_adv = np.clip(x_nat + rng.uniform(-EPS, EPS, x_nat.shape), 0, 1).astype(np.float32)
    attack = tmp_path / "attack.npy"
    np.save(attack, x_adv)
    pred_path = tmp_path / "out" / "pred.npy"
    pred_path.parent.mkdir()

    result = _run_cli(f"--attack_path={attack}", f"--model_dir={os.path.dirname(checkpoint)}",
                      f"--data_dir={mnist_dir}", f"--pred_path={pred_path}", "--batch_size=500")

    assert result.returncode == 0, result.stderr
    assert _our_stderr_lines(result) == []
    match = re.search(r"^Accuracy: (\d+\.\d\d)%$", result.stdout, re.MULTILINE)
    assert match, result.stdout
    expected_preds = _tf1_predictions(secret_meta, checkpoint, x_adv)
    # Random weights: make sure the comparison is not "all images get the same class".
    assert len(np.unique(expected_preds)) >= 5
    preds = np.load(pred_path, allow_pickle=False)
    assert preds.dtype == np.int64 and preds.shape == (10000,)
    assert np.array_equal(preds, expected_preds)
    assert match.group(1) == f"{100.0 * np.mean(expected_preds == y):.2f}"
    assert "Valid challenge submission: all 10,000 test images." in result.stdout.splitlines()
    assert os.listdir(pred_path.parent) == ["pred.npy"]


def test_cli_partial_file_is_refused_by_default_and_says_why(tmp_path, test_set, mnist_dir):
    attack = tmp_path / "attack.npy"
    np.save(attack, test_set[0][:1000])
    result = _run_cli(f"--attack_path={attack}", f"--model_dir={tmp_path / 'no_model'}",
                      f"--data_dir={mnist_dir}", f"--pred_path={tmp_path / 'pred.npy'}")
    assert result.returncode == 1
    lines = _our_stderr_lines(result)
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("run_attack: Invalid shape: expected (10000, 784), found (1000, 784)")
    assert "partial evaluation of the first 1,000 test images" in lines[0]
    assert "--allow_partial" in lines[0] and "--num_examples=10000" in lines[0]
    assert not (tmp_path / "pred.npy").exists()


def test_cli_allow_partial_scores_the_first_n_images_and_says_it_is_no_submission(
        tmp_path, test_set, checkpoint, secret_meta, mnist_dir):
    x_nat, y = test_set
    n = 300
    x_adv = np.clip(x_nat[:n] + np.random.default_rng(1).uniform(-EPS, EPS, (n, 784)), 0, 1)
    attack = tmp_path / "attack.npy"
    np.save(attack, x_adv.astype(np.float32))
    pred_path = tmp_path / "pred.npy"
    result = _run_cli(f"--attack_path={attack}", f"--model_dir={os.path.dirname(checkpoint)}",
                      f"--data_dir={mnist_dir}", f"--pred_path={pred_path}", "--allow_partial")
    assert result.returncode == 0, result.stderr
    expected_preds = _tf1_predictions(secret_meta, checkpoint, x_adv.astype(np.float32))
    assert np.array_equal(np.load(pred_path, allow_pickle=False), expected_preds)
    assert f"Accuracy: {100.0 * np.mean(expected_preds == y[:n]):.2f}%" in result.stdout
    assert ("Partial evaluation: the first 300 of 10,000 test images; NOT a valid challenge "
            "submission (it needs all 10,000).") in result.stdout.splitlines()


def test_cli_allow_partial_still_checks_the_perturbation_against_the_first_n_images(
        tmp_path, test_set, mnist_dir):
    x_adv = test_set[0][:50].copy()
    rows, cols = np.nonzero(x_adv == 0.0)
    x_adv[rows[0], cols[0]] = EPS + 0.001
    attack = tmp_path / "attack.npy"
    np.save(attack, x_adv)
    result = _run_cli(f"--attack_path={attack}", f"--model_dir={tmp_path / 'no_model'}",
                      f"--data_dir={mnist_dir}", "--allow_partial", cwd=tmp_path)
    assert result.returncode == 1
    lines = _our_stderr_lines(result)
    assert len(lines) == 1 and lines[0].startswith("run_attack: Maximum perturbation found: 0.301")


class _CreatesMarker:
    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return open, (self.marker, "w")


def _too_far(x_nat, path):
    x_adv = x_nat.copy()
    rows, cols = np.nonzero(x_nat == 0.0)
    x_adv[rows[0], cols[0]] = EPS + 0.001
    np.save(path, x_adv)
    return "run_attack: Maximum perturbation found: 0.301 (allowed: 0.3)"


def _pickled(_x_nat, path):
    np.save(path, np.array([_CreatesMarker(path.parent / "pwned")], dtype=object),
            allow_pickle=True)
    return f"run_attack: attack file {path}: contains Python objects"


@pytest.mark.parametrize("make_submission", [_too_far, _pickled], ids=["too_far", "pickled"])
def test_cli_invalid_submission_one_line_exit_1_before_loading_model(
        tmp_path, test_set, mnist_dir, make_submission):
    attack = tmp_path / "attack.npy"
    expected = make_submission(test_set[0], attack)
    # The model directory does not exist: the submission must be refused before it matters.
    result = _run_cli(f"--attack_path={attack}", f"--model_dir={tmp_path / 'no_model'}",
                      f"--data_dir={mnist_dir}", f"--pred_path={tmp_path / 'pred.npy'}")
    assert result.returncode == 1
    lines = _our_stderr_lines(result)
    assert len(lines) == 1 and lines[0].startswith(expected), result.stderr
    assert "Traceback" not in result.stderr and "Accuracy" not in result.stdout
    assert not (tmp_path / "pred.npy").exists()
    assert not (tmp_path / "pwned").exists()


def test_cli_bad_flag_one_line_nonzero(tmp_path):
    result = _run_cli("--attack_path=a.npy", "--model_dir=m", "--epsilon=-1", cwd=tmp_path)
    assert result.returncode != 0
    lines = _our_stderr_lines(result)
    assert len(lines) == 1 and lines[0].startswith("run_attack: ") and "epsilon" in lines[0]
    assert "Traceback" not in result.stderr


def test_cli_stderr_is_exactly_the_one_error_line_without_tensorflow_start_up_noise(tmp_path):
    result = _run_cli(f"--attack_path={tmp_path / 'missing.npy'}", "--model_dir=m", cwd=tmp_path)
    assert result.returncode == 1
    assert result.stderr.splitlines() == [f"run_attack: attack file {tmp_path / 'missing.npy'}: not found"]


def test_cli_help_and_helpfull_exit_0_and_list_the_flags():
    assert_help_lists(["-m", "mnist_challenge_compat.run_attack"], "attack_path")
