"""Independent runs of a multi-restart attack: the paper's "Worst" and "Avg" accuracies."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import keras
import numpy as np

from attacks.api import RestartState, Seed, attack, seed_words
from attacks.config import AttackConfig


@dataclass
class RunsState:
    """Progress over ``runs`` independent runs; everything needed to resume.

    Attributes:
      run_restart_accuracies: for each finished run, its per-restart accuracies.
      run_accuracies: for each finished run, its accuracy with restarts merged, in [0, 1].
      run_merged_accuracies: for each finished run, its accuracy with its first ``r + 1``
        restarts merged, for ``r = 0 .. restarts - 1`` (the last one is its run accuracy);
        None for restarts of a state saved before these were recorded.
      worst_x_adv: ``(N, *S)`` float32 images of the finished run with the lowest accuracy
        (the strongest attack, the one a submission should use); None before any finishes.
      current: the run in progress (its finished restarts), or None.
      current_merged_accuracies: ``run_merged_accuracies`` of the run in progress.
    """

    run_restart_accuracies: list[list[float]] = field(default_factory=list)
    run_accuracies: list[float] = field(default_factory=list)
    worst_x_adv: np.ndarray | None = None
    current: RestartState | None = None
    run_merged_accuracies: list[list[float | None]] = field(default_factory=list)
    current_merged_accuracies: list[float | None] = field(default_factory=list)

    def to_record(self) -> tuple[dict[str, np.ndarray], dict]:
        """Arrays and JSON-able metadata that :meth:`from_record` turns back into the state."""
        arrays = {}
        if self.worst_x_adv is not None:
            arrays["worst_x_adv"] = self.worst_x_adv
        if self.current is not None:
            arrays["current_x_adv"] = self.current.x_adv
            arrays["current_broken"] = self.current.broken
        meta = {"run_restart_accuracies": self.run_restart_accuracies,
                "run_accuracies": self.run_accuracies,
                "current_restart_accuracies":
                    None if self.current is None else self.current.restart_accuracies,
                "run_merged_accuracies": [list(a) for a in self.run_merged_accuracies],
                "current_merged_accuracies": list(self.current_merged_accuracies)}
        return arrays, meta

    @classmethod
    def from_record(cls, arrays: dict[str, np.ndarray], meta: dict,
                    num_examples: int | None = None) -> RunsState:
        """The state :meth:`to_record` described.

        Args:
          arrays, meta: as returned by :meth:`to_record` (after any round trip).
          num_examples: the N the state must hold images for; None accepts any N.

        Raises:
          ValueError: a record that :meth:`to_record` cannot have written (missing arrays or
            keys, wrong types or shapes, inconsistent lists); one line saying what.
        """
        if not isinstance(meta, dict):
            raise ValueError("state metadata is not a mapping")
        run_restart_accuracies = _accuracy_lists(meta, "run_restart_accuracies")
        run_accuracies = _accuracy_list(meta, "run_accuracies")
        if len(run_restart_accuracies) != len(run_accuracies):
            raise ValueError(f"state lists {len(run_accuracies)} finished run(s) but restart "
                             f"accuracies for {len(run_restart_accuracies)}")
        if any(not restarts for restarts in run_restart_accuracies):
            raise ValueError("state has a finished run without restarts")
        worst = _images(arrays, "worst_x_adv", num_examples) if run_accuracies else None
        n = num_examples if worst is None else len(worst)
        current = None
        if meta.get("current_restart_accuracies") is not None:
            restart_accuracies = _accuracy_list(meta, "current_restart_accuracies")
            x_adv = _images(arrays, "current_x_adv", n)
            broken = _array(arrays, "current_broken", (len(x_adv),), bool)
            current = RestartState(x_adv=x_adv.astype(np.float32), broken=broken.astype(bool),
                                   restart_accuracies=restart_accuracies)
        # States saved before merged accuracies were recorded: unknown (None) for their restarts.
        run_merged = meta.get("run_merged_accuracies",
                              [[None] * len(a) for a in run_restart_accuracies])
        current_merged = meta.get("current_merged_accuracies",
                                  [None] * (current.completed if current else 0))
        if (not isinstance(run_merged, list) or len(run_merged) != len(run_restart_accuracies)
                or not all(isinstance(m, list) and len(m) == len(r) and all(_is_fraction_or_none(v) for v in m)
                           for m, r in zip(run_merged, run_restart_accuracies))):
            raise ValueError("state key 'run_merged_accuracies' does not match the finished runs")
        if (not isinstance(current_merged, list)
                or len(current_merged) != (current.completed if current else 0)
                or not all(_is_fraction_or_none(v) for v in current_merged)):
            raise ValueError("state key 'current_merged_accuracies' does not match the current run")
        return cls(run_restart_accuracies=run_restart_accuracies, run_accuracies=run_accuracies,
                   worst_x_adv=None if worst is None else worst.astype(np.float32),
                   current=current, run_merged_accuracies=[list(a) for a in run_merged],
                   current_merged_accuracies=list(current_merged))

    @property
    def completed_runs(self) -> int:
        return len(self.run_accuracies)

    @property
    def worst_accuracy(self) -> float:
        return min(self.run_accuracies)

    @property
    def average_accuracy(self) -> float:
        return float(np.mean(self.run_accuracies))


def run_seed(seed: Seed, run: int) -> list[int]:
    """Seed of run ``run``: restart ``r`` of it then uses ``default_rng([*seed, run, r])``."""
    return [*seed_words(seed), run]


def attack_runs(model: keras.Model, x: np.ndarray, y: np.ndarray, config: AttackConfig, *,
                runs: int = 1, restarts: int = 1, seed: Seed = 0,
                y_target: np.ndarray | None = None, resume: RunsState | None = None,
                on_update: Callable[[RunsState, int], None] | None = None,
                on_progress: Callable[[int, int, int], None] | None = None,
                strategy=None) -> RunsState:
    """Runs ``runs`` independent ``restarts``-restart attacks; resumable after any restart.

    Args:
      model, x, y, config: as for :func:`attacks.attack`.
      seed: an int (a None seed could not be resumed, so it is refused).
      y_target: ``(N,)`` target classes for a targeted attack (see :func:`attacks.perturb`).
      resume: a state saved from ``on_update``; the result equals an uninterrupted run's.
      on_update: called with ``(state, run)`` after every restart (save it here).
      on_progress: called with ``(run, restart, example_steps_done)`` after each group.
      strategy: a ``tf.distribute.Strategy`` whose replicas share the groups (see
        :func:`attacks.perturb`); the state is the same as without one.

    Returns:
      The final state; ``state.worst_x_adv`` holds the strongest run's images.
    """
    if not (isinstance(runs, int) and runs >= 1):
        raise ValueError(f"runs must be an integer >= 1, got {runs}")
    if seed is None:
        raise ValueError("attack_runs needs a seed so that it can be resumed")
    state = resume if resume is not None else RunsState()
    for run in range(state.completed_runs, runs):
        def restart_done(current: RestartState, run: int = run) -> None:
            state.current_merged_accuracies.append(current.accuracy)
            if current.completed == restarts:
                _close_run(state, current)
            else:
                state.current = current
            if on_update is not None:
                on_update(state, run)

        def progress(done: int, run: int = run) -> None:
            if on_progress is not None:
                on_progress(run, state.current.completed if state.current else 0, done)

        attack(model, x, y, config, restarts=restarts, seed=run_seed(seed, run), y_target=y_target,
               resume=state.current, on_restart=restart_done, on_progress=progress,
               strategy=strategy)
    return state


def _close_run(state: RunsState, finished: RestartState) -> None:
    """Records a finished run; its images are kept if it is the strongest run so far."""
    if state.worst_x_adv is None or finished.accuracy < state.worst_accuracy:
        state.worst_x_adv = finished.x_adv.copy()
    state.run_restart_accuracies.append(list(finished.restart_accuracies))
    state.run_accuracies.append(finished.accuracy)
    state.run_merged_accuracies.append(state.current_merged_accuracies)
    state.current = None
    state.current_merged_accuracies = []


def _accuracy_list(meta: dict, key: str) -> list[float]:
    value = meta.get(key)
    if not isinstance(value, list) or not all(_is_fraction(a) for a in value):
        raise ValueError(f"state key {key!r} is missing or not a list of accuracies in [0, 1]")
    return [float(a) for a in value]


def _accuracy_lists(meta: dict, key: str) -> list[list[float]]:
    value = meta.get(key)
    if not isinstance(value, list) or not all(
            isinstance(v, list) and all(_is_fraction(a) for a in v) for v in value):
        raise ValueError(f"state key {key!r} is missing or not a list of accuracy lists")
    return [[float(a) for a in v] for v in value]


def _is_fraction(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and 0 <= value <= 1


def _is_fraction_or_none(value) -> bool:
    return value is None or _is_fraction(value)


def _images(arrays: dict[str, np.ndarray], key: str, n: int | None) -> np.ndarray:
    value = arrays.get(key)
    if value is None:
        raise ValueError(f"state array {key!r} is missing")
    # Images are (N, *S): flat (N, 784) for the challenge's MNIST models, (N, 32, 32, 3) for
    # CIFAR-10.
    if value.ndim < 2 or (n is not None and value.shape[0] != n) or value.shape[0] == 0:
        want = f"({n}, ...)" if n is not None else "(N, ...)"
        raise ValueError(f"state array {key!r} has shape {value.shape}, expected {want}")
    return _array(arrays, key, value.shape, np.floating)


def _array(arrays: dict[str, np.ndarray], key: str, shape: tuple[int, ...], kind) -> np.ndarray:
    value = arrays.get(key)
    if value is None:
        raise ValueError(f"state array {key!r} is missing")
    if value.shape != tuple(shape):
        raise ValueError(f"state array {key!r} has shape {value.shape}, expected {tuple(shape)}")
    if not np.issubdtype(value.dtype, kind):
        raise ValueError(f"state array {key!r} has dtype {value.dtype}, expected "
                         f"{np.dtype(kind).name if kind is bool else 'float'}")
    return value
