"""Rendering helpers of the artifacts."""
import numpy as np

from experiments.artifacts import _run_range, step_representations


def test_error_bars_span_lowest_to_highest_run_and_are_never_negative():
    accs = np.array([[0.7, 0.7, 0.7], [0.8, 0.9, 1.0]])
    avg = accs.mean(axis=1)  # 0.7 averages to 0.7000000000000001 in float64
    bars = _run_range(accs, avg)
    assert bars.shape == (2, 2) and (bars >= 0).all()
    np.testing.assert_allclose(bars[:, 1], [10.0, 10.0])
    np.testing.assert_allclose(bars[:, 0], [0.0, 0.0], atol=1e-12)


def test_step_representations_are_sign_normalised_and_quantized_per_image():
    g = np.array([[0.5, -0.004, 0.0, 0.05], [2.0, 1.0, -0.019, 0.0]], np.float32)
    reps = step_representations(g)
    np.testing.assert_array_equal(reps["sign"], np.sign(g))
    np.testing.assert_allclose(reps["raw g / max|g|"], g / np.abs(g).max(axis=1, keepdims=True))
    # b = 10: image 0 -> 10*[1, -0.008, 0, 0.1] -> [10, -1, 0, 1]; image 1 -> [10, 5, -1, 0]
    np.testing.assert_array_equal(reps["quantized b=10"], [[10, -1, 0, 1], [10, 5, -1, 0]])
