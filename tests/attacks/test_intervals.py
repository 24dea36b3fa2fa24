"""Interval bounds of logits over L-inf boxes (attacks.intervals): soundness on random chains
of every supported layer kind and on the project's models, exactness at width 0, nesting,
the interval loss's gradient against finite differences and a closed form, refusals."""
import keras
import numpy as np
import pytest
import tensorflow as tf
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import models
from attacks import intervals
from mnist_challenge_compat import load_model
from models.layers import ChannelZeroPadding, InferenceBatchNormalization, PerImageStandardization
from tests.conftest import REPO_ROOT

# Float32 slack for "inside the bounds": relative to the example's largest bound.
RTOL = 1e-5


def _slack(lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    scale = np.maximum(np.abs(lo).max(axis=1, keepdims=True), np.abs(hi).max(axis=1, keepdims=True))
    return RTOL * np.maximum(scale, 1.0)


def _assert_inside(model, lower, upper, points):
    """Every ``points[k]`` (a batch like ``lower``) has logits inside ``logit_bounds``."""
    lo, hi = (b.numpy() for b in intervals.logit_bounds(model, lower, upper))
    slack = _slack(lo, hi)
    for batch in points:
        assert np.all(batch >= lower) and np.all(batch <= upper)  # the test's own sampling
        z = model(batch).numpy()
        below, above = lo - slack - z, z - hi - slack
        assert below.max() <= 0 and above.max() <= 0, (
            f"logits outside the bounds by {max(below.max(), above.max())}")


def _samples(lower, upper, rng, count):
    """Uniform points of the box and random vertices of it."""
    uniform = [rng.uniform(lower, upper).astype(np.float32) for _ in range(count)]
    vertices = [np.where(rng.random(lower.shape) < 0.5, lower, upper).astype(np.float32)
                for _ in range(count)]
    return uniform + vertices


def _gradient_vertices(model, lower, upper):
    """For each logit j, the vertex of the box along the sign of dz_j/dx at the centre: the
    points where a bound that is too tight would show first."""
    centre = tf.constant((lower + upper) / 2)
    with tf.GradientTape(persistent=True) as tape:
        tape.watch(centre)
        z = model(centre)
        columns = [z[:, j] for j in range(z.shape[1])]
    out = []
    for column in columns:
        g = tape.gradient(column, centre).numpy()
        out += [np.where(g > 0, upper, lower).astype(np.float32),
                np.where(g > 0, lower, upper).astype(np.float32)]
    return out


# --- random chains of every supported layer kind ---------------------------------------

_BODY_KINDS = ("conv", "maxpool", "avgpool", "batchnorm", "relu", "leaky_relu", "activation",
               "standardize", "channel_pad", "dropout")
_HEADS = ("flatten", "reshape", "global_average", "global_max")
_ACTIVATIONS = (None, "relu", "leaky_relu", "tanh", "sigmoid", "elu", "softplus", "relu6")


def _randomize_batch_norm(layer, rng):
    """Gamma of both signs, nonzero means, variances away from 1."""
    shapes = [w.shape for w in layer.get_weights()]  # gamma, beta, moving mean, moving var
    layer.set_weights([rng.uniform(-2, 2, shapes[0]), rng.normal(0, 1, shapes[1]),
                       rng.normal(0, 1, shapes[2]), rng.uniform(0.1, 3, shapes[3])])


def _random_chain(kinds, head, seed, shape=(7, 7, 2), classes=4):
    """A functional chain: input -> body layers -> head -> Dense -> (BN) -> Dense logits."""
    rng = np.random.default_rng(seed)
    keras.utils.set_random_seed(seed)
    inputs = keras.Input(shape)
    x = inputs
    norms = []
    for kind in kinds:
        size = min(x.shape[1], x.shape[2])
        padding = "valid" if size >= 3 and rng.random() < 0.5 else "same"
        if kind == "conv":
            x = keras.layers.Conv2D(int(rng.integers(1, 4)), int(rng.integers(1, 4)),
                                    strides=int(rng.integers(1, 3)), padding=padding,
                                    activation=_ACTIVATIONS[rng.integers(len(_ACTIVATIONS))],
                                    use_bias=bool(rng.random() < 0.8),
                                    bias_initializer="random_normal")(x)
        elif kind == "maxpool":
            x = keras.layers.MaxPooling2D(2, int(rng.integers(1, 3)), padding=padding)(x)
        elif kind == "avgpool":
            x = keras.layers.AveragePooling2D(2, int(rng.integers(1, 3)), padding=padding)(x)
        elif kind == "batchnorm":
            layer = InferenceBatchNormalization(epsilon=1e-3)
            x = layer(x)
            norms.append(layer)
        elif kind == "relu":
            x = keras.layers.ReLU(max_value=float(rng.uniform(0.5, 3)) if rng.random() < 0.5
                                  else None, negative_slope=float(rng.uniform(0, 0.3)),
                                  threshold=float(rng.uniform(0, 0.5)))(x)
        elif kind == "leaky_relu":
            x = keras.layers.LeakyReLU(negative_slope=float(rng.uniform(0, 1)))(x)
        elif kind == "activation":
            x = keras.layers.Activation(("tanh", "sigmoid", "softsign", "selu")[rng.integers(4)])(x)
        elif kind == "standardize":
            x = PerImageStandardization()(x)
        elif kind == "channel_pad":
            x = ChannelZeroPadding(int(rng.integers(0, 2)), int(rng.integers(0, 2)))(x)
        elif kind == "dropout":
            x = keras.layers.Dropout(0.5)(x)
    x = {"flatten": keras.layers.Flatten(), "reshape": keras.layers.Reshape((-1,)),
         "global_average": keras.layers.GlobalAveragePooling2D(),
         "global_max": keras.layers.GlobalMaxPooling2D()}[head](x)
    x = keras.layers.Dense(5, activation=_ACTIVATIONS[rng.integers(len(_ACTIVATIONS))],
                           bias_initializer="random_normal")(x)
    if rng.random() < 0.5:
        layer = keras.layers.BatchNormalization()
        x = layer(x)
        norms.append(layer)
    logits = keras.layers.Dense(classes, bias_initializer="random_normal")(x)
    model = keras.Model(inputs, logits)
    for layer in norms:
        _randomize_batch_norm(layer, rng)
    return model


def _random_box(shape, rng, max_radius):
    centre = rng.uniform(-1, 1, shape).astype(np.float32)
    radius = rng.uniform(0, max_radius, shape).astype(np.float32)
    radius[rng.random(shape) < 0.2] = 0  # some coordinates fixed
    return centre - radius, centre + radius


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(kinds=st.lists(st.sampled_from(_BODY_KINDS), min_size=1, max_size=5),
       head=st.sampled_from(_HEADS), seed=st.integers(0, 2**31 - 1),
       max_radius=st.sampled_from([1e-3, 0.05, 0.5]))
def test_sampled_points_of_a_box_have_logits_inside_the_bounds_for_random_layer_chains(
        kinds, head, seed, max_radius):
    model = _random_chain(kinds, head, seed)
    rng = np.random.default_rng(seed)
    lower, upper = _random_box((3, 7, 7, 2), rng, max_radius)
    _assert_inside(model, lower, upper,
                   _samples(lower, upper, rng, 16) + _gradient_vertices(model, lower, upper))


@pytest.mark.parametrize("scale,offset", [(1 / 255, 0.0), (-0.5, 1.0), ((2.0, -1.0), (0.5, -0.25))])
def test_rescaling_bounds_contain_sampled_points_for_any_sign_of_the_scale(scale, offset):
    inputs = keras.Input((5, 5, 2))
    x = keras.layers.Rescaling(scale, offset)(inputs)
    x = keras.layers.Conv2D(3, 3, activation="relu")(x)
    model = keras.Model(inputs, keras.layers.Dense(4)(keras.layers.Flatten()(x)))
    rng = np.random.default_rng(3)
    lower, upper = _random_box((2, 5, 5, 2), rng, 0.3)
    _assert_inside(model, lower, upper,
                   _samples(lower, upper, rng, 16) + _gradient_vertices(model, lower, upper))
    lo, hi = (b.numpy() for b in intervals.logit_bounds(model, lower, lower))
    np.testing.assert_allclose(lo, model(lower).numpy(), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(hi, lo, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("kind", ["dense", "conv_valid_stride2", "conv_same_dilated",
                                  "batchnorm"])
def test_bounds_of_a_single_affine_layer_are_attained_at_the_vertices(kind):
    """For one affine map the interval is exact: logit j's maximum over the box is at the
    vertex along the sign of its weights; the bound must equal it, not only contain it."""
    keras.utils.set_random_seed(1)
    rng = np.random.default_rng(1)
    if kind == "dense":
        inputs = keras.Input((6,))
        out = keras.layers.Dense(3, bias_initializer="random_normal")(inputs)
    elif kind == "batchnorm":
        inputs = keras.Input((6,))
        layer = InferenceBatchNormalization()
        out = layer(inputs)
    else:
        inputs = keras.Input((5, 5, 2))
        conv = (keras.layers.Conv2D(2, 3, strides=2, padding="valid",
                                    bias_initializer="random_normal")
                if kind == "conv_valid_stride2" else
                keras.layers.Conv2D(2, 2, dilation_rate=2, padding="same"))
        out = keras.layers.Flatten()(conv(inputs))
    model = keras.Model(inputs, out)
    if kind == "batchnorm":
        _randomize_batch_norm(layer, rng)
    lower, upper = _random_box((2, *inputs.shape[1:]), rng, 0.3)
    lo, hi = (b.numpy() for b in intervals.logit_bounds(model, lower, upper))
    vertices = _gradient_vertices(model, lower, upper)  # [argmax z_j, argmin z_j] per j
    for j in range(lo.shape[1]):
        np.testing.assert_allclose(hi[:, j], model(vertices[2 * j]).numpy()[:, j], rtol=1e-5,
                                   atol=1e-5)
        np.testing.assert_allclose(lo[:, j], model(vertices[2 * j + 1]).numpy()[:, j],
                                   rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("image", ["random", "nearly_uniform"])
def test_per_image_standardization_bounds_contain_each_outputs_extreme_vertices(image):
    """The non-monotone layer alone, so nothing downstream hides a too-tight bound; a nearly
    uniform image has its standard deviation floored at 1/sqrt(n) in part of the box."""
    inputs = keras.Input((3, 3, 2))
    model = keras.Model(inputs, keras.layers.Flatten()(PerImageStandardization()(inputs)))
    rng = np.random.default_rng(3)
    if image == "random":
        centre = rng.uniform(0, 1, (4, 3, 3, 2)).astype(np.float32)
        radius = rng.uniform(0, 0.3, centre.shape).astype(np.float32)
    else:
        centre = np.full((4, 3, 3, 2), 0.5, np.float32) + rng.normal(0, 0.05, (4, 3, 3, 2))
        radius = np.full(centre.shape, 0.2, np.float32)
    lower, upper = (centre - radius).astype(np.float32), (centre + radius).astype(np.float32)
    _assert_inside(model, lower, upper,
                   _samples(lower, upper, rng, 32) + _gradient_vertices(model, lower, upper))


# --- the project's models -----------------------------------------------------------------


@pytest.fixture(scope="module")
def pretrained_mnist():
    """The shipped robust challenge model."""
    return load_model(REPO_ROOT / "models" / "pretrained" / "madry_mnist")


@pytest.fixture(scope="module")
def daa_random_bn():
    """The DAA Fashion-MNIST CNN (seed 0) with batch-norm statistics of both signs."""
    model = models.build_model("daa_fashion", seed=0)
    _randomize_batch_norm(model.get_layer("batch_normalization"), np.random.default_rng(0))
    return model


@pytest.fixture(scope="module")
def cifar_stem():
    """The CIFAR-10 network's chain before its first residual split: per-image
    standardization, init conv, batch norm, leaky ReLU (real layers, seed 0)."""
    net = models.build_model("madry_cifar10", seed=0)
    _randomize_batch_norm(net.get_layer("unit_1_0.shared_activation.BatchNorm"),
                          np.random.default_rng(2))
    return keras.Model(net.input, net.get_layer("unit_1_0.shared_activation.leaky_relu").output)


def _mnist_boxes(mnist_test, width, count=3):
    x = mnist_test[0][:count]
    return np.clip(x - width, 0, 1), np.clip(x + width, 0, 1)


@pytest.mark.parametrize("width", [0.01, 0.1, 0.3])
def test_pretrained_mnist_bounds_contain_sampled_points_around_real_images(
        pretrained_mnist, mnist_test, width):
    lower, upper = _mnist_boxes(mnist_test, width)
    rng = np.random.default_rng(5)
    _assert_inside(pretrained_mnist, lower, upper,
                   _samples(lower, upper, rng, 8)
                   + _gradient_vertices(pretrained_mnist, lower, upper))


@pytest.mark.parametrize("arch", ["madry_mnist", "daa_fashion"])
def test_fresh_project_models_bounds_contain_sampled_points(arch, daa_random_bn, mnist_test):
    model = daa_random_bn if arch == "daa_fashion" else models.build_model(arch, seed=0)
    lower, upper = _mnist_boxes(mnist_test, 0.01)
    rng = np.random.default_rng(6)
    _assert_inside(model, lower, upper,
                   _samples(lower, upper, rng, 8) + _gradient_vertices(model, lower, upper))


def test_cifar10_stem_bounds_contain_sampled_points(cifar_stem):
    rng = np.random.default_rng(7)
    centre = rng.uniform(0, 255, (2, 32, 32, 3)).astype(np.float32)
    lower, upper = np.clip(centre - 8, 0, 255), np.clip(centre + 8, 0, 255)
    lo, hi = (b.numpy() for b in intervals.logit_bounds(cifar_stem, lower, upper))
    for point in _samples(lower, upper, rng, 4):
        z = cifar_stem(point).numpy()
        slack = RTOL * np.maximum(np.abs(lo).max(), np.abs(hi).max())
        assert (z >= lo - slack).all() and (z <= hi + slack).all()


# --- width 0 and nesting ------------------------------------------------------------------


@pytest.mark.parametrize("name", ["pretrained_mnist", "daa_random_bn", "cifar_stem"])
def test_width_zero_bounds_equal_the_models_outputs(name, request, mnist_test):
    model = request.getfixturevalue(name)
    if name == "cifar_stem":
        x = np.random.default_rng(8).uniform(0, 255, (2, 32, 32, 3)).astype(np.float32)
    else:
        x = mnist_test[0][:4]
    lo, hi = (b.numpy() for b in intervals.logit_bounds(model, x, x))
    z = model(x).numpy()
    scale = np.abs(z).max()
    np.testing.assert_allclose(lo, z, rtol=0, atol=RTOL * scale)
    np.testing.assert_allclose(hi, z, rtol=0, atol=RTOL * scale)


def test_bounds_nest_and_shrink_to_the_logits_as_the_width_goes_to_zero(pretrained_mnist,
                                                                        mnist_test):
    x = mnist_test[0][:3]
    z = pretrained_mnist(x).numpy()
    widths = [0.3, 0.1, 0.03, 0.01, 1e-3, 1e-4, 1e-5, 1e-6, 0.0]
    bounds = [tuple(b.numpy() for b in intervals.logit_bounds(pretrained_mnist, x - w, x + w))
              for w in widths]
    slack = _slack(*bounds[0])
    for (lo_big, hi_big), (lo_small, hi_small) in zip(bounds, bounds[1:]):
        assert (lo_big <= lo_small + slack).all() and (hi_small <= hi_big + slack).all()
    spread = [float((hi - lo).max()) for lo, hi in bounds]
    assert all(a > b for a, b in zip(spread, spread[1:-1])), spread  # strictly, before 0
    # no jump at 0: below 1e-3 the distance to the logits falls in proportion to the width
    distance = {w: max(np.abs(lo - z).max(), np.abs(hi - z).max())
                for w, (lo, hi) in zip(widths, bounds)}
    for w in (1e-4, 1e-5, 1e-6):
        assert distance[w] <= 1.5 * distance[1e-3] * (w / 1e-3) + RTOL * np.abs(z).max()


# --- loss and direction -------------------------------------------------------------------


def test_worst_case_margins_are_wrong_upper_minus_true_lower_and_zero_for_the_label():
    lo = np.array([[0.0, 1.0, -2.0], [3.0, 0.5, 1.0]], np.float32)
    hi = np.array([[1.0, 4.0, 0.0], [5.0, 2.0, 1.5]], np.float32)
    y = np.array([1, 0])
    np.testing.assert_array_equal(intervals.worst_case_margins(lo, hi, y).numpy(),
                                  [[0.0, 0.0, -1.0], [0.0, -1.0, -1.5]])
    np.testing.assert_allclose(intervals.interval_loss(lo, hi, y, "margin").numpy(),
                               [0.0, -1.0])
    np.testing.assert_allclose(intervals.interval_loss(lo, hi, y, "xent").numpy(),
                               [np.log(1 + 1 + np.exp(-1)), np.log(1 + np.exp(-1) + np.exp(-1.5))],
                               rtol=1e-6)


def test_margin_direction_of_one_dense_layer_is_the_weight_difference_of_the_leading_class():
    """z = W x + b: hi_j - lo_y = (W_j - W_y) x + (|W_j| + |W_y|) w + b_j - b_y, so the
    direction is W_d - W_y for the class d with the largest such bound."""
    keras.utils.set_random_seed(4)
    inputs = keras.Input((5,))
    dense = keras.layers.Dense(4, bias_initializer="random_normal")
    model = keras.Model(inputs, dense(inputs))
    kernel, bias = (v.numpy() for v in (dense.kernel, dense.bias))
    rng = np.random.default_rng(4)
    x = rng.uniform(-1, 1, (6, 5)).astype(np.float32)
    y = rng.integers(0, 4, 6)
    w = 0.2
    margins = (x @ kernel + bias - (x @ kernel + bias)[np.arange(6), y][:, None]
               + w * (np.abs(kernel).sum(0)[None, :] + np.abs(kernel).sum(0)[y][:, None]))
    margins[np.arange(6), y] = -np.inf
    d = margins.argmax(1)
    expected = kernel[:, d].T - kernel[:, y].T
    got = intervals.interval_direction(model, x, y, w, loss="margin").numpy()
    np.testing.assert_allclose(got, expected, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("loss", ["xent", "margin"])
def test_interval_direction_matches_finite_differences_of_the_interval_loss(loss):
    keras.utils.set_random_seed(9)
    inputs = keras.Input((4, 4, 1))
    x = keras.layers.Conv2D(2, 3, activation="tanh", bias_initializer="random_normal")(inputs)
    x = keras.layers.Flatten()(x)
    x = keras.layers.Dense(6, activation="sigmoid")(x)
    model = keras.Model(inputs, keras.layers.Dense(3)(x))
    rng = np.random.default_rng(9)
    centre = rng.uniform(0.2, 0.8, (2, 4, 4, 1)).astype(np.float32)
    y = np.array([0, 2])
    width = np.array([0.05, 0.1], np.float32)

    def total(c: np.ndarray) -> float:
        lo, hi = intervals.logit_bounds(model, c - width[:, None, None, None],
                                        c + width[:, None, None, None])
        return float(tf.reduce_sum(intervals.interval_loss(lo, hi, y, loss)))

    grad = intervals.interval_direction(model, centre, y, width, loss=loss).numpy()
    assert grad.shape == centre.shape and grad.dtype == np.float32
    h = 1e-2
    for _ in range(6):
        v = rng.normal(size=centre.shape).astype(np.float32)
        numeric = (total(centre + h * v) - total(centre - h * v)) / (2 * h)
        np.testing.assert_allclose((grad * v).sum(), numeric, rtol=2e-3, atol=2e-4)


def test_width_zero_direction_is_the_gradient_of_the_loss_on_plain_logits(pretrained_mnist,
                                                                          mnist_test):
    x = tf.constant(mnist_test[0][:4])
    y = mnist_test[1][:4]
    with tf.GradientTape() as tape:
        tape.watch(x)
        z = pretrained_mnist(x)
        u = z - tf.gather(z, y, axis=1, batch_dims=1)[:, None]
        loss = tf.reduce_sum(tf.nn.sparse_softmax_cross_entropy_with_logits(labels=y, logits=u))
    expected = tape.gradient(loss, x).numpy()
    got = intervals.interval_direction(pretrained_mnist, x, y, 0.0).numpy()
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-6 * np.abs(expected).max())


def test_interval_direction_compiles_in_a_tf_function_to_the_eager_values(pretrained_mnist,
                                                                         mnist_test):
    x, y = mnist_test[0][:4], mnist_test[1][:4]
    width = np.array([0.0, 0.01, 0.05, 0.1], np.float32)
    compiled = tf.function(lambda x, y, w: intervals.interval_direction(
        pretrained_mnist, x, y, w, loss="margin", clip_min=0.0, clip_max=1.0))
    eager = intervals.interval_direction(pretrained_mnist, x, y, width, loss="margin",
                                         clip_min=0.0, clip_max=1.0).numpy()
    got = compiled(tf.constant(x), tf.constant(y), tf.constant(width)).numpy()
    np.testing.assert_allclose(got, eager, rtol=1e-5, atol=1e-5 * np.abs(eager).max())
    assert np.abs(eager).max() > 0


def test_clipped_box_ends_do_not_move_with_the_centre():
    """z = W x + b, margin bound (W_1 - W_0) . c + (|W_1| + |W_0|) . r + b_1 - b_0 with
    c, r the clipped box's centre and radius: a coordinate clipped on one side moves c and
    r by +-1/2 each, so its derivative is (W_1 - W_0 +- (|W_1| + |W_0|)) / 2."""
    inputs = keras.Input((3,))
    dense = keras.layers.Dense(2)
    model = keras.Model(inputs, dense(inputs))
    dense.kernel.assign(np.array([[1, -1], [2, 0], [0, 3]], np.float32))
    x = np.array([[0.05, 0.5, 0.95]], np.float32)  # clipped below, inside, clipped above
    unclipped = intervals.interval_direction(model, x, [0], 0.1, loss="margin").numpy()
    np.testing.assert_allclose(unclipped, [[-2, -2, 3]])
    clipped = intervals.interval_direction(model, x, [0], 0.1, loss="margin", clip_min=0.0,
                                           clip_max=1.0).numpy()
    np.testing.assert_allclose(clipped, [[(-2 + 2) / 2, -2, (3 - 3) / 2]])
    outside = np.array([[-0.5, 1.5, 2.0]], np.float32)  # the whole box clipped away
    clipped = intervals.interval_direction(model, outside, [0], 0.1, loss="margin",
                                           clip_min=0.0, clip_max=1.0).numpy()
    np.testing.assert_array_equal(clipped, np.zeros_like(outside))


# --- the reference's box widths -----------------------------------------------------------


def test_reference_widths_grow_threefold_from_0_01_up_to_half_epsilon():
    assert intervals.reference_widths(0.3) == pytest.approx((0.01, 0.03, 0.09, 0.15))
    assert intervals.reference_widths(0.1) == pytest.approx((0.01, 0.03, 0.05))
    assert intervals.reference_widths(0.01) == pytest.approx((0.005,))


def test_unverified_width_is_the_first_width_whose_bounds_leave_a_wrong_class_ahead(
        pretrained_mnist, mnist_test):
    x, y = mnist_test[0][:8], mnist_test[1][:8]
    widths = (0.0005, 0.001, 0.002, 0.003)
    got = intervals.unverified_width(pretrained_mnist, x, y, widths, 0.0, 1.0).numpy()
    ahead = []
    for w in widths:
        lo, hi = intervals.logit_bounds(pretrained_mnist, np.clip(x - w, 0, 1),
                                        np.clip(x + w, 0, 1))
        u = intervals.worst_case_margins(lo, hi, y).numpy()
        u[np.arange(len(y)), y] = -np.inf
        ahead.append(u.max(1) > 0)
    ahead = np.array(ahead)  # (widths, N)
    expected = np.where(ahead.any(0), np.array(widths)[ahead.argmax(0)], 0.0)
    np.testing.assert_allclose(got, expected)
    # the widths are chosen so that some examples stay verified (0) and others need
    # different widths: the choice is not the same for every example
    assert 0 in got and len(set(got.tolist())) >= 3


# --- refusals and bad input ---------------------------------------------------------------


def _chain_with(layer, shape=(4, 4, 1)):
    inputs = keras.Input(shape)
    x = layer(inputs)
    x = keras.layers.Flatten()(x)
    return keras.Model(inputs, keras.layers.Dense(2)(x))


@pytest.mark.parametrize("layer, message", [
    (keras.layers.Conv2DTranspose(2, 3, name="up"), "layer 'up' (Conv2DTranspose) has no"),
    (keras.layers.LayerNormalization(name="ln"), "layer 'ln' (LayerNormalization) has no"),
    (keras.layers.Conv2D(2, 3, activation="gelu", name="c"),
     "layer 'c' (Conv2D) has activation 'gelu', which is not monotone"),
    (keras.layers.Activation("swish", name="act"),
     "layer 'act' (Activation) has activation 'silu', which is not monotone"),
    (keras.layers.Conv2D(2, 3, dtype="bfloat16", name="half"),
     "layer 'half' (Conv2D) computes in bfloat16"),
])
def test_layers_without_a_sound_interval_rule_are_refused_by_name(layer, message):
    model = _chain_with(layer)
    for call in (lambda: intervals.check_interval_support(model),
                 lambda: intervals.logit_bounds(model, np.zeros((1, 4, 4, 1), np.float32),
                                                np.ones((1, 4, 4, 1), np.float32))):
        with pytest.raises(ValueError) as info:
            call()
        assert str(info.value).startswith(message) and "\n" not in str(info.value)


def test_the_residual_cifar10_network_is_refused_at_an_add_layer():
    net = models.build_model("madry_cifar10", seed=0)
    with pytest.raises(ValueError, match=r"^layer 'unit_\d_\d\.sub_add' \(Add\) takes 2 inputs"):
        intervals.check_interval_support(net)


def test_graph_ops_nested_models_and_unbuilt_models_are_refused():
    inputs = keras.Input((3,))
    with_op = keras.Model(inputs, keras.ops.abs(keras.layers.Dense(2)(inputs)))
    with pytest.raises(ValueError, match=r"\(Absolute\) has no interval rule"):
        intervals.check_interval_support(with_op)
    inner = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)], name="inner")
    outer_in = keras.Input((3,))
    with pytest.raises(ValueError, match=r"^layer 'inner' \(Sequential\) has no interval rule"):
        intervals.check_interval_support(keras.Model(outer_in, inner(outer_in)))
    with pytest.raises(ValueError, match="no defined inputs/outputs"):
        intervals.check_interval_support(keras.Sequential([keras.layers.Dense(2)]))


def test_a_quantized_dense_layer_is_refused():
    inputs = keras.Input((3,))
    model = keras.Model(inputs, keras.layers.Dense(2, name="q")(inputs))
    model.get_layer("q").quantize("int8")
    with pytest.raises(ValueError, match=r"^layer 'q' \(Dense\) is quantized"):
        intervals.check_interval_support(model)


def test_sequential_models_are_supported():
    keras.utils.set_random_seed(2)
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(4, activation="relu"),
                              keras.layers.Dense(2)])
    x = np.array([[0.1, -0.2, 0.3]], np.float32)
    lo, hi = intervals.logit_bounds(model, x, x)
    np.testing.assert_allclose(lo, model(x), atol=1e-6)
    np.testing.assert_allclose(hi, model(x), atol=1e-6)


@pytest.mark.parametrize("call, message", [
    (lambda m: intervals.logit_bounds(m, np.zeros((2, 3)), np.zeros((2, 4))),
     "upper has shape (2, 4); model"),
    (lambda m: intervals.logit_bounds(m, np.zeros((2, 3)), np.zeros((1, 3))),
     "lower and upper differ in shape"),
    (lambda m: intervals.logit_bounds(m, np.ones((1, 3)), np.zeros((1, 3))),
     "the box needs finite lower <= upper"),
    (lambda m: intervals.logit_bounds(m, np.full((1, 3), np.nan), np.zeros((1, 3))),
     "the box needs finite lower <= upper"),
    (lambda m: intervals.logit_bounds(m, np.full((1, 3), -np.inf), np.zeros((1, 3))),
     "the box needs finite lower <= upper"),
    (lambda m: intervals.interval_direction(m, np.zeros((1, 3)), [0], -0.1),
     "width must be finite and >= 0"),
    (lambda m: intervals.interval_direction(m, np.zeros((2, 3)), [0, 1], [0.1, 0.1, 0.1]),
     "width has 3 entries for 2 examples"),
    (lambda m: intervals.interval_direction(m, np.zeros((1, 3)), [0], 0.1, loss="cw"),
     "unknown interval loss 'cw'"),
    (lambda m: intervals.unverified_width(m, np.zeros((1, 3)), [0], (0.1, 0.01)),
     "widths must be increasing positive numbers"),
    (lambda m: intervals.reference_widths(0.0), "reference widths need epsilon > 0"),
])
def test_bad_input_gets_a_one_line_error(call, message):
    inputs = keras.Input((3,))
    model = keras.Model(inputs, keras.layers.Dense(2)(inputs))
    with pytest.raises(ValueError) as info:
        call(model)
    assert str(info.value).startswith(message) and "\n" not in str(info.value)
