"""The one batched prediction of the project: class labels of any Keras classifier."""
from __future__ import annotations

from typing import Any

import numpy as np


def predict_labels(model: Any, x: np.ndarray, batch_size: int = 200) -> np.ndarray:
    """Predicted classes of ``x``, computed in batches.

    Args:
      model: a callable (e.g. ``keras.Model``) mapping a float32 batch ``(B, ...)`` to
        ``(B, C)`` logits; called with ``training=False``.
      x: images ``(N, ...)``, any numeric dtype (cast to float32).
      batch_size: images per call, ``>= 1`` (the last batch may be smaller).

    Returns:
      int64 ``(N,)``: ``argmax`` of the logits per image.

    Raises:
      ValueError: ``batch_size < 1``, or the model's output is not ``(B, C)``.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    x = np.asarray(x, dtype=np.float32)
    labels = np.empty(len(x), dtype=np.int64)
    for start in range(0, len(x), batch_size):
        batch = x[start:start + batch_size]
        logits = np.asarray(model(batch, training=False))
        if logits.ndim != 2 or logits.shape[0] != len(batch):
            raise ValueError(f"model returned shape {logits.shape} for a batch of "
                             f"{len(batch)} images; expected (batch, classes) logits")
        labels[start:start + len(batch)] = np.argmax(logits, axis=1)
    return labels
