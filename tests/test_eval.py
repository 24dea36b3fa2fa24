"""eval.py end to end, as a user runs it: outputs, the challenge's rules, resume, errors."""
import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from mnist_challenge_compat import check_submission, load_dataset, load_submission
from tests.conftest import assert_help_lists
from tests.tf1_reference import TF1Model, make_tf1_checkpoint

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ENV = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONUNBUFFERED": "1"}


def _eval(*args, **kw):
    return subprocess.run([sys.executable, "eval.py", *args], cwd=REPO, env=ENV, capture_output=True,
                          text=True, timeout=600, **kw)


def _our_lines(stderr: str) -> list[str]:
    """stderr without TensorFlow's own start-up log lines."""
    return [l for l in stderr.splitlines() if l.startswith("eval.py")]


@pytest.fixture(scope="module")
def challenge_checkpoint(tmp_path_factory, secret_meta):
    out = tmp_path_factory.mktemp("ckpt")
    return out, make_tf1_checkpoint(secret_meta, out, seed=7)


@pytest.mark.slow
def test_pgd_on_200_images_passes_the_rules_and_matches_the_real_graph(challenge_checkpoint, secret_meta,
                                                                       mnist_dir, tmp_path):
    model_dir, prefix = challenge_checkpoint
    out = tmp_path / "pgd"
    res = _eval(f"--model_dir={model_dir}", f"--data_dir={mnist_dir}", "--num_examples=200",
                "--steps=10", f"--output_dir={out}")
    assert res.returncode == 0, res.stderr[-2000:]
    x_nat, y = load_dataset("mnist", "test", mnist_dir)
    x_adv = load_submission(out / "attack.npy")
    assert x_adv.dtype == np.float32 and x_adv.shape == (200, 784)
    check_submission(x_adv, x_nat[:200], 0.3, num_examples=200)
    results = json.loads((out / "results.json").read_text())
    with TF1Model(secret_meta, prefix) as tf1:
        real_pred = tf1.logits(x_adv).argmax(1)
        real_clean = tf1.logits(x_nat[:200]).argmax(1)
    assert results["adversarial_accuracy"] == pytest.approx(np.mean(real_pred == y[:200]))
    assert results["clean_accuracy"] == pytest.approx(np.mean(real_clean == y[:200]))
    np.testing.assert_array_equal(np.load(out / "pred.npy", allow_pickle=False), real_pred)
    for key in ("settings", "model", "data", "run_accuracies", "restart_accuracies", "wall_time_s",
                "example_steps_per_s", "versions", "worst_accuracy", "average_accuracy"):
        assert key in results
    assert set(results["model"]["checkpoint_sha256"]) == {"checkpoint-99900.index",
                                                          "checkpoint-99900.data-00000-of-00001"}
    assert "| Attack | Submitted by | Accuracy | Submission Date |" in (out / "leaderboard.md").read_text()
    assert "run 1/1 restart 1/1 done" in res.stdout and "example-steps/s" in res.stdout
    assert (out / "examples.png").is_file() and not (out / "restarts.png").exists()


def test_noplots_and_plot_examples_reach_the_evaluation(tmp_path):
    res = _eval("--num_examples=10", "--steps=2", "--noplots", "--plot_examples=3",
                f"--output_dir={tmp_path}")
    assert res.returncode == 0, res.stderr[-2000:]
    assert not list(tmp_path.glob("*.png"))
    assert len(json.loads((tmp_path / "results.json").read_text())["examples"]) == 3


@pytest.mark.slow
def test_sigterm_after_first_restart_then_rerun_is_bit_identical(challenge_checkpoint, tmp_path):
    model_dir, _ = challenge_checkpoint
    args = [f"--model_dir={model_dir}", "--num_examples=400", "--steps=15", "--restarts=3",
            "--attack=blob_qg", "--b=100"]
    proc = subprocess.Popen([sys.executable, "eval.py", *args, f"--output_dir={tmp_path / 'cut'}"],
                            cwd=REPO, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    seen = []
    for line in proc.stdout:
        seen.append(line)
        if "restart 1/3 done" in line:
            proc.send_signal(signal.SIGTERM)
            break
    rest, err = proc.communicate(timeout=300)
    assert proc.returncode == 130, "".join(seen) + rest
    [message] = _our_lines(err)
    assert "restart(s) are saved in" in message and "rerun the same command to resume" in message
    assert (tmp_path / "cut" / "state.npz").exists()
    assert not (tmp_path / "cut" / "attack.npy").exists()
    resumed = _eval(*args, f"--output_dir={tmp_path / 'cut'}")
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert "resuming after 1 restart(s)" in resumed.stdout
    assert "restart 1/3 done" not in resumed.stdout and "restart 3/3 done" in resumed.stdout
    whole = _eval(*args, f"--output_dir={tmp_path / 'whole'}")
    assert whole.returncode == 0
    a = np.load(tmp_path / "cut" / "attack.npy", allow_pickle=False)
    b = np.load(tmp_path / "whole" / "attack.npy", allow_pickle=False)
    np.testing.assert_array_equal(a, b)
    ra = json.loads((tmp_path / "cut" / "results.json").read_text())
    rb = json.loads((tmp_path / "whole" / "results.json").read_text())
    assert ra["restart_accuracies"] == rb["restart_accuracies"]


@pytest.mark.slow
def test_challenge_config_sets_the_flags_and_explicit_flags_win(challenge_checkpoint, shared_data, tmp_path):
    model_dir, _ = challenge_checkpoint
    config = shared_data / "mnist_challenge" / "config.json"
    res = _eval(f"--config={config}", f"--model_dir={model_dir}", "--num_examples=40",
                f"--output_dir={tmp_path}")
    assert res.returncode == 0, res.stderr[-2000:]
    settings = json.loads((tmp_path / "results.json").read_text())["settings"]
    official = json.loads(config.read_text())
    assert settings["epsilon"] == official["epsilon"] == 0.3
    assert settings["steps"] == official["k"] == 40
    assert settings["step_size"] == official["a"]
    assert settings["random_start"] is official["random_start"] is True
    assert settings["loss"] == official["loss_func"]
    assert settings["batch_size"] == official["eval_batch_size"]
    assert settings["attack_path"] == official["store_adv_path"]
    assert settings["num_examples"] == 40 and settings["model_dir"] == str(model_dir)


@pytest.mark.parametrize("flag,needle", [
    ("--epsilon=0", "--epsilon must be > 0"), ("--steps=0", "--steps must be >= 1"),
    ("--b=0.5", "--b must be >= 1"), ("--attack=pgdd", "attack"), ("--attack=pqgd", "need --b"),
    ("--runs=0", "--runs must be >= 1"), ("--plot_examples=0", "--plot_examples must be >= 1"), ("--seed=-1", "--seed must be >= 0"),
    ("--submitted_by=", "--submitted_by must be one non-empty line"),
    ("--submitted_by=a\nb", "--submitted_by must be one non-empty line"),
    ("--attack=fgsm --steps=5", "--attack=fgsm takes one step of size --epsilon: it has no --steps"),
    ("--attack=fgsm --step_size=0.1", "it has no --steps or --step_size"),
    ("--attack=apgd --step_size=0.1", "set their own step sizes"),
    ("--attack=apgd --num_targets=3",
     "--num_targets applies to --attack=apgd_t and --attack=multitargeted only"),
    ("--attack=apgd_t --target=next", "--attack=apgd_t and multitargeted choose their own targets"),
    ("--attack=interval --target=next", "interval is untargeted"),
    ("--attack=multitargeted --num_targets=0", "--num_targets must be >= 1"),
    ("--odi_steps=2", "--odi_steps applies to --start=odi only"),
    ("--start=odi --odi_steps=0", "--odi_steps must be >= 1"),
    ("--start=random --norandom_start", "--start=random contradicts --norandom_start"),
    ("--start=middle", "start"),
    ("--interval_steps=2", "apply to --attack=interval only"),
    ("--interval_rounds=2", "apply to --attack=interval only"),
    ("--attack=interval --interval_pgd_steps=-1", "--interval_pgd_steps must be >= 0"),
    ("--attack=interval --interval_width=0", "--interval_width must be > 0"),
    ("--attack=interval --interval_loss=cw", "interval_loss"),
    ("--attack=pgd --budget=5", "--budget applies to --attack=strongest only"),
    ("--attack=strongest --budget=0", "--budget must be >= 1"),
])
def test_bad_flags_exit_nonzero_with_one_line(flag, needle):
    res = _eval(*flag.split(" "))
    assert res.returncode == 1
    [line] = res.stderr.splitlines()
    assert line.startswith("eval.py: ") and needle in line


def _quiet_env():
    """The user's environment: no TensorFlow log settings of our own."""
    return {k: v for k, v in ENV.items() if k not in ("TF_CPP_MIN_LOG_LEVEL", "QG_TF_LOG")}


@pytest.mark.slow
def test_an_error_after_tensorflow_loads_is_the_only_stderr_line(tmp_path):
    res = subprocess.run([sys.executable, "eval.py", f"--model_dir={tmp_path / 'nope'}",
                          f"--output_dir={tmp_path / 'o'}"], cwd=REPO, env=_quiet_env(),
                         capture_output=True, text=True, timeout=600)
    assert res.returncode == 1
    [line] = res.stderr.splitlines()
    assert line.startswith("eval.py: ") and "nope" in line


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_a_signal_during_start_up_is_one_line_and_exit_130(tmp_path, sig):
    proc = subprocess.Popen([sys.executable, "eval.py", f"--output_dir={tmp_path}"], cwd=REPO,
                            env=_quiet_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    maps = f"/proc/{proc.pid}/maps"
    deadline = time.monotonic() + 120
    # Wait until TensorFlow's library is being loaded: the middle of start-up.
    while proc.poll() is None and time.monotonic() < deadline:
        with open(maps) as f:
            if "tensorflow" in f.read():
                break
        time.sleep(0.02)
    proc.send_signal(sig)
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 130, err[-2000:]
    assert err.splitlines() == [f"eval.py: interrupted by {signal.Signals(sig).name} during "
                                f"start-up; nothing was computed or saved"]
    assert out == "" and not (tmp_path / "state.npz").exists()


@pytest.mark.slow
def test_two_runs_into_one_folder_the_second_refused_before_compute(challenge_checkpoint, tmp_path):
    model_dir, _ = challenge_checkpoint
    args = [f"--model_dir={model_dir}", "--num_examples=400", "--steps=15", "--restarts=2",
            f"--output_dir={tmp_path}"]
    first = subprocess.Popen([sys.executable, "eval.py", *args], cwd=REPO, env=ENV,
                             stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        assert "clean accuracy" in first.stdout.readline()  # the lock is held by now
        second = _eval(*args)
        assert second.returncode == 1
        [line] = _our_lines(second.stderr)
        assert f"is in use by process {first.pid}" in line
        assert second.stdout == ""
    finally:
        first.send_signal(signal.SIGTERM)
        first.communicate(timeout=300)


@pytest.mark.slow
def test_missing_model_and_foreign_state_are_one_line_errors(challenge_checkpoint, tmp_path):
    res = _eval(f"--model_dir={tmp_path / 'nope'}", f"--output_dir={tmp_path / 'o'}")
    assert res.returncode == 1 and "Traceback" not in res.stderr
    assert len(_our_lines(res.stderr)) == 1 and "nope" in _our_lines(res.stderr)[0]
    model_dir, _ = challenge_checkpoint
    common = [f"--model_dir={model_dir}", "--num_examples=20", "--steps=2", f"--output_dir={tmp_path / 'o'}"]
    assert _eval(*common).returncode == 0
    res = _eval(*common[:-2], "--steps=3", common[-1])
    assert res.returncode == 1 and "other settings" in _our_lines(res.stderr)[0]


def test_help_and_helpfull_exit_0_and_list_the_flags():
    assert_help_lists(["eval.py"], "attack")


def test_keep_defaults_to_best_and_is_recorded_in_results_and_leaderboard(tmp_path):
    common = ["--num_examples=100", "--steps=10"]
    accuracy = {}
    for keep, flags in (("best", []), ("final", ["--keep=final"])):
        res = _eval(*common, *flags, f"--output_dir={tmp_path / keep}")
        assert res.returncode == 0, res.stderr[-2000:]
        results = json.loads((tmp_path / keep / "results.json").read_text())
        assert results["settings"]["keep"] == results["attack_config"]["keep"] == keep
        assert f"{keep} iterate" in (tmp_path / keep / "leaderboard.md").read_text()
        accuracy[keep] = results["adversarial_accuracy"]
    assert accuracy["best"] <= accuracy["final"]


def test_targeted_l2_dlr_flags_run_and_are_labelled(tmp_path):
    res = _eval("--num_examples=20", "--steps=3", "--loss=dlr", "--target=next", "--norm=l2",
                "--epsilon=2", "--step_size=0.5", f"--output_dir={tmp_path}")
    assert res.returncode == 0, res.stderr[-2000:]
    settings = json.loads((tmp_path / "results.json").read_text())["attack_config"]
    assert settings["loss"] == "dlr" and settings["norm"] == "l2"
    assert "dlr loss, targeted (next), L2" in (tmp_path / "leaderboard.md").read_text()
    results = json.loads((tmp_path / "results.json").read_text())
    reached = 100 * (1 - results["worst_accuracy"])  # the run counts images off their target
    assert f"target (next) reached for {reached:.2f}% of the images" in res.stdout
    res = _eval("--kappa=5")
    assert res.returncode != 0 and "--kappa applies to --loss=cw only" in res.stderr


def test_apgd_t_runs_records_its_settings_and_budget_and_refuses_too_many_targets(tmp_path):
    res = _eval("--attack=apgd_t", "--loss=dlr", "--num_targets=2", "--num_examples=20",
                "--steps=4", f"--output_dir={tmp_path / 'ok'}")
    assert res.returncode == 0, res.stderr[-2000:]
    results = json.loads((tmp_path / "ok" / "results.json").read_text())
    config = results["attack_config"]
    assert config["method"] == "apgd_t" and config["num_targets"] == 2
    assert config["step_size"] is None and results["settings"]["num_targets"] == 2
    assert results["gradient_passes_per_example"] == 2 * 4
    assert "APGD-T, 4 steps, 2 targets, dlr loss" in (tmp_path / "ok" / "leaderboard.md").read_text()
    res = _eval("--attack=apgd_t", "--num_targets=10", "--num_examples=5", "--steps=2",
                f"--output_dir={tmp_path / 'bad'}")
    assert res.returncode == 1
    assert _our_lines(res.stderr) == ["eval.py: num_targets must be in 1..9 (the model's classes "
                                      "minus the true one), got 10"]


# --------------------------------------------------------------------------- CIFAR-10

def test_cifar10_without_a_model_is_one_line_naming_where_to_get_it(tmp_path):
    res = _eval("--dataset=cifar10", f"--output_dir={tmp_path / 'o'}")
    assert res.returncode == 1 and "Traceback" not in res.stderr
    lines = _our_lines(res.stderr)
    assert len(lines) == 1, res.stderr[-2000:]
    assert "python -m mnist_challenge_compat.model_download cifar10_adv_trained" in lines[0]
    assert not (tmp_path / "o").exists()  # refused before anything was written


def test_cifar10_without_its_data_is_one_line_naming_the_binary_batches(tmp_path):
    model_dir = tmp_path / "model"
    model_dir.mkdir()
    (model_dir / "checkpoint").write_text('model_checkpoint_path: "checkpoint-1"\n')
    res = _eval("--dataset=cifar10", f"--model_dir={model_dir}", f"--data_dir={tmp_path / 'no'}",
                f"--output_dir={tmp_path / 'o'}")
    assert res.returncode == 1
    lines = _our_lines(res.stderr)
    assert len(lines) == 1 and "cifar-10-batches-bin" in lines[0] and "test_batch.bin" in lines[0]


@pytest.fixture(scope="module")
def cifar10_files(tmp_path_factory):
    """A wide ResNet checkpoint with random weights (``save_checkpoint``) and a CIFAR-10 binary
    test batch of 4 random images written in the real record format."""
    import models
    from mnist_challenge_compat import save_checkpoint
    from tests.conftest import write_cifar10_batch
    root = tmp_path_factory.mktemp("cifar10")
    model = models.build_model("madry_cifar10", seed=1)
    save_checkpoint(model, root / "model", 70000)
    rng = np.random.default_rng(2)
    images = rng.integers(0, 256, size=(4, 32, 32, 3), dtype=np.uint8)
    write_cifar10_batch(root / "data" / "cifar-10-batches-bin" / "test_batch.bin", images,
                        [0, 3, 5, 9])
    return root / "model", root / "data", images


@pytest.mark.slow
def test_cifar10_eval_runs_the_challenge_protocol_on_0_255_images(cifar10_files, tmp_path):
    from mnist_challenge_compat import load_model
    model_dir, data_dir, images = cifar10_files
    out = tmp_path / "out"
    res = _eval("--dataset=cifar10", f"--model_dir={model_dir}", f"--data_dir={data_dir}",
                "--num_examples=4", "--steps=2", "--batch_size=4", "--plot_examples=2",
                f"--output_dir={out}")
    assert res.returncode == 0, res.stderr[-3000:]
    x_adv = load_submission(out / "attack.npy")
    x_nat = images.astype(np.float32)
    assert x_adv.shape == (4, 32, 32, 3) and x_adv.dtype == np.float32
    assert np.abs(x_adv - x_nat).max() <= 8 + 1e-4  # eps 8 on the 0-255 scale
    assert x_adv.min() >= 0 and x_adv.max() <= 255
    check_submission(x_adv, x_nat, 8.0, num_examples=4, image_shape=(32, 32, 3),
                     bounds=(0, 255))
    results = json.loads((out / "results.json").read_text())
    assert results["data"]["dataset"] == "cifar10"
    assert results["data"]["image_shape"] == [32, 32, 3] and results["data"]["bounds"] == [0, 255]
    config = results["attack_config"]
    assert (config["epsilon"], config["step_size"], config["bounds"]) == (8.0, 2.0, [0.0, 255.0])
    assert results["settings_source"]["epsilon"] == "default"
    model = load_model(model_dir)
    assert model.name == "madry_cifar10"
    pred = np.argmax(model.predict(x_adv, verbose=0), axis=1)
    np.testing.assert_array_equal(np.load(out / "pred.npy"), pred)
    assert results["adversarial_accuracy"] == pytest.approx(np.mean(pred == [0, 3, 5, 9]))
    row = (out / "leaderboard.md").read_text()
    assert "eps 8 on 0-255, 4 of 4 CIFAR-10 test images, model model, best iterate" in row
    assert (out / "examples.png").is_file()
@pytest.mark.parametrize("flags,needle", [
    ("--strategy=none --devices=2", "--devices applies to --strategy=mirrored only"),
    ("--strategy=mirrored --devices=0", "--devices must be a count >= 1"),
    ("--strategy=mirrored --devices=gpu:0,gpu:0", "--devices must be a count >= 1"),
    ("--strategy=mirrored --devices=tpu:0", "--devices must be a count >= 1"),
    ("--strategy=ring", "strategy"),
])
def test_bad_strategy_flags_exit_nonzero_with_one_line(flags, needle, tmp_path):
    res = _eval(*flags.split(" "), f"--output_dir={tmp_path / 'out'}")
    assert res.returncode == 1
    [line] = res.stderr.splitlines()
    assert line.startswith("eval.py: ") and needle in line
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("tf_config,needle", [
    (None, "--strategy=multi_worker needs TF_CONFIG"),
    ('{"cluster": {"worker": ["127.0.0.1:1"]', "TF_CONFIG is not valid JSON"),
    ('{"cluster": {"worker": ["127.0.0.1:1"]}, "task": {"type": "worker", "index": 3}}',
     "TF_CONFIG task index must be an integer in [0, 1)"),
    ('{"cluster": {"ps": ["127.0.0.1:1"]}, "task": {"type": "ps", "index": 0}}',
     "TF_CONFIG cluster job 'ps' is not one of chief, worker"),
])
def test_multi_worker_is_one_line_exit_1_and_writes_nothing(tf_config, needle, tmp_path):
    env = {k: v for k, v in ENV.items() if k != "TF_CONFIG"}
    if tf_config is not None:
        env["TF_CONFIG"] = tf_config
    res = subprocess.run([sys.executable, "eval.py", "--strategy=multi_worker",
                          f"--output_dir={tmp_path / 'out'}"], cwd=REPO, env=env,
                         capture_output=True, text=True, timeout=600)
    assert res.returncode == 1
    [line] = _our_lines(res.stderr)
    assert needle in line
    assert not (tmp_path / "out").exists()


def test_more_replicas_than_groups_or_absent_gpus_are_refused_before_the_folder_exists(tmp_path):
    res = _eval("--strategy=mirrored", "--devices=3", "--num_examples=4", "--batch_size=2",
                f"--output_dir={tmp_path / 'out'}")
    assert res.returncode == 1
    [line] = res.stderr.splitlines()  # TensorFlow's "Using MirroredStrategy" INFO line hidden
    assert "strategy has 3 replicas but 4 example(s) at batch_size 2 make only 2 group(s)" in line
    assert not (tmp_path / "out").exists()
    import tensorflow as tf
    if not tf.config.list_physical_devices("GPU"):
        res = _eval("--strategy=mirrored", "--devices=/gpu:0", f"--output_dir={tmp_path / 'out'}")
        assert res.returncode == 1
        assert "--devices: /gpu:0 is not visible (0 GPU(s))" in _our_lines(res.stderr)[0]
        assert not (tmp_path / "out").exists()


@pytest.mark.slow
def test_mirrored_on_two_logical_cpus_writes_the_outputs_of_no_strategy(tmp_path):
    # 12 images in groups of 4: 3 BLOB groups per round over 2 replicas; 2 runs x 2 restarts.
    args = ["--attack=blob_qg", "--b=5", "--num_examples=12", "--batch_size=4", "--steps=4",
            "--steps_per_group=2", "--restarts=2", "--runs=2", "--noplots"]
    out = tmp_path / "out"
    found = {}
    for name, flags in (("none", []), ("mirrored", ["--strategy=mirrored", "--devices=2"])):
        res = _eval(*args, *flags, f"--output_dir={out}")
        assert res.returncode == 0, res.stderr[-2000:]
        assert ("on MirroredStrategy, 2 replica(s): cpu:0, cpu:1" in res.stdout) == (name != "none")
        assert "MirroredStrategy" not in res.stderr
        found[name] = {"attack": np.load(out / "attack.npy"), "pred": np.load(out / "pred.npy"),
                       "results": json.loads((out / "results.json").read_text())}
        out.rename(tmp_path / name)  # the same output_dir for both: results.json names it
    np.testing.assert_array_equal(found["mirrored"]["attack"], found["none"]["attack"])
    np.testing.assert_array_equal(found["mirrored"]["pred"], found["none"]["pred"])
    timings = ("wall_time_s", "example_steps_per_s")
    a, b = ({k: v for k, v in found[n]["results"].items() if k not in timings}
            for n in ("none", "mirrored"))
    assert a == b
    assert np.abs(found["none"]["attack"] - load_dataset("mnist", "test")[0][:12]).max() > 0.29


@pytest.mark.slow
def test_multitargeted_and_interval_run_record_their_budget_and_bad_targets_are_refused(tmp_path):
    res = _eval("--attack=multitargeted", "--num_targets=2", "--num_examples=20", "--steps=3",
                "--step_size=0.03", "--start=odi", f"--output_dir={tmp_path / 'multi'}")
    assert res.returncode == 0, res.stderr[-2000:]
    results = json.loads((tmp_path / "multi" / "results.json").read_text())
    config = results["attack_config"]
    assert (config["method"], config["num_targets"], config["loss"]) == ("multitargeted", 2,
                                                                         "logit_margin")
    assert (config["start"], config["odi_steps"]) == ("odi", 2)
    assert results["gradient_passes_per_example"] == 2 * (3 + 2)
    assert "MultiTargeted, 3 steps, a=0.03, 2 targets, logit_margin loss, ODI start (2 steps)" \
        in (tmp_path / "multi" / "leaderboard.md").read_text()
    res = _eval("--attack=interval", "--b=10", "--num_examples=20", "--steps=3",
                "--interval_rounds=2", "--interval_steps=2", "--interval_pgd_steps=1",
                f"--output_dir={tmp_path / 'interval'}")
    assert res.returncode == 0, res.stderr[-2000:]
    results = json.loads((tmp_path / "interval" / "results.json").read_text())
    config = results["attack_config"]
    assert (config["interval_rounds"], config["interval_steps"], config["interval_pgd_steps"],
            config["interval_loss"], config["b"]) == (2, 2, 1, "margin", 10)
    assert results["gradient_passes_per_example"] == 2 * 2 + 3
    assert results["interval_bound_passes_per_example"] == 2 * 2 * 4  # widths 0.01 .. 0.15
    assert "Interval Attack (b=10), phases PGD 1, interval 2, PGD 1, interval 2, PGD 1 " \
           "(margin bound), a=" in (tmp_path / "interval" / "leaderboard.md").read_text()
    res = _eval("--attack=multitargeted", "--num_targets=10", "--num_examples=5", "--steps=2",
                f"--output_dir={tmp_path / 'bad'}")
    assert res.returncode == 1
    assert _our_lines(res.stderr) == ["eval.py: num_targets must be in 1..9 (the model's classes "
                                      "minus the true one), got 10"]


@pytest.mark.slow
def test_strongest_records_each_members_breaks_and_passes_resumes_and_refuses_other_settings(tmp_path):
    out = tmp_path / "s"
    args = ("--attack=strongest", "--budget=4", "--num_examples=12", f"--output_dir={out}",
            "--noplots")
    res = _eval(*args)
    assert res.returncode == 0, res.stderr[-2000:]
    results = json.loads((out / "results.json").read_text())
    ens = results["ensemble"]
    assert ens["budget"] == 4 and results["settings"]["budget"] == 4
    left = 12 - ens["clean_broken"]
    for member, config in zip(ens["members"], ens["member_configs"]):
        assert member["attacked"] == left and config["steps"] == member["steps"]
        from attacks.odi import DEFAULT_ODI_STEPS
        odi = 0 if config["start"] != "odi" else (config["odi_steps"] or DEFAULT_ODI_STEPS)
        # (ODI's steps are charged once per run)
        assert member["passes"] == (member["steps"] + odi) * member["attacked"]
        left -= member["broke"]
    pred = np.load(out / "pred.npy", allow_pickle=False)
    y = load_dataset("mnist", "test")[1][:12]
    assert int(np.sum(pred == y)) == left
    assert results["adversarial_accuracy"] == pytest.approx(left / 12)
    assert results["gradient_passes_per_example"] == pytest.approx(
        sum(m["passes"] for m in ens["members"]) / 12)
    assert "| strongest (" in (out / "leaderboard.md").read_text()
    assert "member 1/" in res.stdout and " done: broke " in res.stdout
    first = np.load(out / "attack.npy")
    res = _eval(*args)  # every member finished: nothing is attacked again
    assert res.returncode == 0 and "resuming after" in res.stdout
    np.testing.assert_array_equal(np.load(out / "attack.npy"), first)
    res = _eval(*args[:1], "--budget=6", *args[2:])
    assert res.returncode == 1
    assert _our_lines(res.stderr)[0].startswith(f"eval.py: {out / 'state.npz'}: this output "
                                                f"directory holds a run with other settings")
