"""Invariants every method keeps, whatever the inputs (property tests on a small model)."""
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from attacks import METHODS, perturb

METHOD_ARGS = {
    "fgsm": {}, "pgd": dict(steps=3, step_size=0.05), "pqgd": dict(steps=3, step_size=0.05, b=200),
    "blob": dict(steps=3, step_size=0.05, steps_per_group=2),
    "blob_qg": dict(steps=3, step_size=0.05, b=50, steps_per_group=2),
    "apgd": dict(steps=3), "apgd_t": dict(steps=3, b=30, num_targets=2),
    "multitargeted": dict(steps=3, step_size=0.05, b=30, num_targets=2),
    "interval": dict(steps=3, step_size=0.05, b=30, interval_steps=2),
}


@pytest.mark.parametrize("method", METHODS)
@settings(max_examples=6, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(n=st.integers(1, 9), eps=st.sampled_from([0.01, 0.1, 0.3, 1.0]),
       loss=st.sampled_from(["xent", "cw"]), batch=st.integers(1, 4), seed=st.integers(0, 2**16),
       saturate=st.booleans())
def test_output_stays_in_eps_ball_and_unit_box(tiny_model, method, n, eps, loss, batch, seed, saturate):
    rng = np.random.default_rng(seed)
    x = rng.random((n, 784), dtype=np.float32)
    if saturate:  # real digits are mostly exact 0s and 1s
        x = np.round(x)
    y = rng.integers(0, 10, n)
    out = perturb(tiny_model, x, y, method=method, epsilon=eps, loss=loss, batch_size=batch,
                  seed=seed, restarts=2, **METHOD_ARGS[method])
    assert out.shape == x.shape and out.dtype == np.float32
    assert np.all(np.isfinite(out))
    assert out.min() >= 0.0 and out.max() <= 1.0
    assert np.abs(out - x).max() <= eps + 1e-6


def test_bfloat16_compute_keeps_the_invariants(tiny_model):
    rng = np.random.default_rng(0)
    x = rng.random((20, 784), dtype=np.float32)
    y = rng.integers(0, 10, 20)
    out = perturb(tiny_model, x, y, method="pqgd", b=100, epsilon=0.1, steps=4, step_size=0.02,
                  compute_dtype="bfloat16", seed=0)
    assert out.dtype == np.float32 and np.all(np.isfinite(out))
    assert out.min() >= 0 and out.max() <= 1 and np.abs(out - x).max() <= 0.1 + 1e-6
    assert not np.array_equal(out, x)
