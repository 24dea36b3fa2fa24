"""Input gradients of the xent and CW losses against central finite differences."""
import numpy as np
import pytest
import tensorflow as tf

from attacks import per_example_loss
from attacks.directions import gradient_direction
from attacks.engine import StepRunner
from attacks.steps import LinfStep, sign_unit


def _loss_np(model, x, y, loss):
    return per_example_loss(tf.cast(model(x), tf.float32), tf.constant(y), loss).numpy()


@pytest.mark.parametrize("loss", ["xent", "cw"])
def test_input_gradient_matches_finite_differences(tiny_model, loss):
    rng = np.random.default_rng(0)
    x = rng.random((6, 784)).astype(np.float32)
    y = rng.integers(0, 10, 6)
    runner = StepRunner(tiny_model, loss, LinfStep(0.1, 0.01, sign_unit()), gradient_direction())
    g = runner.gradient(tf.constant(x), tf.constant(y, tf.int64)).numpy()
    h = 1e-2
    for _ in range(3):
        v = rng.standard_normal((6, 784)).astype(np.float32)
        v /= np.linalg.norm(v, axis=1, keepdims=True)
        # Each example's own loss: the directional derivative of example i is g_i . v_i.
        numeric = (_loss_np(tiny_model, x + h * v, y, loss) - _loss_np(tiny_model, x - h * v, y, loss)) / (2 * h)
        analytic = np.sum(g * v, axis=1)
        np.testing.assert_allclose(analytic, numeric, rtol=2e-2, atol=2e-4)


def test_gradient_is_not_divided_by_batch_size(tiny_model):
    rng = np.random.default_rng(1)
    x = rng.random((8, 784)).astype(np.float32)
    y = rng.integers(0, 10, 8)
    runner = StepRunner(tiny_model, "xent", LinfStep(0.1, 0.01, sign_unit()), gradient_direction())
    batch = runner.gradient(tf.constant(x), tf.constant(y, tf.int64)).numpy()
    single = runner.gradient(tf.constant(x[:1]), tf.constant(y[:1], tf.int64)).numpy()
    np.testing.assert_allclose(batch[:1], single, rtol=1e-3, atol=1e-7)


def test_cw_loss_is_the_challenge_formula():
    z = np.array([[1.0, 5.0, 2.0], [3.0, -1.0, 60.0]], np.float32)
    y = np.array([0, 2])
    out = per_example_loss(tf.constant(z), tf.constant(y), "cw").numpy()
    np.testing.assert_allclose(out, [-max(1 - 5 + 50, 0), -max(60 - 3 + 50, 0)])


def test_unknown_loss_is_rejected():
    with pytest.raises(ValueError, match="unknown loss"):
        per_example_loss(tf.zeros((1, 10)), tf.zeros((1,), tf.int64), "hinge")
