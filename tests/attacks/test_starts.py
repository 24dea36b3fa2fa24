"""Start points: random, clean, and ODI (Tashiro et al. 2020) for every method."""
import numpy as np
import pytest
import tensorflow as tf

from attacks import AttackConfig, perturb
from attacks.api import make_runners
from attacks.odi import draw_odi_weights

EPS = 0.3


@pytest.fixture(scope="module")
def batch(mnist_test):
    x, y = mnist_test
    return x[1000:1020], y[1000:1020]


def _w_dot_logits(model, x, w):
    return np.sum(w * np.asarray(model(x), np.float64), axis=1)


def test_odi_steps_equal_a_replay_of_sign_steps_on_w_dot_logits_and_raise_it(tiny_model):
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 1, (16, 784)).astype(np.float32)
    y = rng.integers(0, 10, 16)
    eps = 0.02
    config = AttackConfig(method="pgd", epsilon=eps, steps=1, step_size=0.01, start="odi")
    odi = make_runners(tiny_model, config).odi
    start = config.step_rule().random_perturb(x, np.random.default_rng(1))
    out = odi(start, x, y, np.random.default_rng(2))
    w = draw_odi_weights(np.random.default_rng(2), 16, 10)
    # Replay: two steps x <- clip(clip(x + eps sign(grad_x w.f(x)), x_nat +- eps), 0, 1).
    replay = tf.constant(start)
    for _ in range(2):
        with tf.GradientTape() as tape:
            tape.watch(replay)
            value = tf.reduce_sum(w * tiny_model(replay))
        step = replay + eps * tf.sign(tape.gradient(value, replay))
        replay = tf.clip_by_value(tf.clip_by_value(step, x - eps, x + eps), 0.0, 1.0)
    np.testing.assert_allclose(out, replay.numpy(), atol=1e-6)
    assert np.all(_w_dot_logits(tiny_model, out, w) > _w_dot_logits(tiny_model, start, w))


def test_odi_raises_w_dot_logits_on_the_shipped_model(shipped_mnist, batch):
    x, y = batch
    config = AttackConfig(method="pgd", epsilon=EPS, steps=1, step_size=0.01, start="odi")
    odi = make_runners(shipped_mnist, config).odi
    start = config.step_rule().random_perturb(x, np.random.default_rng(1))
    out = odi(start, x, y, np.random.default_rng(2))
    w = draw_odi_weights(np.random.default_rng(2), len(x), 10)
    before, after = _w_dot_logits(shipped_mnist, start, w), _w_dot_logits(shipped_mnist, out, w)
    assert np.mean(after > before) >= 0.9 and after.mean() > before.mean() + 1.0


def test_same_seed_same_images_other_seed_other_images_and_odi_moves_the_start(shipped_mnist,
                                                                              batch):
    x, y = batch[0][:10], batch[1][:10]
    run = lambda seed, start="odi": perturb(shipped_mnist, x, y, method="pgd", epsilon=EPS,
                                            steps=2, step_size=0.01, start=start, seed=seed)
    first = run(5)
    np.testing.assert_array_equal(run(5), first)
    assert not np.array_equal(run(6), first)
    assert not np.array_equal(run(5, "random"), first)
    assert np.abs(first - x).max() <= EPS + 1e-6 and first.min() >= 0 and first.max() <= 1


@pytest.mark.parametrize("method,extra", [("pqgd", {}), ("multitargeted", dict(num_targets=2))])
def test_b_1_equals_the_sign_form_bit_for_bit_with_the_odi_start(shipped_mnist, batch, method,
                                                                 extra):
    x, y = batch[0][:8], batch[1][:8]
    common = dict(epsilon=EPS, steps=3, step_size=0.03, start="odi", seed=4, **extra)
    sign = perturb(shipped_mnist, x, y, method="pgd" if method == "pqgd" else method, **common)
    np.testing.assert_array_equal(perturb(shipped_mnist, x, y, method=method, b=1, **common), sign)


def test_clean_and_random_starts_equal_the_random_start_flag(tiny_model):
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 1, (6, 784)).astype(np.float32)
    y = rng.integers(0, 10, 6)
    kw = dict(method="pgd", epsilon=0.1, steps=2, step_size=0.01, seed=1)
    np.testing.assert_array_equal(perturb(tiny_model, x, y, start="clean", **kw),
                                  perturb(tiny_model, x, y, random_start=False, **kw))
    np.testing.assert_array_equal(perturb(tiny_model, x, y, start="random", **kw),
                                  perturb(tiny_model, x, y, **kw))


def test_every_method_takes_the_odi_start_and_its_steps_count_in_the_budget(tiny_model):
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 1, (4, 784)).astype(np.float32)
    y = rng.integers(0, 10, 4)
    for method, extra in [("fgsm", {}), ("blob", dict(steps=2, step_size=0.01)),
                          ("apgd", dict(steps=2))]:
        out = perturb(tiny_model, x, y, method=method, epsilon=0.1, start="odi", odi_steps=3,
                      seed=0, **extra)
        assert np.abs(out - x).max() <= 0.1 + 1e-6, method
        assert not np.array_equal(out, perturb(tiny_model, x, y, method=method, epsilon=0.1,
                                               seed=0, **extra)), method
        assert AttackConfig(method=method, epsilon=0.1, start="odi", odi_steps=3,
                            **extra).gradient_passes() == extra.get("steps", 1) + 3, method
    # The interval method (run in test_interval_attack.py): ODI, interval and PGD steps.
    assert AttackConfig(method="interval", epsilon=0.1, start="odi", odi_steps=3, steps=2,
                        step_size=0.01).gradient_passes() == 3 + 1 + 2


@pytest.mark.parametrize("kwargs,needle", [
    (dict(start="somewhere"), "start must be one of random, clean, odi"),
    (dict(odi_steps=2), "odi_steps applies to start='odi' only"),
    (dict(start="odi", odi_steps=0), "odi_steps must be an integer >= 1"),
    (dict(start="random", random_start=False), "start='random' contradicts random_start=False"),
])
def test_bad_start_settings_are_one_line_errors(kwargs, needle):
    with pytest.raises(ValueError) as err:
        AttackConfig(method="pgd", epsilon=EPS, steps=5, step_size=0.01, **kwargs)
    assert needle in str(err.value) and "\n" not in str(err.value)
