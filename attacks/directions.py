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
    gram = tf.matmul(x, x, transpose_b=True)
    # The squared norms from the Gram matrix's diagonal: D_ii is then exactly 0, as in the
    # exact formula, without a separate reduction over the pixels.
    sq_norms = tf.linalg.diag_part(gram)
    d = tf.maximum(sq_norms[:, None] + sq_norms[None, :] - 2.0 * gram, 0.0)  # no negative round-off
    h2 = 0.5 * median_by_selection(d) / tf.math.log(m_float)
    defined = tf.logical_and(m > 1, h2 > 0)
    safe_h2 = tf.where(defined, h2, tf.ones_like(h2))
    k = tf.exp(-d / (2.0 * safe_h2))
    # K @ G and K @ X in one matmul over the stacked pixels.
    k_gx = tf.matmul(k, tf.concat([g, x], axis=1))
    pixels = tf.shape(x)[1]
    k_g, k_x = k_gx[:, :pixels], k_gx[:, pixels:]
    repulsion = (x * tf.reduce_sum(k, axis=1, keepdims=True) - k_x) / safe_h2
    interaction = (tf.cast(c, x.dtype) / m_float) * (k_g - repulsion)
    return tf.where(defined, g + interaction, g)


def median_by_selection(values: tf.Tensor) -> tf.Tensor:
    """Median of all entries of a non-negative float32 tensor, without sorting them.

    numpy's definition: the middle value of the sorted entries, the mean of the two middle
    ones for an even count. Non-negative float32 values order as their bit patterns read
    as integers, so the lower middle value (rank ``(n - 1) // 2``) is found by a radix
    selection: a histogram of the top 16 bits picks the bin holding that rank, a second
    histogram of the low 16 bits within the bin picks the value, exactly. The upper middle
    value (rank ``n // 2``) is the same one when at least ``n // 2 + 1`` entries are at most
    it, else the smallest entry above it. Linear in the count (the ``M * M`` distances of a
    BLOB group), where a sort is ``n log n``.

    Args:
      values: float32 tensor of any shape with at least one entry, all finite and ``>= 0``
        (``-0.0`` counts as ``0``).

    Returns:
      A float32 scalar, equal to ``numpy.median`` of the values.
    """
    flat = tf.reshape(values, [-1])
    n = tf.size(flat)
    if flat.dtype != tf.float32:  # the bit trick is float32's; others sort
        ordered = tf.sort(flat)
        return 0.5 * (ordered[(n - 1) // 2] + ordered[n // 2])
    rank = (n - 1) // 2
    bits = tf.bitwise.bitwise_and(tf.bitcast(flat, tf.int32), 0x7FFFFFFF)  # -0.0 -> 0.0
    high = tf.bitwise.right_shift(bits, 16)  # 15 bits: the sign bit is clear
    high_counts = tf.math.bincount(high, minlength=1 << 15, maxlength=1 << 15)
    high_cum = tf.cumsum(high_counts)
    high_bin = tf.argmax(tf.cast(high_cum > rank, tf.int32), output_type=tf.int32)
    below = high_cum[high_bin] - high_counts[high_bin]
    # Entries outside the chosen bin go to an extra last bin that is never selected.
    low = tf.where(tf.equal(high, high_bin), tf.bitwise.bitwise_and(bits, 0xFFFF), 1 << 16)
    low_cum = tf.cumsum(tf.math.bincount(low, minlength=(1 << 16) + 1, maxlength=(1 << 16) + 1))
    low_bin = tf.argmax(tf.cast(below + low_cum > rank, tf.int32), output_type=tf.int32)
    lower = tf.bitcast(tf.bitwise.left_shift(high_bin, 16) + low_bin, tf.float32)
    at_most_lower = below + low_cum[low_bin]
    above = tf.reduce_min(tf.where(flat > lower, flat, tf.constant(float("inf"), flat.dtype)))
    upper = tf.where(at_most_lower > n // 2, lower, above)
    return 0.5 * (lower + upper)
