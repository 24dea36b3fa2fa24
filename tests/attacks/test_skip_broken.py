"""skip_broken: restarts after the first attack only the unbroken examples; the merged result
per example is the attack-everything one's, and the per-restart figures are of the subset."""
import numpy as np
import pytest

from attacks import AttackConfig, RunsState, attack, attack_runs, predict

N, EPS = 120, 0.01


@pytest.fixture(scope="module")
def data(mnist_test, tiny_model):
    """Real images labelled with the tiny model's own predictions (clean accuracy 100%), so
    that a small eps breaks some of them, and more with more random starts."""
    x = mnist_test[0][:N]
    return x, predict(tiny_model, x)


def _run(model, x, y, restarts=4, **settings):
    config = AttackConfig(**{"method": "pgd", "epsilon": EPS, "steps": 2,
                             "step_size": EPS / 3, "batch_size": 50, **settings})
    history = []
    state = attack(model, x, y, config, restarts=restarts, seed=0,
                   on_restart=lambda s: history.append(s.broken.copy()))
    return state, history


@pytest.mark.parametrize("settings", [
    {}, {"keep": "best"}, {"method": "pqgd", "b": 2, "step_size": 0.002},
    {"method": "apgd", "step_size": None, "norm": "l2", "epsilon": 0.3},
    {"start": "odi", "odi_steps": 1}, {"start": "odi", "keep": "best"},
    {"method": "apgd", "step_size": None, "norm": "l2", "epsilon": 0.3, "keep": "best"}],
    ids=["pgd", "pgd-best", "pqgd", "apgd-l2", "pgd-odi", "pgd-odi-best", "apgd-l2-best"])
def test_skipping_broken_examples_keeps_the_merged_result_of_attacking_everything(
        tiny_model, data, settings):
    x, y = data
    everything, history = _run(tiny_model, x, y, skip_broken=False, **settings)
    skipping, _ = _run(tiny_model, x, y, skip_broken=True, **settings)
    # Restarts after the first break more examples, and not all of them: the test has teeth.
    assert 0 < history[0].sum() < history[-1].sum() < N
    np.testing.assert_array_equal(skipping.broken, everything.broken)
    assert skipping.accuracy == everything.accuracy
    np.testing.assert_array_equal(skipping.x_adv, everything.x_adv)


def test_each_later_restart_reports_the_unbroken_subset_it_attacked(tiny_model, data):
    x, y = data
    _, history = _run(tiny_model, x, y, skip_broken=False)
    skipping, _ = _run(tiny_model, x, y, skip_broken=True)
    before = [np.zeros(N, bool)] + history[:-1]
    attacked = [N] + [int((~b).sum()) for b in before[1:]]
    assert skipping.restart_attacked == attacked
    assert attacked[1] < N
    want = [float((~after).sum() / (~b).sum()) for b, after in zip(before, history)]
    np.testing.assert_allclose(skipping.restart_accuracies, want)


def test_blob_regroups_the_whole_set_unless_asked_to_skip(tiny_model, data):
    x, y = data
    blob = {"method": "blob", "steps_per_group": 1}
    default, history = _run(tiny_model, x, y, restarts=2, **blob)
    opted_in, _ = _run(tiny_model, x, y, restarts=2, skip_broken=True, **blob)
    assert AttackConfig(method="blob", epsilon=EPS, steps=2, step_size=0.01).resolved().skip_broken is False
    assert default.restart_attacked == [N, N]
    # The first restart is the same either way; the opted-in second one attacks its survivors.
    assert 0 < history[0].sum() < N
    assert opted_in.restart_attacked == [N, int((~history[0]).sum())]


def test_a_restart_with_nothing_left_attacks_nothing_and_says_so(tiny_model, data):
    x, y = data
    state, _ = _run(tiny_model, x, y, restarts=2, epsilon=0.5, step_size=0.2, skip_broken=True)
    assert state.broken.all()
    assert state.restart_attacked == [N, 0]
    assert state.restart_accuracies == [0.0, None]


def test_runs_record_the_attacked_counts_and_read_them_back(tiny_model, data):
    x, y = data
    config = AttackConfig(method="pgd", epsilon=EPS, steps=2, step_size=EPS / 3, batch_size=50)
    state = attack_runs(tiny_model, x, y, config, runs=2, restarts=3, seed=0)
    assert [a[0] for a in state.run_restart_attacked] == [N, N]
    assert all(a[1] < N for a in state.run_restart_attacked)
    arrays, meta = state.to_record()
    back = RunsState.from_record(arrays, meta, num_examples=N)
    assert back.run_restart_attacked == state.run_restart_attacked
    assert back.run_restart_accuracies == state.run_restart_accuracies
    meta["run_restart_attacked"][0][1] = N + 1
    with pytest.raises(ValueError, match="run_restart_attacked"):
        RunsState.from_record(arrays, meta, num_examples=N)


@pytest.mark.parametrize("value", ["yes", 1, None])
def test_skip_broken_must_be_auto_or_a_bool(value):
    with pytest.raises(ValueError, match="skip_broken"):
        AttackConfig(method="pgd", epsilon=0.3, steps=1, step_size=0.1, skip_broken=value)


def test_odi_steps_run_only_for_the_examples_a_later_restart_attacks(tiny_model, data,
                                                                     monkeypatch):
    from attacks.engine import StepRunner
    from attacks.odi import odi_objective
    x, y = data
    odi_rows, real_run = [], StepRunner.run

    def spy(self, x_run, *args, **kwargs):
        if self._objective is odi_objective:
            odi_rows[-1] += len(x_run)
        return real_run(self, x_run, *args, **kwargs)
    monkeypatch.setattr(StepRunner, "run", spy)
    config = AttackConfig(method="pgd", epsilon=EPS, steps=2, step_size=EPS / 3, batch_size=50,
                          start="odi", skip_broken=True)
    attacked = []

    def after(state):
        attacked.append(state.restart_attacked[-1])
        odi_rows.append(0)
    odi_rows.append(0)
    state = attack(tiny_model, x, y, config, restarts=3, seed=0, on_restart=after)
    assert attacked[0] == N and attacked[-1] < N  # later restarts had a smaller subset
    assert odi_rows[:3] == attacked == state.restart_attacked


def test_odi_on_a_subset_gives_those_rows_of_the_whole_sets_start(tiny_model, data):
    from attacks import make_runners
    x, y = data
    config = AttackConfig(method="pgd", epsilon=EPS, steps=2, step_size=EPS / 3, batch_size=50,
                          start="odi")
    odi = make_runners(tiny_model, config).odi
    start = config.step_rule().random_perturb(x, np.random.default_rng(5))
    rows = np.array([3, 4, 50, 51, 99, 119])
    whole = odi(start, x, y, np.random.default_rng(1))
    subset = odi(start, x, y, np.random.default_rng(1), examples=rows)
    assert subset.shape == (len(rows), *x.shape[1:])
    np.testing.assert_array_equal(subset, whole[rows])
    assert not np.array_equal(whole[rows], start[rows])  # the steps moved them
