"""The quantized gradient of Liu & Tsang: ``qg = zeta(b * g / max_i |g_i|)`` per example."""
from typing import TypeVar

import numpy as np
import tensorflow as tf

ArrayOrTensor = TypeVar("ArrayOrTensor", np.ndarray, tf.Tensor)


def quantize(g: ArrayOrTensor, b: float) -> ArrayOrTensor:
    """Quantizes gradients per example.

    Args:
      g: float array or tensor of shape ``(N, ...)``; axis 0 indexes examples and the max is
        taken over all other axes of each example. A 1-D input is one example.
      b: quantization level, ``b >= 1``. ``b = 1`` gives exactly ``sign(g)``.

    Returns:
      Same type, shape and dtype as ``g``: ``zeta(b * g / M)`` with ``M = max |g|`` of the
      example, where ``zeta(v) = sign(v)`` if ``|v| < 1`` else ``round(v)`` (half to even,
      as numpy and TensorFlow round). An example whose gradient is all zero maps to zeros.
      Values are integers in ``[-b, b]`` stored in ``g``'s dtype. Subnormal gradient
      components (< 1.2e-38 in float32) count as zero in TensorFlow's CPU kernels.
    """
    if b < 1:
        raise ValueError(f"quantization level b must be >= 1, got {b}")
    if isinstance(g, np.ndarray):
        return _quantize_numpy(g, b)
    return quantize_tensor(tf.convert_to_tensor(g), b)


def quantize_tensor(g: tf.Tensor, b: float | tf.Tensor) -> tf.Tensor:
    """TensorFlow graph version of :func:`quantize` (no validation; usable inside tf.function)."""
    reduce_axes = list(range(1, g.shape.rank)) if g.shape.rank > 1 else None
    m = tf.reduce_max(tf.abs(g), axis=reduce_axes, keepdims=True)
    b = tf.cast(b, g.dtype)
    # Dividing by 1 where M == 0 leaves the zero gradient at zero instead of 0/0 = NaN;
    # normalising before scaling by b keeps huge gradients from overflowing to inf.
    v = b * (g / tf.where(m > 0, m, tf.ones_like(m)))
    # sign(g) == sign(v) exactly, and it survives v underflowing to a subnormal (which the
    # CPU kernels flush to zero) when one component is ~1e38 times smaller than the max.
    return tf.where(tf.abs(v) < 1, tf.sign(g), tf.round(v))


def _quantize_numpy(g: np.ndarray, b: float) -> np.ndarray:
    reduce_axes = tuple(range(1, g.ndim)) if g.ndim > 1 else None
    m = np.max(np.abs(g), axis=reduce_axes, keepdims=True)
    v = g.dtype.type(b) * (g / np.where(m > 0, m, g.dtype.type(1)))
    return np.where(np.abs(v) < 1, np.sign(g), np.round(v)).astype(g.dtype, copy=False)
