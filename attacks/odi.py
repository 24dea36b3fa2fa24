"""Output Diversified Initialization (Tashiro, Song & Ermon 2020) on the one driver.

ODI moves the start point of an attack, before its first step, so that restarts begin in
diverse regions of the output space: per example a direction ``w ~ U(-1, 1)^C`` in logit
space is drawn, and ``odi_steps`` sign steps of size ``epsilon`` maximise ``w . logits``
(``v_ODI = w^T f(x)``; the paper's ``N_ODI = 2``, step ``eta_ODI = epsilon`` for L-inf), each
projected onto the ball and ``bounds``. They run through :class:`attacks.engine.StepRunner`
with the objective :func:`odi_objective` and ``w`` as its per-example ``aux``; every method
can start this way (``AttackConfig(start="odi")``). The steps start from the method's random
point (the paper's ``x_0`` drawn uniformly from the ball), or from a given ``x_start``, and
cost ``odi_steps`` forward+backward passes per example and restart (per example attacked:
with ``skip_broken``, a later restart runs them only for the examples it attacks).

``w`` is drawn from the restart's generator right after the random start point, as
``rng.uniform(-1, 1, (N, C))`` float32, so a run is reproducible per seed. Under L2 the step
is the L2 step of length ``epsilon`` (the paper's ODI is L-inf; the L2 form follows its
``epsilon``-sized steps).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import tensorflow as tf

from attacks.engine import StepRunner

DEFAULT_ODI_STEPS = 2


def odi_objective(model, x: tf.Tensor, y: tf.Tensor, t: tf.Tensor, w: tf.Tensor):
    """``(w . logits (M,), logits (M, C))`` at ``x`` (the driver's objective signature);
    ``w``: ``(M, C)`` float32."""
    logits = tf.cast(model(x, training=False), tf.float32)
    return tf.reduce_sum(w * logits, axis=1), logits


def draw_odi_weights(rng: np.random.Generator, n: int, num_classes: int) -> np.ndarray:
    """``(n, num_classes)`` float32 directions ``w ~ U(-1, 1)`` in logit space."""
    return rng.uniform(-1.0, 1.0, size=(n, num_classes)).astype(np.float32)


@dataclass(frozen=True)
class ODIStart:
    """The ODI steps of a method (``AttackConfig.odi_runner`` builds the runner).

    Attributes:
      runner: a :class:`StepRunner` with :func:`odi_objective` and a sign (L2: raw) step of
        size ``epsilon``.
      num_classes: ``C``, the length of ``w``.
      steps: ``odi_steps >= 1``.
      batch_size: images per compiled call.
    """

    runner: StepRunner
    num_classes: int
    steps: int
    batch_size: int = 200

    def __call__(self, x_start: np.ndarray, x: np.ndarray, y: np.ndarray,
                 rng: np.random.Generator, examples: np.ndarray | None = None) -> np.ndarray:
        """``(N, *S)`` float32: ``x_start`` after the ODI steps (``w`` drawn from ``rng``).

        ``examples``: sorted ``(K,)`` indices into the whole set ``x`` (``x_start``, ``y``
        of the whole set too): ``w`` is drawn for all ``N`` examples, as without it, and
        the steps run only for these rows; returns their ``(K, *S)`` points, each equal to
        its row of the whole set's (the steps treat examples independently).
        """
        w = draw_odi_weights(rng, len(x), self.num_classes)
        if examples is not None:
            x_start, x, y, w = x_start[examples], x[examples], y[examples], w[examples]
        out = np.empty_like(x_start)
        for s in range(0, len(x), self.batch_size):
            part = slice(s, s + self.batch_size)
            out[part] = self.runner.run(x_start[part], x[part], y[part], self.steps, aux=w[part])
        return out
