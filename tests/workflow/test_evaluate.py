"""run_evaluation in-process: resume keys, folder checks and lock, output names, model vs
dataset, defaults from the model's config.json, what an interruption says it saved."""
import dataclasses
import json
import os
import shutil
import signal
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import workflow.evaluate as evaluate
from mnist_challenge_compat import CompatError, load_dataset, load_state
from workflow.evaluate import EvalSettings, run_evaluation
from workflow.lock import FolderBusy, FolderLock
from workflow.signals import Interrupted

REPO = Path(__file__).resolve().parents[2]
MNIST_MODEL = REPO / "models" / "pretrained" / "madry_mnist"
FASHION_MODEL = REPO / "models" / "pretrained" / "daa_fashion"
TINY = dict(num_examples=20, steps=2, step_size=0.1, epsilon=0.3)


def _settings(out, **kw) -> EvalSettings:
    return EvalSettings(**{**TINY, "output_dir": str(out), **kw})


def _run(settings, lines=None):
    return run_evaluation(settings, log=(lines.append if lines is not None else lambda _: None))


@pytest.fixture
def no_model_loading(monkeypatch):
    """Fails the test if the model is loaded: the check under test must come first."""
    def refuse(*args, **kwargs):
        raise AssertionError("the model was loaded before the settings were refused")
    monkeypatch.setattr(evaluate, "load_model", refuse)


def _write_idx(folder: Path, x: np.ndarray, y: np.ndarray) -> None:
    """The four-file MNIST_data layout (test split only) from (N, 784) floats and labels."""
    folder.mkdir(parents=True)
    pixels = np.round(x * 255).astype(np.uint8)
    (folder / "t10k-images-idx3-ubyte").write_bytes(
        struct.pack(">IIII", 0x803, len(x), 28, 28) + pixels.tobytes())
    (folder / "t10k-labels-idx1-ubyte").write_bytes(
        struct.pack(">II", 0x801, len(y)) + y.astype(np.uint8).tobytes())


def _copy_model(dst: Path, src: Path = MNIST_MODEL, config: dict | None = None) -> Path:
    """The checkpoint files of ``src`` in ``dst``, with ``config`` as config.json (or none)."""
    dst.mkdir()
    for f in src.iterdir():
        if f.name.startswith("checkpoint"):
            shutil.copy(f, dst / f.name)
    if config is not None:
        (dst / "config.json").write_text(json.dumps(config))
    return dst


# --- 1. the resume key covers the data and XLA ------------------------------------------------

def test_rerun_on_other_images_is_refused_naming_the_data(tmp_path):
    out = tmp_path / "out"
    _run(_settings(out))
    x, y = load_dataset("mnist", "test")
    x = x[:30].copy()
    x[3, 100] = 1.0 - x[3, 100]  # one pixel of one of the 20 attacked images
    _write_idx(tmp_path / "other_data", x, y[:30])
    with pytest.raises(CompatError, match=r"other settings \(data_sha256 differs\)") as err:
        _run(_settings(out, data_dir=str(tmp_path / "other_data")))
    assert "\n" not in str(err.value)


def test_rerun_on_the_same_images_from_another_folder_resumes(tmp_path):
    out = tmp_path / "out"
    first = _run(_settings(out))
    x, y = load_dataset("mnist", "test")
    _write_idx(tmp_path / "same_data", x[:25], y[:25])
    lines = []
    again = _run(_settings(out, data_dir=str(tmp_path / "same_data")), lines)
    assert again["adversarial_accuracy"] == first["adversarial_accuracy"]
    assert "resuming after 1 restart(s)" in lines[0]


def test_rerun_with_xla_switched_is_refused_naming_xla(tmp_path):
    from attacks.engine import resolve_xla
    out = tmp_path / "out"
    _run(_settings(out, num_examples=5, steps=1))
    auto = resolve_xla("auto")
    other = "off" if auto else "on"
    with pytest.raises(CompatError, match=f"attack_config.xla: {auto} there, {not auto} here"):
        _run(_settings(out, num_examples=5, steps=1, xla=other))


# --- 2. one run per folder ---------------------------------------------------------------------

def test_a_held_lock_refuses_the_run_naming_the_holder_and_writes_nothing(tmp_path,
                                                                          no_model_loading):
    out = tmp_path / "out"
    out.mkdir()
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, time; sys.path.insert(0, sys.argv[2]);"
         "from workflow.lock import FolderLock; FolderLock(sys.argv[1]).acquire();"
         "print('locked', flush=True); time.sleep(60)", str(out), str(REPO)],
        stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(FolderBusy, match=f"in use by process {holder.pid}"):
            _run(_settings(out))
    finally:
        holder.kill()
        holder.wait(timeout=30)
    assert sorted(p.name for p in out.iterdir()) == [".lock"]


# --- 3. the output folder must be writable before anything runs -------------------------------

def test_output_dir_that_is_a_file_is_refused(tmp_path, no_model_loading):
    (tmp_path / "f").write_text("x")
    with pytest.raises(CompatError, match="is a file, not a folder"):
        _run(_settings(tmp_path / "f"))


def test_output_dir_below_a_file_is_refused(tmp_path, no_model_loading):
    (tmp_path / "f").write_text("x")
    with pytest.raises(CompatError, match=r"is below .*f, which is a file"):
        _run(_settings(tmp_path / "f" / "sub" / "out"))


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_read_only_output_dir_is_refused(tmp_path, no_model_loading):
    out = tmp_path / "ro"
    out.mkdir()
    out.chmod(0o555)
    try:
        with pytest.raises(CompatError, match="not writable"):
            _run(_settings(out))
    finally:
        out.chmod(0o755)


# --- 4. output names never collide --------------------------------------------------------------

@pytest.mark.parametrize("name", ["pred.npy", "state.npz", "results.json", "leaderboard.md",
                                  ".lock", "./pred.npy", "sub/../state.npz"])
def test_attack_path_naming_another_output_is_refused(tmp_path, no_model_loading, name):
    (tmp_path / "sub").mkdir()
    with pytest.raises(ValueError, match="would overwrite the run's"):
        _run(_settings(tmp_path, attack_path=name))


def test_absolute_attack_path_onto_pred_is_refused(tmp_path, no_model_loading):
    with pytest.raises(ValueError, match="would overwrite the run's pred.npy"):
        _run(_settings(tmp_path / "o", attack_path=str(tmp_path / "o" / "pred.npy")))


def test_attack_path_in_a_missing_folder_is_refused_before_the_model_loads(tmp_path,
                                                                            no_model_loading):
    with pytest.raises(ValueError, match="does not exist"):
        _run(_settings(tmp_path, attack_path="nowhere/attack.npy"))


def test_inconsistent_state_file_is_a_one_line_error(tmp_path):
    out = tmp_path / "out"
    _run(_settings(out, num_examples=5, steps=1))
    arrays, meta = load_state(out / "state.npz")
    arrays["worst_x_adv"] = arrays["worst_x_adv"][:3]
    from mnist_challenge_compat import save_state
    save_state(out / "state.npz", arrays, meta)
    with pytest.raises(CompatError, match=r"inconsistent state file .*worst_x_adv.*\(5, \.\.\.\)"):
        _run(_settings(out, num_examples=5, steps=1))


# --- 5. the model must be one of the dataset ------------------------------------------------------

def test_fashion_model_on_mnist_is_refused_by_its_config(tmp_path, no_model_loading):
    with pytest.raises(CompatError, match="a fashion_mnist model .*pass --dataset=fashion_mnist"):
        _run(_settings(tmp_path, model_dir=str(FASHION_MODEL), dataset="mnist"))


def test_fashion_network_without_config_is_refused_on_mnist_unless_arch_is_given(tmp_path):
    model = _copy_model(tmp_path / "m", FASHION_MODEL)
    with pytest.raises(CompatError, match="a daa_fashion network .*--arch=daa_fashion"):
        _run(_settings(tmp_path / "o1", model_dir=str(model)))
    results = _run(_settings(tmp_path / "o2", model_dir=str(model), arch="daa_fashion",
                             num_examples=5, steps=1))
    assert results["model"]["name"] == "daa_fashion"


def test_explicit_arch_that_contradicts_the_config_is_refused(tmp_path, no_model_loading):
    model = _copy_model(tmp_path / "m", MNIST_MODEL, config={"arch": "madry_mnist"})
    with pytest.raises(CompatError, match="says arch madry_mnist, not --arch=daa_fashion"):
        _run(_settings(tmp_path / "o", model_dir=str(model), arch="daa_fashion"))


# --- 6. stale temporaries -----------------------------------------------------------------------

def _dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_stale_temporaries_of_dead_writers_are_removed_and_live_ones_kept(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    dead = out / f".attack.npy.{_dead_pid()}.0123456789ab.tmp"
    legacy = out / ".state.npz.0123456789ab.tmp"
    live = out / ".pred.npy.1.0123456789ab.tmp"  # pid 1 always runs
    mine = out / "notes.tmp"
    for f in (dead, legacy, live, mine):
        f.write_bytes(b"x" * 100)
    _run(_settings(out, num_examples=5, steps=1))
    assert not dead.exists() and not legacy.exists()
    assert live.exists() and mine.exists()


# --- 7. settings checked before the attack ----------------------------------------------------------

@pytest.mark.parametrize("who", ["", "   ", "two\nlines"])
def test_bad_submitted_by_is_refused_before_the_model_loads(tmp_path, no_model_loading, who):
    with pytest.raises(ValueError, match="submitted_by"):
        _run(_settings(tmp_path, submitted_by=who))
    assert not (tmp_path / ".lock").exists()


def test_fgsm_with_steps_is_refused(tmp_path, no_model_loading):
    with pytest.raises(ValueError, match="fgsm takes one step .*--steps and --step_size"):
        _run(_settings(tmp_path, attack="fgsm", steps=5, step_size=None))


# --- 8. interruptions say what was saved ----------------------------------------------------------

def test_interrupt_before_the_first_restart_says_nothing_was_saved(tmp_path, monkeypatch):
    real = evaluate.attack_runs

    def signal_at_first_group(*args, on_progress, **kwargs):
        return real(*args, on_progress=lambda *a: os.kill(os.getpid(), signal.SIGINT), **kwargs)
    monkeypatch.setattr(evaluate, "attack_runs", signal_at_first_group)
    with pytest.raises(Interrupted) as err:
        _run(_settings(tmp_path, batch_size=5))
    assert err.value.message == ("interrupted by SIGINT before the first restart finished; "
                                 "nothing was saved, rerunning starts over")
    assert not (tmp_path / "state.npz").exists()


def test_interrupt_while_writing_outputs_then_rerun_writes_them(tmp_path, monkeypatch):
    real = evaluate.save_array_atomic

    def signal_then_save(path, array):
        os.kill(os.getpid(), signal.SIGTERM)
        real(path, array)
    monkeypatch.setattr(evaluate, "save_array_atomic", signal_then_save)
    with pytest.raises(Interrupted, match="while writing the outputs; the finished attack is "
                                          "saved in .*state.npz"):
        _run(_settings(tmp_path))
    assert not (tmp_path / "attack.npy").exists()
    monkeypatch.setattr(evaluate, "save_array_atomic", real)
    lines = []
    _run(_settings(tmp_path), lines)
    assert "resuming after 1 restart(s)" in lines[0] and (tmp_path / "attack.npy").exists()


def test_interrupt_after_a_restart_names_what_is_resumed(tmp_path):
    def log(line):
        if "restart 1/2 done" in line:
            os.kill(os.getpid(), signal.SIGINT)
    with pytest.raises(Interrupted) as err:
        run_evaluation(_settings(tmp_path, restarts=2), log=log)
    assert err.value.message.startswith("interrupted by SIGINT; 1 of 2 restart(s) are saved in")
    assert err.value.message.endswith("rerun the same command to resume after restart 1")
    _, meta = load_state(tmp_path / "state.npz")
    assert len(meta["current_restart_accuracies"]) == 1


# --- 10. what a percentage is a percentage of -------------------------------------------------------

def test_start_line_final_line_and_leaderboard_state_model_eps_and_images(tmp_path):
    lines = []
    _run(_settings(tmp_path), lines)
    for line in (lines[0], lines[-1]):
        assert "eps 0.3" in line and "20 of 10,000 mnist test images" in line
        assert "madry_mnist" in line
    board = (tmp_path / "leaderboard.md").read_text().splitlines()
    assert "eps 0.3, 20 of 10,000 test images, model madry_mnist, best iterate |" in board[2]
    assert board[-1] == ("Partial evaluation: 20 of the 10,000 test images. Not a valid "
                         "challenge submission, which needs all 10,000.")


def test_unset_epsilon_comes_from_the_models_config_and_steps_from_the_challenge(
        tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    model = _copy_model(tmp_path / "m", MNIST_MODEL,
                        config={"epsilon": 0.2, "k": 3, "a": 0.07, "dataset": "mnist"})
    lines = []
    results = _run(_settings(tmp_path / "o", model_dir=str(model), num_examples=5,
                             epsilon=None, steps=None, step_size=0.05), lines)
    # The config's k and a are its training attack's: the evaluation keeps the challenge's 40.
    assert results["attack_config"]["epsilon"] == 0.2 and results["attack_config"]["steps"] == 40
    assert results["attack_config"]["step_size"] == 0.05  # given explicitly: it wins
    assert "epsilon from m/config.json" in lines[0]
    assert "step_size as given" in lines[0] and "eps 0.2" in lines[0]


def test_fashion_mnist_default_eps_is_its_models_training_eps(tmp_path):
    config = json.loads((FASHION_MODEL / "config.json").read_text())
    results = _run(EvalSettings(dataset="fashion_mnist", num_examples=5, steps=1,
                                output_dir=str(tmp_path)))
    assert results["attack_config"]["epsilon"] == config["epsilon"] == 0.1
    assert results["attack_config"]["step_size"] == 0.01 != config["a"]
    assert "eps 0.1" in (tmp_path / "leaderboard.md").read_text()


# --- the resume key records the compute dtype that ran ---------------------------------------

def _calibrated(folder: Path, settings: EvalSettings, faster: str) -> None:
    """A calibration cache in ``folder`` for the shipped MNIST model at the settings' batch
    size on this machine, saying ``faster`` is the faster dtype (2x)."""
    from attacks import calibration
    from mnist_challenge_compat import load_model
    batch = settings.attack_config().batch_size
    times = {"float32_s": 1.0, "bfloat16_s": 0.5} if faster == "bfloat16" else \
        {"float32_s": 0.5, "bfloat16_s": 1.0}
    entry = {**times, "model": "m", "batch_size": batch, "measured": "2026-01-01T00:00:00Z"}
    folder.mkdir(parents=True, exist_ok=True)
    (folder / calibration.CACHE_FILE).write_text(json.dumps(
        {"format": calibration.CACHE_FORMAT, "machine": calibration.machine(),
         "entries": {calibration.network_key(load_model(MNIST_MODEL), batch): entry}}))


def test_auto_resolving_to_another_dtype_on_resume_is_refused_naming_both(tmp_path, monkeypatch):
    out, cache = tmp_path / "out", tmp_path / "cache"
    monkeypatch.setenv("QG_CACHE_DIR", str(cache))
    settings = _settings(out, num_examples=5, steps=1, compute_dtype="auto")
    _calibrated(cache, settings, "float32")
    first = _run(settings)
    assert first["compute_dtype_used"] == "float32"
    stored = load_state(out / evaluate.STATE_FILE)[1]["fingerprint"]
    assert stored["compute_dtype_resolved"] == "float32"
    assert stored["attack_config"]["compute_dtype"] == "auto"
    _calibrated(cache, settings, "bfloat16")  # "another machine": auto now picks bfloat16
    with pytest.raises(CompatError, match=r"compute_dtype_resolved: float32 there, bfloat16 "
                                          r"here") as err:
        _run(settings)
    assert "\n" not in str(err.value)
    _calibrated(cache, settings, "float32")  # resolves as before: the run resumes
    lines = []
    again = _run(settings, lines)
    assert "resuming after 1 restart(s)" in lines[0]
    assert again["adversarial_accuracy"] == first["adversarial_accuracy"]


def test_a_state_without_the_resolved_dtype_resumes_when_the_dtype_was_explicit(tmp_path):
    from mnist_challenge_compat import save_state
    out = tmp_path / "out"
    settings = _settings(out, num_examples=5, steps=1)
    first = _run(settings)
    arrays, meta = load_state(out / evaluate.STATE_FILE)
    del meta["fingerprint"]["compute_dtype_resolved"]  # as written before it was recorded
    save_state(out / evaluate.STATE_FILE, arrays, meta)
    lines = []
    again = _run(settings, lines)
    assert "resuming after 1 restart(s)" in lines[0]
    assert again["adversarial_accuracy"] == first["adversarial_accuracy"]
    for part in ("attack_config", "settings"):  # a run with auto: unknown what ran
        meta["fingerprint"][part]["compute_dtype"] = "auto"
    save_state(out / evaluate.STATE_FILE, arrays, meta)
    with pytest.raises(CompatError, match="compute_dtype_resolved not recorded"):
        _run(_settings(out, num_examples=5, steps=1, compute_dtype="auto"))
