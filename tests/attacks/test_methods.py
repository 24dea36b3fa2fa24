"""Each method's steps against numpy formulas on gradients of the REAL challenge graph."""
import numpy as np
import pytest

from attacks import perturb
from tests.attacks.conftest import numpy_blob, numpy_project, numpy_quantize

EPS, A, N = 0.3, 0.01, 100


def _start(x_nat, seed=0):
    rng = np.random.default_rng(seed)
    return np.clip(x_nat + rng.uniform(-EPS, EPS, x_nat.shape), 0, 1).astype(np.float32)


def _agree(ours, ref, tol=1e-6):
    """Fraction of pixels equal to within tol (a sign flip on a ~0 gradient may differ)."""
    return np.mean(np.abs(ours - ref) <= tol)


def _assert_step_matches(ours, ref, direction, b):
    """Every pixel whose reference step is unambiguous matches exactly; the rest (direction
    ~0, or b * d / max|d| within 1e-3 of a rounding tie) may differ by rounding."""
    v = (1 if b is None else b) * direction / np.abs(direction).max(axis=1, keepdims=True)
    frac = np.abs(v) % 1.0
    clear = (np.abs(v) > 1e-3) & (np.abs(frac - 0.5) > 1e-3)
    np.testing.assert_array_equal(ours[clear], ref[clear])
    assert clear.mean() > 0.95
    assert _agree(ours, ref) >= 0.999


@pytest.fixture(scope="module")
def batch(mnist_test):
    x, y = mnist_test
    return x[:N], y[:N]


def _reference_step(tf1, method, x, x_nat, y, b=None, c=None, loss="xent", step=A):
    g = tf1.input_gradient(x, y, loss)
    d = numpy_blob(x, g, c).astype(np.float32) if method.startswith("blob") else g
    unit = np.sign(d) if b is None else numpy_quantize(d, b)
    return numpy_project(x + step * unit, x_nat, EPS), d


@pytest.mark.parametrize("method,b,c,loss", [
    ("pgd", None, None, "xent"), ("pgd", None, None, "cw"), ("pqgd", 100, None, "xent"),
    ("pqgd", 1000, None, "cw"), ("blob", None, 1.1, "xent"), ("blob_qg", 200, 1.1, "xent"),
    ("blob", None, 10.0, "cw"), ("blob", None, 50.0, "xent"),
])
def test_one_step_equals_numpy_formula_on_real_graph_gradients(challenge_pair, batch, method, b, c, loss):
    model, tf1 = challenge_pair
    x_nat, y = batch
    x0 = _start(x_nat)
    ours = perturb(model, x_nat, y, method=method, epsilon=EPS, steps=1, step_size=A, b=b, c=c,
                   loss=loss, x_start=x0, batch_size=N, seed=0)
    ref, direction = _reference_step(tf1, method, x0, x_nat, y, b=b, c=c, loss=loss)
    _assert_step_matches(ours, ref, direction, b)


@pytest.mark.parametrize("b", [None, 100])
def test_fgsm_is_one_eps_step_from_the_clean_image(challenge_pair, batch, b):
    model, tf1 = challenge_pair
    x_nat, y = batch
    ours = perturb(model, x_nat, y, method="fgsm", epsilon=EPS, b=b)
    ref, direction = _reference_step(tf1, "fgsm", x_nat, x_nat, y, b=b, step=EPS)
    _assert_step_matches(ours, ref, direction, b)


def test_ten_step_pgd_equals_numpy_reference_loop(challenge_pair, batch):
    model, tf1 = challenge_pair
    x_nat, y = batch
    x = x0 = _start(x_nat, seed=1)
    for _ in range(10):
        x, _ = _reference_step(tf1, "pgd", x, x_nat, y)
    ours = perturb(model, x_nat, y, method="pgd", epsilon=EPS, steps=10, step_size=A, x_start=x0)
    assert _agree(ours, x) >= 0.999


def test_pqgd_with_b1_equals_pgd_bit_for_bit(challenge_pair, batch):
    model, _ = challenge_pair
    x_nat, y = batch
    kw = dict(epsilon=EPS, steps=7, step_size=A, seed=3, batch_size=40, restarts=2)
    np.testing.assert_array_equal(perturb(model, x_nat, y, method="pqgd", b=1, **kw),
                                  perturb(model, x_nat, y, method="pgd", **kw))


def test_blob_with_c0_takes_pgd_steps(challenge_pair, batch):
    model, _ = challenge_pair
    x_nat, y = batch
    kw = dict(epsilon=EPS, steps=12, step_size=A, seed=4, batch_size=N)
    np.testing.assert_array_equal(perturb(model, x_nat, y, method="blob", c=0.0, **kw),
                                  perturb(model, x_nat, y, method="pgd", **kw))
    # Several groups regrouped every round: examples are still independent when c = 0.
    kw["batch_size"] = 30
    blob = perturb(model, x_nat, y, method="blob", c=0.0, **kw)
    assert _agree(blob, perturb(model, x_nat, y, method="pgd", **kw)) >= 0.999


def test_blob_qg_with_b1_equals_blob(challenge_pair, batch):
    model, _ = challenge_pair
    x_nat, y = batch
    kw = dict(epsilon=EPS, steps=13, step_size=A, seed=5, batch_size=30, steps_per_group=5)
    np.testing.assert_array_equal(perturb(model, x_nat, y, method="blob_qg", b=1, **kw),
                                  perturb(model, x_nat, y, method="blob", **kw))


def test_same_seed_same_output_and_other_seed_differs(challenge_pair, batch):
    model, _ = challenge_pair
    x_nat, y = batch
    kw = dict(method="blob_qg", b=100, epsilon=EPS, steps=3, step_size=A, batch_size=40)
    first = perturb(model, x_nat, y, seed=11, **kw)
    np.testing.assert_array_equal(first, perturb(model, x_nat, y, seed=11, **kw))
    assert not np.array_equal(first, perturb(model, x_nat, y, seed=12, **kw))


def test_random_start_off_starts_from_clean_images(challenge_pair, batch):
    model, tf1 = challenge_pair
    x_nat, y = batch
    ours = perturb(model, x_nat, y, method="pgd", epsilon=EPS, steps=1, step_size=A,
                   random_start=False)
    ref, direction = _reference_step(tf1, "pgd", x_nat, x_nat, y)
    _assert_step_matches(ours, ref, direction, None)
