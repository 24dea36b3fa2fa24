"""workflow.cluster: what the workers of a multi-worker run tell each other, over simulated
workers (threads whose all-reduce is numpy's sum; the real packing of attacks.gather_bytes)."""
import pytest

from tests.simulated_workers import SimulatedWorkers
from workflow import cluster

JOB = {"settings": {"steps": 3, "seed": 0}, "data_sha256": "ab" * 32}


def test_workers_with_the_same_fingerprint_each_keep_their_own_value():
    results = SimulatedWorkers(3).run(lambda rank, gather: cluster.agree_on_the_job(
        gather, lambda: (f"value of {rank}", JOB)))
    assert results == ["value of 0", "value of 1", "value of 2"]


def test_a_worker_with_other_settings_is_named_with_what_differs_on_every_worker():
    def work(rank, gather):
        job = {**JOB, "settings": {"steps": 4, "seed": 0}} if rank == 2 else JOB
        return cluster.agree_on_the_job(gather, lambda: (None, job))

    for result in SimulatedWorkers(3).run(work):
        assert isinstance(result, cluster.ClusterError)
        assert "worker 2 was started with other settings than the chief " \
               "(settings.steps: 4 there, 3 here)" in str(result)


def test_other_data_is_named_by_its_digest_without_printing_it():
    def work(rank, gather):
        job = {**JOB, "data_sha256": "cd" * 32} if rank == 1 else JOB
        return cluster.agree_on_the_job(gather, lambda: (None, job))

    for result in SimulatedWorkers(2).run(work):
        assert "(data_sha256 differs)" in str(result) and "cdcd" not in str(result)


def test_a_worker_that_fails_before_its_fingerprint_stops_every_worker_at_once():
    class Missing(Exception):
        pass

    def work(rank, gather):
        def prepare():
            if rank == 1:
                raise Missing("/data/mnist: no such folder\nsecond line")
            return None, JOB
        return cluster.agree_on_the_job(gather, prepare)

    chief, failed = SimulatedWorkers(2).run(work)
    assert isinstance(failed, Missing)  # its own error, unchanged
    assert isinstance(chief, cluster.ClusterError)
    assert str(chief) == ("--strategy=multi_worker: worker 1 stopped before the job started "
                          "(/data/mnist: no such folder); fix it and run the same command on "
                          "every worker")


@pytest.mark.parametrize("payload", [None, b"", b"state bytes \x00\xff" * 3])
def test_the_chiefs_payload_reaches_every_worker_and_theirs_is_ignored(payload):
    found = SimulatedWorkers(3).run(lambda rank, gather: cluster.from_the_chief(
        gather, rank == 0, payload=payload if rank == 0 else b"not this"))
    # The chief with nothing (None) and with empty bytes are told apart.
    assert found == [payload] * 3


def test_an_error_of_the_chief_is_raised_on_every_worker_as_the_given_type():
    found = SimulatedWorkers(2).run(lambda rank, gather: cluster.from_the_chief(
        gather, rank == 0, payload=b"unused", error="runs/x is in use by process 12",
        raise_as=KeyError))
    assert all(isinstance(err, KeyError) for err in found)
    assert [err.args[0] for err in found] == ["runs/x is in use by process 12",
                                              "runs/x is in use by process 12 (on the chief)"]


def test_a_signal_on_any_worker_is_seen_by_all_with_its_rank():
    signals = [None, 15, 2]
    assert SimulatedWorkers(3).run(lambda rank, gather: cluster.any_stopped(
        gather, signals[rank])) == [(1, 15)] * 3
    assert SimulatedWorkers(2).run(lambda rank, gather: cluster.any_stopped(gather, None)) \
        == [None, None]


def test_differences_name_changed_missing_and_extra_keys_with_a_limit():
    assert cluster.differences({"a": 1, "b": {"c": 2}}, {"a": 1, "b": {"c": 3}}) == \
        ["b.c: 3 there, 2 here"]
    assert cluster.differences({"a": 1}, {"b": 1}) == ["a not recorded", "b unknown here"]
    many = cluster.differences({str(i): i for i in range(6)}, {str(i): -i for i in range(6)})
    assert len(many) == 5 and many[-1] == "1 more"  # "0" is equal: 5 differ, 4 shown
