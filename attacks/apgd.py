"""APGD (Croce & Hein 2020): a step rule with per-example state, run by the one driver.

APGD is PGD with a step-size schedule, momentum and a best point, all per example:

- the step size ``eta`` starts at ``2 * epsilon`` (L-inf and L2);
- checkpoints ``w_j = ceil(p_j * N)`` with ``p_0 = 0``, ``p_1 = 0.22``,
  ``p_{j+1} = p_j + max(p_j - p_{j-1} - 0.03, 0.06)`` (:func:`checkpoints`);
- at checkpoint ``w_j`` the step size is halved when (1) fewer than ``rho * (w_j - w_{j-1})``
  of the steps since ``w_{j-1}`` increased the loss, or (2) it was not halved at ``w_{j-1}``
  and the best loss has not improved since ``w_{j-1}``; where halved, the attack goes on
  from the best point found so far (with that point's gradient);
- ``z = P(x_k + eta * unit(g_k))``, ``x_{k+1} = P(x_k + alpha (z - x_k) + (1 - alpha)
  (x_k - x_{k-1}))``, the first step ``x_1 = z``; ``alpha = 0.75``;
- the result is the best-loss point of ``x_0, ..., x_N``.

Indexing, as the driver computes it: step ``k`` (``0 <= k < N``) takes one forward and
backward pass at ``x_k``, which gives ``f(x_k)`` and ``g_k``; :meth:`APGDStep.observe` then
updates the best point and the counters and, when ``k`` is a checkpoint ``w_j`` (after the
``w_j``-th new iterate, as in the authors' code), applies the rule above;
:meth:`APGDStep.advance` takes the step. After the last step one forward pass scores ``x_N``
(:meth:`APGDStep.finish`). Budget: ``N`` forward+backward passes and one forward pass per
example.

Definitions where the paper leaves a choice:

- "the loss increased" at step ``k >= 1``: ``f(x_k) > f(x_{k-1})`` (strictly), where
  ``x_{k-1}`` is the point step ``k - 1`` was taken FROM (the best point after a restart,
  whose loss is the best loss). The window of checkpoint ``w_j`` counts the comparisons of
  steps ``w_{j-1} + 1 ... w_j``, i.e. exactly ``w_j - w_{j-1}`` of them.
- condition 1 is strict (``count < rho * window``) as in the paper (the authors' code
  halves on ``<=``); condition 2 applies from the first checkpoint on, with the step size
  taken as "not reduced" at ``w_0 = 0`` (the authors' code switches it off at ``w_1``).
- the best point is updated where ``f(x_k) > f_max`` strictly (the first of equal maxima).
- after a restart the momentum term is ``x_max - x_{k-1}`` (the previous iterate is kept,
  as in the authors' code; the paper does not say).
- the random start is the project's (``rule.random_perturb``), not the authors' rescaled one.

The unit is swappable like every step of this project: ``unit(g)`` is the sign (APGD) or the
quantized gradient ``zeta(b * g / max|g|)`` of :func:`attacks.steps.quantized_unit`, and the
step is ``eta * unit(g)``, exactly as PQGD's step ``a * qg`` replaces PGD's ``a * sign(g)``:
APGD's schedule supplies ``a`` per example. So ``b = 1`` is APGD bit for bit, a coordinate
whose gradient is below ``max|g| / b`` moves by ``eta`` as under the sign, and one with a
larger gradient by ``round(b |g_i| / max|g|) * eta`` (then projected). Under L2 the
quantized direction is normalised to length 1 first (``attacks.steps.L2Step.unit_step``).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import tensorflow as tf

from attacks.steps import StepRule

# Checkpoint fractions in hundredths, so that w_j = ceil(p_j * N) is computed exactly
# (0.22 * 100 is 22.000000000000004 in floating point, whose ceiling is 23).
_P1, _DECREASE, _MIN_GAP = 22, 3, 6
ALPHA = 0.75
RHO = 0.75
INITIAL_STEP = 2.0  # times epsilon


def checkpoints(n_steps: int) -> list[int]:
    """``[w_0 = 0, w_1, ...]``: APGD's checkpoints ``w_j = ceil(p_j * n_steps) < n_steps``
    for ``n_steps >= 1`` (a checkpoint at or after the last step would change nothing).

    ``p_0 = 0``, ``p_1 = 0.22``, ``p_{j+1} = p_j + max(p_j - p_{j-1} - 0.03, 0.06)``;
    equal ``w_j`` (tiny ``n_steps``) are listed once. 100 steps: 0, 22, 41, 57, 70, 80, 87,
    93, 99.
    """
    if not (isinstance(n_steps, (int, np.integer)) and n_steps >= 1):
        raise ValueError(f"APGD needs an integer number of steps >= 1, got {n_steps}")
    p_prev, p = 0, _P1
    points = [0]
    while True:
        w = -(-p * int(n_steps) // 100)
        if w >= n_steps:
            return points
        if w > points[-1]:
            points.append(w)
        p_prev, p = p, p + max(p - p_prev - _DECREASE, _MIN_GAP)


def window_lengths(n_steps: int) -> np.ndarray:
    """``(n_steps + 1,)`` int32: ``w_j - w_{j-1}`` at index ``w_j`` (j >= 1), 0 elsewhere."""
    out = np.zeros(n_steps + 1, dtype=np.int32)
    points = checkpoints(n_steps)
    for before, w in zip(points, points[1:]):
        out[w] = w - before
    return out


def top_targets(logits: np.ndarray, y: np.ndarray, num_targets: int) -> np.ndarray:
    """``(N, num_targets)`` int64: per example the highest-scoring classes other than ``y``,
    best first (APGD-T's targets, from the clean logits ``(N, C)``; ties by class index)."""
    scores = np.array(logits, dtype=np.float64)
    scores[np.arange(len(y)), y] = -np.inf
    order = np.argsort(-scores, axis=1, kind="stable")
    return order[:, :num_targets].astype(np.int64)


# Names of the state the rule carries through the compiled loop, in order. The last four are
# the per-step record the tests replay: ``loss`` (n+1, M) f(x_k), ``eta`` (n+1, M) the step
# size step k used (after its checkpoint; row n: the final one), ``restart`` (n+1, M) bool,
# whether step k went on from the best point, ``best_step`` (n+1, M) int32, the index k' of
# the best point after observing x_k.
STATE_NAMES = ("k", "windows", "eta", "x_prev", "f_prev", "x_max", "g_max", "f_max",
               "increases", "reduced_last", "f_max_last", "loss", "eta_trace", "restart",
               "best_step")


@dataclass(frozen=True)
class APGDStep:
    """APGD's step rule (module docstring): ``base``'s ball, bounds and unit, APGD's schedule.

    Attributes:
      base: ``LinfStep`` or ``L2Step``; its ``step_size`` is the initial step size (``2 *
        epsilon`` from :class:`attacks.config.AttackConfig`) and its ``unit`` the unit
        (sign / raw under L2, or quantized).
      alpha: momentum weight of the new step, in (0, 1] (0.75).
      rho: fraction of loss increases below which a checkpoint halves the step size (0.75).
    """

    stateful: ClassVar[bool] = True
    state_names: ClassVar[tuple[str, ...]] = STATE_NAMES
    # Per state entry, the axis that indexes the examples (None: shared by all, the step
    # counter and the checkpoint windows): what the driver gathers when examples leave the
    # batch (compaction) and scatters back into the record.
    state_example_axes: ClassVar[tuple[int | None, ...]] = (None, None) + (0,) * 9 + (1,) * 4

    base: StepRule
    alpha: float = ALPHA
    rho: float = RHO

    @property
    def NORM(self) -> str:
        return self.base.NORM

    @property
    def epsilon(self):
        return self.base.epsilon

    @property
    def step_size(self):
        return self.base.step_size

    @property
    def unit(self):
        return self.base.unit

    @property
    def bounds(self):
        return self.base.bounds

    @property
    def settings_key(self) -> tuple:
        """What, beyond the base rule's settings, a compiled loop depends on."""
        return (type(self.base), self.alpha, self.rho)

    def project(self, x: tf.Tensor, x_nat: tf.Tensor) -> tf.Tensor:
        return self.base.project(x, x_nat)

    def random_perturb(self, x_nat: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        return self.base.random_perturb(x_nat, rng)

    def distance(self, x: np.ndarray, x_nat: np.ndarray) -> np.ndarray:
        return self.base.distance(x, x_nat)

    # The driver's protocol for a rule with state (attacks.engine.StepRunner).

    def state_signature(self, image_shape: tuple) -> list[tf.TensorSpec]:
        images = tf.TensorSpec([None, *image_shape], tf.float32)
        per_example = tf.TensorSpec([None], tf.float32)
        trace = tf.TensorSpec([None, None], tf.float32)
        return [tf.TensorSpec([], tf.int32), tf.TensorSpec([None], tf.int32), per_example,
                images, per_example, images, images, per_example,
                tf.TensorSpec([None], tf.int32), tf.TensorSpec([None], tf.bool), per_example,
                trace, trace, tf.TensorSpec([None, None], tf.bool),
                tf.TensorSpec([None, None], tf.int32)]

    def initial_state(self, x: np.ndarray, n_steps: int) -> tuple:
        """The state before step 0 of an ``n_steps``-step run on ``x`` ``(M, *S)``."""
        m = len(x)
        x = np.asarray(x, dtype=np.float32)
        minus_inf = np.full(m, -np.inf, dtype=np.float32)
        eta = np.full(m, float(self.base.step_size), dtype=np.float32)
        return (np.int32(0), window_lengths(n_steps), eta, x, minus_inf, x, np.zeros_like(x),
                minus_inf, np.zeros(m, np.int32), np.zeros(m, bool), minus_inf,
                np.zeros((n_steps + 1, m), np.float32), np.zeros((n_steps + 1, m), np.float32),
                np.zeros((n_steps + 1, m), bool), np.zeros((n_steps + 1, m), np.int32))

    def observe(self, x: tf.Tensor, g: tf.Tensor, loss: tf.Tensor, state: tuple):
        """Bookkeeping at step ``k`` from ``f(x_k) = loss`` ``(M,)`` and ``g_k``: best point,
        increase count, and the checkpoint rule. Returns ``(x, g, state)``: the point and
        gradient the step goes on from (the best ones where the step size was halved)."""
        (k, windows, eta, x_prev, f_prev, x_max, g_max, f_max, increases, reduced_last,
         f_max_last, loss_tr, eta_tr, restart_tr, best_tr) = state
        improved = loss > f_max
        x_max = tf.where(_rows(improved, x), x, x_max)
        g_max = tf.where(_rows(improved, g), g, g_max)
        f_max = tf.where(improved, loss, f_max)
        best_k = tf.where(improved, k, _row(best_tr, k - 1))
        first = tf.equal(k, 0)
        f_max_last = tf.where(first, f_max, f_max_last)
        increased = tf.logical_and(tf.logical_not(first), loss > f_prev)
        increases = increases + tf.cast(increased, tf.int32)
        window = windows[k]
        at_checkpoint = window > 0
        too_few = tf.cast(increases, tf.float32) < self.rho * tf.cast(window, tf.float32)
        stalled = tf.logical_and(tf.logical_not(reduced_last), f_max <= f_max_last)
        halve = tf.logical_and(at_checkpoint, tf.logical_or(too_few, stalled))
        eta = tf.where(halve, eta / 2, eta)
        x = tf.where(_rows(halve, x), x_max, x)
        g = tf.where(_rows(halve, g), g_max, g)
        f_from = tf.where(halve, f_max, loss)
        reduced_last = tf.where(at_checkpoint, halve, reduced_last)
        f_max_last = tf.where(at_checkpoint, f_max, f_max_last)
        increases = tf.where(at_checkpoint, tf.zeros_like(increases), increases)
        loss_tr = _set_row(loss_tr, k, loss)
        eta_tr = _set_row(eta_tr, k, eta)
        restart_tr = _set_row(restart_tr, k, halve)
        best_tr = _set_row(best_tr, k, best_k)
        return x, g, (k, windows, eta, x_prev, f_from, x_max, g_max, f_max, increases,
                      reduced_last, f_max_last, loss_tr, eta_tr, restart_tr, best_tr)

    def advance(self, x: tf.Tensor, x_nat: tf.Tensor, d: tf.Tensor, state: tuple):
        """Step ``k``: ``x_{k+1}`` from ``x_k`` (after :meth:`observe`) and the direction
        ``d``; returns ``(x_{k+1}, state)``."""
        (k, windows, eta, x_prev, *rest) = state
        size = tf.reshape(eta, [-1] + [1] * (x.shape.rank - 1))
        z = self.base.project(x + size * self.base.unit_step(d), x_nat)
        with_momentum = self.base.project(
            x + self.alpha * (z - x) + (1 - self.alpha) * (x - x_prev), x_nat)
        x_next = tf.where(tf.equal(k, 0), z, with_momentum)
        return x_next, (k + 1, windows, eta, x, *rest)

    def finish(self, x: tf.Tensor, loss: tf.Tensor, state: tuple):
        """After the last step: scores ``x_N`` and returns ``(best point, state)``."""
        (k, windows, eta, x_prev, f_prev, x_max, g_max, f_max, increases, reduced_last,
         f_max_last, loss_tr, eta_tr, restart_tr, best_tr) = state
        improved = loss > f_max
        x_max = tf.where(_rows(improved, x), x, x_max)
        f_max = tf.where(improved, loss, f_max)
        best_k = tf.where(improved, k, _row(best_tr, k - 1))
        loss_tr = _set_row(loss_tr, k, loss)
        eta_tr = _set_row(eta_tr, k, eta)
        best_tr = _set_row(best_tr, k, best_k)
        return x_max, (k, windows, eta, x_prev, f_prev, x_max, g_max, f_max, increases,
                       reduced_last, f_max_last, loss_tr, eta_tr, restart_tr, best_tr)


def _rows(mask: tf.Tensor, like: tf.Tensor) -> tf.Tensor:
    """``(M,)`` mask shaped to broadcast against ``(M, *S)``."""
    return tf.reshape(mask, [-1] + [1] * (like.shape.rank - 1))


def _row(trace: tf.Tensor, k: tf.Tensor) -> tf.Tensor:
    """``trace[k]`` (zeros where ``k < 0``), ``(M,)``."""
    return tf.where(k >= 0, trace[tf.maximum(k, 0)], tf.zeros_like(trace[0]))


def _set_row(trace: tf.Tensor, k: tf.Tensor, values: tf.Tensor) -> tf.Tensor:
    return tf.tensor_scatter_nd_update(trace, tf.reshape(k, [1, 1]), values[tf.newaxis])
