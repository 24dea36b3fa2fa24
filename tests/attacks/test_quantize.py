"""attacks.quantize against a numpy zeta written here."""
import numpy as np
import pytest
import tensorflow as tf
from hypothesis import given, settings, strategies as st
from hypothesis.extra import numpy as hnp

from attacks import quantize
from tests.attacks.conftest import numpy_quantize

# Magnitudes 0 or in [2^-50, 2^50]: ratios to the max stay normal floats, where TensorFlow's
# flush-to-zero of subnormals cannot differ from numpy.
finite32 = st.one_of(st.just(0.0), st.floats(2.0**-50, 2.0**50, width=32).flatmap(
    lambda v: st.sampled_from([v, -v])))
gradients = hnp.arrays(np.float32, st.tuples(st.integers(1, 5), st.integers(1, 40)), elements=finite32)


@settings(max_examples=200, deadline=None)
@given(g=gradients, b=st.sampled_from([1, 2, 10, 100, 200, 1000, 5000]))
def test_quantize_equals_numpy_zeta_on_random_gradients(g, b):
    np.testing.assert_array_equal(quantize(g, b), numpy_quantize(g, b))
    np.testing.assert_array_equal(quantize(tf.constant(g), b).numpy(), numpy_quantize(g, b))


@pytest.mark.parametrize("scale", [0.0, 1e-30, 1e-20, 1.0, 1e20, 3e37])
@pytest.mark.parametrize("b", [1, 100, 1000])
def test_quantize_handles_zero_tiny_and_huge_gradients(scale, b):
    rng = np.random.default_rng(0)
    g = (rng.standard_normal((4, 784)) * scale).astype(np.float32)
    out = quantize(tf.constant(g), b).numpy()
    assert np.all(np.isfinite(out))
    np.testing.assert_array_equal(out, numpy_quantize(g, b))
    assert np.abs(out).max() <= b


def test_quantize_with_b1_is_exactly_sign():
    g = np.random.default_rng(1).standard_normal((8, 784)).astype(np.float32)
    g[0] = 0.0
    g[1, :5] = 0.0
    np.testing.assert_array_equal(quantize(g, 1), np.sign(g))
    np.testing.assert_array_equal(quantize(tf.constant(g), 1).numpy(), np.sign(g))


def test_quantize_all_zero_example_gives_zeros_not_nan():
    g = np.zeros((2, 784), np.float32)
    g[1, 3] = -2.0
    out = quantize(g, 100)
    assert np.all(out[0] == 0)
    assert out[1, 3] == -100 and np.count_nonzero(out[1]) == 1


def test_quantize_max_is_per_example():
    g = np.array([[1.0, 0.5, 0.004], [100.0, 50.0, 0.4]], np.float32)
    np.testing.assert_array_equal(quantize(g, 10), [[10, 5, 1], [10, 5, 1]])


def test_quantize_keeps_shape_and_dtype():
    g = np.random.default_rng(2).standard_normal((3, 28, 28)).astype(np.float32)
    out = quantize(g, 50)
    assert out.shape == g.shape and out.dtype == np.float32
    np.testing.assert_array_equal(out.reshape(3, -1), numpy_quantize(g.reshape(3, -1), 50))


def test_quantize_rejects_b_below_one():
    with pytest.raises(ValueError, match="b must be >= 1"):
        quantize(np.ones((1, 3), np.float32), 0.5)
