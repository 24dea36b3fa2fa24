"""On a CNN trained on the real MNIST training images, stronger attacks lower accuracy more."""
import numpy as np
import pytest

from attacks import AttackConfig, attack, perturb, predict

pytestmark = pytest.mark.slow  # every test here uses a CNN trained for the module (~10 s)

EPS = 0.1
N = 500


@pytest.fixture(scope="module")
def test_batch(mnist_test):
    x, y = mnist_test
    return x[:N], y[:N]


def _accuracy(model, x, y):
    return float(np.mean(predict(model, x) == y))


def test_fgsm_beats_clean_pgd_beats_fgsm_and_restarts_never_raise_accuracy(trained_mnist, test_batch):
    x, y = test_batch
    clean = _accuracy(trained_mnist, x, y)
    fgsm = _accuracy(trained_mnist, perturb(trained_mnist, x, y, method="fgsm", epsilon=EPS), y)
    config = AttackConfig(method="pgd", epsilon=EPS, steps=20, step_size=0.01)
    state = attack(trained_mnist, x, y, config, restarts=3, seed=0)
    assert clean > 0.9, "the fixture model did not train"
    assert fgsm < clean
    assert state.restart_accuracies[0] < fgsm
    merged_after_each = []
    for r in range(1, 4):
        merged_after_each.append(attack(trained_mnist, x, y, config, restarts=r, seed=0).accuracy)
    assert merged_after_each == sorted(merged_after_each, reverse=True)
    assert merged_after_each[-1] == state.accuracy <= min(state.restart_accuracies)
    assert _accuracy(trained_mnist, state.x_adv, y) == pytest.approx(state.accuracy)


def test_pqgd_is_at_least_as_strong_as_fgsm_and_quantized_steps_change_the_result(trained_mnist, test_batch):
    x, y = test_batch
    pgd = perturb(trained_mnist, x, y, method="pgd", epsilon=EPS, steps=10, step_size=0.01, seed=1)
    pqgd = perturb(trained_mnist, x, y, method="pqgd", b=100, epsilon=EPS, steps=10, step_size=0.01, seed=1)
    assert not np.array_equal(pgd, pqgd)
    fgsm_acc = _accuracy(trained_mnist, perturb(trained_mnist, x, y, method="fgsm", epsilon=EPS), y)
    assert _accuracy(trained_mnist, pqgd, y) < fgsm_acc


def test_bfloat16_attack_is_about_as_strong_as_float32(trained_mnist, test_batch):
    x, y = test_batch
    kw = dict(method="pgd", epsilon=EPS, steps=10, step_size=0.01, seed=2)
    acc32 = _accuracy(trained_mnist, perturb(trained_mnist, x, y, **kw), y)
    acc16 = _accuracy(trained_mnist, perturb(trained_mnist, x, y, compute_dtype="bfloat16", **kw), y)
    # 500 images: one example is 0.2 points; bfloat16 gradients flip some signs.
    assert abs(acc16 - acc32) <= 0.02


@pytest.mark.slow
@pytest.mark.parametrize("loss", ["xent", "logit_margin", "dlr"])
def test_targeted_attacks_reach_the_target_far_more_often_than_untargeted_ones_by_chance(
        trained_mnist, test_batch, loss):
    x, y = test_batch
    target = (y + 3) % 10
    kw = dict(method="pgd", epsilon=2 * EPS, steps=20, step_size=0.02, seed=5)
    untargeted = predict(trained_mnist, perturb(trained_mnist, x, y, **kw))
    targeted = predict(trained_mnist, perturb(trained_mnist, x, y, loss=loss, y_target=target, **kw))
    by_chance = np.mean(untargeted == target)
    reached = np.mean(targeted == target)
    # Measured: xent 0.99, logit_margin 0.97, dlr 0.41 (its margin ignores the other classes)
    # against 0.07 by chance.
    assert reached > max(0.3, 4 * by_chance)
