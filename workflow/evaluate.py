"""A resumable challenge evaluation: attack a checkpoint, write the challenge's files.

Outputs in ``output_dir``: ``attack.npy`` (float32 ``(N, 784)``, test-set order), ``pred.npy``
(int64 ``(N,)``), ``results.json``, ``leaderboard.md``, and ``state.npz`` (the resumable
state, updated atomically after every restart). Every file is written via temp file + rename.
"""
from __future__ import annotations

import dataclasses
import datetime as _dt
import json
import os
import platform
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np

import attacks
from attacks import AttackConfig, RunsState, attack_runs, predict
from mnist_challenge_compat import (CompatError, check_submission, checkpoint_sha256,
                                    dataset_source, latest_checkpoint, leaderboard_row, load_dataset, load_model, load_state,
                                    save_array_atomic, save_state, write_leaderboard)
from mnist_challenge_compat.atomic import write_file_atomic
from workflow.progress import ProgressPrinter, format_duration
from workflow.signals import Interrupted, raise_on_termination

STATE_FILE = "state.npz"
RESULTS_FILE = "results.json"
PRED_FILE = "pred.npy"
LEADERBOARD_FILE = "leaderboard.md"
SHIPPED_MODELS = Path(__file__).resolve().parents[1] / "models" / "pretrained"
DEFAULT_ARCH_BY_DATASET = {"mnist": "madry_mnist", "fashion_mnist": "daa_fashion"}


@dataclass(frozen=True)
class EvalSettings:
    """One evaluation job. Attack fields mean what :class:`attacks.AttackConfig` says.

    ``target`` (none | next | random) makes the attack targeted; its run and restart
    accuracies then count the images that did not reach their target, while
    ``adversarial_accuracy`` stays the model's accuracy on the submitted images.
    """

    attack: str = "pgd"
    epsilon: float = 0.3
    steps: int | None = 40
    step_size: float | None = 0.01
    b: float | None = None
    loss: str = "xent"
    random_start: bool = True
    restarts: int = 1
    runs: int = 1
    batch_size: int = 200
    steps_per_group: int = 10
    c: float | None = None
    num_examples: int | None = 1000
    model_dir: str | None = None
    arch: str | None = None
    dataset: str = "mnist"
    data_dir: str | None = None
    output_dir: str = "runs/eval"
    attack_path: str = "attack.npy"
    seed: int = 0
    xla: str = "auto"
    compute_dtype: str = "float32"
    submitted_by: str = "qg-attacks"
    kappa: float | None = None
    norm: str = "linf"
    keep: str = "best"
    target: str = "none"

    def attack_config(self) -> AttackConfig:
        fgsm = self.attack == "fgsm"
        return AttackConfig(method=self.attack, epsilon=self.epsilon,
                            steps=None if fgsm else self.steps,
                            step_size=None if fgsm else self.step_size, b=self.b, loss=self.loss,
                            random_start=self.random_start, batch_size=self.batch_size,
                            steps_per_group=self.steps_per_group, c=self.c,
                            compute_dtype=self.compute_dtype, xla=self.xla, kappa=self.kappa,
                            norm=self.norm, keep=self.keep)

    def targets(self, y: np.ndarray, num_classes: int) -> np.ndarray | None:
        """Target classes of a targeted job (``target`` next | random), else None."""
        if self.target == "none":
            return None
        if self.target == "next":
            return (y + 1) % num_classes
        if self.target == "random":
            return attacks.random_targets(y, num_classes, np.random.default_rng([self.seed, 1]))
        raise ValueError(f"target must be none, next or random, got {self.target!r}")


def default_model_dir(dataset: str = "mnist") -> Path:
    """The robust model shipped with the project for ``dataset``."""
    return SHIPPED_MODELS / DEFAULT_ARCH_BY_DATASET[dataset]


def run_evaluation(settings: EvalSettings, log: Callable[[str], None] = print) -> dict[str, Any]:
    """Runs (or resumes) ``settings`` and writes all outputs; returns the results dict.

    Raises:
      CompatError: missing/corrupt model or data, or an output_dir holding another job.
      ValueError: impossible attack settings.
      Interrupted: on SIGINT/SIGTERM, after the state of the last finished restart is saved.
    """
    config = settings.attack_config().resolved()
    model_dir = _model_dir(settings)
    model = load_model(model_dir, arch=settings.arch)
    x_all, y_all = load_dataset(settings.dataset, "test", settings.data_dir)
    n = _num_examples(settings.num_examples, len(x_all))
    x, y = x_all[:n], y_all[:n]
    y_target = settings.targets(y, int(model.outputs[0].shape[-1]))
    out = Path(settings.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    checkpoint_files = checkpoint_sha256(model_dir)
    fingerprint = _fingerprint(settings, config, checkpoint_files, n)
    state, elapsed_before = _load_or_new_state(out / STATE_FILE, fingerprint)

    per_restart = n * config.steps
    todo = per_restart * (settings.runs * settings.restarts - _restarts_done(state, settings.restarts))
    progress = ProgressPrinter(todo, settings.runs, settings.restarts, config.steps,
                               out=_LogStream(log))
    clean_accuracy = float(np.mean(predict(model, x, config.batch_size) == y))
    log(f"model {model_dir} ({model.name}), {n} {settings.dataset} test images, clean accuracy "
        f"{100 * clean_accuracy:.2f}%; {settings.runs} run(s) x {settings.restarts} restart(s) of "
        f"{config.method} ({config.steps} steps)"
        + (f"; resuming after {_restarts_done(state, settings.restarts)} restart(s)"
           if _restarts_done(state, settings.restarts) else ""))
    started = time.perf_counter()

    def save(current: RunsState, run: int) -> None:
        arrays, meta = current.to_record()
        meta.update(fingerprint=fingerprint,
                    elapsed_s=elapsed_before + time.perf_counter() - started)
        save_state(out / STATE_FILE, arrays, meta)
        restart = (current.current.completed if current.current else settings.restarts) - 1
        restart_acc = (current.current.restart_accuracies[-1] if current.current
                       else current.run_restart_accuracies[-1][-1])
        merged = current.current.accuracy if current.current else current.run_accuracies[-1]
        progress.restart_finished(run, restart, restart_acc, merged, per_restart)

    with raise_on_termination():
        try:
            state = attack_runs(model, x, y, config, runs=settings.runs,
                                restarts=settings.restarts, seed=settings.seed,
                                y_target=y_target, resume=state,
                                on_update=save, on_progress=progress.within_restart)
        except Interrupted:
            log(f"interrupted: progress up to the last finished restart is saved in "
                f"{out / STATE_FILE}; rerun the same command to resume")
            raise
    wall = elapsed_before + time.perf_counter() - started
    return _write_outputs(settings, config, model, model_dir, checkpoint_files, x, y, state,
                          clean_accuracy, wall, progress.rate(), log)


def _write_outputs(settings, config, model, model_dir, checkpoint_files, x, y, state, clean_accuracy,
                   wall, rate, log) -> dict[str, Any]:
    out = Path(settings.output_dir)
    x_adv = state.worst_x_adv
    check_submission(x_adv, x, config.epsilon, num_examples=len(x))
    pred = predict(model, x_adv, config.batch_size)
    adversarial_accuracy = float(np.mean(pred == y))
    attack_file = out / settings.attack_path
    save_array_atomic(attack_file, x_adv.astype(np.float32))
    save_array_atomic(out / PRED_FILE, pred)
    results = {
        "settings": dataclasses.asdict(settings),
        "attack_config": dataclasses.asdict(config),
        "model": {"path": str(Path(model_dir).resolve()), "name": model.name,
                  "checkpoint_sha256": checkpoint_files},
        "data": {"dataset": settings.dataset, "split": "test", "num_examples": len(x),
                 "source": dataset_source(settings.dataset, "test", settings.data_dir)},
        "clean_accuracy": clean_accuracy,
        "adversarial_accuracy": adversarial_accuracy,
        "worst_accuracy": state.worst_accuracy,
        "average_accuracy": state.average_accuracy,
        "run_accuracies": state.run_accuracies,
        "restart_accuracies": state.run_restart_accuracies,
        "wall_time_s": wall,
        "example_steps_per_s": rate,
        "outputs": {"attack": str(attack_file), "pred": str(out / PRED_FILE)},
        "versions": _versions(),
        "date": _dt.date.today().isoformat(),
    }
    _write_json(out / RESULTS_FILE, results)
    row = leaderboard_row(_attack_label(config, settings), settings.submitted_by,
                          adversarial_accuracy, _dt.date.today())
    write_leaderboard(out / LEADERBOARD_FILE, [row])
    log(f"clean accuracy {100 * clean_accuracy:.2f}%, adversarial accuracy "
        f"{100 * adversarial_accuracy:.2f}% (worst of {len(state.run_accuracies)} run(s); average "
        f"{100 * state.average_accuracy:.2f}%), {format_duration(wall)} wall; wrote {attack_file}")
    return results


def _model_dir(settings: EvalSettings) -> Path:
    if settings.model_dir is not None:
        return Path(settings.model_dir)
    shipped = default_model_dir(settings.dataset)
    if latest_checkpoint(shipped) is None:
        raise CompatError(f"{shipped}: the shipped {settings.dataset} model is not there; "
                          f"pass --model_dir=<challenge model directory or checkpoint prefix>")
    return shipped


def _num_examples(requested: int | None, available: int) -> int:
    if requested is None:
        return available
    if not 1 <= requested <= available:
        raise ValueError(f"num_examples must be in [1, {available}], got {requested}")
    return requested


def _fingerprint(settings: EvalSettings, config: AttackConfig, checkpoint_files, n) -> dict:
    """What determines the result: a state file only resumes a job with the same one."""
    keep = {k: v for k, v in dataclasses.asdict(settings).items()
            if k not in ("output_dir", "attack_path", "submitted_by", "model_dir", "data_dir", "xla")}
    return {"settings": keep, "attack_config": dataclasses.asdict(config),
            "checkpoint_sha256": checkpoint_files, "num_examples": n}


def _load_or_new_state(path: Path, fingerprint: dict) -> tuple[RunsState, float]:
    if not path.exists():
        return RunsState(), 0.0
    arrays, meta = load_state(path)
    if json.loads(json.dumps(fingerprint)) != meta.get("fingerprint"):
        raise CompatError(f"{path}: this output directory holds a run with other settings or "
                          f"another model; use another --output_dir or delete {path.name}")
    return RunsState.from_record(arrays, meta), float(meta.get("elapsed_s", 0.0))


def _restarts_done(state: RunsState, restarts: int) -> int:
    return state.completed_runs * restarts + (state.current.completed if state.current else 0)


def _attack_label(config: AttackConfig, settings: EvalSettings) -> str:
    name = {"fgsm": "FGSM", "pgd": "PGD", "pqgd": "PQGD", "blob": "DAA-BLOB",
            "blob_qg": "BLOB_QG"}[config.method]
    parts = [f"{name}" + (f" (b={config.b:g})" if config.b is not None else "")]
    if config.method != "fgsm":
        parts.append(f"{config.steps} steps, a={config.step_size:g}")
    parts.append(f"{config.loss} loss")
    if settings.target != "none":
        parts.append(f"targeted ({settings.target})")
    if config.norm != "linf":
        parts.append(config.norm.upper())
    if settings.restarts > 1:
        parts.append(f"{settings.restarts} restarts")
    parts.append(f"{config.keep} iterate")
    return ", ".join(parts)


def _versions() -> dict[str, str]:
    import absl
    import keras
    import tensorflow as tf
    return {"python": platform.python_version(), "tensorflow": tf.__version__,
            "keras": keras.__version__, "numpy": np.__version__,
            "absl-py": getattr(absl, "__version__", "unknown"), "qg-attacks": _own_version()}


def _own_version() -> str:
    try:
        from importlib.metadata import version
        return version("qg-attacks")
    except Exception:  # not installed: running from a checkout
        return "checkout"


def _write_json(path: Path, data: dict) -> None:
    text = json.dumps(data, indent=2, sort_keys=True, default=_json_default) + "\n"
    write_file_atomic(path, lambda f: f.write(text.encode()))


def _json_default(value):
    if isinstance(value, (np.floating, np.integer)):
        return value.item()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


class _LogStream:
    """File-like adapter so the progress printer writes through ``log``."""

    def __init__(self, log: Callable[[str], None]):
        self._log = log

    def write(self, text: str) -> None:
        if text.strip():
            self._log(text.rstrip("\n"))

    def flush(self) -> None:
        sys.stdout.flush()
