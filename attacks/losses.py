"""Per-example attack losses on logits, as the MNIST Challenge defines them."""
import tensorflow as tf

LOSSES = ("xent", "cw")

# The challenge's CW loss uses a margin of 50 and masks the true class with -1e4.
CW_CONFIDENCE = 50.0
CW_MASK_VALUE = 1e4


def per_example_loss(logits: tf.Tensor, y: tf.Tensor, loss: str) -> tf.Tensor:
    """Loss of each example, to be maximised by the attack.

    Args:
      logits: ``(N, C)`` float logits.
      y: ``(N,)`` integer labels in ``[0, C)``.
      loss: ``"xent"`` (sparse softmax cross-entropy) or ``"cw"``
        (``-relu(z_y - max_{j != y} z_j + 50)``, the max taken as
        ``max((1 - mask) * z - 1e4 * mask)``, exactly as the challenge's ``pgd_attack.py``).

    Returns:
      ``(N,)`` float losses. The attack differentiates their SUM, so each example's input
      gradient is the gradient of its own loss, unscaled by the batch size.
    """
    if loss == "xent":
        return tf.nn.sparse_softmax_cross_entropy_with_logits(labels=y, logits=logits)
    if loss == "cw":
        mask = tf.one_hot(y, tf.shape(logits)[-1], dtype=logits.dtype)
        correct = tf.reduce_sum(mask * logits, axis=1)
        wrong = tf.reduce_max((1 - mask) * logits - CW_MASK_VALUE * mask, axis=1)
        return -tf.nn.relu(correct - wrong + CW_CONFIDENCE)
    raise ValueError(f"unknown loss {loss!r}; known: {', '.join(LOSSES)}")
