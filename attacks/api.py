"""Public functional API: ``perturb`` and ``attack`` (restarts, per-restart accuracies)."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Iterator, Sequence

import keras
import numpy as np

from attacks.config import AttackConfig
from attacks.engine import StepRunner, gpu_available, resolve_xla
from attacks.fast_backward import with_fast_input_gradient
from attacks.precision import model_in_dtype
from models.predict import predict_labels

Seed = int | Sequence[int] | None


@dataclass
class RestartState:
    """Progress of a multi-restart attack; everything needed to resume it.

    Attributes:
      x_adv: ``(N, 784)`` float32, per example the image kept so far (a misclassified one
        as soon as any restart found one, else restart 0's).
      broken: ``(N,)`` bool, True where some restart's image is misclassified.
      restart_accuracies: accuracy of each finished restart on its own, in [0, 1].
    """

    x_adv: np.ndarray
    broken: np.ndarray
    restart_accuracies: list[float] = field(default_factory=list)

    @property
    def completed(self) -> int:
        return len(self.restart_accuracies)

    @property
    def accuracy(self) -> float:
        """Accuracy after merging the finished restarts per example."""
        return float(1.0 - self.broken.mean()) if self.broken.size else 0.0


def perturb(model: keras.Model, x: np.ndarray, y: np.ndarray, *, method: str, epsilon: float,
            steps: int | None = None, step_size: float | None = None, b: float | None = None,
            loss: str = "xent", random_start: bool = True, seed: Seed = None,
            x_start: np.ndarray | None = None, batch_size: int = 200, steps_per_group: int = 10,
            c: float | None = None, restarts: int = 1, compute_dtype: str = "float32",
            xla: str | bool = "auto") -> np.ndarray:
    """Adversarial examples for ``model`` (see :class:`attacks.config.AttackConfig`).

    Args:
      model: Keras model mapping ``(N, 784)`` float32 in [0, 1] to ``(N, C)`` logits.
      x: ``(N, 784)`` clean images, finite, in [0, 1].
      y: ``(N,)`` integer labels in ``[0, C)``.
      seed: same seed -> identical output on CPU; None draws fresh randomness.
      x_start: ``(N, 784)`` starting images within ``epsilon`` of ``x``; replaces the random
        start in every restart.
      restarts: >= 1; per example, an image of a restart that fools the model is kept.

    Returns:
      ``(N, 784)`` float32 images within ``epsilon`` (L-inf) of ``x``, in [0, 1].
    """
    config = AttackConfig(method=method, epsilon=epsilon, steps=steps, step_size=step_size, b=b,
                          loss=loss, random_start=random_start, batch_size=batch_size,
                          steps_per_group=steps_per_group, c=c, compute_dtype=compute_dtype,
                          xla=xla)
    return attack(model, x, y, config, restarts=restarts, seed=seed, x_start=x_start).x_adv


def attack(model: keras.Model, x: np.ndarray, y: np.ndarray, config: AttackConfig, *,
           restarts: int = 1, seed: Seed = None, x_start: np.ndarray | None = None,
           resume: RestartState | None = None,
           on_restart: Callable[[RestartState], None] | None = None,
           on_progress: Callable[[int], None] | None = None) -> RestartState:
    """Runs ``restarts`` restarts of ``config`` and merges them per example.

    Restart ``r`` draws its randomness from ``np.random.default_rng([*seed, r])``, so a run
    resumed from ``resume`` (the state after its first ``resume.completed`` restarts) ends
    exactly as an uninterrupted one. ``on_restart`` sees the state after every restart;
    ``on_progress`` the example-steps done so far in the current restart, after each group.
    """
    x, y = validate_inputs(x, y, model)
    if not (isinstance(restarts, int) and restarts >= 1):
        raise ValueError(f"restarts must be an integer >= 1, got {restarts}")
    if x_start is not None:
        x_start = validate_start(x_start, x, config.epsilon)
    runner = make_runner(model, config)
    state = resume if resume is not None else RestartState(
        x_adv=np.empty_like(x), broken=np.zeros(len(x), dtype=bool))
    if len(state.broken) != len(x):
        raise ValueError(f"resume state holds {len(state.broken)} examples, the data {len(x)}")
    for r in range(state.completed, restarts):
        rng = np.random.default_rng([*seed_words(seed), r])
        x_adv = run_restart(runner, config, x, y, rng, x_start, on_progress)
        merge_restart(state, x_adv, predict(model, x_adv, config.batch_size) == y)
        if on_restart is not None:
            on_restart(state)
    return state


def run_restart(runner: StepRunner, config: AttackConfig, x: np.ndarray, y: np.ndarray,
                rng: np.random.Generator, x_start: np.ndarray | None = None,
                on_progress: Callable[[int], None] | None = None) -> np.ndarray:
    """One restart: start point, then all steps on groups of the set; ``(N, 784)`` float32."""
    cfg = config.resolved()
    rule = cfg.step_rule()
    if x_start is not None:
        x_adv = x_start.copy()
    elif cfg.random_start:
        x_adv = rule.random_perturb(x, rng)
    else:
        x_adv = x.copy()
    done = 0
    for idx, n in group_schedule(len(x), cfg, rng):
        x_adv[idx] = runner.run(x_adv[idx], x[idx], y[idx], n)
        done += len(idx) * n
        if on_progress is not None:
            on_progress(done)
    return x_adv


def group_schedule(n_examples: int, config: AttackConfig,
                   rng: np.random.Generator) -> Iterator[tuple[np.ndarray, int]]:
    """Yields ``(example indices, steps)`` in execution order.

    PGD-family methods: consecutive batches of ``batch_size`` take all steps (examples are
    independent). BLOB methods follow the DAA schedule: ``ceil(steps / steps_per_group)``
    rounds; each round permutes the whole set, splits it into groups of ``batch_size`` and
    every group takes ``steps_per_group`` steps; the last round takes the remainder
    ``steps - (rounds - 1) * steps_per_group`` when ``steps`` is not a multiple.
    """
    cfg = config.resolved()
    if not cfg.grouped:
        for start in range(0, n_examples, cfg.batch_size):
            yield np.arange(start, min(start + cfg.batch_size, n_examples)), cfg.steps
        return
    remaining = cfg.steps
    while remaining > 0:
        n = min(cfg.steps_per_group, remaining)
        order = rng.permutation(n_examples)
        for start in range(0, n_examples, cfg.batch_size):
            yield np.sort(order[start:start + cfg.batch_size]), n
        remaining -= n


def merge_restart(state: RestartState, x_adv: np.ndarray, correct: np.ndarray) -> None:
    """Folds one restart into ``state``: a newly fooled example takes this restart's image."""
    if state.completed == 0:
        state.x_adv[...] = x_adv
    newly_broken = ~correct & ~state.broken
    state.x_adv[newly_broken] = x_adv[newly_broken]
    state.broken |= ~correct
    state.restart_accuracies.append(float(correct.mean()))


def predict(model: keras.Model, x: np.ndarray, batch_size: int = 200) -> np.ndarray:
    """Predicted classes ``(N,)`` int64 of the float32 model, in batches (``models.predict_labels``)."""
    return predict_labels(model, x, batch_size)


def validate_inputs(x, y, model: keras.Model | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Checks clean images and labels; returns float32 ``(N, 784)`` and int64 ``(N,)``."""
    x = np.asarray(x)
    y = np.asarray(y)
    if x.ndim != 2 or x.shape[1] != 784:
        raise ValueError(f"images must have shape (N, 784), got {x.shape}")
    if not np.issubdtype(x.dtype, np.floating):
        raise ValueError(f"images must be floating point in [0, 1], got dtype {x.dtype}")
    x = x.astype(np.float32, copy=False)
    if not np.all(np.isfinite(x)):
        raise ValueError("images contain NaN or infinite values")
    if x.size and (x.min() < 0 or x.max() > 1):
        raise ValueError(f"image pixels must be in [0, 1], found [{x.min():g}, {x.max():g}]")
    if y.shape != (x.shape[0],):
        raise ValueError(f"labels must have shape ({x.shape[0]},), got {y.shape}")
    if not np.issubdtype(y.dtype, np.integer):
        raise ValueError(f"labels must be integers, got dtype {y.dtype}")
    n_classes = model.outputs[0].shape[-1] if model is not None and model.outputs else None
    if y.size and (y.min() < 0 or (n_classes is not None and y.max() >= n_classes)):
        raise ValueError(f"labels must be in [0, {n_classes}), found [{y.min()}, {y.max()}]")
    return x, y.astype(np.int64, copy=False)


def validate_start(x_start, x: np.ndarray, epsilon: float) -> np.ndarray:
    """Checks a user-given start point: shape, finite, [0, 1], within eps of ``x``."""
    x_start = np.asarray(x_start, dtype=np.float32)
    if x_start.shape != x.shape:
        raise ValueError(f"x_start must have the images' shape {x.shape}, got {x_start.shape}")
    if not np.all(np.isfinite(x_start)):
        raise ValueError("x_start contains NaN or infinite values")
    if x_start.min() < 0 or x_start.max() > 1:
        raise ValueError(f"x_start pixels must be in [0, 1], found [{x_start.min():g}, {x_start.max():g}]")
    dist = float(np.max(np.abs(x_start - x))) if x.size else 0.0
    if dist > epsilon + 1e-6:
        raise ValueError(f"x_start is {dist:g} from the images in L-inf, more than epsilon {epsilon:g}")
    return x_start


def attack_model(model: keras.Model, compute_dtype: str = "float32") -> keras.Model:
    """The model the step loop differentiates: ``model`` computing in ``compute_dtype``
    (``attacks.precision``) and, on CPU, with the faster input-gradient kernels of
    ``attacks.fast_backward`` (same logits, same gradients up to float summation order;
    GPUs keep their own kernels, where the rewrite is not measured)."""
    copy = model_in_dtype(model, compute_dtype)
    return copy if gpu_available() else with_fast_input_gradient(copy)


def make_runner(model: keras.Model, config: AttackConfig) -> StepRunner:
    """The compiled step loop for ``config`` on ``model`` (see :func:`attack_model`)."""
    cfg = config.resolved()
    return StepRunner(attack_model(model, cfg.compute_dtype), cfg.loss, cfg.step_rule(),
                      cfg.direction(), xla=resolve_xla(cfg.xla))


def seed_words(seed: Seed) -> list[int]:
    """A seed as a list of ints for ``np.random.default_rng`` (fresh entropy for None)."""
    if seed is None:
        return list(np.random.SeedSequence().generate_state(2))
    if isinstance(seed, (int, np.integer)):
        return [int(seed)]
    return [int(s) for s in seed]
