"""Input gradients of the xent and CW losses against central finite differences."""
import numpy as np
import pytest
import tensorflow as tf

from attacks import LOSSES, make_loss, per_example_loss
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


# --- Every loss against a numpy formula written here, untargeted and targeted. -------------

def _np_others_max(z, labels):
    masked = z.copy()
    masked[np.arange(len(z)), labels] = -np.inf
    return masked.max(axis=1)


def _np_xent(z, labels):
    shifted = z - z.max(axis=1, keepdims=True)
    log_p = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    return -log_p[np.arange(len(z)), labels]


def _np_loss(name, z, y, t, kappa=50.0):
    z = z.astype(np.float64)
    rows = np.arange(len(z))
    s = -np.sort(-z, axis=1)  # descending: s[:, 0] = z_pi1
    if t is None:
        return {"xent": lambda: _np_xent(z, y),
                "cw": lambda: -np.maximum(z[rows, y] - _np_others_max(z, y) + kappa, 0),
                "dlr": lambda: -(z[rows, y] - _np_others_max(z, y)) / (s[:, 0] - s[:, 2] + 1e-12),
                "logit_margin": lambda: _np_others_max(z, y) - z[rows, y]}[name]()
    return {"xent": lambda: -_np_xent(z, t),
            "cw": lambda: -np.maximum(_np_others_max(z, t) - z[rows, t] + kappa, 0),
            "dlr": lambda: -(z[rows, y] - z[rows, t]) / (s[:, 0] - (s[:, 2] + s[:, 3]) / 2 + 1e-12),
            "logit_margin": lambda: z[rows, t] - _np_others_max(z, t)}[name]()


@pytest.fixture(scope="module")
def logits_labels():
    rng = np.random.default_rng(4)
    z = (rng.standard_normal((64, 10)) * 5).astype(np.float32)
    y = rng.integers(0, 10, 64)
    z[:16, :] -= 100.0  # all logits negative: the masked max must not pick the masked class
    z[16:24, y[16:24]] += 30.0  # the true class on top: DLR's second-largest branch
    t = (y + rng.integers(1, 10, 64)) % 10
    return z, y, t


@pytest.mark.parametrize("name", LOSSES)
@pytest.mark.parametrize("targeted", [False, True])
def test_each_loss_equals_its_numpy_formula(logits_labels, name, targeted):
    z, y, t = logits_labels
    got = per_example_loss(tf.constant(z), tf.constant(y), name,
                           y_target=tf.constant(t) if targeted else None).numpy()
    want = _np_loss(name, z, y, t if targeted else None)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-4)


@pytest.mark.parametrize("targeted", [False, True])
def test_cw_margin_kappa_is_configurable(logits_labels, targeted):
    z, y, t = logits_labels
    for kappa in (0.0, 5.0):
        got = per_example_loss(tf.constant(z), tf.constant(y), "cw", kappa=kappa,
                               y_target=tf.constant(t) if targeted else None).numpy()
        np.testing.assert_allclose(got, _np_loss("cw", z, y, t if targeted else None, kappa),
                                   rtol=1e-5, atol=1e-4)


def test_a_loss_callable_is_called_with_logits_and_labels(logits_labels):
    z, y, t = logits_labels
    def top_logit_gap(logits, labels):
        return tf.reduce_max(logits, axis=1) - tf.gather(logits, labels, batch_dims=1)
    got = make_loss(top_logit_gap)(tf.constant(z), tf.constant(y), tf.constant(t)).numpy()
    np.testing.assert_allclose(got, z.max(axis=1) - z[np.arange(len(z)), y])
    targeted = make_loss(lambda logits, labels, target: tf.gather(logits, target, batch_dims=1),
                         targeted=True)
    np.testing.assert_array_equal(targeted(tf.constant(z), tf.constant(y), tf.constant(t)).numpy(),
                                  z[np.arange(len(z)), t])


@pytest.mark.parametrize("loss,targeted", [("dlr", False), ("logit_margin", False), ("xent", True),
                                           ("logit_margin", True), ("dlr", True), ("cw", True)])
def test_new_losses_input_gradient_matches_finite_differences(tiny_model, loss, targeted):
    rng = np.random.default_rng(5)
    x = rng.random((6, 784)).astype(np.float32)
    y = rng.integers(0, 10, 6)
    t = (y + 1 + rng.integers(0, 9, 6)) % 10
    fn = make_loss(loss, targeted=targeted)
    runner = StepRunner(tiny_model, fn, LinfStep(0.1, 0.01, sign_unit()), gradient_direction())
    g = runner.gradient(x, y, y_target=t).numpy()

    def value(xs):
        return fn(tf.cast(tiny_model(xs), tf.float32), tf.constant(y), tf.constant(t)).numpy()
    h = 1e-2
    v = rng.standard_normal((6, 784)).astype(np.float32)
    v /= np.linalg.norm(v, axis=1, keepdims=True)
    numeric = (value(x + h * v) - value(x - h * v)) / (2 * h)
    np.testing.assert_allclose(np.sum(g * v, axis=1), numeric, rtol=3e-2, atol=3e-4)


def test_kappa_is_refused_for_losses_other_than_cw():
    with pytest.raises(ValueError, match="kappa"):
        make_loss("xent", kappa=10.0)


@pytest.mark.parametrize("loss,targeted,classes", [("dlr", False, 2), ("dlr", True, 3)])
def test_dlr_is_refused_for_too_few_classes(loss, targeted, classes):
    with pytest.raises(ValueError, match=f"needs at least {classes + 1} classes"):
        make_loss(loss, targeted=targeted).check(classes)


def test_a_loss_callable_of_the_wrong_shape_is_refused():
    with pytest.raises(ValueError, match=r"loss callable must return one value per example"):
        make_loss(lambda logits, y: tf.reduce_sum(logits)).check(10)
