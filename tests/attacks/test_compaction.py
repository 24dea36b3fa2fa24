"""keep="best" with compaction: examples that succeeded leave the batch at chunk boundaries,
without retracing, and every kept result is the uncompacted loop's."""
import numpy as np
import pytest

from attacks import AttackConfig, BestIterate, attack, make_runner, predict

N, EPS, STEPS = 100, 0.02, 25  # 25 steps: chunks of 10, 10 and 5


@pytest.fixture(scope="module")
def batch(mnist_test, tiny_model):
    """Real images labelled with the tiny model's own predictions; small steps, so they
    break at different steps (and some not at all)."""
    x = mnist_test[0][:N]
    return x, predict(tiny_model, x)


def _config(**settings):
    return AttackConfig(**{"method": "pgd", "epsilon": EPS, "steps": STEPS, "step_size": 0.001,
                           "batch_size": N, "keep": "best", **settings})


def _start(x):
    rng = np.random.default_rng(0)
    return np.clip(x + rng.uniform(-EPS, EPS, x.shape), 0, 1).astype(np.float32)


@pytest.mark.parametrize("settings", [{}, {"method": "pqgd", "b": 10}], ids=["pgd", "pqgd"])
def test_compaction_keeps_the_same_best_iterates_and_final_points(tiny_model, batch, settings):
    x, y = batch
    runner = make_runner(tiny_model, _config(**settings))
    plain, compact = BestIterate.empty(x), BestIterate.empty(x)
    x_plain = runner.run(_start(x), x, y, STEPS, best=plain)
    x_compact = runner.run(_start(x), x, y, STEPS, best=compact, compact=True)
    assert 0 < plain.found.sum() < N
    np.testing.assert_array_equal(compact.found, plain.found)
    np.testing.assert_array_equal(compact.x[plain.found], plain.x[plain.found])
    # Examples never broken stayed in the batch to the end: the same last iterate.
    np.testing.assert_array_equal(x_compact[~plain.found], x_plain[~plain.found])


def test_an_example_that_succeeded_leaves_at_the_next_chunk_boundary(tiny_model, batch):
    x, y = batch
    runner = make_runner(tiny_model, _config())
    # The first chunk's forward passes score x_0 .. x_9: a 9-step run's checks.
    in_first_chunk = BestIterate.empty(x)
    runner.run(_start(x), x, y, 9, best=in_first_chunk)
    x_10 = runner.run(_start(x), x, y, 10)
    x_out = runner.run(_start(x), x, y, STEPS, best=BestIterate.empty(x), compact=True)
    early = in_first_chunk.found
    assert 0 < early.sum() < N
    # Broken within the first chunk: its returned point is where it left, after step 10.
    np.testing.assert_array_equal(x_out[early], x_10[early])
    # An uncompacted run moves those examples further.
    x_full = runner.run(_start(x), x, y, STEPS)
    assert not np.array_equal(x_full[early], x_10[early])


def test_shrinking_batches_do_not_retrace_the_compiled_chunks(tiny_model, batch):
    x, y = batch
    runner = make_runner(tiny_model, _config())
    runner.run(_start(x), x, y, STEPS, best=BestIterate.empty(x), compact=True)
    shape = x.shape[1:]
    chunks = [runner._compiled_steps(m, shape, True) for m in (10, 5, 0)]
    traces = [c.experimental_get_tracing_count() for c in chunks]
    best = BestIterate.empty(x)
    runner.run(_start(x), x, y, STEPS, best=best, compact=True)
    assert 0 < best.found.sum() < N  # batches of several sizes were run
    assert [c.experimental_get_tracing_count() for c in chunks] == traces


def test_attack_with_compaction_merges_to_the_attack_everything_result(tiny_model, batch):
    x, y = batch
    everything = attack(tiny_model, x, y, _config(steps=12, skip_broken=False), restarts=2, seed=1)
    compacted = attack(tiny_model, x, y, _config(steps=12, skip_broken=True), restarts=2, seed=1)
    assert _config(skip_broken=True).compacts and not _config(skip_broken=False).compacts
    assert not _config(method="blob", skip_broken=True).compacts  # BLOB's groups stay whole
    np.testing.assert_array_equal(compacted.broken, everything.broken)
    assert compacted.accuracy == everything.accuracy
    np.testing.assert_array_equal(compacted.x_adv, everything.x_adv)
    assert np.mean(predict(tiny_model, compacted.x_adv) == y) == compacted.accuracy


@pytest.mark.parametrize("method", ["apgd", "apgd_t"])
def test_apgd_compaction_keeps_the_same_results_and_the_others_whole_schedule(tiny_model, batch,
                                                                               method):
    from attacks.apgd import top_targets
    from attacks.api import _logits
    x, y = batch
    config = _config(method=method, step_size=None, epsilon=0.006)
    targets = top_targets(_logits(tiny_model, x, N), y, 1)[:, 0] if method == "apgd_t" else None
    runner = make_runner(tiny_model, config, targeted=method == "apgd_t")
    assert runner.stateful
    plain, compact = BestIterate.empty(x), BestIterate.empty(x)
    rec_plain, rec_compact = {}, {}
    x_plain = runner.run(_start(x), x, y, STEPS, best=plain, record=rec_plain, y_target=targets)
    x_compact = runner.run(_start(x), x, y, STEPS, best=compact, record=rec_compact,
                           y_target=targets, compact=True)
    found = plain.found
    assert 0 < found.sum() < N
    np.testing.assert_array_equal(compact.found, found)
    np.testing.assert_array_equal(compact.x[found], plain.x[found])
    # Never broken: stayed to the end, the same best-loss point and the same whole record.
    # Floats to within a few ulps: a smaller batch moves a row against the CPU's vector
    # width, and on CPUs without AVX-512 the elementwise kernels round the packet tail
    # differently (measured: 8 of 54,096 pixels one ulp apart); a misplaced row would be off
    # by a step (>= 1e-3). Counters, flags and step sizes must match exactly.
    np.testing.assert_allclose(x_compact[~found], x_plain[~found], rtol=0, atol=1e-6)
    from attacks.apgd import APGDStep
    for name, axis in zip(APGDStep.state_names, APGDStep.state_example_axes):
        want, got = rec_plain[name], rec_compact[name]
        if axis is not None:
            want, got = np.compress(~found, want, axis=axis), np.compress(~found, got, axis=axis)
        if np.asarray(want).dtype.kind == "f" and name != "eta":
            np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6, err_msg=name)
        elif name == "best_step":
            # Two iterates whose losses tie to within those ulps may swap as the best; the
            # best loss itself must be the same.
            rows = np.arange(want.shape[1])
            loss_plain = np.compress(~found, rec_plain["loss"], axis=1)
            loss_compact = np.compress(~found, rec_compact["loss"], axis=1)
            for k in range(len(want)):
                np.testing.assert_allclose(loss_compact[got[k], rows],
                                           loss_plain[want[k], rows], rtol=1e-5, atol=1e-6)
            assert np.mean(got == want) > 0.98  # swaps are rare ties, not a shifted record
        else:  # the step counter, windows, step sizes, counts and flags
            np.testing.assert_array_equal(got, want, err_msg=name)
    # Broken in the first chunk (scored at x_0 .. x_9): left after step 10, so its record
    # stops there while the uncompacted run's goes on.
    first = BestIterate.empty(x)
    runner.run(_start(x), x, y, 9, best=first, y_target=targets)
    early = first.found
    assert early.any()
    assert np.all(rec_compact["loss"][11:, early] == 0)
    assert np.any(rec_plain["loss"][11:, early] != 0)
