"""Ascent directions: the plain gradient, or DAA-BLOB's kernel-interaction direction."""
from typing import Callable

import tensorflow as tf

# direction(x, g) -> d, all (M, *S) float32 (any per-example shape S); x are the group's
# current images, g their loss gradients.
DirectionFn = Callable[[tf.Tensor, tf.Tensor], tf.Tensor]

# Default kernel-term weights of the DAA code, per loss.
DEFAULT_C = {"xent": 1.1, "cw": 10.0}


def gradient_direction() -> DirectionFn:
    """PGD's direction: each example's own gradient."""
    return lambda x, g: g


def blob_direction_fn(c: float) -> DirectionFn:
    """DAA-BLOB's direction with kernel weight ``c`` (see :func:`blob_direction`)."""
    return lambda x, g: blob_direction(x, g, c)


def blob_direction(x: tf.Tensor, g: tf.Tensor, c: float | tf.Tensor) -> tf.Tensor:
    """DAA-BLOB direction for a group of M images.

    Args:
      x: ``(M, *S)`` current images of the group, float32; each example is flattened to a
        vector of ``d = prod(S)`` pixels for the kernel.
      g: ``(M, *S)`` their loss gradients.
      c: weight of the kernel term (DAA defaults: 1.1 for xent, 10 for cw).

    Returns:
      ``(M, *S)``: ``eg = G + (c / M) * (K @ G - R)`` with ``D_ij = ||x_i - x_j||^2``,
      ``h2 = 0.5 * median(D) / log(M)`` (median over all M*M entries, numpy's definition),
      ``K = exp(-D / (2 h2))`` and ``R_i = sum_j K_ij (x_i - x_j) / h2``.

      Fallback: the reference code divides by zero when ``M = 1`` (log 1 = 0) or when the
      median distance is 0 (most images of the group coincide). There the kernel is
      undefined and the direction is the plain gradient ``G``.
    """
    x = tf.convert_to_tensor(x)
    g = tf.convert_to_tensor(g, dtype=x.dtype)
    if x.shape.rank != 2:
        flat = blob_direction(tf.reshape(x, [tf.shape(x)[0], -1]),
                              tf.reshape(g, [tf.shape(g)[0], -1]), c)
        return tf.reshape(flat, tf.shape(g))
    m = tf.shape(x)[0]
    m_float = tf.cast(m, x.dtype)
    sq_norms = tf.reduce_sum(tf.square(x), axis=1)
    gram = tf.matmul(x, x, transpose_b=True)
    d = sq_norms[:, None] + sq_norms[None, :] - 2.0 * gram
    # Exact zeros on the diagonal and no negative round-off, as in the exact formula.
    d = tf.linalg.set_diag(tf.maximum(d, 0.0), tf.zeros([m], dtype=x.dtype))
    h2 = 0.5 * _median(d) / tf.math.log(m_float)
    defined = tf.logical_and(m > 1, h2 > 0)
    safe_h2 = tf.where(defined, h2, tf.ones_like(h2))
    k = tf.exp(-d / (2.0 * safe_h2))
    repulsion = (x * tf.reduce_sum(k, axis=1, keepdims=True) - tf.matmul(k, x)) / safe_h2
    interaction = (tf.cast(c, x.dtype) / m_float) * (tf.matmul(k, g) - repulsion)
    return tf.where(defined, g + interaction, g)


def _median(values: tf.Tensor) -> tf.Tensor:
    """Median of all entries, averaging the two middle ones for an even count (numpy's rule)."""
    flat = tf.sort(tf.reshape(values, [-1]))
    n = tf.size(flat)
    return 0.5 * (flat[(n - 1) // 2] + flat[n // 2])
