"""Public functional API: ``perturb`` and ``attack`` (restarts, per-restart accuracies)."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Iterator, Sequence

import keras
import numpy as np

from attacks.apgd import top_targets
from attacks.config import AttackConfig
from attacks.directions import gradient_direction
from attacks.distribute import check_groups, check_strategy, run_schedule
from attacks.engine import BestIterate, StepRunner, gpu_available, resolve_xla
from attacks.fast_backward import with_fast_input_gradient
from attacks.calibration import resolve_compute_dtype
from attacks.intervals import check_interval_support, interval_objective
from attacks.odi import ODIStart, odi_objective
from attacks.precision import COMPUTE_DTYPE_CHOICES, model_in_dtype
from attacks.steps import StepRule
from models.predict import predict_labels

Seed = int | Sequence[int] | None


@dataclass
class RestartState:
    """Progress of a multi-restart attack; everything needed to resume it.

    Attributes:
      x_adv: ``(N, *S)`` float32, per example the image kept so far (a successful one as
        soon as any restart found one, else restart 0's).
      broken: ``(N,)`` bool, True where some restart's image succeeds: is misclassified
        (untargeted) or classified as ``y_target`` (targeted).
      restart_accuracies: per finished restart on its own, the fraction of the examples it
        attacked where the attack did not succeed (untargeted: the model's accuracy on
        them), in [0, 1]; None for a restart that had nothing left to attack. With
        ``skip_broken`` a restart after the first attacks only the examples no earlier one
        broke, so this is of that subset, not of the whole set (see ``restart_attacked``;
        :attr:`accuracy` is the merged total).
      restart_attacked: per finished restart, how many examples it attacked (None: not
        recorded, a state saved before these were).
    """

    x_adv: np.ndarray
    broken: np.ndarray
    restart_accuracies: list[float | None] = field(default_factory=list)
    restart_attacked: list[int | None] = field(default_factory=list)

    @property
    def completed(self) -> int:
        return len(self.restart_accuracies)

    @property
    def accuracy(self) -> float:
        """Fraction not broken after merging the finished restarts per example."""
        return float(1.0 - self.broken.mean()) if self.broken.size else 0.0


@dataclass(frozen=True)
class Runners:
    """The compiled step loops of one attack (:func:`make_runners`), all the one driver.

    Attributes:
      main: the method's runner (the PGD phases of the interval method).
      interval: the interval method's interval phases (its objective on logit bounds), else None.
      odi: the ODI start's steps, for ``start="odi"``, else None.
    """

    main: StepRunner
    interval: StepRunner | None = None
    odi: ODIStart | None = None


def perturb(model: keras.Model, x: np.ndarray, y: np.ndarray, *, method: str, epsilon: float,
            steps: int | None = None, step_size: float | None = None, b: float | None = None,
            loss: str | Callable = "xent", random_start: bool = True, seed: Seed = None,
            x_start: np.ndarray | None = None, batch_size: int = 200, steps_per_group: int = 10,
            c: float | None = None, restarts: int = 1, compute_dtype: str = "float32",
            skip_broken: str | bool = "auto",
            xla: str | bool = "auto", kappa: float | None = None, norm: str = "linf",
            bounds: tuple[float, float] = (0.0, 1.0), keep: str = "final",
            y_target: np.ndarray | None = None, num_targets: int | None = None,
            start: str | None = None, odi_steps: int | None = None,
            interval_rounds: int | None = None, interval_steps: int | None = None,
            interval_pgd_steps: int | None = None, interval_step_size: float | None = None,
            interval_width: float | None = None, interval_loss: str | None = None,
            strategy=None) -> np.ndarray:
    """Adversarial examples for ``model`` (see :class:`attacks.config.AttackConfig`).

    Args:
      model: Keras model mapping ``(N, *S)`` float32 images in ``bounds`` to ``(N, C)``
        logits (``S = (784,)`` for the challenge's MNIST models).
      x: ``(N, *S)`` clean images, finite, in ``bounds``; ``S`` must match the model's input.
      y: ``(N,)`` integer labels in ``[0, C)``.
      seed: same seed -> identical output on CPU; None draws fresh randomness.
      x_start: ``(N, *S)`` starting images within ``epsilon`` of ``x``; replaces the random
        start in every restart.
      restarts: >= 1; per example, an image of a restart that succeeds is kept.
      y_target: ``(N,)`` target classes (each ``!= y``) for a targeted attack: the loss
        takes its targeted form and success means predicting ``y_target``. Not for apgd_t,
        which chooses its own targets.
      num_targets: apgd_t's and multitargeted's targets per example, ``1 .. C - 1``
        (default 9).
      start, odi_steps, interval_*: see :class:`attacks.config.AttackConfig`.
      strategy: a ``tf.distribute.Strategy`` whose replicas share the groups
        (``attacks.distribute``); same images as without one, bit for bit on CPU.

    Returns:
      ``(N, *S)`` float32 images within ``epsilon`` (in ``norm``) of ``x``, in ``bounds``.
    """
    config = AttackConfig(method=method, epsilon=epsilon, steps=steps, step_size=step_size, b=b,
                          loss=loss, random_start=random_start, batch_size=batch_size,
                          steps_per_group=steps_per_group, c=c, compute_dtype=compute_dtype,
                          xla=xla, kappa=kappa, norm=norm, bounds=bounds, keep=keep,
                          num_targets=num_targets, start=start, odi_steps=odi_steps,
                          interval_rounds=interval_rounds, interval_steps=interval_steps,
                          interval_pgd_steps=interval_pgd_steps,
                          interval_step_size=interval_step_size,
                          interval_width=interval_width, interval_loss=interval_loss,
                          skip_broken=skip_broken)
    return attack(model, x, y, config, restarts=restarts, seed=seed, x_start=x_start,
                  y_target=y_target, strategy=strategy).x_adv


def attack(model: keras.Model, x: np.ndarray, y: np.ndarray, config: AttackConfig, *,
           restarts: int = 1, seed: Seed = None, x_start: np.ndarray | None = None,
           y_target: np.ndarray | None = None, resume: RestartState | None = None,
           on_restart: Callable[[RestartState], None] | None = None,
           on_progress: Callable[[int], None] | None = None, strategy=None) -> RestartState:
    """Runs ``restarts`` restarts of ``config`` and merges them per example.

    Restart ``r`` draws its randomness from ``np.random.default_rng([*seed, r])``, so a run
    resumed from ``resume`` (the state after its first ``resume.completed`` restarts) ends
    exactly as an uninterrupted one. ``on_restart`` sees the state after every restart;
    ``on_progress`` the example-steps done so far in the current restart, after each group.
    ``y_target`` makes the attack targeted (see :func:`perturb`). Every argument is checked
    before any attack step runs. apgd_t and multitargeted are untargeted (success:
    misclassified) and run the targeted loss towards each of their targets in turn
    (:func:`run_target_sweep`). interval refuses, before any compute, a model with a layer
    that has no interval rule (:func:`attacks.intervals.check_interval_support`).
    ``strategy``: see :func:`perturb` (more replicas than groups is refused).
    """
    cfg = config.resolved()
    x, y = validate_inputs(x, y, model, cfg.bounds)
    num_classes = _num_classes(model, x)
    sweep = cfg.target_sweep
    if sweep and y_target is not None:
        single = "apgd" if cfg.method == "apgd_t" else "pgd"
        raise ValueError(f"{cfg.method} chooses its targets (the top wrong classes); for one "
                         f"given target per example use {single} with y_target")
    if cfg.method == "interval":
        if y_target is not None:
            raise ValueError("interval is untargeted (its loss is on the true class's margin "
                             "bounds): it takes no y_target")
        check_interval_support(model)
    if sweep and num_classes is not None and cfg.num_targets > num_classes - 1:
        raise ValueError(f"num_targets must be in 1..{num_classes - 1} (the model's classes "
                         f"minus the true one), got {cfg.num_targets}")
    if y_target is not None:
        y_target = validate_targets(y_target, y, num_classes)
    if num_classes is not None:
        cfg.make_loss(targeted=y_target is not None or sweep).check(num_classes)
    if not (isinstance(restarts, int) and restarts >= 1):
        raise ValueError(f"restarts must be an integer >= 1, got {restarts}")
    if x_start is not None:
        x_start = validate_start(x_start, x, cfg.step_rule())
    strategy = check_strategy(strategy)
    check_groups(strategy, len(x), cfg.batch_size)
    runner = make_runners(model, cfg, targeted=y_target is not None or sweep,
                          num_classes=num_classes)
    targets = top_targets(_logits(model, x, cfg.batch_size), y, cfg.num_targets) if sweep else None
    state = resume if resume is not None else RestartState(
        x_adv=np.empty_like(x), broken=np.zeros(len(x), dtype=bool))
    if len(state.broken) != len(x):
        raise ValueError(f"resume state holds {len(state.broken)} examples, the data {len(x)}")
    if len(state.restart_attacked) != state.completed:  # a state from before these were kept
        state.restart_attacked = [None] * state.completed
    for r in range(state.completed, restarts):
        rng = np.random.default_rng([*seed_words(seed), r])
        # With skip_broken, later restarts attack only what no earlier one broke.
        todo = np.flatnonzero(~state.broken) if cfg.skip_broken and state.completed else None
        if todo is not None and todo.size == 0:
            x_adv, correct = x[:0], np.zeros(0, dtype=bool)
        elif sweep:
            x_adv, correct = run_target_sweep(model, runner, cfg, x, y, targets, rng, x_start,
                                              on_progress, examples=todo, strategy=strategy)
        else:
            x_adv = run_restart(runner, cfg, x, y, rng, x_start, on_progress, y_target=y_target,
                                examples=todo, strategy=strategy)
            pred = predict(model, x_adv, cfg.batch_size)
            y_sub = y if todo is None else y[todo]
            if y_target is not None:
                correct = pred != (y_target if todo is None else y_target[todo])
            else:
                correct = pred == y_sub
        merge_restart(state, x_adv, correct, examples=todo)
        if on_restart is not None:
            on_restart(state)
    return state


def run_restart(runner: StepRunner | Runners, config: AttackConfig, x: np.ndarray,
                y: np.ndarray, rng: np.random.Generator, x_start: np.ndarray | None = None,
                on_progress: Callable[[int], None] | None = None, *,
                y_target: np.ndarray | None = None,
                examples: np.ndarray | None = None, strategy=None) -> np.ndarray:
    """One restart: start point (random, clean or ``x_start``; then ODI's steps for
    ``start="odi"``), then all steps on groups of the set (the interval method: its
    alternating PGD and interval phases, ``AttackConfig.interval_phases``, per group);
    ``(N, *S)`` float32.

    ``runner``: :func:`make_runners`' loops (a bare :class:`StepRunner` for a method without
    ODI or interval phase). ``on_progress`` sees the forward+backward passes done so far
    per example summed over examples (ODI's and the interval phase's included). With
    ``config.keep == "best"`` each example ends at the first iterate (the point after ODI
    included) at which the attack succeeded, where one did, else at its last iterate. With a
    ``strategy`` the groups run on its replicas (``attacks.distribute.run_schedule``; ODI's
    steps run before, on the default device).
    With ``config.compacts`` an example that succeeded leaves its batch at the next chunk
    boundary.

    Args:
      examples: sorted ``(K,)`` indices into ``x``: attack only these (returns ``(K, *S)``).
        The random start (and ODI's ``w``) are drawn for the whole set and these rows taken,
        and ODI's steps run for these rows only, so each example starts where it would in a
        restart of the whole set; ``y_target`` and ``x_start`` are of the whole set too.
    """
    cfg = config.resolved()
    runners = runner if isinstance(runner, Runners) else Runners(runner)
    if (cfg.start == "odi" and runners.odi is None) or (
            cfg.method == "interval" and runners.interval is None):
        raise ValueError(f"{cfg.method} with start {cfg.start!r} needs the runners of "
                         "make_runners(model, config)")
    rule = cfg.step_rule()
    if x_start is not None:
        x_adv = x_start.copy()
    elif cfg.random_start:
        x_adv = rule.random_perturb(x, rng)
    else:
        x_adv = x.copy()
    done = 0
    if cfg.start == "odi":  # for the examples attacked only (w drawn for the whole set)
        x_adv = runners.odi(x_adv, x, y, rng, examples=examples)
        done += len(x_adv) * cfg.odi_steps
        if on_progress is not None:
            on_progress(done)
    elif examples is not None:
        x_adv = x_adv[examples]
    if examples is not None:
        x, y = x[examples], y[examples]
        y_target = None if y_target is None else y_target[examples]
    best = BestIterate.empty(x) if cfg.keep == "best" else None
    compact = cfg.compacts
    interval = runners.interval is not None
    extra = cfg.interval_step_count() if interval else 0

    def launch(idx: np.ndarray, n: int) -> tuple[np.ndarray, BestIterate | None]:
        part = best.take(idx) if best is not None else None
        targets = None if y_target is None else y_target[idx]
        group = x_adv[idx]
        if not interval:
            return runners.main.run(group, x[idx], y[idx], n, best=part, y_target=targets,
                                    compact=compact), part
        # The interval method's phases (AttackConfig.interval_phases), each from the point
        # the previous one reached; the group schedule's n is the PGD steps of all of them.
        for kind, steps in cfg.interval_phases():
            if kind == "interval":
                group = runners.interval.run(group, x[idx], y[idx], steps, best=part,
                                             y_target=targets)
            else:
                group = runners.main.run(group, x[idx], y[idx], steps, best=part,
                                         y_target=targets, compact=compact)
        return group, part

    def commit(idx: np.ndarray, n: int, result: tuple[np.ndarray, BestIterate | None]) -> None:
        nonlocal done
        x_adv[idx], part = result
        if best is not None:
            best.put(idx, part)
        done += len(idx) * (n + extra)
        if on_progress is not None:
            on_progress(done)

    def pack(result: tuple[np.ndarray, BestIterate | None]) -> dict[str, np.ndarray]:
        group, part = result
        return {"x": group} if part is None else {"x": group, "best_x": part.x,
                                                  "best_found": part.found}

    def unpack(arrays: dict[str, np.ndarray]) -> tuple[np.ndarray, BestIterate | None]:
        part = BestIterate(arrays["best_x"], arrays["best_found"]) if "best_x" in arrays else None
        return arrays["x"], part

    run_schedule(group_schedule(len(x), cfg, rng), launch, commit, strategy, pack, unpack)
    return x_adv if best is None else best.select(x_adv)


def run_target_sweep(model: keras.Model, runner: StepRunner | Runners, config: AttackConfig,
                     x: np.ndarray, y: np.ndarray, targets: np.ndarray,
                     rng: np.random.Generator, x_start: np.ndarray | None = None,
                     on_progress: Callable[[int], None] | None = None,
                     examples: np.ndarray | None = None, strategy=None
                     ) -> tuple[np.ndarray, np.ndarray]:
    """One restart of apgd_t or multitargeted: a targeted run (``runner``'s targeted loss,
    own start point from ``rng``, :func:`run_restart`) towards ``targets[:, j]`` for ``j = 0,
    1, ...``, each on the examples that no earlier target's run has misclassified.

    Args:
      targets: ``(N, K)`` int64 target classes per example, best first.
      examples: sorted ``(E,)`` indices: sweep only these examples (the first target's start
        drawn as for the whole set, see :func:`run_restart`); the results are then ``E`` long.
        The later targets' starts are drawn for the examples they attack, so a sweep of a
        subset equals the whole set's sweep in distribution, not bit for bit.

    Returns:
      ``(N, *S)`` float32 images (per example the first run's image that is misclassified,
      else the first run's) and ``(N,)`` bool, True where no run misclassified the example.
    """
    n = len(x) if examples is None else len(examples)
    merged = RestartState(x_adv=np.empty((n, *x.shape[1:]), np.float32),
                          broken=np.zeros(n, dtype=bool))
    x_all, y_all, start_all, targets_all = x, y, x_start, targets
    if examples is not None:
        x, y, targets = x[examples], y[examples], targets[examples]
        x_start = None if x_start is None else x_start[examples]
    done = 0
    for j in range(targets.shape[1]):
        idx = np.flatnonzero(~merged.broken) if j else np.arange(n)
        if idx.size == 0:
            break
        progress = None if on_progress is None else (lambda d, base=done: on_progress(base + d))
        if j == 0 and examples is not None:
            x_j = run_restart(runner, config, x_all, y_all, rng, start_all, progress,
                              y_target=targets_all[:, 0], examples=examples, strategy=strategy)
        else:
            x_j = run_restart(runner, config, x[idx], y[idx], rng,
                              None if x_start is None else x_start[idx], progress,
                              y_target=targets[idx, j], strategy=strategy)
        done += idx.size * config.run_passes()
        correct = predict(model, x_j, config.batch_size) == y[idx]
        if j == 0:
            merge_restart(merged, x_j, correct)
        else:
            newly = ~correct
            merged.x_adv[idx[newly]] = x_j[newly]
            merged.broken[idx[newly]] = True
    return merged.x_adv, ~merged.broken


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


def merge_restart(state: RestartState, x_adv: np.ndarray, correct: np.ndarray,
                  examples: np.ndarray | None = None) -> None:
    """Folds one restart into ``state``: a newly broken example takes this restart's image.

    ``correct``: ``(N,)`` bool, True where this restart's image did not succeed.
    ``examples``: the restart attacked only these ``(K,)`` indices (not the first restart);
    ``x_adv`` and ``correct`` are then ``K`` long.
    """
    if examples is None:
        if state.completed == 0:
            state.x_adv[...] = x_adv
        newly_broken = ~correct & ~state.broken
        state.x_adv[newly_broken] = x_adv[newly_broken]
        state.broken |= ~correct
    else:
        if state.completed == 0:
            raise ValueError("the first restart attacks every example (examples must be None)")
        newly_broken = examples[~correct & ~state.broken[examples]]
        state.x_adv[newly_broken] = x_adv[~correct & ~state.broken[examples]]
        state.broken[newly_broken] = True
    state.restart_accuracies.append(float(correct.mean()) if correct.size else None)
    state.restart_attacked.append(int(correct.size))


def predict(model: keras.Model, x: np.ndarray, batch_size: int = 200) -> np.ndarray:
    """Predicted classes ``(N,)`` int64 of the float32 model, in batches (``models.predict_labels``)."""
    return predict_labels(model, x, batch_size)


def random_targets(y: np.ndarray, num_classes: int, rng: np.random.Generator) -> np.ndarray:
    """``(N,)`` int64 target classes drawn uniformly among the classes other than ``y``."""
    y = np.asarray(y, dtype=np.int64)
    return (y + rng.integers(1, num_classes, size=y.shape)) % num_classes


def _logits(model: keras.Model, x: np.ndarray, batch_size: int) -> np.ndarray:
    """``(N, C)`` float32 logits of the float32 model, in batches."""
    parts = [np.asarray(model(x[i:i + batch_size], training=False), dtype=np.float32)
             for i in range(0, len(x), batch_size)]
    return np.concatenate(parts) if parts else np.zeros((0, _output_classes(model) or 0), np.float32)


def model_input_shape(model: keras.Model) -> tuple | None:
    """Per-example input shape of ``model`` (None entries: any size), or None if unknown."""
    inputs = getattr(model, "inputs", None)
    if not inputs:
        return None
    return tuple(inputs[0].shape[1:])


def validate_inputs(x, y, model: keras.Model | None = None,
                    bounds: tuple[float, float] = (0.0, 1.0)) -> tuple[np.ndarray, np.ndarray]:
    """Checks clean images and labels; returns float32 ``(N, *S)`` and int64 ``(N,)``."""
    x = np.asarray(x)
    y = np.asarray(y)
    lo, hi = bounds
    expected = model_input_shape(model) if model is not None else None
    if x.ndim < 2 or (expected is not None and not _shape_matches(x.shape[1:], expected)):
        want = "(N, " + ", ".join("?" if d is None else str(d) for d in expected) + ")" \
            if expected is not None else "(N, ...)"
        raise ValueError(f"images must have shape {want} to match the model's input, got {x.shape}")
    if not np.issubdtype(x.dtype, np.floating):
        raise ValueError(f"images must be floating point in [{lo:g}, {hi:g}], got dtype {x.dtype}")
    x = x.astype(np.float32, copy=False)
    if not np.all(np.isfinite(x)):
        raise ValueError("images contain NaN or infinite values")
    if x.size and (x.min() < lo or x.max() > hi):
        raise ValueError(f"image pixels must be in [{lo:g}, {hi:g}] (bounds), found "
                         f"[{x.min():g}, {x.max():g}]")
    if y.shape != (x.shape[0],):
        raise ValueError(f"labels must have shape ({x.shape[0]},), got {y.shape}")
    if not np.issubdtype(y.dtype, np.integer):
        raise ValueError(f"labels must be integers, got dtype {y.dtype}")
    n_classes = _output_classes(model) if model is not None else None
    if y.size and (y.min() < 0 or (n_classes is not None and y.max() >= n_classes)):
        raise ValueError(f"labels must be in [0, {n_classes}), found [{y.min()}, {y.max()}]")
    return x, y.astype(np.int64, copy=False)


def validate_targets(y_target, y: np.ndarray, num_classes: int | None) -> np.ndarray:
    """Checks target classes: ``(N,)`` integers in ``[0, C)``, none equal to its label."""
    y_target = np.asarray(y_target)
    if y_target.shape != y.shape:
        raise ValueError(f"y_target must have the labels' shape {y.shape}, got {y_target.shape}")
    if not np.issubdtype(y_target.dtype, np.integer):
        raise ValueError(f"y_target must be integers, got dtype {y_target.dtype}")
    if y_target.size and (y_target.min() < 0 or (num_classes is not None
                                                 and y_target.max() >= num_classes)):
        raise ValueError(f"y_target must be in [0, {num_classes}), found "
                         f"[{y_target.min()}, {y_target.max()}]")
    same = np.flatnonzero(y_target == y)
    if same.size:
        raise ValueError(f"y_target must differ from y; equal at {same.size} example(s), "
                         f"first at index {same[0]}")
    return y_target.astype(np.int64, copy=False)


def validate_start(x_start, x: np.ndarray, rule: StepRule) -> np.ndarray:
    """Checks a user-given start point: shape, finite, within bounds and within eps of ``x``."""
    x_start = np.asarray(x_start, dtype=np.float32)
    lo, hi = rule.bounds
    if x_start.shape != x.shape:
        raise ValueError(f"x_start must have the images' shape {x.shape}, got {x_start.shape}")
    if not np.all(np.isfinite(x_start)):
        raise ValueError("x_start contains NaN or infinite values")
    if x_start.size and (x_start.min() < lo or x_start.max() > hi):
        raise ValueError(f"x_start pixels must be in [{lo:g}, {hi:g}], found "
                         f"[{x_start.min():g}, {x_start.max():g}]")
    dist = float(rule.distance(x_start, x).max(initial=0.0))
    # Relative slack: the L2 projection's float32 rounding, on any pixel scale.
    if dist > rule.epsilon * (1 + 1e-5) + 1e-6:
        raise ValueError(f"x_start is {dist:g} from the images in {rule.NORM}, more than epsilon "
                         f"{rule.epsilon:g}")
    return x_start


def attack_model(model: keras.Model, compute_dtype: str = "float32",
                 batch_size: int = 200) -> keras.Model:
    """The model the step loop differentiates: ``model`` computing in ``compute_dtype``
    (``attacks.precision``; "auto" and bfloat16 through
    :func:`attacks.calibration.resolve_compute_dtype` at ``batch_size``) and, on CPU, with
    the faster input-gradient kernels of ``attacks.fast_backward`` (same logits, same
    gradients up to float summation order; GPUs keep their own kernels, where the rewrite
    is not measured)."""
    if compute_dtype not in COMPUTE_DTYPE_CHOICES:
        raise ValueError(f"compute_dtype must be one of {', '.join(COMPUTE_DTYPE_CHOICES)}, "
                         f"got {compute_dtype!r}")
    return model_for_dtype(model, resolve_compute_dtype(model, compute_dtype, batch_size))


def model_for_dtype(model: keras.Model, dtype: str) -> keras.Model:
    """:func:`attack_model` for a resolved ``dtype`` (float32 or bfloat16), no calibration."""
    copy = model_in_dtype(model, dtype)
    return copy if gpu_available() else with_fast_input_gradient(copy)


def make_runners(model: keras.Model, config: AttackConfig, *, targeted: bool = False,
                 num_classes: int | None = None) -> Runners:
    """All compiled loops of ``config`` on ``model``: :func:`make_runner`'s, plus the
    interval phase's (objective ``attacks.intervals.interval_objective`` on ``model``'s
    float32 bounds) and ODI's (``attacks.odi``; ``num_classes`` is the length of its ``w``,
    default the model's output size)."""
    cfg = config.resolved()
    main = make_runner(model, cfg, targeted=targeted)
    interval = odi = None
    loss = cfg.make_loss(targeted)
    if cfg.method == "interval":
        objective = interval_objective(model, cfg.interval_widths(), cfg.interval_loss,
                                       *cfg.bounds)
        interval = _step_runner(model, cfg, loss, cfg.interval_rule(), gradient_direction(),
                                objective=objective)
    if cfg.start == "odi":
        classes = num_classes if num_classes is not None else _output_classes(model)
        if classes is None:
            raise ValueError("start='odi' needs the number of classes (the model's output "
                             "size is unknown): pass num_classes")
        # The untargeted form: ODI's steps track no success, so they take no targets.
        runner = _step_runner(model, cfg, cfg.make_loss(False), cfg.odi_rule(),
                              gradient_direction(), objective=odi_objective)
        odi = ODIStart(runner, int(classes), cfg.odi_steps, cfg.batch_size)
    return Runners(main, interval, odi)


def make_runner(model: keras.Model, config: AttackConfig, *, targeted: bool = False,
                rule: StepRule | None = None) -> StepRunner:
    """The compiled step loop for ``config`` on ``model`` (see :func:`attack_model`).

    ``targeted`` selects the targeted form of the loss; ``rule`` replaces the config's step
    rule (e.g. one whose epsilon is a ``tf.Variable`` changed between calls).
    """
    cfg = config.resolved()
    return _step_runner(model, cfg, cfg.make_loss(targeted),
                        cfg.step_rule() if rule is None else rule, cfg.direction())


def _step_runner(model: keras.Model, cfg: AttackConfig, loss, rule: StepRule, direction,
                 objective=None) -> StepRunner:
    """A :class:`StepRunner` on :func:`attack_model`'s copy of ``model``; in bfloat16, the
    success of ``keep="best"`` iterates is confirmed by ``model`` itself (float32), the model
    the result is judged on."""
    dtype = resolve_compute_dtype(model, cfg.compute_dtype, cfg.batch_size)
    return StepRunner(model_for_dtype(model, dtype), loss, rule, direction,
                      xla=resolve_xla(cfg.xla), objective=objective,
                      success_model=None if dtype == "float32" else model)


def _shape_matches(shape: tuple, expected: tuple) -> bool:
    return len(shape) == len(expected) and all(e is None or s == e for s, e in zip(shape, expected))


def _output_classes(model: keras.Model) -> int | None:
    outputs = getattr(model, "outputs", None)
    return outputs[0].shape[-1] if outputs else None


def _num_classes(model: keras.Model, x: np.ndarray) -> int | None:
    """Classes of ``model``: from its output shape, else from one forward pass on ``x[:1]``
    (None for a model of unknown output given no images)."""
    n = _output_classes(model)
    if n is None and len(x):
        n = np.asarray(model(x[:1], training=False)).shape[-1]
    return None if n is None else int(n)


def seed_words(seed: Seed) -> list[int]:
    """A seed as a list of ints for ``np.random.default_rng`` (fresh entropy for None)."""
    if seed is None:
        return list(np.random.SeedSequence().generate_state(2))
    if isinstance(seed, (int, np.integer)):
        return [int(seed)]
    return [int(s) for s in seed]
