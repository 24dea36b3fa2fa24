"""APGD: its schedule against a numpy re-statement, b = 1 against the sign, invariants, strength."""
import math
from fractions import Fraction

import numpy as np
import pytest
import tensorflow as tf

import attacks
from attacks import AttackConfig, StepRunner, perturb
from attacks.apgd import APGDStep, checkpoints, top_targets

EPS = 0.3


def _paper_checkpoints(n):
    """w_j = ceil(p_j n) with exact fractions: p_0 = 0, p_1 = 0.22, p_{j+1} = p_j +
    max(p_j - p_{j-1} - 0.03, 0.06); only those before the last step."""
    p = [Fraction(0), Fraction(22, 100)]
    while math.ceil(p[-1] * n) < n:
        p.append(p[-1] + max(p[-1] - p[-2] - Fraction(3, 100), Fraction(6, 100)))
    return sorted({math.ceil(q * n) for q in p if math.ceil(q * n) < n})


def _replay(loss, n, eta0, rho=0.75):
    """The step-size rule re-stated in numpy on the recorded losses f(x_0..x_n) (n+1, M):
    returns (eta used by each step (n, M), restart flags (n, M), best index (n+1, M))."""
    m = loss.shape[1]
    marks = _paper_checkpoints(n)
    eta = np.full(m, eta0, np.float32)
    f_max = np.full(m, -np.inf, np.float32)
    best = np.zeros(m, np.int64)
    etas, restarts, bests = [], [], []
    count = np.zeros(m, np.int64)
    reduced_last = np.zeros(m, bool)
    f_from = None
    last_mark, f_max_last = 0, None
    for k in range(n + 1):
        f = loss[k]
        if k > 0:
            count += f > f_from
        improved = f > f_max
        best = np.where(improved, k, best)
        f_max = np.where(improved, f, f_max)
        if k == 0:
            f_max_last = f_max.copy()
        halve = np.zeros(m, bool)
        if k in marks and k > 0:
            window = k - last_mark
            halve = (count < rho * window) | (~reduced_last & (f_max <= f_max_last))
            eta = np.where(halve, eta / 2, eta)
            reduced_last, f_max_last, last_mark = halve, f_max.copy(), k
            count[:] = 0
        f_from = np.where(halve, f_max, f)
        bests.append(best.copy())
        if k < n:
            etas.append(eta.copy())
            restarts.append(halve)
    return np.array(etas), np.array(restarts), np.array(bests)


@pytest.fixture(scope="module")
def batch(mnist_test):
    x, y = mnist_test
    return x[1000:1100], y[1000:1100]


@pytest.mark.parametrize("n", [1, 2, 5, 10, 37, 100, 1000])
def test_checkpoints_follow_the_papers_recursion(n):
    assert checkpoints(n) == _paper_checkpoints(n)


def test_checkpoints_of_100_steps_and_top_targets():
    assert checkpoints(100) == [0, 22, 41, 57, 70, 80, 87, 93, 99]
    logits = np.array([[0.0, 5.0, 1.0, 3.0], [9.0, 2.0, 2.0, -1.0]])
    np.testing.assert_array_equal(top_targets(logits, np.array([1, 3]), 2), [[3, 2], [0, 1]])


@pytest.mark.parametrize("loss", ["xent", "dlr"])
def test_step_sizes_and_restarts_equal_a_numpy_replay_of_the_recorded_losses(shipped_mnist, batch, loss):
    x, y = batch[0][:40], batch[1][:40]
    n = 60
    rule = AttackConfig(method="apgd", epsilon=EPS, steps=n, loss=loss).step_rule()
    runner = StepRunner(attacks.attack_model(shipped_mnist), loss, rule,
                        attacks.gradient_direction())
    record = {}
    out = runner.run(rule.random_perturb(x, np.random.default_rng(0)), x, y, n, record=record)
    etas, restarts, bests = _replay(record["loss"], n, 2 * EPS)
    np.testing.assert_array_equal(record["eta_trace"][:n], etas)
    np.testing.assert_array_equal(record["restart"][:n], restarts)
    np.testing.assert_array_equal(record["best_step"], bests)
    marks = checkpoints(n)[1:]
    assert restarts.any() and not restarts[marks].all(), "the rule must both halve and keep"
    assert not restarts[[k for k in range(n) if k not in marks]].any()
    # The result is the best point: its loss is the largest recorded one.
    logits = shipped_mnist(out, training=False)
    final = attacks.per_example_loss(logits, y, loss).numpy()
    np.testing.assert_allclose(final, record["loss"].max(axis=0), rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("method,loss", [("apgd", "xent"),
                                         pytest.param("apgd_t", "dlr", marks=pytest.mark.slow)])
def test_b_1_equals_sign_apgd_bit_for_bit(shipped_mnist, batch, method, loss):
    x, y = batch[0][:20], batch[1][:20]
    extra = {"num_targets": 2} if method == "apgd_t" else {}
    common = dict(method=method, epsilon=EPS, steps=10, loss=loss, seed=3, **extra)
    sign = perturb(shipped_mnist, x, y, **common)
    np.testing.assert_array_equal(perturb(shipped_mnist, x, y, b=1, **common), sign)
    assert not np.array_equal(perturb(shipped_mnist, x, y, b=100, **common), sign)


def test_same_seed_same_images_other_seed_other_images(shipped_mnist, batch):
    x, y = batch[0][:20], batch[1][:20]
    run = lambda seed: perturb(shipped_mnist, x, y, method="apgd", epsilon=EPS, steps=10, seed=seed)
    first = run(5)
    np.testing.assert_array_equal(run(5), first)
    assert not np.array_equal(run(6), first)


@pytest.mark.parametrize("norm,eps,b", [("linf", EPS, None), ("linf", EPS, 50), ("l2", 2.0, None),
                                         ("l2", 2.0, 20)])
def test_every_iterate_stays_within_eps_and_bounds(tiny_model, norm, eps, b):
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 1, (16, 784)).astype(np.float32)
    y = rng.integers(0, 10, 16)
    x_nat = tf.constant(x)
    seen = []

    def checked_gradient(x_k, g):
        # Runs inside the compiled loop on the point each step is taken from (restarts too).
        delta = tf.reshape(x_k - x_nat, [tf.shape(x_k)[0], -1])
        dist = (tf.reduce_max(tf.abs(delta), axis=1) if norm == "linf"
                else tf.norm(delta, axis=1))
        seen.append(1)
        with tf.control_dependencies([
                tf.debugging.assert_less_equal(dist, eps * (1 + 1e-5) + 1e-6),
                tf.debugging.assert_greater_equal(tf.reduce_min(x_k), 0.0),
                tf.debugging.assert_less_equal(tf.reduce_max(x_k), 1.0)]):
            return tf.identity(g)
    rule = AttackConfig(method="apgd", epsilon=eps, steps=30, b=b, norm=norm).step_rule()
    runner = StepRunner(tiny_model, "xent", rule, checked_gradient)
    out = runner.run(rule.random_perturb(x, rng), x, y, 30)
    assert seen and out.min() >= 0 and out.max() <= 1
    assert rule.distance(out, x).max() <= eps * (1 + 1e-5) + 1e-6


def test_keep_best_takes_a_fooling_iterate_else_the_best_loss_point(shipped_mnist, batch):
    x, y = batch[0][:50], batch[1][:50]
    common = dict(method="apgd", epsilon=EPS, steps=10, seed=1)
    final = perturb(shipped_mnist, x, y, **common)
    best = perturb(shipped_mnist, x, y, keep="best", **common)
    pred_final, pred_best = attacks.predict(shipped_mnist, final), attacks.predict(shipped_mnist, best)
    assert np.all(pred_best[pred_final != y] != y[pred_final != y])
    kept_final = pred_best == y
    np.testing.assert_array_equal(best[kept_final], final[kept_final])


def test_apgd_lowers_accuracy_below_clean_and_fgsm_on_the_shipped_model(shipped_mnist, batch):
    x, y = batch
    accuracy = lambda images: float(np.mean(attacks.predict(shipped_mnist, images) == y))
    fgsm = accuracy(perturb(shipped_mnist, x, y, method="fgsm", epsilon=EPS))
    apgd = accuracy(perturb(shipped_mnist, x, y, method="apgd", epsilon=EPS, steps=40, seed=0))
    assert apgd < accuracy(x) and apgd < fgsm


@pytest.mark.slow
def test_apgd_t_lowers_accuracy_below_clean_and_fgsm_on_the_shipped_model(shipped_mnist, batch):
    x, y = batch
    accuracy = lambda images: float(np.mean(attacks.predict(shipped_mnist, images) == y))
    fgsm = accuracy(perturb(shipped_mnist, x, y, method="fgsm", epsilon=EPS))
    apgd_t = accuracy(perturb(shipped_mnist, x, y, method="apgd_t", loss="dlr", num_targets=3,
                              epsilon=EPS, steps=40, seed=0))
    assert apgd_t < accuracy(x) and apgd_t < fgsm


@pytest.mark.parametrize("kwargs,needle", [
    (dict(method="apgd_t", num_targets=0), "num_targets must be an integer in 1..C-1"),
    (dict(method="apgd_t", num_targets=10), "num_targets must be in 1..9"),
    (dict(method="apgd", num_targets=3), "num_targets applies to apgd_t and multitargeted only"),
    (dict(method="apgd", step_size=0.01), "sets its own step sizes"),
    (dict(method="apgd_t", y_target=np.ones(4, np.int64)), "apgd_t chooses its targets"),
])
def test_bad_apgd_settings_are_one_line_errors(tiny_model, kwargs, needle):
    x = np.zeros((4, 784), np.float32)
    y = np.zeros(4, np.int64)
    with pytest.raises(ValueError) as err:
        perturb(tiny_model, x, y, epsilon=EPS, steps=5, **kwargs)
    assert needle in str(err.value) and "\n" not in str(err.value)


def test_gradient_budget_counts_targets():
    assert AttackConfig(method="apgd", epsilon=EPS, steps=100).gradient_passes() == 100
    assert AttackConfig(method="apgd_t", epsilon=EPS, steps=100).gradient_passes() == 900
    assert AttackConfig(method="apgd_t", epsilon=EPS, steps=10, num_targets=3).gradient_passes() == 30
