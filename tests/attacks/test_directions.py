"""attacks.blob_direction against the DAA formula in float64 numpy."""
import numpy as np
import pytest

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
