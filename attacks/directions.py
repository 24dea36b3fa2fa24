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


# Radix selection digits of a non-negative float32's bit pattern, most significant first:
# (shift, bits); the sign bit is clear, so 31 bits. Measured on a 2-core AMD EPYC (200 x 200
# distances, chained medians in one graph): three digits of 10-11 bits took 0.43x the time
# of two of 15 and 16 bits (whose 2^15- and 2^16-bin histograms and cumulative sums made the
# median the largest part of the BLOB direction), four of 7-8 bits 0.55x.
_RADIX_DIGITS = ((21, 10), (10, 11), (0, 10))


def median_by_selection(values: tf.Tensor) -> tf.Tensor:
    """Median of all entries of a non-negative float32 tensor, without sorting them.

    numpy's definition: the middle value of the sorted entries, the mean of the two middle
    ones for an even count. Non-negative float32 values order as their bit patterns read
    as integers, so the lower middle value (rank ``(n - 1) // 2``) is found by a radix
    selection: a histogram of the top digit of every entry picks the digit holding that
    rank, then a histogram of the next digit among the entries that share the digits chosen
    so far, and so on (``_RADIX_DIGITS``), exactly. The upper middle value (rank ``n // 2``)
    is the same one when at least ``n // 2 + 1`` entries are at most it, else the smallest
    entry above it. Linear in the count (the ``M * M`` distances of a BLOB group), where a
    sort is ``n log n``; static shapes throughout (XLA compiles it).

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
    prefix = tf.constant(0, tf.int32)  # the digits chosen so far, in place
    below = tf.constant(0, tf.int32)  # entries strictly below every value with that prefix
    for shift, width in _RADIX_DIGITS:
        high = shift + width
        digit = tf.bitwise.bitwise_and(tf.bitwise.right_shift(bits, shift), (1 << width) - 1)
        if high < 31:  # entries whose higher digits differ go to an extra, unselected bin
            same = tf.equal(tf.bitwise.right_shift(bits, high),
                            tf.bitwise.right_shift(prefix, high))
            digit = tf.where(same, digit, 1 << width)
        counts = tf.math.bincount(digit, minlength=(1 << width) + 1,
                                  maxlength=(1 << width) + 1)
        cum = below + tf.cumsum(counts)
        chosen = tf.argmax(tf.cast(cum > rank, tf.int32), output_type=tf.int32)
        at_most = cum[chosen]
        below = at_most - counts[chosen]
        prefix = tf.bitwise.bitwise_or(prefix, tf.bitwise.left_shift(chosen, shift))
    lower = tf.bitcast(prefix, tf.float32)
    # at_most: the entries <= lower (below it, and equal to it: the last digit's bin).
    above = tf.reduce_min(tf.where(flat > lower, flat, tf.constant(float("inf"), flat.dtype)))
    upper = tf.where(at_most > n // 2, lower, above)
    return 0.5 * (lower + upper)
