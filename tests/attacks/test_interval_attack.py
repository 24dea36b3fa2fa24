"""The Interval Attack (Wang et al. 2019): interval steps on logit bounds, then PGD."""
import keras
import numpy as np
import pytest
import tensorflow as tf

from attacks import AttackConfig, perturb, predict
from attacks.api import make_runners
from attacks.engine import StepRunner
from attacks.intervals import interval_direction, unverified_width

EPS = 0.3


def test_an_interval_step_is_the_sign_of_the_interval_direction_at_the_unverified_width(
        shipped_mnist, held_out_batch):
    x, y = held_out_batch[0][:16], held_out_batch[1][:16]
    config = AttackConfig(method="interval", epsilon=EPS, steps=1, step_size=0.01,
                          interval_step_size=0.05, random_start=False)
    runner = make_runners(shipped_mnist, config).interval
    stepped = runner.run(x, x, y, 1)
    # Independent of the driver: intervals.py's eager functions and numpy.
    widths = unverified_width(shipped_mnist, x, y, (0.01, 0.03, 0.09, 0.15), 0.0, 1.0).numpy()
    direction = np.zeros_like(x)
    for w in np.unique(widths[widths > 0]):
        rows = widths == w
        direction[rows] = interval_direction(shipped_mnist, x[rows], y[rows], float(w), "margin",
                                             0.0, 1.0).numpy()
    correct = predict(shipped_mnist, x) == y
    direction[~correct | (widths == 0)] = 0
    expected = np.clip(np.clip(x + 0.05 * np.sign(direction), x - EPS, x + EPS), 0, 1)
    assert (widths > 0).any() and correct.any()
    np.testing.assert_allclose(stepped, expected, atol=1e-6)
    moved = np.abs(stepped - x).reshape(len(x), -1).max(axis=1) > 0
    np.testing.assert_array_equal(moved, correct & (widths > 0))


@pytest.mark.slow  # three traces of the bounds graph: 37 s measured on a loaded 2-core CPU
def test_b_1_equals_the_sign_form_bit_for_bit(shipped_mnist, held_out_batch):
    x, y = held_out_batch[0][:10], held_out_batch[1][:10]
    common = dict(method="interval", epsilon=EPS, steps=3, step_size=0.03, interval_steps=2,
                  interval_step_size=0.05, interval_width=0.03, seed=3)
    sign = perturb(shipped_mnist, x, y, **common)
    np.testing.assert_array_equal(perturb(shipped_mnist, x, y, b=1, **common), sign)
    assert not np.array_equal(perturb(shipped_mnist, x, y, b=100, **common), sign)


def test_same_seed_same_images_other_seed_other_images(shipped_mnist, held_out_batch):
    x, y = held_out_batch[0][:10], held_out_batch[1][:10]
    run = lambda seed: perturb(shipped_mnist, x, y, method="interval", epsilon=EPS, steps=2,
                               step_size=0.03, interval_width=0.03, seed=seed)
    first = run(5)
    np.testing.assert_array_equal(run(5), first)
    assert not np.array_equal(run(6), first)
    assert np.abs(first - x).max() <= EPS + 1e-6 and first.min() >= 0 and first.max() <= 1


@pytest.mark.slow
def test_lowers_accuracy_below_clean_and_fgsm_on_the_shipped_model(shipped_mnist, held_out_batch):
    x, y = held_out_batch
    accuracy = lambda images: float(np.mean(predict(shipped_mnist, images) == y))
    fgsm = accuracy(perturb(shipped_mnist, x, y, method="fgsm", epsilon=EPS))
    for b in (None, 10):
        interval = accuracy(perturb(shipped_mnist, x, y, method="interval", epsilon=EPS,
                                    steps=20, step_size=0.03, b=b, seed=0))
        assert interval < accuracy(x) and interval < fgsm, b


def test_defaults_are_the_references_and_the_budget_counts_both_phases():
    config = AttackConfig(method="interval", epsilon=EPS, steps=40, step_size=0.01).resolved()
    assert (config.interval_rounds, config.interval_steps, config.interval_loss) == (1, 1, "margin")
    assert config.interval_pgd_steps == 0
    assert config.interval_step_size == pytest.approx(2 * EPS)
    assert config.interval_widths() == pytest.approx((0.01, 0.03, 0.09, 0.15))
    assert config.gradient_passes() == 41 and config.bound_passes() == 1 * 4
    fixed = AttackConfig(method="interval", epsilon=EPS, steps=40, step_size=0.01,
                         interval_width=0.05, interval_steps=5, start="odi")
    assert fixed.interval_widths() == (0.05,)
    assert fixed.gradient_passes() == 2 + 1 * 5 + 40 and fixed.bound_passes() == 1 * 5


def test_the_schedule_is_interval_first_by_default_and_alternates_as_the_reference_on_request():
    phases = lambda **kw: AttackConfig(method="interval", epsilon=EPS, step_size=0.01,
                                       **kw).interval_phases()
    assert phases(steps=100) == (("interval", 1), ("pgd", 100))
    # The reference: interval_iters = 3 rounds of (PGD, one interval step), then PGD once more.
    assert phases(steps=100, interval_rounds=3) == (("pgd", 25), ("interval", 1)) * 3 + (
        ("pgd", 25),)
    assert phases(steps=10, interval_rounds=3) == (("pgd", 2), ("interval", 1)) * 3 + (
        ("pgd", 4),)
    assert phases(steps=7, interval_rounds=2, interval_steps=3, interval_pgd_steps=1) == (
        ("pgd", 1), ("interval", 3), ("pgd", 1), ("interval", 3), ("pgd", 5))
    # all interval steps first, then PGD: one round with an empty first PGD phase
    assert phases(steps=5, interval_rounds=1, interval_steps=4, interval_pgd_steps=0) == (
        ("interval", 4), ("pgd", 5))
    assert phases(steps=6, interval_rounds=0) == (("pgd", 6),)
    assert phases(steps=3, interval_pgd_steps=1) == (("pgd", 1), ("interval", 1), ("pgd", 2))


def test_a_run_is_its_phases_one_after_another_from_the_point_each_reached(tiny_model,
                                                                          tiny_batch):
    x, y = tiny_batch
    eps = 0.01  # small: the tiny model's examples stay correct into the interval phases
    settings = dict(method="interval", epsilon=eps, steps=5, step_size=0.001, b=10,
                    interval_rounds=2, interval_steps=2, interval_pgd_steps=1,
                    interval_step_size=0.0025, interval_width=0.005, random_start=False)
    ran = perturb(tiny_model, x, y, seed=1, **settings)
    runners = make_runners(tiny_model, AttackConfig(**settings))
    expected = x
    for runner, n in ((runners.main, 1), (runners.interval, 2), (runners.main, 1),
                      (runners.interval, 2), (runners.main, 3)):
        stepped = runner.run(expected, x, y, n)
        assert not np.array_equal(stepped, expected)  # every phase moves some example
        expected = stepped
    np.testing.assert_array_equal(ran, expected)
    first = perturb(tiny_model, x, y, seed=1, **{**settings, "interval_rounds": 1,
                                                 "interval_pgd_steps": 0, "interval_steps": 4})
    assert not np.array_equal(first, ran)  # the order of the phases matters


def test_b_1_equals_the_sign_form_bit_for_bit_with_alternating_phases(tiny_model, tiny_batch):
    x, y = tiny_batch
    common = dict(method="interval", epsilon=0.01, steps=6, step_size=0.001, interval_steps=2,
                  interval_pgd_steps=1, interval_step_size=0.0025, seed=3)
    sign = perturb(tiny_model, x, y, **common)
    np.testing.assert_array_equal(perturb(tiny_model, x, y, b=1, **common), sign)
    np.testing.assert_array_equal(perturb(tiny_model, x, y, **common), sign)  # per seed
    assert not np.array_equal(perturb(tiny_model, x, y, b=100, **common), sign)


def _gelu_model():
    inputs = keras.Input((784,))
    hidden = keras.layers.Dense(8, activation="gelu")(inputs)
    return keras.Model(inputs, keras.layers.Dense(10)(hidden))


def _residual_model():
    inputs = keras.Input((784,))
    hidden = keras.layers.Dense(784)(inputs)
    return keras.Model(inputs, keras.layers.Dense(10)(keras.layers.Add()([inputs, hidden])))


@pytest.mark.parametrize("build,needle", [(_gelu_model, "activation 'gelu'"),
                                          (_residual_model, "takes 2 inputs")])
def test_models_with_layers_without_interval_rules_are_refused_before_any_step(
        monkeypatch, build, needle):
    monkeypatch.setattr(StepRunner, "run", lambda *a, **k: pytest.fail("a step ran"))
    x = np.zeros((4, 784), np.float32)
    with pytest.raises(ValueError) as err:
        perturb(build(), x, np.zeros(4, np.int64), method="interval", epsilon=EPS, steps=2,
                step_size=0.01)
    assert needle in str(err.value) and "\n" not in str(err.value)


@pytest.mark.parametrize("kwargs,needle", [
    (dict(method="pgd", interval_steps=2), "interval_steps applies to method interval only"),
    (dict(interval_steps=-1), "interval_steps must be an integer >= 0"),
    (dict(interval_rounds=1.5), "interval_rounds must be an integer >= 0"),
    (dict(interval_pgd_steps=-2), "interval_pgd_steps must be an integer >= 0"),
    (dict(interval_rounds=3, interval_pgd_steps=2),
     "interval_rounds * interval_pgd_steps (3 * 2) exceeds the PGD steps (5)"),
    (dict(method="pgd", interval_rounds=2), "interval_rounds applies to method interval only"),
    (dict(interval_width=0.0), "interval_width must be a finite number > 0"),
    (dict(interval_loss="cw"), "interval_loss must be one of xent, margin"),
    (dict(interval_step_size=float("nan")), "interval_step_size must be a finite number > 0"),
    (dict(norm="l2"), "interval needs norm='linf'"),
])
def test_bad_interval_settings_are_one_line_errors(kwargs, needle):
    settings = dict(method="interval", epsilon=EPS, steps=5, step_size=0.01)
    settings.update(kwargs)
    with pytest.raises(ValueError) as err:
        AttackConfig(**settings)
    assert needle in str(err.value) and "\n" not in str(err.value)


def test_targeted_interval_attacks_are_refused(tiny_model):
    x = np.zeros((2, 784), np.float32)
    with pytest.raises(ValueError, match="interval is untargeted"):
        perturb(tiny_model, x, np.zeros(2, np.int64), method="interval", epsilon=EPS, steps=1,
                step_size=0.01, y_target=np.ones(2, np.int64))
