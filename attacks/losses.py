"""Per-example attack losses on logits: the challenge's two and the ones the field uses.

Every loss is maximised by the attack and returns one value per example; the attack
differentiates their SUM, so each example's input gradient is that of its own loss, unscaled
by the batch size. Untargeted losses push the true class ``y`` down; targeted ones (given
``y_target``) push the target class ``t`` up.

======================  ==================================================================
name                    untargeted (labels ``y``) / targeted (targets ``t``)
======================  ==================================================================
``xent``                ``CE(z, y)`` / ``-CE(z, t)`` (softmax cross-entropy)
``cw``                  ``-relu(z_y - max_{j!=y} z_j + kappa)`` / ``-relu(max_{j!=t} z_j - z_t + kappa)``
``dlr``                 ``-(z_y - max_{j!=y} z_j) / (z_pi1 - z_pi3 + 1e-12)`` /
                        ``-(z_y - z_t) / (z_pi1 - (z_pi3 + z_pi4) / 2 + 1e-12)`` (Croce & Hein
                        2020; ``z_pi1 >= z_pi2 >= ...`` are the sorted logits)
``logit_margin``        ``max_{j!=y} z_j - z_y`` / ``z_t - max_{j!=t} z_j`` (Gowal et al. 2019)
======================  ==================================================================

A callable is accepted as a loss too: ``fn(logits, y)`` for an untargeted attack,
``fn(logits, y, y_target)`` for a targeted one, returning ``(M,)`` float32.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
import tensorflow as tf

LOSSES = ("xent", "cw", "dlr", "logit_margin")
# Smallest number of classes each loss is defined for (untargeted, targeted).
MIN_CLASSES = {"xent": (2, 2), "cw": (2, 2), "dlr": (3, 4), "logit_margin": (2, 2)}

# The challenge's CW loss uses a margin of 50 and masks the true class with -1e4.
CW_CONFIDENCE = 50.0
CW_MASK_VALUE = 1e4
DLR_EPS = 1e-12

# (logits (M, C) float32, y (M,) int64, y_target (M,) int64) -> (M,) float32.
LossFn = Callable[[tf.Tensor, tf.Tensor, tf.Tensor], tf.Tensor]


@dataclass(frozen=True)
class Loss:
    """A loss as the driver calls it: ``loss(logits, y, y_target) -> (M,)`` float32.

    Attributes:
      name: a loss name of :data:`LOSSES`, or ``"custom"`` for a user callable.
      targeted: whether success means reaching ``y_target`` (else leaving ``y``).
      fn: the function; untargeted losses ignore ``y_target`` (the driver passes ``y``).
    """

    name: str
    targeted: bool
    fn: LossFn

    def __call__(self, logits: tf.Tensor, y: tf.Tensor, y_target: tf.Tensor) -> tf.Tensor:
        return self.fn(logits, y, y_target)

    def check(self, num_classes: int) -> None:
        """Refuses a loss undefined for ``num_classes`` classes, or a callable that does not
        return one value per example (called once on a tiny zero batch, before any attack)."""
        if self.name in MIN_CLASSES:
            need = MIN_CLASSES[self.name][int(self.targeted)]
            if num_classes < need:
                kind = "targeted " if self.targeted else ""
                raise ValueError(f"loss {kind}{self.name!r} needs at least {need} classes, "
                                 f"the model has {num_classes}")
            return
        labels = tf.constant([0, num_classes - 1], tf.int64)
        out = self.fn(tf.zeros((2, num_classes), tf.float32), labels, labels[::-1])
        shape = tuple(getattr(out, "shape", np.shape(out)))
        if shape != (2,):
            raise ValueError(f"loss callable must return one value per example, shape (M,); "
                             f"it returned shape {shape} for 2 examples")


def make_loss(loss: str | Callable | Loss, *, targeted: bool = False,
              kappa: float | None = None) -> Loss:
    """The :class:`Loss` for a name of :data:`LOSSES` or a callable (see module docstring).

    Args:
      loss: a name, a callable, or a :class:`Loss` (returned as is).
      targeted: the targeted form (success means predicting ``y_target``).
      kappa: CW's margin (default 50, the challenge's); only for ``"cw"``.
    """
    if isinstance(loss, Loss):
        return loss
    if kappa is not None and loss != "cw":
        raise ValueError(f"kappa (the CW margin) applies to the cw loss only, not {loss!r}")
    if callable(loss):
        if targeted:
            return Loss("custom", True, loss)
        return Loss("custom", False, _untargeted_callable(loss))
    if loss not in LOSSES:
        raise ValueError(f"unknown loss {loss!r}; known: {', '.join(LOSSES)}, or a callable")
    kappa = CW_CONFIDENCE if kappa is None else float(kappa)
    fn = _TARGETED[loss] if targeted else _UNTARGETED[loss]
    if loss == "cw":
        return Loss(loss, targeted, _with_kappa(fn, kappa))
    return Loss(loss, targeted, fn)


def per_example_loss(logits: tf.Tensor, y: tf.Tensor, loss: str | Callable,
                     y_target: tf.Tensor | None = None, kappa: float | None = None) -> tf.Tensor:
    """Loss of each example, to be maximised by the attack.

    Args:
      logits: ``(N, C)`` float logits.
      y: ``(N,)`` integer labels in ``[0, C)``.
      loss: a name of :data:`LOSSES` or a callable (module docstring).
      y_target: ``(N,)`` target classes for the targeted form; None: untargeted.
      kappa: CW margin (default 50).

    Returns:
      ``(N,)`` float losses.
    """
    fn = make_loss(loss, targeted=y_target is not None, kappa=kappa)
    y = tf.convert_to_tensor(y)
    return fn(logits, y, y if y_target is None else tf.convert_to_tensor(y_target))


def _untargeted_callable(fn: Callable) -> LossFn:
    def loss(logits, y, y_target):
        return fn(logits, y)
    return loss


def _with_kappa(fn, kappa: float) -> LossFn:
    def loss(logits, y, y_target):
        return fn(logits, y, y_target, kappa)
    return loss


def _label_logit(logits: tf.Tensor, labels: tf.Tensor) -> tf.Tensor:
    return tf.gather(logits, labels, axis=1, batch_dims=1)


def _max_other(logits: tf.Tensor, labels: tf.Tensor) -> tf.Tensor:
    """``max_{j != label} z_j`` per example (exact for logits of any scale)."""
    is_label = tf.one_hot(labels, tf.shape(logits)[-1], on_value=True, off_value=False)
    return tf.reduce_max(tf.where(is_label, logits.dtype.min, logits), axis=1)


def _xent(logits, y, y_target):
    return tf.nn.sparse_softmax_cross_entropy_with_logits(labels=y, logits=logits)


def _xent_targeted(logits, y, y_target):
    return -tf.nn.sparse_softmax_cross_entropy_with_logits(labels=y_target, logits=logits)


def _cw(logits, y, y_target, kappa):
    # Written as the challenge's pgd_attack.py computes it (bit for bit).
    mask = tf.one_hot(y, tf.shape(logits)[-1], dtype=logits.dtype)
    correct = tf.reduce_sum(mask * logits, axis=1)
    wrong = tf.reduce_max((1 - mask) * logits - CW_MASK_VALUE * mask, axis=1)
    return -tf.nn.relu(correct - wrong + kappa)


def _cw_targeted(logits, y, y_target, kappa):
    return -tf.nn.relu(_max_other(logits, y_target) - _label_logit(logits, y_target) + kappa)


def _dlr(logits, y, y_target):
    top = tf.math.top_k(logits, k=3).values
    z_y = _label_logit(logits, y)
    # Croce & Hein's code: the best other class is the second largest where y is the largest.
    best_other = tf.where(tf.equal(z_y, top[:, 0]), top[:, 1], top[:, 0])
    return -(z_y - best_other) / (top[:, 0] - top[:, 2] + DLR_EPS)


def _dlr_targeted(logits, y, y_target):
    top = tf.math.top_k(logits, k=4).values
    margin = _label_logit(logits, y) - _label_logit(logits, y_target)
    return -margin / (top[:, 0] - 0.5 * (top[:, 2] + top[:, 3]) + DLR_EPS)


def _logit_margin(logits, y, y_target):
    return _max_other(logits, y) - _label_logit(logits, y)


def _logit_margin_targeted(logits, y, y_target):
    return _label_logit(logits, y_target) - _max_other(logits, y_target)


_UNTARGETED = {"xent": _xent, "cw": _cw, "dlr": _dlr, "logit_margin": _logit_margin}
_TARGETED = {"xent": _xent_targeted, "cw": _cw_targeted, "dlr": _dlr_targeted,
             "logit_margin": _logit_margin_targeted}
