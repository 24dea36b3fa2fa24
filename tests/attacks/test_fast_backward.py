"""The fast-input-gradient view of a model: same logits, same gradients, shared weights."""
import keras
import numpy as np
import pytest
import tensorflow as tf

from attacks import AttackConfig, attack_model, make_runner
from attacks.api import model_for_dtype
from attacks.engine import StepRunner, gpu_available
from attacks.fast_backward import (FastInputGradConv2D, FastInputGradDense,
                                   conv2d_input_gradient, with_fast_input_gradient)
from attacks.precision import model_in_dtype
from mnist_challenge_compat import load_model
from tests.tf1_reference import TF1Model, make_tf1_checkpoint, meta_for


def _tape_gradient(model, x, y, loss="xent"):
    from attacks.losses import per_example_loss
    x = tf.constant(x)
    with tf.GradientTape() as tape:
        tape.watch(x)
        total = tf.reduce_sum(per_example_loss(model(x), tf.constant(y), loss))
    return tape.gradient(total, x).numpy()


@pytest.fixture(scope="module", params=["madry_mnist", "daa_fashion"])
def real_graph_pair(request, tmp_path_factory, shared_data):
    """(Keras model, TF1Model of the real published graph) sharing random TF1 weights."""
    meta = meta_for(request.param, shared_data)
    out = tmp_path_factory.mktemp(request.param)
    tf1 = TF1Model(meta, make_tf1_checkpoint(meta, out, seed=11))
    yield load_model(out), tf1
    tf1.close()


def test_the_view_rewrites_the_grayscale_conv_and_the_dense_layers_only(real_graph_pair):
    model, _ = real_graph_pair
    view = with_fast_input_gradient(model)
    wrapped = {layer.conv.name for layer in view.layers if isinstance(layer, FastInputGradConv2D)}
    assert wrapped == {"conv1"}  # conv2.. have 32+ input channels: stock kernel is faster
    dense = {layer.dense.name for layer in view.layers if isinstance(layer, FastInputGradDense)}
    assert dense == {"fc1", "fc2"}


def test_logits_are_bit_identical_and_gradients_equal_the_real_tf1_graph(real_graph_pair, mnist_test):
    model, tf1 = real_graph_pair
    x, y = mnist_test[0][:64], mnist_test[1][:64]
    view = with_fast_input_gradient(model)
    np.testing.assert_array_equal(view(x).numpy(), model(x).numpy())
    for loss in ("xent", "cw"):
        want = tf1.input_gradient(x, y, loss)
        got = _tape_gradient(view, x, y, loss)
        scale = np.abs(want).max(axis=1, keepdims=True)
        assert np.all(np.abs(got - want) <= 1e-5 * scale + 1e-12), loss
        assert np.mean(np.sign(got) == np.sign(want)) >= 0.9999


def test_pgd_on_the_view_takes_the_same_steps_as_on_the_stock_model(challenge_pair, mnist_test):
    model, _ = challenge_pair
    x, y = mnist_test[0][:100], mnist_test[1][:100]
    config = AttackConfig(method="pgd", epsilon=0.3, steps=20, step_size=0.01).resolved()
    stock = StepRunner(model, "xent", config.step_rule(), config.direction())
    fast = StepRunner(with_fast_input_gradient(model), "xent", config.step_rule(),
                      config.direction())
    assert np.mean(stock.run(x, x, y, 20) == fast.run(x, x, y, 20)) >= 0.999


def test_make_runner_differentiates_the_view_on_cpu_and_the_model_itself_on_gpu(challenge_pair):
    model, _ = challenge_pair
    runner = make_runner(model, AttackConfig(method="pgd", epsilon=0.3, steps=1, step_size=0.01))
    want = model if gpu_available() else with_fast_input_gradient(model)
    assert runner._model is want
    assert attack_model(model) is want


@pytest.mark.parametrize("padding", ["same", "valid"])
@pytest.mark.parametrize("kernel_hw,c_in", [((5, 5), 1), ((4, 4), 1), ((3, 2), 3), ((1, 1), 2)])
def test_conv_input_gradient_equals_tensorflows_kernel(padding, kernel_hw, c_in):
    rng = np.random.default_rng(0)
    kernel = rng.normal(size=(*kernel_hw, c_in, 6)).astype(np.float32)
    x = rng.normal(size=(3, 9, 11, c_in)).astype(np.float32)
    out_shape = tf.nn.conv2d(x, kernel, 1, padding.upper()).shape
    dy = rng.normal(size=out_shape).astype(np.float32)
    want = tf.raw_ops.Conv2DBackpropInput(input_sizes=x.shape, filter=kernel, out_backprop=dy,
                                          strides=[1, 1, 1, 1], padding=padding.upper())
    got = conv2d_input_gradient(tf.constant(dy), tf.constant(kernel), (9, 11), padding)
    np.testing.assert_allclose(got.numpy(), want.numpy(), rtol=1e-5, atol=1e-5)


def _all_gradients(model, x):
    x = tf.constant(x)
    with tf.GradientTape() as tape:
        tape.watch(x)
        out = model(x)
        total = tf.reduce_sum(out * tf.cos(tf.range(out.shape[-1], dtype=tf.float32)))
    grads = tape.gradient(total, [x] + model.trainable_variables)
    return out.numpy(), [g.numpy() for g in grads]


@pytest.mark.parametrize("padding", ["same", "valid"])
def test_wrapped_layers_give_the_stock_output_and_every_gradient(padding):
    keras.utils.set_random_seed(5)
    inputs = keras.Input((10, 10, 3))
    h = keras.layers.Conv2D(4, 3, padding=padding, activation="relu")(inputs)
    h = keras.layers.Reshape((-1, 4))(h)
    h = keras.layers.Dense(5, activation="tanh")(h)  # on a rank-3 input
    h = keras.layers.Flatten()(h)
    model = keras.Model(inputs, keras.layers.Dense(3)(h))
    view = with_fast_input_gradient(model)
    assert sum(isinstance(layer, (FastInputGradConv2D, FastInputGradDense)) for layer in view.layers) == 3
    x = np.random.default_rng(1).normal(size=(4, 10, 10, 3)).astype(np.float32)
    out_stock, grads_stock = _all_gradients(model, x)
    out_view, grads_view = _all_gradients(view, x)
    np.testing.assert_array_equal(out_view, out_stock)
    assert len(grads_view) == len(grads_stock)
    for got, want in zip(grads_view, grads_stock):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


def test_the_view_shares_the_models_variables_and_is_made_once(tiny_model):
    view = with_fast_input_gradient(tiny_model)
    assert view is not tiny_model and with_fast_input_gradient(tiny_model) is view
    assert {id(v) for v in view.weights} == {id(v) for v in tiny_model.weights}
    x = np.random.default_rng(2).uniform(size=(5, 784)).astype(np.float32)
    original = tiny_model.get_weights()
    try:
        tiny_model.set_weights([w * 1.5 for w in original])
        np.testing.assert_array_equal(view(x).numpy(), tiny_model(x).numpy())
    finally:
        tiny_model.set_weights(original)


def test_layers_outside_the_measured_shapes_and_bfloat16_dense_layers_are_left_alone(tiny_model):
    inputs = keras.Input((12, 12, 2))
    h = keras.layers.Conv2D(2, 3, dilation_rate=2)(inputs)
    h = keras.layers.Conv2D(16, 3, strides=2)(h)
    h = keras.layers.Conv2D(8, 3, padding="same")(h)  # 16 input channels
    model = keras.Model(inputs, h)
    assert with_fast_input_gradient(model) is model
    bf16 = model_in_dtype(tiny_model, "bfloat16")  # Dense layers only
    assert with_fast_input_gradient(bf16) is bf16
    assert model_for_dtype(tiny_model, "bfloat16") is bf16


def _grayscale_cnn(seed: int) -> keras.Model:
    keras.utils.set_random_seed(seed)
    inputs = keras.Input((12, 12, 1))
    h = keras.layers.Conv2D(8, 5, padding="same", activation="relu")(inputs)
    h = keras.layers.Conv2D(4, 3, activation="relu")(h)  # 8 input channels: stock kernel
    h = keras.layers.Flatten()(h)
    return keras.Model(inputs, keras.layers.Dense(10)(h))


@pytest.mark.parametrize("padding", ["same", "valid"])
def test_bfloat16_conv_input_gradient_is_within_bfloat16_rounding_of_the_exact_one(padding):
    rng = np.random.default_rng(4)
    kernel = tf.cast(rng.normal(size=(5, 5, 1, 32)).astype(np.float32), tf.bfloat16)
    out_hw = (28, 28) if padding == "same" else (24, 24)
    dy = tf.cast(rng.normal(size=(3, *out_hw, 32)).astype(np.float32), tf.bfloat16)
    got = conv2d_input_gradient(dy, kernel, (28, 28), padding)
    assert got.dtype == tf.bfloat16

    def transposed(k, d):  # float32 Conv2DBackpropInput of the bfloat16 values
        return tf.raw_ops.Conv2DBackpropInput(
            input_sizes=[3, 28, 28, 1], filter=tf.cast(k, tf.float32),
            out_backprop=tf.cast(d, tf.float32), strides=[1, 1, 1, 1],
            padding=padding.upper()).numpy()
    exact = transposed(kernel, dy)
    # Each of the 25 taps is rounded once to bfloat16 (unit roundoff 2^-8), the float32 sum
    # of them once more: |error| <= 2^-8 (sum |taps| + |dx|) <= 2^-7 * (|kernel| conv |dy|).
    bound = 2.0 ** -7 * transposed(tf.abs(kernel), tf.abs(dy))
    error = np.abs(got.numpy().astype(np.float32) - exact)
    assert np.all(error <= bound + 1e-6)
    assert error.max() > 0  # bfloat16 really rounded: the bound is what is tested


def test_a_bfloat16_model_rewrites_its_grayscale_conv_with_identical_logits():
    model = _grayscale_cnn(7)
    bf16 = model_in_dtype(model, "bfloat16")
    view = with_fast_input_gradient(bf16)
    assert [l.conv.name for l in view.layers if isinstance(l, FastInputGradConv2D)] == \
        [bf16.layers[1].name]
    assert not any(isinstance(l, FastInputGradDense) for l in view.layers)
    assert model_for_dtype(model, "bfloat16") is (bf16 if gpu_available() else view)
    x = np.random.default_rng(8).uniform(size=(16, 12, 12, 1)).astype(np.float32)
    np.testing.assert_array_equal(view(x).numpy(), bf16(x).numpy())
    # The input gradient against the float32 one of the same (bfloat16-rounded) weights:
    # no further from it than a bfloat16 rounding of the stock bfloat16 gradient's error.
    y = np.arange(16) % 10
    exact_model = _grayscale_cnn(7)
    exact_model.set_weights([np.asarray(w, np.float32) for w in bf16.get_weights()])
    exact = _tape_gradient(exact_model, x, y)
    stock = _tape_gradient(bf16, x, y).astype(np.float32)
    fast = _tape_gradient(view, x, y).astype(np.float32)
    scale = np.abs(exact).max()
    assert np.abs(fast - exact).max() <= 2 * np.abs(stock - exact).max() + 2 ** -8 * scale
    assert np.abs(fast - exact).mean() <= 1.5 * np.abs(stock - exact).mean()


def test_images_of_unknown_size_fall_back_to_the_stock_kernels():
    keras.utils.set_random_seed(6)
    inputs = keras.Input((None, None, 1))
    model = keras.Model(inputs, keras.layers.Conv2D(3, 3, padding="same")(inputs))
    view = with_fast_input_gradient(model)
    assert view is not model
    x = np.random.default_rng(3).normal(size=(2, 7, 9, 1)).astype(np.float32)

    def traced_input_gradient(m):  # traced with unknown sizes, as a shape-generic loop would
        @tf.function(input_signature=[tf.TensorSpec([None, None, None, 1], tf.float32)])
        def grad(x):
            with tf.GradientTape() as tape:
                tape.watch(x)
                total = tf.reduce_sum(tf.sin(m(x)))
            return tape.gradient(total, x)
        return grad(x).numpy()
    np.testing.assert_array_equal(traced_input_gradient(view), traced_input_gradient(model))
