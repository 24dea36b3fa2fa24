"""The L2 step rule against numpy formulas, and L2 attacks staying inside the ball."""
import numpy as np
import pytest
import tensorflow as tf
from hypothesis import HealthCheck, given, settings, strategies as st

from attacks import METHODS, L2Step, StepRunner, gradient_direction, perturb, quantized_unit, raw_unit
from attacks.config import APGD_METHODS
from tests.attacks.conftest import numpy_quantize


def _np_norm(v):
    return np.sqrt((v.astype(np.float64) ** 2).reshape(len(v), -1).sum(axis=1))


@pytest.fixture(scope="module")
def images():
    rng = np.random.default_rng(0)
    x = rng.random((8, 28, 28, 1), dtype=np.float32)
    d = rng.standard_normal((8, 28, 28, 1)).astype(np.float32)
    d[0] = 0.0  # a zero direction leaves its example in place
    return x, d


def test_step_is_a_times_the_direction_over_its_l2_norm(images):
    x, d = images
    out = L2Step(1.0, 0.25, raw_unit()).step(tf.constant(x), tf.constant(d)).numpy()
    norm = _np_norm(d).reshape(-1, 1, 1, 1)
    want = x + 0.25 * d / np.where(norm > 0, norm, 1)
    np.testing.assert_allclose(out, want, rtol=1e-6, atol=1e-6)
    np.testing.assert_array_equal(out[0], x[0])
    np.testing.assert_allclose(_np_norm(out - x)[1:], 0.25, rtol=1e-5)


def test_quantized_l2_step_normalises_the_quantized_direction(images):
    x, d = images
    out = L2Step(1.0, 0.25, quantized_unit(20)).step(tf.constant(x), tf.constant(d)).numpy()
    q = numpy_quantize(d.reshape(8, -1), 20).reshape(d.shape)
    norm = _np_norm(q).reshape(-1, 1, 1, 1)
    np.testing.assert_allclose(out, x + 0.25 * q / np.where(norm > 0, norm, 1), rtol=1e-6, atol=1e-6)


def test_projection_scales_into_the_ball_then_clips_to_bounds(images):
    x_nat, d = images
    eps = 2.0
    x = x_nat + 0.5 * d  # norms ~ 14: far outside the ball, and outside [0, 1]
    out = L2Step(eps, 0.1, raw_unit()).project(tf.constant(x), tf.constant(x_nat)).numpy()
    delta = (x - x_nat).astype(np.float64)
    norm = _np_norm(delta).reshape(-1, 1, 1, 1)
    want = np.clip(x_nat + delta * np.minimum(1, eps / np.where(norm > 0, norm, 1)), 0, 1)
    np.testing.assert_allclose(out, want, rtol=1e-6, atol=1e-6)
    assert np.all(_np_norm(out - x_nat) <= eps * (1 + 1e-6))
    inside = x_nat + 0.01 * d
    np.testing.assert_array_equal(
        L2Step(eps, 0.1, raw_unit(), (-10.0, 10.0)).project(tf.constant(inside), tf.constant(x_nat)).numpy(),
        inside)


def test_random_start_is_uniform_in_the_l2_ball():
    dims, n, eps = 3, 20000, 1.5
    x_nat = np.zeros((n, dims), np.float32)
    start = L2Step(eps, 0.1, raw_unit(), (-10.0, 10.0)).random_perturb(x_nat, np.random.default_rng(0))
    r = _np_norm(start) / eps
    assert r.max() <= 1.0
    # Uniform in a 3-ball: P(r <= s) = s^3, so E[r] = 3/4 and P(r <= 1/2) = 1/8.
    assert abs(r.mean() - 0.75) < 0.01 and abs(np.mean(r <= 0.5) - 0.125) < 0.01
    assert np.abs((start / _np_norm(start)[:, None]).mean(axis=0)).max() < 0.02  # isotropic


def test_one_l2_pgd_step_on_a_model_equals_the_numpy_formula(tiny_model):
    rng = np.random.default_rng(1)
    x_nat = rng.random((5, 784), dtype=np.float32)
    y = rng.integers(0, 10, 5)
    runner = StepRunner(tiny_model, "xent", L2Step(1.0, 0.3, raw_unit()), gradient_direction())
    g = runner.gradient(x_nat, y).numpy()
    out = perturb(tiny_model, x_nat, y, method="pgd", norm="l2", epsilon=1.0, steps=1,
                  step_size=0.3, random_start=False)
    want = np.clip(x_nat + 0.3 * g / _np_norm(g)[:, None], 0, 1)
    np.testing.assert_allclose(out, want, rtol=1e-5, atol=1e-6)


METHOD_ARGS = {
    "fgsm": {}, "pgd": dict(steps=3), "pqgd": dict(steps=3, b=200),
    "blob": dict(steps=3, steps_per_group=2), "blob_qg": dict(steps=3, b=50, steps_per_group=2),
    "apgd": dict(steps=3), "apgd_t": dict(steps=3, b=20, loss="dlr", num_targets=3),
    "multitargeted": dict(steps=3, b=20, num_targets=2),
}
# Methods that set their own step size (FGSM: epsilon; APGD: its schedule).
OWN_STEP_SIZE = ("fgsm", *APGD_METHODS)


# The Interval Attack's boxes are L-inf: it refuses norm="l2" (tests/attacks/test_interval_attack.py).
L2_METHODS = [m for m in METHODS if m != "interval"]


@pytest.mark.parametrize("method", L2_METHODS)
@settings(max_examples=5, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(n=st.integers(1, 7), eps=st.sampled_from([0.1, 1.0, 3.0, 30.0]), step=st.sampled_from([0.05, 0.5, 5.0]),
       batch=st.integers(1, 4), seed=st.integers(0, 2**16), keep=st.sampled_from(["final", "best"]))
def test_l2_attacks_stay_inside_the_ball_and_the_bounds(tiny_model, method, n, eps, step, batch, seed, keep):
    rng = np.random.default_rng(seed)
    x = np.round(rng.random((n, 784), dtype=np.float32) * 2) / 2
    y = rng.integers(0, 10, n)
    kw = dict(METHOD_ARGS[method])
    if method not in OWN_STEP_SIZE:
        kw["step_size"] = step
    out = perturb(tiny_model, x, y, method=method, norm="l2", epsilon=eps, batch_size=batch,
                  seed=seed, restarts=2, keep=keep, **kw)
    assert out.shape == x.shape and out.dtype == np.float32 and np.all(np.isfinite(out))
    assert out.min() >= 0.0 and out.max() <= 1.0
    assert _np_norm(out - x).max() <= eps * (1 + 1e-5)
