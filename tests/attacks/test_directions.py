"""attacks.blob_direction against the DAA formula in float64 numpy."""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from attacks import blob_direction
from tests.attacks.conftest import numpy_blob


@pytest.mark.parametrize("m", [2, 3, 50, 200])
@pytest.mark.parametrize("c", [1.1, 10.0])
def test_blob_direction_equals_float64_daa_formula(mnist_test, m, c):
    x_nat, _ = mnist_test
    rng = np.random.default_rng(m)
    x = np.clip(x_nat[:m] + rng.uniform(-0.3, 0.3, (m, 784)), 0, 1).astype(np.float32)
    g = (rng.standard_normal((m, 784)) * 1e-2).astype(np.float32)
    ours = blob_direction(x, g, c).numpy()
    ref = numpy_blob(x, g, c)
    scale = np.abs(ref).max()
    assert np.abs(ours - ref).max() <= 1e-4 * scale


def test_blob_direction_with_c0_is_the_gradient(mnist_test):
    x = mnist_test[0][:20]
    g = np.random.default_rng(0).standard_normal((20, 784)).astype(np.float32)
    np.testing.assert_array_equal(blob_direction(x, g, 0.0).numpy(), g)


def test_blob_direction_single_image_falls_back_to_gradient():
    x = np.full((1, 784), 0.5, np.float32)
    g = np.random.default_rng(0).standard_normal((1, 784)).astype(np.float32)
    out = blob_direction(x, g, 1.1).numpy()
    np.testing.assert_array_equal(out, g)


def test_blob_direction_identical_images_fall_back_to_gradient():
    x = np.full((6, 784), 0.25, np.float32)
    g = np.random.default_rng(1).standard_normal((6, 784)).astype(np.float32)
    out = blob_direction(x, g, 10.0).numpy()
    assert np.all(np.isfinite(out))
    np.testing.assert_array_equal(out, g)


def test_blob_direction_mostly_identical_images_stay_finite():
    x = np.full((5, 784), 0.25, np.float32)
    x[0] = 0.9  # median of D is still 0: 5 of 25 entries are non-zero
    g = np.random.default_rng(2).standard_normal((5, 784)).astype(np.float32)
    out = blob_direction(x, g, 1.1).numpy()
    assert np.all(np.isfinite(out))
    np.testing.assert_array_equal(out, g)


def _median_cases():
    rng = np.random.default_rng(5)
    near_one = 1.0 + np.arange(40, dtype=np.float32) * np.float32(2 ** -23)  # one high-bits bin
    d = rng.random((6, 784)).astype(np.float32)
    gram = d @ d.T
    sq = np.diag(gram)
    distances = np.maximum(sq[:, None] + sq[None, :] - 2 * gram, 0)
    np.fill_diagonal(distances, 0)
    return {
        "one": np.array([3.5], np.float32),
        "two": np.array([0.0, 2.0], np.float32),
        "odd": rng.random(101).astype(np.float32),
        "even": rng.random(100).astype(np.float32),
        "even-ties-across-middle": np.array([1, 1, 1, 1, 2, 2], np.float32),
        "even-middles-differ-with-ties": np.array([0, 0, 0, 5, 5, 7, 7, 7], np.float32),
        "mostly-zero": np.array([0, 0, 0, 0, 0, 0.5], np.float32),
        "all-equal": np.full(64, 0.25, np.float32),
        "negative-zero": np.array([-0.0, 0.0, -0.0, 1.0], np.float32),
        "magnitudes": (10.0 ** rng.uniform(-30, 30, 999)).astype(np.float32),
        "same-high-bits": rng.permutation(near_one),
        "same-high-bits-even": rng.permutation(near_one[:39]).astype(np.float32),
        "distance-matrix-36": distances.astype(np.float32),
        "ints-with-ties": rng.integers(0, 7, (50, 50)).astype(np.float32),
    }


@pytest.mark.parametrize("name", sorted(_median_cases()))
def test_median_by_selection_equals_numpy_median(name):
    from attacks.directions import median_by_selection
    values = _median_cases()[name]
    got = float(median_by_selection(values).numpy())
    assert got == float(np.median(values.astype(np.float64)).astype(np.float32))



@settings(max_examples=60, deadline=None)
@given(st.lists(st.one_of(st.just(0.0), st.floats(min_value=2.0 ** -100, max_value=2.0 ** 100, width=32),
                          st.sampled_from([0.25, 1.0, 3.0])),  # ties
                min_size=1, max_size=300))
def test_median_by_selection_equals_numpy_median_on_any_nonnegative_values(values):
    from attacks.directions import median_by_selection
    v = np.asarray(values, np.float32)
    got = float(median_by_selection(v).numpy())
    assert got == float(np.median(v.astype(np.float64)).astype(np.float32))
