"""A resumable challenge evaluation: attack a checkpoint, write the challenge's files.

Each dataset's protocol (pixel range, image shape, default attack, default model, where to get
a missing model or data set) comes from ``workflow.datasets.PROTOCOLS``.
Outputs in ``output_dir``: ``attack.npy`` (float32 ``(N, 784)`` for MNIST, ``(N, 32, 32, 3)``
on 0-255 for CIFAR-10, test-set order), ``pred.npy``
(int64 ``(N,)``), ``results.json``, ``leaderboard.md``, ``examples.png`` and ``restarts.png``
(``workflow.plots``), and ``state.npz`` (the resumable state, updated atomically after every
restart). Every file is written via temp file + rename.
The folder is locked (``.lock``) for the whole run, and everything that can be checked without
the model's forward pass (flags, output names, writability, model vs dataset) is checked
before the first image is attacked.
"""
from __future__ import annotations

import contextlib
import dataclasses
import datetime as _dt
import hashlib
import json
import os
import platform
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np

import attacks
from attacks import (APGD_METHODS, COMPUTE_DTYPES, AttackConfig, RunsState, attack_runs,
                     predict, resolve_compute_dtype, resolve_xla)
from mnist_challenge_compat import (CompatError, check_submission, checkpoint_sha256,
                                    dataset_source, latest_checkpoint, leaderboard_row, load_dataset, load_model, load_state,
                                    read_challenge_config, save_array_atomic, save_state,
                                    write_leaderboard)
from mnist_challenge_compat.atomic import remove_stale_temporaries, write_file_atomic
from workflow import cluster
from workflow.datasets import ARCH_DATASETS, PROTOCOLS, protocol, require_data, require_model_dir
from workflow.lock import LOCK_FILE, FolderLock
from workflow.plots import model_examples, plot_outputs
from workflow.progress import ProgressPrinter, format_duration
from workflow.signals import Interrupted, raise_on_termination, signal_name

STATE_FILE = "state.npz"
STRONGEST = "strongest"
RESULTS_FILE = "results.json"
PRED_FILE = "pred.npy"
LEADERBOARD_FILE = "leaderboard.md"
DEFAULT_ARCH_BY_DATASET = {name: p.arch for name, p in PROTOCOLS.items()}
MODEL_CONFIG_FILE = "config.json"
# Attack settings left unset (None) come from the model's config.json (epsilon only), else from
# the dataset's protocol (the challenge's evaluation defaults).
# Only the radius comes from a model's config.json: it is the threat model the model was trained
# for. Its k and a are the TRAINING attack's (10 steps of 0.05 for the shipped MNIST model);
# the evaluation attack stays the challenge's 40 steps of 0.01 unless the flags say otherwise.
FROM_MODEL_CONFIG = ("epsilon",)


@dataclass(frozen=True)
class EvalSettings:
    """One evaluation job. Attack fields mean what :class:`attacks.AttackConfig` says.

    ``epsilon`` left None is taken from the model's ``config.json`` (the radius it was trained
    at, where > 0), else the dataset's protocol (``workflow.datasets``: MNIST 0.3, CIFAR-10 8 on
    0-255); ``steps`` and ``step_size`` left None are the protocol's (MNIST 40 and 0.01,
    CIFAR-10 10 and 2). Pixel bounds are the dataset's (``(0, 255)`` for CIFAR-10). FGSM takes
    no steps or step size (one step of size epsilon), APGD and APGD-T no step size (their
    schedule starts at ``2 * epsilon``); ``num_targets`` is APGD-T's and MultiTargeted's;
    ``loss`` None is the method's default (logit_margin for multitargeted, else xent);
    ``start``/``odi_steps`` and the ``interval_*`` fields are AttackConfig's.
    ``attack="strongest"`` runs the ensemble of :mod:`attacks.ensemble` under ``budget``
    forward+backward passes per example (default ``DEFAULT_BUDGET``), with the members its
    ``default_members`` gives for that budget; it takes none of the
    single-attack settings (steps, step size, b, loss, targets, start, restarts, runs).
    ``target`` (none | next | random) makes the attack targeted; its run and restart
    accuracies then count the images that did not reach their target, while
    ``adversarial_accuracy`` stays the model's accuracy on the submitted images.
    """

    attack: str = "pgd"
    epsilon: float | None = None
    steps: int | None = None
    step_size: float | None = None
    b: float | None = None
    loss: str | None = None
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
    plots: bool = True
    plot_examples: int = 8
    kappa: float | None = None
    norm: str = "linf"
    keep: str = "best"
    target: str = "none"
    num_targets: int | None = None
    start: str | None = None
    odi_steps: int | None = None
    interval_rounds: int | None = None
    interval_steps: int | None = None
    interval_pgd_steps: int | None = None
    interval_step_size: float | None = None
    interval_width: float | None = None
    interval_loss: str | None = None
    budget: int | None = None

    def attack_config(self) -> AttackConfig:
        """The attack (``epsilon``, ``steps``, ``step_size`` must be filled in, except FGSM's).

        Raises:
          ValueError: impossible settings, e.g. FGSM with steps or a step size.
        """
        if self.attack == "fgsm" and (self.steps is not None or self.step_size is not None):
            raise ValueError("--attack=fgsm takes one step of size --epsilon: --steps and "
                             "--step_size do not apply to it")
        return AttackConfig(method=self.attack, epsilon=self.epsilon, steps=self.steps,
                            step_size=self.step_size, b=self.b, loss=self.loss,
                            random_start=self.random_start, batch_size=self.batch_size,
                            steps_per_group=self.steps_per_group, c=self.c,
                            compute_dtype=self.compute_dtype, xla=self.xla, kappa=self.kappa,
                            norm=self.norm, keep=self.keep, num_targets=self.num_targets,
                            start=self.start, odi_steps=self.odi_steps,
                            interval_rounds=self.interval_rounds,
                            interval_steps=self.interval_steps,
                            interval_pgd_steps=self.interval_pgd_steps,
                            interval_step_size=self.interval_step_size,
                            interval_width=self.interval_width, interval_loss=self.interval_loss,
                            bounds=protocol(self.dataset).bounds)

    def targets(self, y: np.ndarray, num_classes: int) -> np.ndarray | None:
        """Target classes of a targeted job (``target`` next | random), else None."""
        if self.target == "none":
            return None
        if self.target == "next":
            return (y + 1) % num_classes
        if self.target == "random":
            return attacks.random_targets(y, num_classes, np.random.default_rng([self.seed, 1]))
        raise ValueError(f"target must be none, next or random, got {self.target!r}")


def default_model_dir(dataset: str = "mnist") -> Path | None:
    """The robust model shipped with the project for ``dataset`` (None: none ships)."""
    return protocol(dataset).default_model_dir


def run_evaluation(settings: EvalSettings, log: Callable[[str], None] = print,
                   strategy=None) -> dict[str, Any]:
    """Runs (or resumes) ``settings`` and writes all outputs; returns the results dict.

    ``strategy``: a ``tf.distribute.Strategy`` whose replicas share the attack's groups
    (``workflow.strategy.make_strategy``); outputs and state are the same as without one
    (timings aside), so a run may be resumed under another strategy.

    Raises:
      CompatError: missing/corrupt model or data, a model of another dataset, an output_dir
        that cannot be written, is in use by another process or holds another job.
      ValueError: impossible attack settings or output names.
      Interrupted: on SIGINT/SIGTERM; its ``message`` says what was saved.
    """
    stage = _Stage()
    with raise_on_termination():
        try:
            return _run(settings, log, stage, strategy)
        except Interrupted as stop:
            raise stop.with_message(stage.explain(stop.signum)) from None
        except Exception as err:
            if not attacks.is_multi_worker(strategy) or not cluster.is_lost_contact(err):
                raise
            raise CompatError(stage.lost_worker(err)) from None


def _run(settings: EvalSettings, log: Callable[[str], None], stage: _Stage,
         strategy=None) -> dict[str, Any]:
    if attacks.is_multi_worker(strategy):
        # Every worker runs the same job, checked first; a worker whose prologue fails
        # sends its error instead, and all stop at once.
        prepared = cluster.agree_on_the_job(
            cluster.gatherer(strategy), lambda: _prologue_and_fingerprint(settings, strategy),
            json_default=_json_default)
    else:
        prepared = _prologue(settings, strategy)
    if prepared[0] == STRONGEST:
        _, settings, sources, model_dir, model_config = prepared
        return _run_strongest(settings, sources, model_dir, model_config, log, stage)
    _, settings, sources, model_dir, model_config, config = prepared
    out = Path(settings.output_dir)
    with _job(settings, model_dir, model_config, _attack_label(config, settings, model_dir, 1, 1),
              strategy) as (model, x_all, x, y, state_bytes):
        n, multi, chief = len(x), attacks.is_multi_worker(strategy), attacks.is_chief(strategy)
        y_target = settings.targets(y, int(model.outputs[0].shape[-1]))
        checkpoint_files = checkpoint_sha256(model_dir)
        fingerprint = _fingerprint(settings, config, checkpoint_files, x, y,
                                   compute_dtype_resolved(model, config.compute_dtype,
                                                          config.batch_size))
        state, elapsed_before = _load_or_new_state(out / STATE_FILE, fingerprint, n, multi,
                                                   received=state_bytes)
        total_restarts = settings.runs * settings.restarts
        stage.attacking(out / STATE_FILE, _restarts_done(state, settings.restarts), total_restarts)

        per_restart = n * config.gradient_passes()
        todo = per_restart * (total_restarts - _restarts_done(state, settings.restarts))
        progress = ProgressPrinter(todo, settings.runs, settings.restarts, config.steps,
                                   out=_LogStream(log))
        clean_accuracy = float(np.mean(predict(model, x, config.batch_size) == y))
        done = _restarts_done(state, settings.restarts)
        log(f"model {model_dir} ({model.name}), {_scope(config, n, len(x_all), settings.dataset)}, "
            f"clean accuracy {100 * clean_accuracy:.2f}%; {settings.runs} run(s) x "
            f"{settings.restarts} restart(s) of {config.method} ({_steps_text(config, sources)})"
            + (f"; resuming after {done} restart(s)" if done else "")
            + (f"; on {_strategy_text(strategy)}" if strategy is not None else ""))
        started = time.perf_counter()

        def save(current: RunsState, run: int) -> None:
            if chief:  # the other workers hold the same state; the chief alone writes it
                arrays, meta = current.to_record()
                meta.update(fingerprint=fingerprint,
                            elapsed_s=elapsed_before + time.perf_counter() - started)
                save_state(out / STATE_FILE, arrays, meta)
            stage.saved(_restarts_done(current, settings.restarts))
            restart = (current.current.completed if current.current else settings.restarts) - 1
            restart_acc = (current.current.restart_accuracies[-1] if current.current
                           else current.run_restart_accuracies[-1][-1])
            attacked = (current.current.restart_attacked[-1] if current.current
                        else current.run_restart_attacked[-1][-1])
            merged = current.current.accuracy if current.current else current.run_accuracies[-1]
            progress.restart_finished(run, restart, restart_acc, merged, per_restart,
                                      attacked=attacked, total=n)

        state = attack_runs(model, x, y, config, runs=settings.runs, restarts=settings.restarts,
                            seed=settings.seed, y_target=y_target, resume=state, on_update=save,
                            on_progress=progress.within_restart, strategy=strategy)
        stage.writing()
        wall = elapsed_before + time.perf_counter() - started
        if not chief:
            log(f"worker {attacks.worker_rank(strategy)} of {attacks.worker_count(strategy)}: "
                f"attack finished ({format_duration(wall)} wall); the chief writes the outputs")
            return {"worker": attacks.worker_rank(strategy), "outputs": None}
        return _write_outputs(settings, config, model, model_dir, checkpoint_files, x, y,
                              len(x_all), state, clean_accuracy, wall, progress.rate(), sources,
                              log)


def _prologue(settings: EvalSettings, strategy=None) -> tuple:
    """The checks before a job's prologue (:func:`_job`): the model folder, the data, the
    model's config and the attack's defaults from it. Returns ``(STRONGEST, settings,
    sources, model_dir, model_config)`` or ``("attack", settings, sources, model_dir,
    model_config, config)`` (``config`` resolved)."""
    model_dir = _model_dir(settings)
    require_data(settings.dataset, settings.data_dir)
    model_config, model_config_path = _read_model_config(model_dir)
    _check_config_dataset(settings, model_dir, model_config)
    settings, sources = _with_attack_defaults(settings, model_config, model_config_path)
    if settings.attack == STRONGEST:
        if strategy is not None:
            raise ValueError("attack=strongest runs on one device: it takes no strategy")
        return STRONGEST, settings, sources, model_dir, model_config
    if settings.budget is not None:
        raise ValueError("budget applies to attack=strongest only")
    config = settings.attack_config().resolved()
    if settings.num_examples is not None:  # refused before the folder is created
        attacks.check_groups(strategy, settings.num_examples, config.batch_size)
    return "attack", settings, sources, model_dir, model_config, config


def _prologue_and_fingerprint(settings: EvalSettings, strategy) -> tuple[tuple, dict]:
    """:func:`_prologue` and the job's fingerprint (:func:`_fingerprint`, which leaves out
    paths that may differ between hosts), for ``cluster.agree_on_the_job``."""
    prepared = _prologue(settings, strategy)
    _, settings, _, model_dir, _, config = prepared
    x_all, y_all = load_dataset(settings.dataset, "test", settings.data_dir)
    n = _num_examples(settings.num_examples, len(x_all))
    # The dtype as resolved here: workers whose "auto" resolves differently compute
    # different images.
    dtype = compute_dtype_resolved(load_model(model_dir, arch=settings.arch),
                                   config.compute_dtype, config.batch_size)
    return prepared, _fingerprint(settings, config, checkpoint_sha256(model_dir), x_all[:n],
                                  y_all[:n], dtype)


def _state_from_the_chief(strategy, path: Path, chief_error: str | None) -> bytes | None:
    """The chief's state file sent to every worker (None: no state yet), so that all resume
    from the same restart; an error of the chief's (its folder in use, not writable) is raised
    on every worker. One exchange: every worker must call it."""
    chief = attacks.is_chief(strategy)
    return cluster.from_the_chief(
        cluster.gatherer(strategy), chief,
        payload=path.read_bytes() if chief and chief_error is None and path.exists() else None,
        error=chief_error, raise_as=CompatError)


@contextlib.contextmanager
def _job(settings: EvalSettings, model_dir: Path, model_config: dict, label: str,
         strategy=None) -> Iterator[tuple[Any, np.ndarray, np.ndarray, np.ndarray, bytes | None]]:
    """The prologue of every evaluation job, single attack or ``strongest``: the leaderboard
    row's rules checked on ``label`` (a bad ``submitted_by`` fails before the attack), the
    output folders checked writable, ``output_dir`` locked and its stale temporaries
    removed (under ``multi_worker`` by the chief alone, whose errors reach every worker),
    the model loaded and checked against ``settings.arch``, the test images read.

    Yields ``(model, x_all, x, y, state_bytes)``: the model, all test images, and the first
    ``num_examples`` of them (float32) with their int64 labels, and under ``multi_worker``
    the chief's state file (None: a new run or a single process); the lock is held until
    the block ends.
    """
    out = Path(settings.output_dir)
    attack_file = _attack_file(settings)
    leaderboard_row(label, settings.submitted_by, 0.0, _dt.date.today())
    multi, chief = attacks.is_multi_worker(strategy), attacks.is_chief(strategy)
    with contextlib.ExitStack() as held:
        chief_error = None
        try:  # multi-worker: an error of the chief's is sent to the others, then raised
            if chief:
                _check_writable(out, "output_dir")
                if attack_file.parent != out:
                    _check_writable(attack_file.parent, "the folder of attack_path",
                                    create=False)
                held.enter_context(FolderLock(out))
                remove_stale_temporaries(out, exclusive=True)
                if attack_file.parent != out:
                    remove_stale_temporaries(attack_file.parent)
        except CompatError as err:
            if not multi:
                raise
            chief_error = str(err)
        state_bytes = _state_from_the_chief(strategy, out / STATE_FILE, chief_error) if multi \
            else None
        model = load_model(model_dir, arch=settings.arch)
        _check_arch(settings, model_dir, model.name, model_config)
        x_all, y_all = load_dataset(settings.dataset, "test", settings.data_dir)
        n = _num_examples(settings.num_examples, len(x_all))
        yield model, x_all, x_all[:n], y_all[:n], state_bytes


def _strategy_text(strategy) -> str:
    from workflow.strategy import describe
    return describe(strategy)


class _Stage:
    """Where a run is, so that an interruption can say truthfully what was saved."""

    def __init__(self) -> None:
        self.state_file: Path | None = None
        self.done = 0
        self.total = 0
        self.outputs = False
        self.unit = "restart"  # what a saved step is: a restart, or an ensemble's member

    def attacking(self, state_file: Path, done: int, total: int) -> None:
        self.state_file, self.done, self.total = state_file, done, total

    def saved(self, done: int) -> None:
        self.done = done

    def writing(self) -> None:
        self.outputs = True

    def lost_worker(self, err: Exception) -> str:
        """A multi-worker exchange failed (a worker died or stopped answering)."""
        if self.state_file is None or self.done == 0:
            saved = "no restart was saved, rerunning starts over"
        else:
            saved = (f"{self.done} of {self.total} {self.unit}(s) are saved in {self.state_file} "
                     f"on the chief: rerun the same command on every worker to resume")
        return cluster.lost_contact(err, saved)

    def explain(self, signum: int) -> str:
        name = signal_name(signum)
        if self.state_file is None:
            return f"interrupted by {name} during start-up; nothing was computed or saved"
        if self.outputs:
            return (f"interrupted by {name} while writing the outputs; the finished attack is "
                    f"saved in {self.state_file}: rerun the same command to write them")
        if self.done == 0:
            return (f"interrupted by {name} before the first {self.unit} finished; nothing was "
                    f"saved, rerunning starts over")
        return (f"interrupted by {name}; {self.done} of {self.total} {self.unit}(s) are saved in "
                f"{self.state_file}: rerun the same command to resume after {self.unit} "
                f"{self.done}")


def _write_outputs(settings, config, model, model_dir, checkpoint_files, x, y, available, state,
                   clean_accuracy, wall, rate, sources, log) -> dict[str, Any]:
    out = Path(settings.output_dir)
    x_adv = state.worst_x_adv
    spec = protocol(settings.dataset)
    check_submission(x_adv, x, config.epsilon, num_examples=len(x), image_shape=spec.image_shape,
                     bounds=spec.bounds)
    pred = predict(model, x_adv, config.batch_size)
    adversarial_accuracy = float(np.mean(pred == y))
    attack_file = _attack_file(settings)
    save_array_atomic(attack_file, x_adv.astype(np.float32))
    save_array_atomic(out / PRED_FILE, pred)
    results = {
        "settings": dataclasses.asdict(settings),
        "settings_source": sources,
        "attack_config": dataclasses.asdict(config),
        # What compute_dtype="auto" chose here (the calibration is cached by now).
        "compute_dtype_used": compute_dtype_resolved(model, config.compute_dtype,
                                                     config.batch_size),
        "model": {"path": str(Path(model_dir).resolve()), "name": model.name,
                  "checkpoint_sha256": checkpoint_files},
        "data": {"dataset": settings.dataset, "split": "test", "num_examples": len(x),
                 "available": available, "sha256": _data_sha256(x, y),
                 "image_shape": list(x.shape[1:]), "bounds": list(spec.bounds),
                 "epsilon_scale": spec.scale,
                 "source": dataset_source(settings.dataset, "test", settings.data_dir)},
        "clean_accuracy": clean_accuracy,
        "adversarial_accuracy": adversarial_accuracy,
        "worst_accuracy": state.worst_accuracy,
        "average_accuracy": state.average_accuracy,
        "run_accuracies": state.run_accuracies,
        # Each restart's accuracy is of the examples it attacked (restart_attacked: with
        # skip_broken, the ones no earlier restart broke); merged_accuracies are of all.
        "restart_accuracies": state.run_restart_accuracies,
        "restart_attacked": state.run_restart_attacked,
        "merged_accuracies": state.run_merged_accuracies,
        "examples": model_examples(model, x, y, x_adv, pred, settings.plot_examples,
                                   config.batch_size),
        # Upper bound (skip_broken, apgd_t and multitargeted skip broken examples, keep=best
        # compacts); ODI's and the interval phase's steps included; APGD adds a forward pass
        # per run.
        "gradient_passes_per_example": config.gradient_passes() * settings.restarts * settings.runs,
        # The interval width search's bound forward passes (about two model passes each).
        "interval_bound_passes_per_example":
            config.bound_passes() * settings.restarts * settings.runs,
        "wall_time_s": wall,
        "example_steps_per_s": rate,
        "outputs": {"attack": str(attack_file), "pred": str(out / PRED_FILE)},
        "versions": _versions(),
        "date": _dt.date.today().isoformat(),
    }
    _write_json(out / RESULTS_FILE, results)
    row = leaderboard_row(_attack_label(config, settings, model_dir, len(x), available),
                          settings.submitted_by, adversarial_accuracy, _dt.date.today())
    write_leaderboard(out / LEADERBOARD_FILE, [row],
                      notes=_leaderboard_notes(len(x), available, spec.num_eval_examples))
    if settings.plots:
        plot_outputs(out, results, x, x_adv, log)
    if settings.target == "none":
        runs_text = (f"worst of {len(state.run_accuracies)} run(s); average "
                     f"{100 * state.average_accuracy:.2f}%")
    else:  # a targeted run's accuracies count the images that did not reach their target
        runs_text = (f"target ({settings.target}) reached for "
                     f"{100 * (1 - state.worst_accuracy):.2f}% of the images")
    log(f"model {_model_label(model_dir)}, {_scope(config, len(x), available, settings.dataset)}: "
        f"clean accuracy {100 * clean_accuracy:.2f}%, adversarial accuracy "
        f"{100 * adversarial_accuracy:.2f}% ({runs_text}), {format_duration(wall)} wall; "
        f"wrote {attack_file}")
    return results


def _model_dir(settings: EvalSettings) -> Path:
    """The model to attack; a dataset with no shipped model (CIFAR-10) refuses a missing one
    in one line saying how to get it."""
    if settings.model_dir is not None or default_model_dir(settings.dataset) is None:
        return require_model_dir(settings.dataset, settings.model_dir)
    shipped = default_model_dir(settings.dataset)
    if latest_checkpoint(shipped) is None:
        raise CompatError(f"{shipped}: the shipped {settings.dataset} model is not there; "
                          f"pass --model_dir=<challenge model directory or checkpoint prefix>")
    return shipped


def _model_label(model_dir: Path) -> str:
    """The model's short name: its folder's name, or ``folder/checkpoint-N`` for a prefix."""
    path = Path(model_dir)
    return path.name if path.is_dir() else f"{path.parent.name}/{path.name}"


def _read_model_config(model_dir: Path) -> tuple[dict[str, Any], Path | None]:
    """The ``config.json`` beside the checkpoint (in the model folder), or ``({}, None)``."""
    folder = model_dir if model_dir.is_dir() else model_dir.parent
    path = folder / MODEL_CONFIG_FILE
    if not path.is_file():
        return {}, None
    return read_challenge_config(path), path


def _check_config_dataset(settings: EvalSettings, model_dir: Path, model_config: dict) -> None:
    """A model whose config.json names another dataset (or architecture) is refused."""
    trained_on = model_config.get("dataset")
    if trained_on is not None and trained_on != settings.dataset:
        raise CompatError(f"{model_dir}: a {trained_on} model (its {MODEL_CONFIG_FILE} says "
                          f"dataset {trained_on}), not one for {settings.dataset}; pass "
                          f"--dataset={trained_on} or another --model_dir")
    config_arch = model_config.get("arch")
    if config_arch is not None and settings.arch is not None and config_arch != settings.arch:
        raise CompatError(f"{model_dir}: its {MODEL_CONFIG_FILE} says arch {config_arch}, not "
                          f"--arch={settings.arch}")


def _check_arch(settings: EvalSettings, model_dir: Path, arch: str, model_config: dict) -> None:
    """The loaded architecture fits the dataset (unless --arch chose it) and the config."""
    config_arch = model_config.get("arch")
    if config_arch is not None and config_arch != arch:
        raise CompatError(f"{model_dir}: its {MODEL_CONFIG_FILE} says arch {config_arch} but the "
                          f"checkpoint is a {arch} network")
    expected = protocol(settings.dataset).arch
    if settings.arch is None and arch != expected:
        native = ARCH_DATASETS[arch]
        raise CompatError(f"{model_dir}: a {arch} network (the {native} architecture), not "
                          f"{expected} for {settings.dataset}; pass --dataset={native}, or "
                          f"--arch={arch} to evaluate it on {settings.dataset} anyway")


def _with_attack_defaults(settings: EvalSettings, model_config: dict,
                          config_path: Path | None) -> tuple[EvalSettings, dict[str, str]]:
    """``settings`` with epsilon/steps/step_size filled in, and where each value came from
    (``given``, the model's config.json for epsilon, or ``default``)."""
    values, sources = {}, {}
    spec = protocol(settings.dataset)
    defaults = {"epsilon": ("epsilon", spec.epsilon), "steps": ("k", spec.steps),
                "step_size": ("a", spec.step_size)}
    for name, (key, default) in defaults.items():
        if getattr(settings, name) is not None:
            sources[name] = "given"
        elif settings.attack in ("fgsm", STRONGEST) and name != "epsilon":
            continue  # one step of size epsilon
        elif settings.attack in APGD_METHODS and name == "step_size":
            continue  # APGD's schedule sets its step sizes
        elif name in FROM_MODEL_CONFIG and key in model_config and model_config[key] > 0:
            values[name] = float(model_config[key])
            sources[name] = str(config_path)
        else:
            values[name] = default
            sources[name] = "default"
    return dataclasses.replace(settings, **values), sources


def _sources_text(sources: dict[str, str]) -> str:
    """``epsilon, step_size from models/x/config.json, steps as given``."""
    by_source: dict[str, list[str]] = {}
    for name, source in sources.items():
        by_source.setdefault(source, []).append(name)
    return ", ".join(f"{', '.join(names)} {_source_text(source)}"
                     for source, names in by_source.items())


def _source_text(source: str) -> str:
    if source in ("given", "default"):
        return {"given": "as given", "default": "the challenge's default"}[source]
    relative = os.path.relpath(source)
    return f"from {source if relative.startswith('..') else relative}"


def _scope(config: AttackConfig, n: int, available: int, dataset: str) -> str:
    """``eps 0.3, 1,000 of 10,000 mnist test images`` (``eps 8 on 0-255, ... cifar10 ...``):
    what a percentage is a percentage of."""
    return f"{_eps_text(config.epsilon, dataset)}, {n:,} of {available:,} {dataset} test images"


def _eps_text(epsilon: float, dataset: str) -> str:
    """``eps 0.3`` on [0, 1] images; ``eps 8 on 0-255`` for another pixel scale."""
    spec = protocol(dataset)
    return f"eps {epsilon:g}" + ("" if spec.bounds == (0.0, 1.0) else f" on {spec.scale}")


def _phases_text(config: AttackConfig) -> str:
    """The interval method's phases as ``PGD 25, interval 1, ..., PGD 25``."""
    return ", ".join(f"{'PGD' if kind == 'pgd' else 'interval'} {n}"
                     for kind, n in config.interval_phases())


def _steps_text(config: AttackConfig, sources: dict[str, str]) -> str:
    where = _sources_text(sources)
    if config.method == "fgsm":
        return f"one step of size eps; {where}"
    if config.method in APGD_METHODS:
        return f"{config.steps} steps, step size from 2 eps; {where}"
    if config.method == "interval":
        return (f"{config.steps} steps of {config.step_size:g} in PGD phases "
                f"{_phases_text(config)}, interval steps of {config.interval_step_size:g}; {where}")
    return f"{config.steps} steps of {config.step_size:g}; {where}"


def _attack_file(settings: EvalSettings) -> Path:
    """``attack_path`` (relative: in output_dir), refused where it would clobber an output.

    Raises:
      ValueError: an empty name, a folder, a missing folder, or the name of another output.
    """
    out = Path(settings.output_dir)
    if not settings.attack_path or settings.attack_path.endswith(("/", os.sep)):
        raise ValueError(f"attack_path must name a file, got {settings.attack_path!r}")
    path = out / settings.attack_path
    if path.is_dir():
        raise ValueError(f"attack_path {path} is a folder; name a file such as attack.npy")
    if path.parent != out and not path.parent.is_dir():
        raise ValueError(f"attack_path {path}: the folder {path.parent} does not exist")
    taken = {os.path.realpath(out / name): name
             for name in (STATE_FILE, RESULTS_FILE, PRED_FILE, LEADERBOARD_FILE, LOCK_FILE)}
    clash = taken.get(os.path.realpath(path))
    if clash is not None:
        raise ValueError(f"attack_path {path} would overwrite the run's {clash}; choose another "
                         f"name (e.g. attack.npy)")
    return path


def _check_writable(folder: Path, what: str, create: bool = True) -> None:
    """Creates ``folder`` (if ``create``) and proves it writable with a probe file.

    Raises:
      CompatError: a file in the way, a path below a file, or no permission (one line).
    """
    if folder.exists() and not folder.is_dir():
        raise CompatError(f"{what} {folder}: is a file, not a folder")
    for parent in folder.parents:
        if parent.exists():
            if not parent.is_dir():
                raise CompatError(f"{what} {folder}: is below {parent}, which is a file")
            break
    if create:
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise CompatError(f"{what} {folder}: cannot be created ({err.strerror or err})") from None
    probe = folder / f".write-probe.{os.getpid()}"
    try:
        fd = os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        os.close(fd)
        os.unlink(probe)
    except OSError as err:
        raise CompatError(f"{what} {folder}: not writable ({err.strerror or err})") from None


def _num_examples(requested: int | None, available: int) -> int:
    if requested is None:
        return available
    if not 1 <= requested <= available:
        raise ValueError(f"num_examples must be in [1, {available}], got {requested}")
    return requested


def _data_sha256(x: np.ndarray, y: np.ndarray) -> str:
    """Digest of the images and labels attacked (float32 / int64 bytes, with their shapes)."""
    digest = hashlib.sha256()
    for array, dtype in ((x, np.float32), (y, np.int64)):
        array = np.ascontiguousarray(array, dtype=dtype)
        digest.update(repr(array.shape).encode())
        digest.update(array.tobytes())
    return digest.hexdigest()


def compute_dtype_resolved(model, compute_dtype: str, batch_size: int) -> str:
    """The dtype the attack's passes run in here: ``compute_dtype`` with "auto" resolved by
    this machine's calibration (``attacks.calibration``; measured once, then cached)."""
    return resolve_compute_dtype(model, compute_dtype, batch_size)


def _fingerprint(settings: EvalSettings, config: AttackConfig, checkpoint_files, x, y,
                 dtype_resolved: str) -> dict:
    """What determines the result: a state file only resumes a job with the same one.

    The data enters as the digest of the images actually attacked (another --data_dir with
    other files is another job) and XLA as resolved (it changes float rounding);
    ``skip_broken`` only for BLOB, where it changes the groups. ``dtype_resolved`` is the
    compute dtype that runs (:func:`compute_dtype_resolved`): "auto" can resolve to another
    dtype on another machine, whose restarts would not continue this run's.
    """
    keep = {k: v for k, v in dataclasses.asdict(settings).items()
            if k not in ("output_dir", "attack_path", "submitted_by", "model_dir", "data_dir", "xla",
                         "plots", "plot_examples")}
    attack_config = dataclasses.asdict(dataclasses.replace(config, xla=resolve_xla(config.xla)))
    if not config.grouped:  # skipping broken examples leaves the merged result unchanged
        attack_config.pop("skip_broken")
    return {"settings": keep, "attack_config": attack_config,
            "compute_dtype_resolved": dtype_resolved,
            "checkpoint_sha256": checkpoint_files, "num_examples": len(x),
            "data_sha256": _data_sha256(x, y)}


def _with_resolved_dtype(stored: Any, compute_dtype: str) -> Any:
    """A stored fingerprint written before ``compute_dtype_resolved`` was recorded: an
    explicit float32 / bfloat16 is what ran, so it is filled in; for "auto" what ran is
    unknown and the key stays missing (the resume is refused)."""
    if (isinstance(stored, dict) and "compute_dtype_resolved" not in stored
            and compute_dtype in COMPUTE_DTYPES):
        return {**stored, "compute_dtype_resolved": compute_dtype}
    return stored


def _load_or_new_state(path: Path, fingerprint: dict, n: int, multi_worker: bool = False,
                       received: bytes | None = None) -> tuple[RunsState, float]:
    """The state at ``path`` or, ``multi_worker``, the chief's bytes of it (``received``;
    None: a new run), refused where it holds another job."""
    if multi_worker:
        if received is None:
            return RunsState(), 0.0
        with tempfile.TemporaryDirectory() as folder:  # a private copy, outside output_dir
            copy = Path(folder) / path.name
            copy.write_bytes(received)
            arrays, meta = load_state(copy)
    elif not path.exists():
        return RunsState(), 0.0
    else:
        arrays, meta = load_state(path)
    expected = json.loads(json.dumps(fingerprint))
    stored = meta.get("fingerprint")
    stored_dtype = (stored.get("attack_config") or {}).get("compute_dtype") \
        if isinstance(stored, dict) else None
    differs = cluster.differences(expected, _with_resolved_dtype(stored, stored_dtype))
    if differs:
        raise CompatError(f"{path}: this output directory holds a run with other settings "
                          f"({'; '.join(differs)}); use another --output_dir or delete {path.name}")
    try:
        state = RunsState.from_record(arrays, meta, num_examples=n)
    except ValueError as err:
        raise CompatError(f"{path}: inconsistent state file ({err}); delete it to start "
                          f"over") from None
    return state, float(meta.get("elapsed_s", 0.0))


def _restarts_done(state: RunsState, restarts: int) -> int:
    return state.completed_runs * restarts + (state.current.completed if state.current else 0)


def _attack_label(config: AttackConfig, settings: EvalSettings, model_dir: Path, n: int,
                  available: int) -> str:
    name = {"fgsm": "FGSM", "pgd": "PGD", "pqgd": "PQGD", "blob": "DAA-BLOB",
            "blob_qg": "BLOB_QG", "apgd": "APGD", "apgd_t": "APGD-T",
            "multitargeted": "MultiTargeted", "interval": "Interval Attack"}[config.method]
    parts = [f"{name}" + (f" (b={config.b:g})" if config.b is not None else "")]
    if config.method in APGD_METHODS:
        parts.append(f"{config.steps} steps"
                     + (f", {config.num_targets} targets" if config.num_targets else ""))
    elif config.method == "multitargeted":
        parts.append(f"{config.steps} steps, a={config.step_size:g}, "
                     f"{config.num_targets} targets")
    elif config.method == "interval":
        parts.append(f"phases {_phases_text(config)} ({config.interval_loss} bound), "
                     f"a={config.step_size:g}")
    elif config.method != "fgsm":
        parts.append(f"{config.steps} steps, a={config.step_size:g}")
    parts.append(f"{config.loss} loss")
    if config.start == "odi":
        parts.append(f"ODI start ({config.odi_steps} steps)")
    if settings.target != "none":
        parts.append(f"targeted ({settings.target})")
    if config.norm != "linf":
        parts.append(config.norm.upper())
    if settings.restarts > 1:
        parts.append(f"{settings.restarts} restarts")
    spec = protocol(settings.dataset)
    images = "test images" if spec.bounds == (0.0, 1.0) else f"{spec.display} test images"
    parts += [_eps_text(config.epsilon, settings.dataset), f"{n:,} of {available:,} {images}",
              f"model {_model_label(model_dir)}"]
    parts.append(f"{config.keep} iterate")
    return ", ".join(parts)


def _leaderboard_notes(n: int, available: int, required: int) -> list[str]:
    if n >= required and n == available:
        return []
    return [f"Partial evaluation: {n:,} of the {available:,} test images. Not a valid challenge "
            f"submission, which needs all {required:,}."]


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


# --------------------------------------------------------------------------- strongest
def _check_strongest_settings(settings: EvalSettings) -> None:
    """The ensemble takes none of the single-attack settings; one line naming the first."""
    single = {"steps": settings.steps, "step_size": settings.step_size, "b": settings.b,
              "num_targets": settings.num_targets, "kappa": settings.kappa, "c": settings.c,
              "start": settings.start, "odi_steps": settings.odi_steps,
              "interval_rounds": settings.interval_rounds,
              "interval_steps": settings.interval_steps,
              "interval_pgd_steps": settings.interval_pgd_steps,
              "interval_step_size": settings.interval_step_size,
              "interval_width": settings.interval_width, "interval_loss": settings.interval_loss}
    given = [name for name, value in single.items() if value is not None]
    if given:
        raise ValueError(f"attack=strongest sets its members' settings itself: it takes no "
                         f"{given[0]} (its gradient budget is --budget)")
    if settings.loss not in (None, "xent"):
        raise ValueError(f"attack=strongest sets its members' losses itself: it takes no loss, "
                         f"got {settings.loss}")
    for name, value, default in (("target", settings.target, "none"),
                                 ("norm", settings.norm, "linf"), ("restarts", settings.restarts, 1),
                                 ("runs", settings.runs, 1)):
        if value != default:
            raise ValueError(f"attack=strongest runs its members once, untargeted, under L-inf: "
                             f"{name} must be {default}, got {value}")
    if settings.budget is not None and not (isinstance(settings.budget, int) and settings.budget >= 1):
        raise ValueError(f"budget must be an integer >= 1 (passes per example), got {settings.budget}")


def _strongest_label(budget: int, epsilon: float, model_dir: Path, n: int, available: int) -> str:
    from attacks import default_members
    names = " + ".join(m.name for m in default_members(budget))
    return (f"strongest ({names}), budget {budget} passes, eps {epsilon:g}, {n:,} of "
            f"{available:,} test images, model {_model_label(model_dir)}")


def _run_strongest(settings: EvalSettings, sources: dict[str, str], model_dir: Path,
                   model_config: dict, log: Callable[[str], None], stage: _Stage) -> dict[str, Any]:
    """``attack=strongest``: the ensemble, saved and resumable after every member."""
    from attacks import (DEFAULT_BUDGET, EnsembleState, MemberResult, default_members,
                         member_steps, strongest)
    _check_strongest_settings(settings)
    budget = DEFAULT_BUDGET if settings.budget is None else settings.budget
    settings = dataclasses.replace(settings, budget=budget)
    members = default_members(budget)  # chosen per budget (attacks.ensemble.DEFAULT_PLAN)
    steps = member_steps(members, budget, settings.epsilon)  # refuses a small budget
    configs = [dataclasses.asdict(m.config(settings.epsilon, s, batch_size=settings.batch_size,
                                           compute_dtype=settings.compute_dtype, xla=settings.xla))
               for m, s in zip(members, steps)]
    out, attack_file = Path(settings.output_dir), _attack_file(settings)
    with _job(settings, model_dir, model_config,
              _strongest_label(budget, settings.epsilon, model_dir, 1, 1)) as (model, x_all, x, y, _):
        n = len(x)
        checkpoint_files = checkpoint_sha256(model_dir)
        keep = {k: v for k, v in dataclasses.asdict(settings).items()
                if k not in ("output_dir", "attack_path", "submitted_by", "model_dir", "data_dir",
                             "xla", "plots", "plot_examples")}
        fingerprint = {"settings": keep, "members": [m.record() for m in members],
                       "member_configs": json.loads(json.dumps(configs, default=_json_default)),
                       "xla": resolve_xla(settings.xla),
                       "compute_dtype_resolved": compute_dtype_resolved(
                           model, settings.compute_dtype, settings.batch_size),
                       "checkpoint_sha256": checkpoint_files,
                       "num_examples": n, "data_sha256": _data_sha256(x, y)}
        state_file = out / STATE_FILE
        resume, elapsed_before = None, 0.0
        if state_file.exists():
            arrays, meta = load_state(state_file)
            differs = cluster.differences(json.loads(json.dumps(fingerprint)), _with_resolved_dtype(
                meta.get("fingerprint"), settings.compute_dtype))
            if differs:
                raise CompatError(f"{state_file}: this output directory holds a run with other "
                                  f"settings ({'; '.join(differs)}); use another --output_dir or "
                                  f"delete {state_file.name}")
            if arrays.get("x_adv") is None or arrays["x_adv"].shape != x.shape \
                    or arrays.get("broken") is None or arrays["broken"].shape != (n,):
                raise CompatError(f"{state_file}: inconsistent state file (expected images of "
                                  f"shape {x.shape}); delete it to start over")
            resume = EnsembleState(x_adv=arrays["x_adv"].astype(np.float32),
                                   broken=arrays["broken"].astype(bool),
                                   clean_broken=int(meta["clean_broken"]),
                                   members=[MemberResult(**m) for m in meta["members"]],
                                   budget=budget)
            elapsed_before = float(meta.get("elapsed_s", 0.0))
        stage.unit = "member"
        done = 0 if resume is None else resume.completed
        stage.attacking(state_file, done, len(members))
        clean_accuracy = float(np.mean(predict(model, x, settings.batch_size) == y))
        log(f"model {model_dir} ({model.name}), {_scope_text(settings.epsilon, n, len(x_all), settings.dataset)}, "
            f"clean accuracy {100 * clean_accuracy:.2f}%; strongest, budget {budget} passes per "
            f"example: " + ", ".join(f"{m.name} {s} steps" for m, s in zip(members, steps))
            + f"; {_sources_text({'epsilon': sources['epsilon']})}"
            + (f"; resuming after {done} member(s)" if done else ""))
        started = time.perf_counter()
        last_line = [started]

        def progress(k: int, spent: int) -> None:
            now = time.perf_counter()
            if now - last_line[0] >= 10.0:
                last_line[0] = now
                log(f"member {k + 1}/{len(members)} {members[k].name} in "
                    f"progress: {spent:,} passes")

        def save(current: EnsembleState) -> None:
            meta = {"fingerprint": fingerprint, "clean_broken": current.clean_broken,
                    "members": [dataclasses.asdict(m) for m in current.members],
                    "elapsed_s": elapsed_before + time.perf_counter() - started}
            save_state(state_file, {"x_adv": current.x_adv, "broken": current.broken}, meta)
            stage.saved(current.completed)
            m = current.members[-1]
            last_line[0] = time.perf_counter()
            log(f"member {current.completed}/{len(members)} {m.name} done: broke "
                f"{m.broke} of {m.attacked} attacked ({m.passes / max(1, m.attacked):.0f} passes "
                f"each), accuracy {100 * current.accuracy:.2f}%")

        state = strongest(model, x, y, settings.epsilon, budget=budget, members=members,
                          seed=settings.seed,
                          batch_size=settings.batch_size, compute_dtype=settings.compute_dtype,
                          xla=settings.xla, resume=resume, on_member=save, on_progress=progress)
        stage.writing()
        wall = elapsed_before + time.perf_counter() - started
        check_submission(state.x_adv, x, settings.epsilon, num_examples=n)
        pred = predict(model, state.x_adv, settings.batch_size)
        adversarial_accuracy = float(np.mean(pred == y))
        save_array_atomic(attack_file, state.x_adv.astype(np.float32))
        save_array_atomic(out / PRED_FILE, pred)
        results = {
            "settings": dataclasses.asdict(settings),
            "settings_source": sources,
            "attack_config": {"method": STRONGEST, "epsilon": settings.epsilon,
                              "bounds": (0.0, 1.0), "budget": budget},
            "ensemble": {**state.summary(), "member_configs": configs,
                         "member_specs": [m.record() for m in members]},
            "model": {"path": str(Path(model_dir).resolve()), "name": model.name,
                      "checkpoint_sha256": checkpoint_files},
            "data": {"dataset": settings.dataset, "split": "test", "num_examples": n,
                     "available": len(x_all), "sha256": _data_sha256(x, y),
                     "source": dataset_source(settings.dataset, "test", settings.data_dir)},
            "clean_accuracy": clean_accuracy,
            "adversarial_accuracy": adversarial_accuracy,
            "examples": model_examples(model, x, y, state.x_adv, pred, settings.plot_examples,
                                       settings.batch_size),
            # Mean over the examples of the passes actually spent (at most the budget).
            "gradient_passes_per_example": state.passes_per_example,
            "wall_time_s": wall,
            "outputs": {"attack": str(attack_file), "pred": str(out / PRED_FILE)},
            "versions": _versions(),
            "date": _dt.date.today().isoformat(),
        }
        _write_json(out / RESULTS_FILE, results)
        row = leaderboard_row(_strongest_label(budget, settings.epsilon, model_dir, n, len(x_all)),
                              settings.submitted_by, adversarial_accuracy, _dt.date.today())
        write_leaderboard(out / LEADERBOARD_FILE, [row], notes=_leaderboard_notes(
            n, len(x_all), protocol(settings.dataset).num_eval_examples))
        if settings.plots:
            plot_outputs(out, results, x, state.x_adv, log)
        log(f"model {_model_label(model_dir)}, {_scope_text(settings.epsilon, n, len(x_all), settings.dataset)}: "
            f"clean accuracy {100 * clean_accuracy:.2f}%, adversarial accuracy "
            f"{100 * adversarial_accuracy:.2f}% (strongest, {state.passes_per_example:.1f} of "
            f"{budget} passes per example spent), {format_duration(wall)} wall; wrote {attack_file}")
        return results


def _scope_text(epsilon: float, n: int, available: int, dataset: str) -> str:
    return f"eps {epsilon:g}, {n:,} of {available:,} {dataset} test images"
