"""The benchmark's timing harness: warm-up, interleaved rotating rounds, failures dropped."""
import pytest

from bench.throughput import timed_round_robin


def _recorder(calls, key, fail_on=None):
    def fn():
        calls.append(key)
        if fail_on is not None and len(calls) >= fail_on:
            raise RuntimeError("boom")
        return f"out-{key}"
    return fn


def test_every_implementation_is_warmed_up_then_timed_once_per_rotating_round():
    calls = []
    fns = {k: _recorder(calls, k) for k in ("a", "b", "c")}
    outs, times = timed_round_robin(fns, repeats=3, pause_pid=None)
    assert calls == ["a", "b", "c",          # warm-up, untimed
                     "a", "b", "c", "b", "c", "a", "c", "a", "b"]
    assert outs == {"a": "out-a", "b": "out-b", "c": "out-c"}
    assert {k: len(v) for k, v in times.items()} == {"a": 3, "b": 3, "c": 3}
    assert all(t >= 0 for v in times.values() for t in v)


def test_a_failing_implementation_is_reported_and_dropped_the_others_still_timed():
    calls, failures = [], []
    fns = {("ok", "float32"): _recorder(calls, "ok"),
           ("bad", "float32"): _recorder([], "bad", fail_on=1)}
    outs, times = timed_round_robin(fns, repeats=2, pause_pid=None, label="batch 50",
                                    on_failure=lambda key, e: failures.append((key, str(e))))
    assert failures == [("bad@batch 50", "boom")]
    assert list(outs) == [("ok", "float32")] and len(times[("ok", "float32")]) == 2


def test_without_a_failure_handler_the_error_propagates():
    with pytest.raises(RuntimeError):
        timed_round_robin({"bad": _recorder([], "bad", fail_on=1)}, repeats=1, pause_pid=None)
