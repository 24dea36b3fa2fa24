"""Sound interval bounds of a Keras classifier's logits over an L-inf box, and the Interval
Attack's direction: the gradient of a loss on those bounds with respect to the box's centre.

Bounds
------
:func:`logit_bounds` propagates a box ``[lower, upper]`` through the model's layers in order
with naive interval arithmetic. Every point of the box has logits inside the returned
``[lo, hi]`` (up to float32 rounding, relative 1e-5 in the tests). Per layer kind:

- ``Dense``, ``Conv2D`` (any padding, strides, dilation, groups): in centre/radius form,
  ``c' = W c + b`` and ``r' = |W| r``; then the layer's activation on both ends.
- activations (``ReLU``, ``LeakyReLU``, ``Activation`` layers, and the ``activation`` of
  Dense / Conv2D): only monotone non-decreasing ones (``MONOTONE_ACTIVATIONS``), mapped on
  both ends.
- ``MaxPooling2D``, ``AveragePooling2D``, ``GlobalMaxPooling2D``, ``GlobalAveragePooling2D``:
  monotone, so applied to ``lo`` and ``hi`` separately.
- ``Rescaling`` (``y = x * scale + offset``, any sign of ``scale``): ``c' = s c + o``,
  ``r' = |s| r``.
- ``BatchNormalization`` in inference form (so ``models.layers.InferenceBatchNormalization``):
  per channel ``y = s x + t`` with ``s = gamma / sqrt(var + eps)``: ``c' = s c + t``,
  ``r' = |s| r``.
- ``Flatten``, ``Reshape``, ``InputLayer``, ``Dropout`` (inference) and
  ``models.layers.ChannelZeroPadding`` rearrange values or add constants: applied to both ends.
- ``models.layers.PerImageStandardization``, ``(x - mean(x)) / max(std(x), 1/sqrt(n))``, is
  not monotone. Numerator: the centring is linear (row ``i`` of ``I - 11^T/n``), so its
  interval is ``c_i - mean(c) +- ((1 - 1/n) r_i + (sum(r) - r_i) / n)``. Denominator: with
  ``P`` the centring, ``||P x|| = ||P c + P d||`` lies in ``||P c|| +- ||r||_2`` for every
  ``|d| <= r``, so ``std`` lies in ``(||P c|| +- ||r||_2) / sqrt(n)``, floored at
  ``1/sqrt(n)``; then interval division by that positive interval.

``ReLU`` and ``LeakyReLU`` are monotone because Keras refuses negative slopes and thresholds.
Anything else (another layer class, ``gelu``/``swish`` or other non-monotone activations, a
non-float32 or quantized layer, a model whose output is not a chain of single-input layers,
such as the residual CIFAR-10 network whose ``Add`` layers take two inputs) is refused by
:func:`check_interval_support` with a one-line ``ValueError`` naming the layer and its
class, before any tensor is touched. The bounds are of the float32 computation.

The reference (Wang, Chen, Abdou, Jana 2019, "Enhancing gradient-based attacks with symbolic
intervals"; the authors' TF1 code ``attack2.py`` / ``interval_attack.py`` with ``ia1.py``)
-----------------------------------------------------------------------------------------
Written down from reading that code, for wiring the attack; the defaults are its
``argparse`` defaults and its ``config.json`` (MNIST challenge: ``epsilon`` 0.3, ``a`` 0.01).

- Bounds: *symbolic* intervals (ReluVal / Neurify style: linear equations in the input,
  ReLUs relaxed by ``u / (u - l)``, max-pools fixed to the arg-max of the concrete forward
  pass), computed for the margins ``logit_j - logit_y`` directly. We use naive intervals
  (looser, but sound for every layer above and cheap); the loss below is taken on
  ``hi_j - lo_y``, the naive bound of the same margin.
- Box: ``[clip(x - w, 0, 1), clip(x + w, 0, 1)]`` around the current point ``x``, per
  example, with ``w = estep * ed``: ``estep = 0.01`` and ``ed = 1, 3, 9, ...`` (times 3)
  capped at ``epsilon / 2`` (``ed <= epsilon / 2 / estep``): for ``epsilon = 0.3`` the widths
  0.01, 0.03, 0.09, 0.15 (:func:`reference_widths`). The smallest width whose upper margin
  bounds leave some wrong class ahead (``argmax_j u_j != y`` with ``u_y = 0``, i.e. some
  ``u_j > 0``) is used; if even the capped width is verified the example gets no interval
  step (:func:`unverified_width`). The ``--estep_decay 0.94`` flag is parsed but unused.
- Loss: ``attack2.py`` defines ``interval_loss`` as the softmax cross-entropy with label
  ``y`` of the upper margin bounds ``u`` (:func:`interval_loss` ``"xent"``). The step it
  actually runs follows the symbolic equation of the upper bound of ``logit_d - logit_y``
  for ``d = argmax_j u_j``: its input coefficients, i.e. that bound's gradient with respect
  to the box centre, the ReLU relaxation held fixed (:func:`interval_loss` ``"margin"``,
  ``max_{j != y} hi_j - lo_y``).
- Step: ``x += ed * s`` with ``s = +1`` where the coefficient is ``> 0`` and ``-1``
  elsewhere (zero coefficients step down), then projection onto the ``epsilon`` ball and
  ``[0, 1]``. The step is ``ed`` (1, 3, 9 or 15), not the width ``estep * ed``: for
  ``epsilon < 0.5``, ``ed >= 1 > 2 epsilon`` and the projected step lands on the vertex
  ``clip(x_nat + epsilon * s, 0, 1)`` whatever the current point.
- Schedule: per restart, ``interval_iters = 3`` rounds of (base attack, then one interval
  step for each example the model still classifies correctly), then the base attack once
  more. Restarts: ``--random`` 10 in ``attack2.py`` (50 in ``interval_attack.py``); the first
  starts at ``x_nat``, the others at ``clip(x_nat + U(-epsilon, epsilon), 0, 1)`` for the
  examples not yet fooled; from the third restart on ``interval_iters = 1``. Base attack:
  PGD (``--iters`` 40 steps of ``a = 0.01``, sign, xent), CW (same, its ``-relu(z_y -
  max_{j != y} z_j + 50)`` loss) or DAA-BLOB (the default ``--im``; 20 regroupings x 10
  steps, ``c = 1.1``). A test ``if(INTERVAL_BLOB)`` that is always true makes BLOB run in
  every configuration, after PGD/CW when those are chosen.

The Interval Attack of this project (``AttackConfig(method="interval")``) offers the
reference's alternation (``AttackConfig.interval_phases``; ``interval_rounds=3``, while the
default is one round with the interval phase first, measured stronger on the shipped MNIST
model, see ``attacks.config.DEFAULT_INTERVAL_ROUNDS``): from the start point,
``interval_rounds`` rounds of (a PGD phase of ``interval_pgd_steps`` steps, then
an interval phase of ``interval_steps`` (default 1) steps along the gradient of
:func:`interval_loss` with respect to the box centre (:func:`interval_objective`, run by the
one driver), each with the per-example width of :func:`unverified_width` and only for
examples still classified correctly), then a last PGD phase with the rest of ``steps``; each
phase goes on from the point the previous one reached. The reference's PGD phases are of
equal length (``--iters`` each, four of them); here ``steps`` is the total, split equally by
default. Not kept: the reference's restarts with fewer rounds from the third on (restarts
here repeat the same schedule) and BLOB as the base attack (here PGD, sign or quantized).
The unit (sign or quantized) is the step rule's, not this module's.
"""
from __future__ import annotations

import weakref
from typing import Callable, Sequence

import keras
import numpy as np
import tensorflow as tf

from models.layers import ChannelZeroPadding, PerImageStandardization

# Interval losses on the bounds (see interval_loss).
INTERVAL_LOSSES = ("xent", "margin")

# Monotone non-decreasing activations: their interval is the image of the two ends.
MONOTONE_ACTIVATIONS = {
    keras.activations.linear: "linear",
    keras.activations.relu: "relu",
    keras.activations.relu6: "relu6",
    keras.activations.leaky_relu: "leaky_relu",
    keras.activations.elu: "elu",
    keras.activations.selu: "selu",
    keras.activations.sigmoid: "sigmoid",
    keras.activations.hard_sigmoid: "hard_sigmoid",
    keras.activations.tanh: "tanh",
    keras.activations.softplus: "softplus",
    keras.activations.softsign: "softsign",
}

# The reference's first box half-width and its growth factor (module docstring).
REFERENCE_START_WIDTH = 0.01
REFERENCE_GROWTH = 3.0

Bounds = tuple[tf.Tensor, tf.Tensor]
_Rule = Callable[[keras.layers.Layer, tf.Tensor, tf.Tensor], Bounds]


def check_interval_support(model: keras.Model) -> None:
    """Raises a one-line ``ValueError`` naming the layer (and its class) that
    :func:`logit_bounds` has no sound rule for, or the model's structural problem; returns
    None when every layer from the input to the logits is supported. Touches no tensors."""
    _interval_chain(model)


def logit_bounds(model: keras.Model, lower, upper) -> Bounds:
    """Interval bounds of ``model``'s outputs over the box ``lower <= x <= upper``.

    Args:
      model: a functional or sequential Keras model with one input and one output, whose
        layers from input to output form a chain of supported layers (module docstring).
      lower, upper: the box's corners, float32 of the model's input shape ``(N, ...)``
        (any finite values, ``lower <= upper`` elementwise).

    Returns:
      ``(lo, hi)``: float32 ``(N, classes)`` with ``lo <= model(x) <= hi`` for every ``x``
      in the box (up to float32 rounding); ``lo == hi == model(x)`` for ``lower == upper ==
      x``. Differentiable in ``lower`` and ``upper``.
    """
    chain = _interval_chain(model)
    lower = tf.convert_to_tensor(lower, tf.float32)
    upper = tf.convert_to_tensor(upper, tf.float32)
    _check_box(model, lower, upper)
    lo, hi = lower, upper
    for layer in chain:
        lo, hi = _RULES[_rule_key(layer)](layer, lo, hi)
    return lo, hi


def worst_case_margins(lo, hi, y) -> tf.Tensor:
    """``(N, classes)`` float32: ``hi_j - lo_y`` for every wrong class ``j`` (an upper bound
    of ``logit_j - logit_y`` over the box) and 0 for ``j = y``. ``y``: int ``(N,)``."""
    lo = tf.convert_to_tensor(lo, tf.float32)
    hi = tf.convert_to_tensor(hi, tf.float32)
    y = tf.cast(tf.convert_to_tensor(y), tf.int32)
    true_lo = tf.gather(lo, y, axis=1, batch_dims=1)
    is_true = tf.one_hot(y, tf.shape(lo)[1], on_value=True, off_value=False)
    return tf.where(is_true, tf.zeros_like(hi), hi - true_lo[:, None])


def interval_loss(lo, hi, y, loss: str = "xent") -> tf.Tensor:
    """The Interval Attack's per-example loss on logit bounds, ``(N,)`` float32.

    With ``u = worst_case_margins(lo, hi, y)``:

    - ``"xent"``: softmax cross-entropy of ``u`` with label ``y``, ``log sum_j exp(u_j)``
      (``u_y = 0``): the reference's ``interval_loss``.
    - ``"margin"``: ``max_{j != y} u_j``: the bound whose input gradient the reference's
      interval step follows. Positive when the box is not verified.
    """
    _check_loss(loss)
    u = worst_case_margins(lo, hi, y)
    y = tf.cast(tf.convert_to_tensor(y), tf.int32)
    if loss == "xent":
        return tf.nn.sparse_softmax_cross_entropy_with_logits(labels=y, logits=u)
    is_true = tf.one_hot(y, tf.shape(u)[1], on_value=True, off_value=False)
    return tf.reduce_max(tf.where(is_true, tf.fill(tf.shape(u), -np.inf), u), axis=1)


def interval_direction(model: keras.Model, x, y, width, loss: str = "xent",
                       clip_min: float | None = None,
                       clip_max: float | None = None) -> tf.Tensor:
    """Gradient of each example's :func:`interval_loss` over the box around ``x`` with
    respect to the box's centre ``x``: the Interval Attack's ascent direction.

    Args:
      model: as for :func:`logit_bounds`.
      x: ``(N, ...)`` float32 box centres (current points) of the model's input shape.
      y: ``(N,)`` int true labels.
      width: L-inf half-width of the box, ``>= 0``: a number or ``(N,)`` per example.
      loss: ``"xent"`` or ``"margin"`` (:func:`interval_loss`).
      clip_min, clip_max: when given, the box is clipped to them as in the reference
        (``[clip(x - w), clip(x + w)]``, e.g. 0 and 1 for pixels); a clipped end does not
        move with ``x``.

    Returns:
      ``(N, ...)`` float32, the shape of ``x``. For ``width = 0`` (and no clipping) it is the
      gradient of the same loss on the plain logits (``u_j = z_j - z_y``).
    """
    _check_loss(loss)
    _interval_chain(model)
    x = tf.convert_to_tensor(x, tf.float32)
    y = tf.convert_to_tensor(y)
    width = _check_width(width, x)
    with tf.GradientTape() as tape:
        tape.watch(x)
        lower, upper = _box(x, width, clip_min, clip_max)
        lo, hi = logit_bounds(model, lower, upper)
        total = tf.reduce_sum(interval_loss(lo, hi, y, loss))
    return tape.gradient(total, x)


def reference_widths(epsilon: float, start: float = REFERENCE_START_WIDTH,
                     growth: float = REFERENCE_GROWTH) -> tuple[float, ...]:
    """The reference's increasing box half-widths: ``start * growth**k`` below
    ``epsilon / 2``, then ``epsilon / 2`` (for ``epsilon = 0.3``: 0.01, 0.03, 0.09, 0.15)."""
    if not (epsilon > 0 and start > 0 and growth > 1):
        raise ValueError(f"reference widths need epsilon > 0, start > 0 and growth > 1, got "
                         f"epsilon={epsilon}, start={start}, growth={growth}")
    cap = epsilon / 2
    widths = []
    w = float(start)
    while w < cap:
        widths.append(w)
        w *= growth
    widths.append(cap)
    return tuple(widths)


def unverified_width(model: keras.Model, x, y, widths: Sequence[float],
                     clip_min: float | None = None,
                     clip_max: float | None = None) -> tf.Tensor:
    """Per example, the first of the increasing ``widths`` whose box around ``x`` is not
    verified by the bounds (some wrong class ``j`` with ``hi_j - lo_y > 0``), as the
    reference chooses its box; 0 where every width is verified (no interval step there).

    Returns ``(N,)`` float32. ``x``, ``y``, ``clip_min``, ``clip_max`` as for
    :func:`interval_direction`; ``widths`` increasing positive numbers.
    """
    _interval_chain(model)
    widths = [float(w) for w in widths]
    if not widths or any(w <= 0 for w in widths) or widths != sorted(set(widths)):
        raise ValueError(f"widths must be increasing positive numbers, got {widths}")
    x = tf.convert_to_tensor(x, tf.float32)
    chosen = tf.zeros(tf.shape(x)[:1], tf.float32)
    for w in reversed(widths):
        lower, upper = _box(x, tf.constant(w, tf.float32), clip_min, clip_max)
        lo, hi = logit_bounds(model, lower, upper)
        unverified = interval_loss(lo, hi, y, "margin") > 0
        chosen = tf.where(unverified, tf.constant(w, tf.float32), chosen)
    return chosen


def interval_objective(model: keras.Model, widths: Sequence[float], loss: str = "margin",
                       clip_min: float | None = None, clip_max: float | None = None):
    """The Interval Attack's objective for :class:`attacks.engine.StepRunner`.

    ``objective(attacked, x, y, t, aux) -> (values (M,), logits (M, C))``: the logits of the
    attacked model (the driver's, e.g. the fast-backward view of ``model``) and, per example,
    :func:`interval_loss` ``loss`` of ``model``'s bounds over the box of half-width
    :func:`unverified_width` (``widths``, increasing) around ``x`` (clipped to ``clip_min``,
    ``clip_max``); 0 (no gradient, so no step) where every width is verified or the model
    already misclassifies ``x``. Its gradient with respect to ``x`` is
    :func:`interval_direction`'s for the chosen widths (the width choice is held fixed).
    ``model`` is held weakly (the driver's compiled loops are cached per model).

    Cost per example and step: ``len(widths)`` bound passes for the width (each about two
    forward passes: centre and radius), one bound pass with its backward pass, and one
    forward pass for the logits.
    """
    check_interval_support(model)
    _check_loss(loss)
    widths = tuple(float(w) for w in widths)
    if not widths or any(not w > 0 for w in widths) or list(widths) != sorted(set(widths)):
        raise ValueError(f"widths must be increasing positive numbers, got {list(widths)}")
    model_ref = weakref.ref(model)
    settings = (widths, loss, clip_min, clip_max)

    def objective(attacked, x, y, t, aux):
        bounds_model = model_ref()
        widths_, loss_, lo_clip, hi_clip = settings
        logits = tf.cast(attacked(x, training=False), tf.float32)
        width = tf.stop_gradient(unverified_width(bounds_model, x, y, widths_, lo_clip, hi_clip))
        lower, upper = _box(x, width, lo_clip, hi_clip)
        lo, hi = logit_bounds(bounds_model, lower, upper)
        correct = tf.equal(tf.argmax(logits, axis=1, output_type=tf.int64), tf.cast(y, tf.int64))
        active = tf.logical_and(width > 0, correct)
        values = interval_loss(lo, hi, y, loss_)
        return tf.where(active, values, tf.zeros_like(values)), logits
    return objective


# --- the layer chain and its checks ----------------------------------------------------


def _interval_chain(model: keras.Model) -> list[keras.layers.Layer]:
    """The layers from the model's input to its output, each checked; raises ValueError."""
    if not isinstance(model, keras.Model):
        raise ValueError(f"interval bounds need a Keras model, got {type(model).__name__}")
    try:
        inputs, outputs = model.inputs, model.outputs
    except (AttributeError, ValueError):
        inputs = outputs = None
    if not inputs or not outputs:
        raise ValueError(f"model {model.name!r} has no defined inputs/outputs: interval "
                         "bounds need a functional model or a built sequential one")
    if len(inputs) != 1 or len(outputs) != 1:
        raise ValueError(f"interval bounds need one input and one output; model "
                         f"{model.name!r} has {len(inputs)} and {len(outputs)}")
    chain = []
    tensor = outputs[0]
    while True:
        layer, node_index, _ = tensor._keras_history
        if layer is None:
            break
        node = layer._inbound_nodes[node_index]
        if node.is_input:
            break
        if len(node.input_tensors) != 1:
            raise ValueError(
                f"layer {layer.name!r} ({type(layer).__name__}) takes "
                f"{len(node.input_tensors)} inputs: interval bounds need a chain of "
                "single-input layers (residual networks are not supported)")
        chain.append(layer)
        tensor = node.input_tensors[0]
    if tensor is not inputs[0]:
        raise ValueError(f"the output of model {model.name!r} does not come from its input "
                         "through a chain of layers")
    chain.reverse()
    for layer in chain:
        _check_layer(layer)
    return chain


def _rule_key(layer) -> type:
    for kind in _RULES:
        if isinstance(layer, kind):
            return kind
    raise ValueError(f"layer {layer.name!r} ({type(layer).__name__}) has no interval rule")


def _check_layer(layer) -> None:
    where = f"layer {layer.name!r} ({type(layer).__name__})"
    if not isinstance(layer, keras.layers.Layer) or isinstance(layer, keras.Model):
        raise ValueError(f"{where} has no interval rule")
    _rule_key(layer)
    if getattr(layer, "compute_dtype", "float32") != "float32":
        raise ValueError(f"{where} computes in {layer.compute_dtype}: interval bounds are of "
                         "float32 layers only")
    if getattr(layer, "quantization_mode", None):
        raise ValueError(f"{where} is quantized ({layer.quantization_mode}): no interval rule")
    activation = getattr(layer, "activation", None)
    if activation is not None and activation not in MONOTONE_ACTIVATIONS:
        name = getattr(activation, "__name__", repr(activation))
        raise ValueError(f"{where} has activation {name!r}, which is not monotone "
                         f"non-decreasing: no interval rule (supported: "
                         f"{', '.join(sorted(MONOTONE_ACTIVATIONS.values()))})")


def _check_box(model: keras.Model, lower: tf.Tensor, upper: tf.Tensor) -> None:
    expected = tuple(model.inputs[0].shape[1:])
    for name, t in (("lower", lower), ("upper", upper)):
        if t.shape.rank != len(expected) + 1 or any(
                e is not None and e != s for e, s in zip(expected, t.shape[1:])):
            raise ValueError(f"{name} has shape {tuple(t.shape)}; model {model.name!r} takes "
                             f"(N, {', '.join(str(e) for e in expected)})")
    if lower.shape != upper.shape:
        raise ValueError(f"lower and upper differ in shape: {tuple(lower.shape)} vs "
                         f"{tuple(upper.shape)}")
    if tf.executing_eagerly() and not bool(tf.reduce_all(
            (lower <= upper) & tf.math.is_finite(lower) & tf.math.is_finite(upper))):
        raise ValueError("the box needs finite lower <= upper everywhere")


def _check_loss(loss: str) -> None:
    if loss not in INTERVAL_LOSSES:
        raise ValueError(f"unknown interval loss {loss!r}; known: {', '.join(INTERVAL_LOSSES)}")


def _check_width(width, x: tf.Tensor) -> tf.Tensor:
    width = tf.convert_to_tensor(width, tf.float32)
    if width.shape.rank not in (0, 1):
        raise ValueError(f"width must be a number or one per example, got shape "
                         f"{tuple(width.shape)}")
    if width.shape.rank == 1 and width.shape[0] != x.shape[0]:
        raise ValueError(f"width has {width.shape[0]} entries for {x.shape[0]} examples")
    if tf.executing_eagerly() and not bool(
            tf.reduce_all((width >= 0) & tf.math.is_finite(width))):
        raise ValueError("width must be finite and >= 0")
    return width


def _box(x: tf.Tensor, width: tf.Tensor, clip_min, clip_max) -> Bounds:
    """``[x - w, x + w]`` (``w`` a number or one per example), clipped when asked."""
    w = tf.reshape(width, [-1] + [1] * (x.shape.rank - 1)) if width.shape.rank else width
    lower, upper = x - w, x + w
    if clip_min is not None:
        lower = tf.maximum(lower, clip_min)
        upper = tf.maximum(upper, clip_min)
    if clip_max is not None:
        lower = tf.minimum(lower, clip_max)
        upper = tf.minimum(upper, clip_max)
    return lower, upper


# --- per-layer rules -------------------------------------------------------------------


def _affine(lo: tf.Tensor, hi: tf.Tensor, linear, abs_linear, bias) -> Bounds:
    """``[lo, hi]`` through ``x -> linear(x) + bias`` with ``abs_linear`` the same map with
    absolute weights: centre/radius form."""
    centre = linear((lo + hi) / 2) + bias
    radius = abs_linear((hi - lo) / 2)
    return centre - radius, centre + radius


def _activation(layer, lo: tf.Tensor, hi: tf.Tensor) -> Bounds:
    activation = getattr(layer, "activation", None)
    if activation is None or activation is keras.activations.linear:
        return lo, hi
    return activation(lo), activation(hi)


def _dense(layer, lo, hi) -> Bounds:
    kernel = tf.convert_to_tensor(layer.kernel)
    bias = tf.convert_to_tensor(layer.bias) if layer.use_bias else 0.0
    lo, hi = _affine(lo, hi, lambda v: tf.tensordot(v, kernel, 1),
                     lambda v: tf.tensordot(v, tf.abs(kernel), 1), bias)
    return _activation(layer, lo, hi)


def _conv(layer, lo, hi) -> Bounds:
    kernel = tf.convert_to_tensor(layer.kernel)
    bias = 0.0
    if layer.use_bias:
        bias = tf.convert_to_tensor(layer.bias)
        if layer.data_format == "channels_first":
            bias = tf.reshape(bias, [-1] + [1] * (lo.shape.rank - 2))
    lo, hi = _affine(lo, hi, lambda v: layer.convolution_op(v, kernel),
                     lambda v: layer.convolution_op(v, tf.abs(kernel)), bias)
    return _activation(layer, lo, hi)


def _batch_norm(layer, lo, hi) -> Bounds:
    # Inference form, as keras' own: y = x * s + (beta - mean * s), s = gamma / sqrt(var + eps).
    scale = tf.math.rsqrt(tf.convert_to_tensor(layer.moving_variance) + layer.epsilon)
    if layer.scale:
        scale = scale * tf.convert_to_tensor(layer.gamma)
    shift = -tf.convert_to_tensor(layer.moving_mean) * scale
    if layer.center:
        shift = shift + tf.convert_to_tensor(layer.beta)
    rank = lo.shape.rank
    axis = layer.axis if isinstance(layer.axis, int) else layer.axis[0]
    shape = [1] * rank
    shape[axis % rank] = -1
    scale, shift = tf.reshape(scale, shape), tf.reshape(shift, shape)
    return _affine(lo, hi, lambda v: v * scale, lambda v: v * tf.abs(scale), shift)


def _rescaling(layer, lo, hi) -> Bounds:
    # y = x * scale + offset, scale and offset scalars or broadcast per channel (any sign).
    scale = tf.cast(layer.scale, lo.dtype)
    offset = tf.cast(layer.offset, lo.dtype)
    return _affine(lo, hi, lambda v: v * scale, lambda v: v * tf.abs(scale), offset)


def _per_image_standardization(layer, lo, hi) -> Bounds:
    axes = list(range(1, lo.shape.rank))
    n = float(np.prod(lo.shape[1:]))
    centre, radius = (lo + hi) / 2, (hi - lo) / 2
    centred = centre - tf.reduce_mean(centre, axis=axes, keepdims=True)
    radius_sum = tf.reduce_sum(radius, axis=axes, keepdims=True)
    num_radius = (1 - 1 / n) * radius + (radius_sum - radius) / n
    num_lo, num_hi = centred - num_radius, centred + num_radius
    norm_centred = tf.sqrt(tf.reduce_sum(tf.square(centred), axis=axes, keepdims=True))
    norm_radius = tf.sqrt(tf.reduce_sum(tf.square(radius), axis=axes, keepdims=True))
    min_std = 1 / np.sqrt(n)
    std_lo = tf.maximum((norm_centred - norm_radius) / np.sqrt(n), min_std)
    std_hi = tf.maximum((norm_centred + norm_radius) / np.sqrt(n), min_std)
    return (tf.minimum(num_lo / std_lo, num_lo / std_hi),
            tf.maximum(num_hi / std_lo, num_hi / std_hi))


def _both_ends(layer, lo, hi) -> Bounds:
    """Monotone non-decreasing layers, and layers that only move values or add zeros."""
    return layer(lo), layer(hi)


def _identity(layer, lo, hi) -> Bounds:
    return lo, hi


# Checked in order: subclasses (InferenceBatchNormalization) match their base's rule.
_RULES: dict[type, _Rule] = {
    keras.layers.InputLayer: _identity,
    keras.layers.Dropout: _identity,
    keras.layers.Dense: _dense,
    keras.layers.Conv2D: _conv,
    keras.layers.BatchNormalization: _batch_norm,
    keras.layers.Rescaling: _rescaling,
    PerImageStandardization: _per_image_standardization,
    keras.layers.ReLU: _both_ends,
    keras.layers.LeakyReLU: _both_ends,
    keras.layers.Activation: lambda layer, lo, hi: _activation(layer, lo, hi),
    keras.layers.MaxPooling2D: _both_ends,
    keras.layers.AveragePooling2D: _both_ends,
    keras.layers.GlobalMaxPooling2D: _both_ends,
    keras.layers.GlobalAveragePooling2D: _both_ends,
    keras.layers.Flatten: _both_ends,
    keras.layers.Reshape: _both_ends,
    ChannelZeroPadding: _both_ends,
}
