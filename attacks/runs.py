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
      worst_x_adv: ``(N, *S)`` float32 images of the finished run with the lowest accuracy
        (the strongest attack, the one a submission should use); None before any finishes.
      current: the run in progress (its finished restarts), or None.
    """

    run_restart_accuracies: list[list[float]] = field(default_factory=list)
    run_accuracies: list[float] = field(default_factory=list)
    worst_x_adv: np.ndarray | None = None
    current: RestartState | None = None

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
                    None if self.current is None else self.current.restart_accuracies}
        return arrays, meta

    @classmethod
    def from_record(cls, arrays: dict[str, np.ndarray], meta: dict) -> RunsState:
        current = None
        if meta.get("current_restart_accuracies") is not None:
            current = RestartState(x_adv=arrays["current_x_adv"].astype(np.float32),
                                   broken=arrays["current_broken"].astype(bool),
                                   restart_accuracies=list(meta["current_restart_accuracies"]))
        worst = arrays.get("worst_x_adv")
        return cls(run_restart_accuracies=[list(a) for a in meta["run_restart_accuracies"]],
                   run_accuracies=list(meta["run_accuracies"]),
                   worst_x_adv=None if worst is None else worst.astype(np.float32),
                   current=current)

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
                on_progress: Callable[[int, int, int], None] | None = None) -> RunsState:
    """Runs ``runs`` independent ``restarts``-restart attacks; resumable after any restart.

    Args:
      model, x, y, config: as for :func:`attacks.attack`.
      seed: an int (a None seed could not be resumed, so it is refused).
      y_target: ``(N,)`` target classes for a targeted attack (see :func:`attacks.perturb`).
      resume: a state saved from ``on_update``; the result equals an uninterrupted run's.
      on_update: called with ``(state, run)`` after every restart (save it here).
      on_progress: called with ``(run, restart, example_steps_done)`` after each group.

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
               resume=state.current, on_restart=restart_done, on_progress=progress)
    return state


def _close_run(state: RunsState, finished: RestartState) -> None:
    """Records a finished run; its images are kept if it is the strongest run so far."""
    if state.worst_x_adv is None or finished.accuracy < state.worst_accuracy:
        state.worst_x_adv = finished.x_adv.copy()
    state.run_restart_accuracies.append(list(finished.restart_accuracies))
    state.run_accuracies.append(finished.accuracy)
    state.current = None
