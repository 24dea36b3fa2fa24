"""Images of any shape and pixel range: flat and image-shaped MNIST agree, a CIFAR-10-shaped
CNN on the 0-255 scale keeps every invariant."""
import keras
import numpy as np
import pytest

from attacks import METHODS, L2Step, LinfStep, blob_direction, perturb, predict
from attacks.config import APGD_METHODS
from attacks.fast_backward import FastInputGradConv2D, with_fast_input_gradient

N = 60


def _image_shaped(flat_model):
    """The same model taking ``(N, 28, 28, 1)`` images: a reshape in front of it (nested)."""
    inputs = keras.Input((28, 28, 1))
    return keras.Model(inputs, flat_model(keras.layers.Reshape((784,))(inputs)))


@pytest.fixture(scope="module")
def mnist_pair(shipped_mnist, mnist_test):
    x, y = mnist_test
    return shipped_mnist, _image_shaped(shipped_mnist), x[:N], y[:N]


@pytest.mark.parametrize("method,b,keep", [("pgd", None, "final"), ("pqgd", 100, "best"),
                                           ("blob_qg", 50, "final"), ("fgsm", None, "best")])
def test_flat_and_image_shaped_inputs_give_identical_results(mnist_pair, method, b, keep):
    flat_model, image_model, x, y = mnist_pair
    kw = dict(method=method, b=b, epsilon=0.3, seed=2, batch_size=25, keep=keep, restarts=2)
    if method != "fgsm":
        kw.update(steps=6, step_size=0.02, steps_per_group=4)
    flat = perturb(flat_model, x, y, **kw)
    image = perturb(image_model, x.reshape(-1, 28, 28, 1), y, **kw)
    assert image.shape == (N, 28, 28, 1)
    np.testing.assert_array_equal(image.reshape(N, 784), flat)


def test_the_fast_backward_view_reaches_into_a_nested_model(mnist_pair):
    _, image_model, _, _ = mnist_pair
    view = with_fast_input_gradient(image_model)
    inner = [layer for layer in view.layers if isinstance(layer, keras.Model)]
    assert len(inner) == 1
    assert any(isinstance(layer, FastInputGradConv2D) for layer in inner[0].layers)


@pytest.mark.parametrize("rule", [LinfStep(0.3, 0.01, np.sign, (0.0, 1.0)),
                                  L2Step(2.0, 0.1, np.sign, (0.0, 1.0))])
def test_random_start_draws_the_same_numbers_for_flat_and_image_shapes(mnist_test, rule):
    x = mnist_test[0][:7]
    flat = rule.random_perturb(x, np.random.default_rng(3))
    image = rule.random_perturb(x.reshape(7, 28, 28, 1), np.random.default_rng(3))
    np.testing.assert_array_equal(image.reshape(7, 784), flat)


def test_blob_direction_flattens_each_example(mnist_test):
    rng = np.random.default_rng(1)
    x = np.clip(mnist_test[0][:12] + rng.uniform(-0.3, 0.3, (12, 784)), 0, 1).astype(np.float32)
    g = rng.standard_normal((12, 784)).astype(np.float32)
    flat = blob_direction(x, g, 1.1).numpy()
    image = blob_direction(x.reshape(12, 28, 28, 1), g.reshape(12, 28, 28, 1), 1.1).numpy()
    np.testing.assert_allclose(image.reshape(12, 784), flat, rtol=1e-6, atol=1e-7)


# Methods that set their own step size (FGSM: epsilon; APGD: its schedule).
OWN_STEP_SIZE = ("fgsm", *APGD_METHODS)
CIFAR_ARGS = {"fgsm": {}, "pgd": dict(steps=3), "pqgd": dict(steps=3, b=100),
              "blob": dict(steps=3, steps_per_group=2), "blob_qg": dict(steps=3, b=50, steps_per_group=2),
              "apgd": dict(steps=3, b=10), "apgd_t": dict(steps=3, loss="dlr", num_targets=2),
              "multitargeted": dict(steps=3, b=10, num_targets=2), "interval": dict(steps=3, b=10)}
# The Interval Attack's boxes are L-inf: it refuses norm="l2" (tests/attacks/test_interval_attack.py).
CIFAR_CASES = [(m, *norm) for m in METHODS for norm in (("linf", 8.0, 2.0), ("l2", 300.0, 75.0))
               if not (m == "interval" and norm[0] == "l2")]


@pytest.mark.parametrize("method,norm,eps,step", CIFAR_CASES)
def test_cifar_shaped_cnn_on_0_255_keeps_every_invariant(cifar_cnn, method, norm, eps, step):
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 255, (10, 32, 32, 3)).astype(np.float32)
    x[:3] = np.round(x[:3] / 255) * 255  # saturated pixels at both bounds
    y = predict(cifar_cnn, x)  # correctly classified at the start: every attack must move
    kw = dict(CIFAR_ARGS[method])
    if method not in OWN_STEP_SIZE:
        kw["step_size"] = step
    for keep in ("final", "best"):
        out = perturb(cifar_cnn, x, y, method=method, epsilon=eps, norm=norm, bounds=(0, 255),
                      batch_size=4, seed=1, keep=keep, restarts=2, **kw)
        assert out.shape == x.shape and out.dtype == np.float32
        assert np.all(np.isfinite(out)) and out.min() >= 0 and out.max() <= 255
        rule = LinfStep if norm == "linf" else L2Step
        # float32 has ~1.5e-5 resolution near 255: the ball holds up to that rounding.
        assert rule.distance(out, x).max() <= eps * (1 + 1e-5) + 4 * np.spacing(np.float32(255))
        assert not np.array_equal(out, x)


def test_cifar_pgd_lowers_accuracy_on_the_0_255_scale(cifar_cnn):
    rng = np.random.default_rng(2)
    x = rng.uniform(0, 255, (40, 32, 32, 3)).astype(np.float32)
    y = predict(cifar_cnn, x)  # the model's own labels: clean accuracy 100%
    out = perturb(cifar_cnn, x, y, method="pgd", epsilon=8.0, steps=10, step_size=2.0,
                  bounds=(0, 255), seed=0)
    assert np.mean(predict(cifar_cnn, out) == y) < 0.5
