"""`strongest`: members on the unbroken examples only, per-example merge, one gradient budget."""
import copy

import numpy as np
import pytest

from attacks import AttackConfig, attack, predict
from attacks import ensemble
from attacks.ensemble import (DEFAULT_PLAN, Member, default_members, member_steps,
                              strongest)

EPS = 0.01
PGD = Member("pgd", 1 / 3, {"method": "pgd"}, step_factor=2.5)
CE = Member("apgd_ce", 1 / 3, {"method": "apgd", "loss": "xent"})
DLR_Q = Member("apgd_dlr_q", 1 / 3, {"method": "apgd", "loss": "dlr", "b": 10.0})
MEMBERS = (PGD, CE, DLR_Q)
BUDGET = 12  # 4 steps each


@pytest.fixture(scope="module")
def data(tiny_model, mnist_test):
    """24 real test images labelled with the tiny model's own predictions (all correct)."""
    x = mnist_test[0][:24]
    return x, predict(tiny_model, x)


def run(model, x, y, **kw):
    kw = {"budget": BUDGET, "members": MEMBERS, "seed": 3, "batch_size": 1, **kw}
    return strongest(model, x, y, EPS, **kw)


def test_strongest_breaks_every_example_that_any_member_run_alone_breaks(tiny_model, data):
    x, y = data
    ens = run(tiny_model, x, y)
    assert 0 < ens.broken.sum() < len(x)  # the check below is not vacuous
    for k, (member, steps) in enumerate(zip(MEMBERS, member_steps(MEMBERS, BUDGET, EPS))):
        cfg = member.config(EPS, steps, batch_size=1)
        start = cfg.step_rule().random_perturb(x, np.random.default_rng([3, k]))
        alone = attack(tiny_model, x, y, cfg, seed=[3, k], x_start=start)
        assert np.all(ens.broken[alone.broken]), member.name
        assert ens.accuracy <= alone.accuracy
    # broken means what the model says about the returned images
    np.testing.assert_array_equal(predict(tiny_model, ens.x_adv) != y, ens.broken)
    assert np.abs(ens.x_adv - x).max() <= EPS + 1e-6


def test_each_member_attacks_only_the_examples_no_earlier_member_broke(tiny_model, data):
    x, y = data
    y = y.copy()
    y[:3] = (y[:3] + 1) % 10  # three examples wrong before any attack
    ens = run(tiny_model, x, y)
    assert ens.clean_broken == 3
    left = len(x) - 3
    for m in ens.members:
        assert m.attacked == left
        left -= m.broke
    assert ens.broken.sum() == len(x) - left
    assert [m.name for m in ens.members] == [m.name for m in MEMBERS]


def test_passes_spent_are_the_steps_times_the_examples_each_member_attacked(tiny_model, data):
    x, y = data
    ens = run(tiny_model, x, y)
    assert [m.steps for m in ens.members] == [4, 4, 4]
    expected = sum(4 * m.attacked for m in ens.members)
    assert [m.passes for m in ens.members] == [4 * m.attacked for m in ens.members]
    assert ens.passes_per_example == pytest.approx(expected / len(x))
    assert ens.passes_per_example <= BUDGET


def test_an_apgd_t_member_is_charged_one_run_per_target_it_tried(tiny_model, data):
    x, y = data
    members = (Member("apgd_ce", 0.2, {"method": "apgd"}),
               Member("apgd_t", 0.8, {"method": "apgd_t", "loss": "dlr", "num_targets": 2}))
    ens = run(tiny_model, x, y, members=members, budget=20)  # ce 4 steps, apgd_t 8 per target
    ce, t = ens.members
    assert (ce.steps, t.steps) == (4, 8)
    assert 8 * t.attacked <= t.passes <= 2 * 8 * t.attacked and t.passes % 8 == 0
    assert ens.passes_per_example <= 20


def test_an_odi_member_is_charged_its_odi_steps_once_per_run_within_its_share(tiny_model, data):
    x, y = data
    odi = Member("apgd_odi", 1.0, {"method": "apgd", "start": "odi", "odi_steps": 2})
    assert (odi.passes_per_step(EPS), odi.fixed_passes(EPS)) == (1, 2)
    assert member_steps((odi,), 12, EPS) == [10]  # 2 ODI steps + 10 steps = 12 passes
    ens = run(tiny_model, x, y, members=(odi,), budget=12)
    [m] = ens.members
    assert m.steps == 10 and m.passes == 12 * m.attacked
    t_odi = Member("t", 1.0, {"method": "apgd_t", "loss": "dlr", "num_targets": 2,
                              "start": "odi"})
    assert (t_odi.passes_per_step(EPS), t_odi.fixed_passes(EPS)) == (2, 4)
    assert member_steps((t_odi,), 11, EPS) == [3]  # 2 targets x (2 ODI + 3 steps) = 10
    with pytest.raises(ValueError, match="at least 6"):
        member_steps((t_odi,), 5, EPS)


def test_a_budget_too_small_for_the_members_is_refused_before_any_attack(tiny_model, data):
    x, y = data
    with pytest.raises(ValueError, match=r"^budget 2 passes .* at least 3$"):
        run(tiny_model, x, y, budget=2)
    apgd_t = (Member("t", 0.5, {"method": "apgd_t", "loss": "dlr", "num_targets": 9}),)
    with pytest.raises(ValueError, match="at least 18"):
        member_steps(apgd_t, 17, EPS)
    assert member_steps(apgd_t, 18, EPS) == [1]
    with pytest.raises(ValueError, match="shares must sum to at most 1"):
        member_steps((PGD, CE, DLR_Q, CE.__class__("x", 0.5, {"method": "apgd"})), 100, EPS)
    with pytest.raises(ValueError, match="budget must be an integer"):
        member_steps(MEMBERS, 0, EPS)


def test_the_same_seed_gives_the_same_images_and_another_seed_other_ones(tiny_model, data):
    x, y = data
    a, b, c = run(tiny_model, x, y), run(tiny_model, x, y), run(tiny_model, x, y, seed=4)
    np.testing.assert_array_equal(a.x_adv, b.x_adv)
    assert a.summary() == b.summary()
    assert not np.array_equal(a.x_adv, c.x_adv)


def test_a_run_resumed_after_a_finished_member_ends_as_an_uninterrupted_one(tiny_model, data):
    x, y = data
    saved = []
    full = run(tiny_model, x, y, on_member=lambda s: saved.append(copy.deepcopy(s)))
    assert [s.completed for s in saved] == [1, 2, 3]
    resumed = run(tiny_model, x, y, resume=saved[0])
    np.testing.assert_array_equal(resumed.x_adv, full.x_adv)
    assert resumed.summary() == full.summary()


def test_every_default_ensemble_fits_the_budget_it_was_tuned_at():
    for tuned, members in DEFAULT_PLAN:
        steps = member_steps(members, tuned, 0.3)
        assert all(s >= 1 for s in steps), tuned
        for m in members:
            assert isinstance(m.config(0.3, 10), AttackConfig)


def test_default_members_take_the_entry_of_the_largest_tuned_budget_at_or_below():
    tuned = [b for b, _ in DEFAULT_PLAN]
    assert tuned == sorted(set(tuned))
    for i, (b, members) in enumerate(DEFAULT_PLAN):
        assert default_members(b) == members
        upper = DEFAULT_PLAN[i + 1][0] if i + 1 < len(DEFAULT_PLAN) else 10 * b
        assert default_members(upper - 1) == members
    assert default_members(1) == DEFAULT_PLAN[0][1]  # below the smallest: the first entry
    for bad in (0, -3, 2.5, True, "10"):
        with pytest.raises(ValueError, match=r"^budget must be an integer >= 1"):
            default_members(bad)


def test_strongest_without_members_runs_the_plan_entry_for_its_budget(tiny_model, data,
                                                                     monkeypatch):
    x, y = data
    one = Member("pgd_all", 1.0, {"method": "pgd"}, step_factor=2.5)
    monkeypatch.setattr(ensemble, "DEFAULT_PLAN", ((4, (one,)), (12, MEMBERS)))
    small = strongest(tiny_model, x, y, EPS, budget=6, seed=3, batch_size=1)
    assert [(m.name, m.steps) for m in small.members] == [("pgd_all", 6)]
    large = strongest(tiny_model, x, y, EPS, budget=BUDGET, seed=3, batch_size=1)
    explicit = run(tiny_model, x, y)  # the same members given explicitly
    assert [m.name for m in large.members] == [m.name for m in MEMBERS]
    np.testing.assert_array_equal(large.x_adv, explicit.x_adv)
    assert large.summary() == explicit.summary()
