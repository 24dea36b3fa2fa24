"""A view of a model whose input gradient runs on faster CPU kernels, with the same values.

Two of TensorFlow's CPU backward-to-input kernels are slow for the layer shapes of the
challenge CNNs (2-core AVX-512 CPU, batch 200, microseconds per example; bench/RESULTS.md):

- ``Conv2DBackpropInput`` of a convolution with few input channels (1 for grayscale):
  94 us. The same values as one matmul of the kernel with the upstream gradient, followed by
  ``k_h * k_w`` shifted sums: 42 us.
- ``MatMul(transpose_b=True)`` of a Dense layer's 3136 x 1024 kernel: 59 us. With the kernel
  transposed explicitly first (``einsum``, which grappler does not fold back): 38 us.

Together: PGD's float32 step on the challenge CNN ran 28% faster end to end.

The forward ops are Keras' own, so logits are bit-identical; the input gradient differs only
by the order of float32 summation (relative 1e-7 on the challenge model). Kernel and bias
gradients are TensorFlow's stock ones.

bfloat16 layers: only the few-input-channel ``Conv2D`` is rewritten. oneDNN's bfloat16
``Conv2DBackpropInput`` for 1 input channel (``brg_conv_bwd:avx512_core_bf16``) was the
largest kernel of the bfloat16 step on an AVX512_BF16 CPU (261 us per example at batch 200,
14x its forward in the same trace); the taps matmul in bfloat16 (float32 accumulation inside the
kernel), with the shifted sums in float32 and one rounding of the result to bfloat16, took
66 us with the same error against float32 (relative 4e-3 against the stock bfloat16
kernel's 3.7e-3). bfloat16 ``Dense`` layers keep the stock kernels: their transposed matmul
costs the same as their forward one there (bench/RESULTS.md).
"""
from __future__ import annotations

import weakref

import keras
import tensorflow as tf

# Input channels up to which the matmul + shifted sums beat Conv2DBackpropInput: the matmul
# output holds k_h * k_w * C_in values per output pixel, so it only pays for small C_in.
MAX_CONV_INPUT_CHANNELS = 4

_VIEWS = weakref.WeakKeyDictionary()


def with_fast_input_gradient(model: keras.Model) -> keras.Model:
    """``model`` with eligible Conv2D / Dense layers wrapped (see module docstring), also
    inside nested functional / sequential models.

    The returned model shares every variable with ``model`` (training ``model`` changes it
    too), is made once per model and reused, and is for calling and differentiating only
    (it cannot be serialised). ``model`` itself is returned when no layer is eligible, or
    when it is not a functional / sequential Keras model.
    """
    try:
        cached = _VIEWS.get(model)
    except TypeError:  # not weakly referenceable
        cached = None
    if cached is not None:
        return cached
    view = _rewrite(model)
    if view is not model:  # caching the model as its own value would keep it alive forever
        try:
            _VIEWS[model] = view
        except TypeError:
            pass
    return view


def _rewrite(model: keras.Model) -> keras.Model:
    if not _has_eligible_layer(model):
        return model

    def clone(layer):
        if isinstance(layer, keras.Model):  # a nested model (e.g. behind a rescaling layer)
            return _rewrite(layer)
        wrapper = _wrapper_for(layer)
        return wrapper(layer) if wrapper is not None else layer  # same layer: shared weights

    try:
        return keras.models.clone_model(model, clone_function=clone)
    except ValueError:  # subclassed model: no graph of layers to rewrite
        return model


def _has_eligible_layer(model: keras.Model) -> bool:
    return any(_wrapper_for(layer) is not None
               or (isinstance(layer, keras.Model) and _has_eligible_layer(layer))
               for layer in getattr(model, "layers", ()))


# Compute dtypes whose layers of each kind are rewritten (module docstring).
CONV_DTYPES = ("float32", "bfloat16")
DENSE_DTYPES = ("float32",)


def _wrapper_for(layer):
    dtype = getattr(layer, "compute_dtype", None)
    if type(layer) is keras.layers.Conv2D and dtype in CONV_DTYPES and _conv_eligible(layer):
        return FastInputGradConv2D
    if type(layer) is keras.layers.Dense and dtype in DENSE_DTYPES and _dense_eligible(layer):
        return FastInputGradDense
    return None


def _conv_eligible(conv) -> bool:
    return (conv.data_format == "channels_last" and tuple(conv.strides) == (1, 1)
            and tuple(conv.dilation_rate) == (1, 1) and conv.groups == 1
            and conv.padding in ("same", "valid") and conv.built
            and conv.kernel.shape[2] <= MAX_CONV_INPUT_CHANNELS)


def _dense_eligible(dense) -> bool:
    return (dense.built and getattr(dense, "quantization_mode", None) is None
            and not getattr(dense, "lora_enabled", False))


def _same_padding(size: int) -> tuple[int, int]:
    """TensorFlow's SAME padding at stride 1: the odd pixel goes after."""
    return (size - 1) // 2, size - 1 - (size - 1) // 2


def conv2d_input_gradient(dy: tf.Tensor, kernel: tf.Tensor, input_hw: tuple[int, int],
                          padding: str) -> tf.Tensor:
    """Gradient of a stride-1 NHWC convolution with respect to its input.

    Args:
      dy: ``(B, H_out, W_out, C_out)`` upstream gradient, float32 or bfloat16.
      kernel: ``(k_h, k_w, C_in, C_out)``, ``dy``'s dtype.
      input_hw: ``(H, W)`` of the convolution's input.
      padding: ``"same"`` or ``"valid"``.
    Returns:
      ``(B, H, W, C_in)``: ``dx[h, w] = sum_{i, j} t[i, j][h + p_top - i, w + p_left - j]``
      with ``t[i, j] = dy @ kernel[i, j]^T`` (zero outside the output), i.e. the transposed
      convolution written as one matmul and ``k_h * k_w`` shifted sums, in ``dy``'s dtype.
      The matmul runs in that dtype; the shifted sums always add in float32 (bfloat16: one
      rounding at the end instead of one per partial sum).
    """
    kh, kw, c_in, c_out = kernel.shape
    h, w = input_hw
    ph = _same_padding(kh) if padding == "same" else (0, 0)
    pw = _same_padding(kw) if padding == "same" else (0, 0)
    batch = tf.shape(dy)[0]
    h_out, w_out = dy.shape[1], dy.shape[2]
    # Taps first: (k_h * k_w * C_in, B * H_out * W_out) straight out of the matmul, so each
    # tap is a contiguous stack of images and no large transpose is needed (a taps-last
    # layout lost its gain at batch 1000 to that transpose).
    taps = tf.matmul(tf.reshape(kernel, [kh * kw * c_in, c_out]),
                     tf.reshape(dy, [-1, c_out]), transpose_b=True)
    taps = tf.reshape(tf.cast(taps, tf.float32), [kh, kw, c_in, batch, h_out, w_out])
    # Zero-pad so that every shifted window below is in range (k - 1 - p on each side).
    taps = tf.pad(taps, [[0, 0], [0, 0], [0, 0], [0, 0], [kh - 1 - ph[0], kh - 1 - ph[1]],
                         [kw - 1 - pw[0], kw - 1 - pw[1]]])
    rows = []
    for i in range(kh):
        row = tf.add_n([taps[i, j, :, :, :, kw - 1 - j:kw - 1 - j + w] for j in range(kw)])
        rows.append(row[:, :, kh - 1 - i:kh - 1 - i + h])
    dx = tf.transpose(tf.add_n(rows), [1, 2, 3, 0])  # (C_in, B, H, W) -> (B, H, W, C_in)
    return tf.cast(dx, dy.dtype)


class FastInputGradConv2D(keras.layers.Layer):
    """Calls a Keras ``Conv2D`` (its own forward op and weights) with the input gradient of
    :func:`conv2d_input_gradient`. Input ``(B, H, W, C_in)``, output as the wrapped layer."""

    def __init__(self, conv: keras.layers.Conv2D):
        super().__init__(name=f"{conv.name}_fast_backward", dtype=conv.dtype_policy)
        self.conv = conv

    def call(self, inputs):
        conv = self.conv
        if inputs.shape[1] is None or inputs.shape[2] is None:
            return conv(inputs)  # the shifted sums need static sizes: stock kernels
        padding = conv.padding
        strides = [1, 1, 1, 1]

        @tf.custom_gradient
        def convolve(x, kernel):
            def grad(dy):
                dx = conv2d_input_gradient(dy, kernel, (x.shape[1], x.shape[2]), padding)
                dk = tf.raw_ops.Conv2DBackpropFilter(
                    input=x, filter_sizes=tf.shape(kernel), out_backprop=dy, strides=strides,
                    padding=padding.upper())
                return dx, dk
            return conv.convolution_op(x, kernel), grad

        outputs = convolve(inputs, tf.convert_to_tensor(conv.kernel))
        if conv.use_bias:  # as Keras' BaseConv.call
            outputs = keras.ops.add(outputs, keras.ops.reshape(conv.bias, (1, 1, 1, conv.filters)))
        return conv.activation(outputs) if conv.activation is not None else outputs

    def compute_output_shape(self, input_shape):
        return self.conv.compute_output_shape(input_shape)


class FastInputGradDense(keras.layers.Layer):
    """Calls a Keras ``Dense`` (its own weights) with the input gradient computed against an
    explicitly transposed kernel. Input ``(..., d_in)``, output as the wrapped layer."""

    def __init__(self, dense: keras.layers.Dense):
        super().__init__(name=f"{dense.name}_fast_backward", dtype=dense.dtype_policy)
        self.dense = dense

    def call(self, inputs):
        dense = self.dense

        @tf.custom_gradient
        def project(x, kernel):
            def grad(dy):
                # einsum transposes the kernel before its matmul; MatMul(transpose_b=True)
                # on the (d_in, d_out) kernel is the slow kernel this layer avoids.
                dx = tf.einsum("...j,ij->...i", dy, kernel)
                d_in, d_out = kernel.shape
                dk = tf.matmul(tf.reshape(x, [-1, d_in]), tf.reshape(dy, [-1, d_out]),
                               transpose_a=True)
                return dx, dk
            return keras.ops.matmul(x, kernel), grad  # Keras' own forward op

        outputs = project(inputs, tf.convert_to_tensor(dense.kernel))
        if dense.bias is not None:  # as Keras' Dense.call
            outputs = keras.ops.add(outputs, dense.bias)
        return dense.activation(outputs) if dense.activation is not None else outputs

    def compute_output_shape(self, input_shape):
        return self.dense.compute_output_shape(input_shape)
