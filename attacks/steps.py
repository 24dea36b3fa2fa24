"""Step rules: how a direction becomes a step, and the threat model (L-inf or L2 ball) around it.

Mirrors the split of Madry Lab's ``robustness`` library: a step rule knows ``step``,
``project`` and ``random_perturb``; the driver loop (``attacks.engine``) knows none of them.
The only difference between a sign-step attack and its quantized version is the ``unit``
function held here: ``tf.sign`` or ``quantize_tensor(., b)``. That swap is the paper's
"generalized gradient quantization".

Shapes: images and directions are ``(M, *S)`` float32 for any per-example shape ``S``
(``(784,)`` for the flat MNIST models, ``(32, 32, 3)`` for a CIFAR-10 NHWC model); norms and
maxima are taken per example over all non-batch axes. Pixels are kept in ``bounds = (lo, hi)``.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, ClassVar

import numpy as np
import tensorflow as tf

from attacks.quantize import quantize_tensor

UnitFn = Callable[[tf.Tensor], tf.Tensor]
Bounds = tuple[float, float]


def sign_unit() -> UnitFn:
    """The sign step of FGSM / PGD / DAA-BLOB."""
    return tf.sign


def quantized_unit(b: float) -> UnitFn:
    """The quantized step ``zeta(b * d / max|d|)`` (per example); ``b = 1`` is the sign."""
    if not b >= 1:
        raise ValueError(f"quantization level b must be >= 1, got {b}")
    return lambda d: quantize_tensor(d, b)


def raw_unit() -> UnitFn:
    """The direction itself: L2 PGD's unit (the L2 rule normalises it)."""
    return tf.identity


@dataclass(frozen=True)
class LinfStep:
    """L-infinity step rule around the clean images ``x_nat``, pixels kept in ``bounds``.

    Attributes:
      epsilon: radius of the L-inf ball, > 0 (a float, or a ``tf.Variable`` to change it
        without retracing).
      step_size: ``a``, the size of one sign step, > 0.
      unit: maps a direction ``(M, *S)`` to a step of the same shape (sign or quantized).
      bounds: ``(lo, hi)`` pixel range, ``lo < hi``.
    """

    NORM: ClassVar[str] = "L-inf"

    epsilon: float
    step_size: float
    unit: UnitFn
    bounds: Bounds = (0.0, 1.0)

    def step(self, x: tf.Tensor, direction: tf.Tensor) -> tf.Tensor:
        """``x + a * unit(direction)``; shapes ``(M, *S)`` float32."""
        return x + self.step_size * self.unit_step(direction)

    def unit_step(self, direction: tf.Tensor) -> tf.Tensor:
        """The step of size 1: ``unit(direction)``, ``(M, *S)`` float32 (APGD scales it by
        its own per-example step size)."""
        return self.unit(direction)

    def project(self, x: tf.Tensor, x_nat: tf.Tensor) -> tf.Tensor:
        """Clip to the eps-ball around ``x_nat``, then to ``bounds`` (the challenge's order)."""
        x = tf.clip_by_value(x, x_nat - self.epsilon, x_nat + self.epsilon)
        return tf.clip_by_value(x, self.bounds[0], self.bounds[1])

    def random_perturb(self, x_nat: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """The challenge's random start ``clip(x_nat + U(-eps, eps), lo, hi)``; float32 numpy."""
        noise = rng.uniform(-self.epsilon, self.epsilon, size=x_nat.shape).astype(np.float32)
        return np.clip(x_nat + noise, self.bounds[0], self.bounds[1])

    @staticmethod
    def distance(x: np.ndarray, x_nat: np.ndarray) -> np.ndarray:
        """``(N,)`` L-inf distance per example."""
        return np.abs(x - x_nat).reshape(len(x), -1).max(axis=1, initial=0.0)


@dataclass(frozen=True)
class L2Step:
    """L2 step rule around the clean images ``x_nat``, pixels kept in ``bounds``.

    Attributes:
      epsilon: radius of the L2 ball (per example, over all pixels), > 0.
      step_size: ``a``, the L2 length of one step, > 0.
      unit: applied to the direction before normalising: :func:`raw_unit` (L2 PGD,
        ``a * d / ||d||_2``) or :func:`quantized_unit` (``a * q / ||q||_2``, ``q`` the
        quantized direction).
      bounds: ``(lo, hi)`` pixel range, ``lo < hi``.
    """

    NORM: ClassVar[str] = "L2"

    epsilon: float
    step_size: float
    unit: UnitFn
    bounds: Bounds = (0.0, 1.0)

    def step(self, x: tf.Tensor, direction: tf.Tensor) -> tf.Tensor:
        """``x + a * u / ||u||_2`` with ``u = unit(direction)`` per example (a zero ``u``
        leaves the example where it is); shapes ``(M, *S)`` float32."""
        return x + self.step_size * self.unit_step(direction)

    def unit_step(self, direction: tf.Tensor) -> tf.Tensor:
        """The step of L2 length 1: ``u / ||u||_2``, ``u = unit(direction)`` (0 where ``u`` is
        0), ``(M, *S)`` float32."""
        u = self.unit(direction)
        norm = _l2_norm(u)
        return u / tf.where(norm > 0, norm, tf.ones_like(norm))

    def project(self, x: tf.Tensor, x_nat: tf.Tensor) -> tf.Tensor:
        """Scale ``x - x_nat`` into the L2 ball, then clip to ``bounds`` (clipping towards the
        in-bounds ``x_nat`` only shrinks the perturbation, so the result stays in the ball)."""
        delta = x - x_nat
        norm = _l2_norm(delta)
        outside = norm > self.epsilon
        scaled = x_nat + delta * (self.epsilon / tf.where(outside, norm, tf.ones_like(norm)))
        return tf.clip_by_value(tf.where(outside, scaled, x), self.bounds[0], self.bounds[1])

    def random_perturb(self, x_nat: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """A uniform point of the L2 ball (Gaussian direction, radius ``eps * U^(1/d)``),
        clipped to ``bounds``; float32 numpy."""
        n = len(x_nat)
        dims = int(np.prod(x_nat.shape[1:], dtype=np.int64))
        direction = rng.standard_normal(size=(n, dims))
        direction /= np.maximum(np.linalg.norm(direction, axis=1, keepdims=True), 1e-30)
        radius = self.epsilon * rng.uniform(size=(n, 1)) ** (1.0 / max(dims, 1))
        # Slightly inside the ball, so that float32 rounding cannot leave it.
        noise = (direction * radius * (1 - 1e-6)).reshape(x_nat.shape).astype(np.float32)
        return np.clip(x_nat + noise, self.bounds[0], self.bounds[1])

    @staticmethod
    def distance(x: np.ndarray, x_nat: np.ndarray) -> np.ndarray:
        """``(N,)`` L2 distance per example (float64)."""
        return np.linalg.norm((x.astype(np.float64) - x_nat).reshape(len(x), -1), axis=1)


StepRule = LinfStep | L2Step


def _l2_norm(v: tf.Tensor) -> tf.Tensor:
    """Per-example L2 norm, shaped ``(M, 1, ..., 1)`` to broadcast against ``v``."""
    axes = list(range(1, v.shape.rank))
    return tf.sqrt(tf.reduce_sum(tf.square(v), axis=axes, keepdims=True))
