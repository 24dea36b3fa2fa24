"""Step rules: how a direction becomes a step, and the L-infinity threat model around it.

Mirrors the split of Madry Lab's ``robustness`` library: a step rule knows ``step``,
``project`` and ``random_perturb``; the driver loop (``attacks.engine``) knows neither. The
only difference between a sign-step attack and its quantized version is the ``unit``
function held here: ``tf.sign`` or ``quantize_tensor(., b)``. That swap is the paper's
"generalized gradient quantization".
"""
from dataclasses import dataclass
from typing import Callable

import numpy as np
import tensorflow as tf

from attacks.quantize import quantize_tensor

UnitFn = Callable[[tf.Tensor], tf.Tensor]


def sign_unit() -> UnitFn:
    """The sign step of FGSM / PGD / DAA-BLOB."""
    return tf.sign


def quantized_unit(b: float) -> UnitFn:
    """The quantized step ``zeta(b * d / max|d|)`` (per example); ``b = 1`` is the sign."""
    if not b >= 1:
        raise ValueError(f"quantization level b must be >= 1, got {b}")
    return lambda d: quantize_tensor(d, b)


@dataclass(frozen=True)
class LinfStep:
    """L-infinity step rule around the clean images ``x_nat``, pixels kept in [0, 1].

    Attributes:
      epsilon: radius of the L-inf ball, > 0.
      step_size: ``a``, the size of one sign step, > 0.
      unit: maps a direction ``(M, d)`` to a step of the same shape (sign or quantized).
    """

    epsilon: float
    step_size: float
    unit: UnitFn

    def step(self, x: tf.Tensor, direction: tf.Tensor) -> tf.Tensor:
        """``x + a * unit(direction)``; shapes ``(M, d)`` float32."""
        return x + self.step_size * self.unit(direction)

    def project(self, x: tf.Tensor, x_nat: tf.Tensor) -> tf.Tensor:
        """Clip to the eps-ball around ``x_nat``, then to [0, 1] (the challenge's order)."""
        x = tf.clip_by_value(x, x_nat - self.epsilon, x_nat + self.epsilon)
        return tf.clip_by_value(x, 0.0, 1.0)

    def random_perturb(self, x_nat: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """The challenge's random start ``clip(x_nat + U(-eps, eps), 0, 1)``; float32 numpy."""
        noise = rng.uniform(-self.epsilon, self.epsilon, size=x_nat.shape).astype(np.float32)
        return np.clip(x_nat + noise, 0.0, 1.0)
