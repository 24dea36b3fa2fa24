"""MultiTargeted (Gowal et al. 2019): one targeted logit-margin PGD run per top wrong class."""
import numpy as np
import pytest

import attacks
from attacks import AttackConfig, attack, perturb, predict
from attacks.engine import StepRunner

EPS = 0.3


def _record_targets(monkeypatch):
    """Replaces StepRunner.run by a wrapper that records each call's (y, y_target)."""
    calls = []
    original = StepRunner.run

    def recording(self, x, x_nat, y, n, **kw):
        calls.append((np.array(y), None if kw.get("y_target") is None else np.array(kw["y_target"])))
        return original(self, x, x_nat, y, n, **kw)
    monkeypatch.setattr(StepRunner, "run", recording)
    return calls


def test_visits_exactly_the_top_wrong_classes_of_the_clean_logits_in_order(tiny_model, monkeypatch):
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 1, (12, 784)).astype(np.float32)
    scores = np.asarray(tiny_model(x), np.float64)
    y = scores.argmax(axis=1)  # labels the model gets right
    scores[np.arange(12), y] = -np.inf
    expected = np.argsort(-scores, axis=1, kind="stable")[:, :4]
    calls = _record_targets(monkeypatch)
    # A radius far too small to break anything: every target's run visits every example.
    state = attack(tiny_model, x, y, AttackConfig(method="multitargeted", epsilon=1e-4, steps=2,
                                                  step_size=1e-4, num_targets=4), seed=0)
    assert not state.broken.any()
    assert len(calls) == 4
    for j, (labels, targets) in enumerate(calls):
        np.testing.assert_array_equal(labels, y)
        np.testing.assert_array_equal(targets, expected[:, j])
        assert np.all(targets != y)


def test_later_targets_run_only_on_examples_no_earlier_target_broke(shipped_mnist, held_out_batch,
                                                                    monkeypatch):
    x, y = held_out_batch
    calls = _record_targets(monkeypatch)
    config = AttackConfig(method="multitargeted", epsilon=EPS, steps=10, step_size=0.03,
                          num_targets=3)
    state = attack(shipped_mnist, x, y, config, seed=0)
    assert len(calls[0][0]) == len(x)
    assert sum(len(labels) for labels, _ in calls) < 3 * len(x)  # some broken by target 1
    # Untargeted success: broken means misclassified, whatever class the image lands on.
    np.testing.assert_array_equal(state.broken, predict(shipped_mnist, state.x_adv) != y)


def test_b_1_equals_the_sign_form_bit_for_bit(shipped_mnist, held_out_batch):
    x, y = held_out_batch[0][:10], held_out_batch[1][:10]
    common = dict(method="multitargeted", epsilon=EPS, steps=5, step_size=0.03, num_targets=2,
                  seed=3)
    sign = perturb(shipped_mnist, x, y, **common)
    np.testing.assert_array_equal(perturb(shipped_mnist, x, y, b=1, **common), sign)
    assert not np.array_equal(perturb(shipped_mnist, x, y, b=100, **common), sign)


def test_same_seed_same_images_other_seed_other_images(shipped_mnist, held_out_batch):
    x, y = held_out_batch[0][:10], held_out_batch[1][:10]
    run = lambda seed: perturb(shipped_mnist, x, y, method="multitargeted", epsilon=EPS, steps=3,
                               step_size=0.03, num_targets=2, seed=seed)
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
        multi = accuracy(perturb(shipped_mnist, x, y, method="multitargeted", epsilon=EPS,
                                 steps=20, step_size=0.03, num_targets=3, b=b, seed=0))
        assert multi < accuracy(x) and multi < fgsm, b


def test_its_default_loss_is_the_targeted_logit_margin():
    config = AttackConfig(method="multitargeted", epsilon=EPS, steps=5, step_size=0.01)
    assert config.resolved().loss == "logit_margin" and config.resolved().num_targets == 9
    import tensorflow as tf
    logits = tf.constant([[1.0, 4.0, 2.0], [0.5, -1.0, 3.0]])
    t = tf.constant([2, 0], tf.int64)
    values = config.make_loss(targeted=True)(logits, tf.constant([0, 1], tf.int64), t).numpy()
    np.testing.assert_allclose(values, [2.0 - 4.0, 0.5 - 3.0])


def test_gradient_budget_counts_every_target_and_the_odi_steps():
    kw = dict(method="multitargeted", epsilon=EPS, steps=100, step_size=0.01)
    assert AttackConfig(**kw).gradient_passes() == 900
    assert AttackConfig(num_targets=3, **kw).gradient_passes() == 300
    assert AttackConfig(num_targets=3, start="odi", **kw).gradient_passes() == 3 * 102


@pytest.mark.parametrize("kwargs,needle", [
    (dict(num_targets=0), "num_targets must be an integer in 1..C-1"),
    (dict(num_targets=10), "num_targets must be in 1..9"),
    (dict(y_target=np.ones(4, np.int64)), "multitargeted chooses its targets"),
    (dict(step_size=None), "step_size must be a finite number > 0"),
])
def test_bad_settings_are_one_line_errors_before_any_step(tiny_model, monkeypatch, kwargs, needle):
    monkeypatch.setattr(StepRunner, "run", lambda *a, **k: pytest.fail("a step ran"))
    x = np.zeros((4, 784), np.float32)
    y = np.zeros(4, np.int64)
    settings = dict(method="multitargeted", epsilon=EPS, steps=5, step_size=0.01)
    settings.update(kwargs)
    with pytest.raises(ValueError) as err:
        attacks.perturb(tiny_model, x, y, **settings)
    assert needle in str(err.value) and "\n" not in str(err.value)
