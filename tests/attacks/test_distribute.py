"""attacks on a tf.distribute.Strategy: the same images as on one device, groups dealt whole."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from attacks import AttackConfig, attack, perturb
from attacks.api import group_schedule
from attacks.distribute import (check_groups, check_strategy, pack_arrays, unpack_arrays,
                                waves)
from tests.conftest import REPO_ROOT
from tests.simulated_workers import SimulatedWorkers


def _blob_schedule(n: int, batch: int, steps: int, per_group: int, seed: int):
    config = AttackConfig(method="blob", epsilon=0.3, steps=steps, step_size=0.01,
                          batch_size=batch, steps_per_group=per_group)
    return group_schedule(n, config, np.random.default_rng(seed))


def test_waves_concatenate_to_the_schedule_in_its_order_with_the_same_draws():
    plain = list(_blob_schedule(10, 3, 5, 2, seed=4))
    dealt = [group for wave in waves(_blob_schedule(10, 3, 5, 2, seed=4), 2) for group in wave]
    assert len(dealt) == len(plain)
    for (idx_a, n_a), (idx_b, n_b) in zip(plain, dealt):
        np.testing.assert_array_equal(idx_a, idx_b)
        assert n_a == n_b


def test_a_wave_holds_at_most_width_disjoint_groups_and_a_new_round_starts_a_new_wave():
    # 9 examples in groups of 3: one round (3 groups) per wave, rounds of 2, 2 and 1 steps.
    found = list(waves(_blob_schedule(9, 3, 5, 2, seed=4), 3))
    assert [[n for _, n in w] for w in found] == [[2] * 3, [2] * 3, [1] * 3]
    # 10 examples: a round's last group of one may share a wave with the next round's first
    # groups only where they are disjoint from it.
    for wave in waves(_blob_schedule(10, 3, 5, 2, seed=4), 3):
        assert 1 <= len(wave) <= 3
        members = np.concatenate([idx for idx, _ in wave])
        assert len(np.unique(members)) == len(members)


def test_pgd_batches_fill_whole_waves():
    config = AttackConfig(method="pgd", epsilon=0.3, steps=4, step_size=0.01, batch_size=2)
    found = list(waves(group_schedule(9, config, np.random.default_rng(0)), 2))
    assert [[idx.tolist() for idx, _ in w] for w in found] == [
        [[0, 1], [2, 3]], [[4, 5], [6, 7]], [[8]]]


def test_waves_refuse_a_width_below_one():
    with pytest.raises(ValueError, match="width"):
        list(waves(iter([]), 0))


@pytest.mark.parametrize("strategy", ["mirrored", 2, object()])
def test_perturb_refuses_a_strategy_that_is_no_tf_distribute_strategy(tiny_model, strategy):
    x = np.full((4, 784), 0.5, np.float32)
    with pytest.raises(ValueError, match="^strategy must be None or a tf.distribute.Strategy"):
        perturb(tiny_model, x, np.zeros(4, np.int64), method="pgd", epsilon=0.1, steps=1,
                step_size=0.01, strategy=strategy)


def test_check_strategy_accepts_none_the_default_and_a_one_device_strategy():
    assert check_strategy(None) is None
    default = tf.distribute.get_strategy()
    assert check_strategy(default) is default
    one = tf.distribute.OneDeviceStrategy("/cpu:0")
    assert check_strategy(one) is one


def test_more_replicas_than_groups_is_refused_naming_the_counts():
    check_groups(None, 1, 200)
    one = tf.distribute.OneDeviceStrategy("/cpu:0")
    check_groups(one, 1, 200)

    class _Three:  # only the replica count matters here
        num_replicas_in_sync = 3
    with pytest.raises(ValueError, match="3 replicas but 5 example.* only 2 group"):
        check_groups(_Three(), 5, 4)


@pytest.mark.parametrize("method", ["pgd", "blob"])
def test_a_one_device_strategy_gives_the_images_of_no_strategy(tiny_model, method):
    rng = np.random.default_rng(2)
    x = rng.random((12, 784), dtype=np.float32)
    y = rng.integers(0, 10, 12)
    config = AttackConfig(method=method, epsilon=0.2, steps=3, step_size=0.05, batch_size=5,
                          steps_per_group=2)
    plain = attack(tiny_model, x, y, config, restarts=2, seed=6)
    one = attack(tiny_model, x, y, config, restarts=2, seed=6,
                 strategy=tf.distribute.OneDeviceStrategy("/cpu:0"))
    np.testing.assert_array_equal(one.x_adv, plain.x_adv)
    assert one.restart_accuracies == plain.restart_accuracies


def _replica_check(n_devices: int) -> dict:
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", PYTHONPATH=str(REPO_ROOT))
    proc = subprocess.run([sys.executable, "-m", "tests.attacks.replica_check", str(n_devices)],
                          cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    line = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")][-1]
    return json.loads(line[len("RESULT "):])


@pytest.mark.slow
@pytest.mark.parametrize("n_devices", [2, 3])
def test_logical_cpu_replicas_give_the_single_device_images_bit_for_bit(n_devices):
    found = _replica_check(n_devices)
    assert found["replicas"] == n_devices
    # PGD, PQGD, BLOB, BLOB_QG over 2 runs x 2 restarts: identical images and accuracies,
    # and the attacks did move the images (to the eps-ball's edge); a run stopped after a
    # restart under the strategy and resumed without it ends as an uninterrupted one.
    assert found["equal"] == {"pgd": True, "pqgd": True, "blob": True, "blob_qg": True,
                              "resumed": True}
    assert all(abs(m - 0.3) < 1e-6 for m in found["moved"].values())
    # Without a strategy every group runs on CPU:0; with one, the i-th group of each wave
    # runs on replica i, each group exactly once, a wave's groups disjoint.
    assert {dev for _, dev in found["ran_single"]} == {
        "/job:localhost/replica:0/task:0/device:CPU:0"}
    assert [idx for idx, _ in found["ran_multi"]] == [idx for idx, _ in found["schedule"]]
    devices = [dev.rsplit(":", 1)[1] for _, dev in found["ran_multi"]]
    per_round = -(-30 // 4)
    expected = [str(i % per_round % n_devices) for i in range(2 * per_round)]
    assert devices == expected
    assert found["refusal"].startswith(f"strategy has {n_devices} replicas but "
                                       f"{4 * (n_devices - 1)} example(s) at batch_size 4")


@pytest.mark.parametrize("count", [2, 3])
def test_gathered_bytes_arrive_unchanged_in_rank_order_on_every_worker(count):
    # Lengths that are and are not multiples of the int32 word, an empty message, and bytes
    # whose words are negative int32 values (0xff...): sums with zeros must leave them exact.
    rng = np.random.default_rng(3)
    messages = [bytes([0xff] * 7), b"", rng.integers(0, 256, 4001, dtype=np.uint8).tobytes()]
    messages = messages[:count]
    workers = SimulatedWorkers(count)
    found = workers.run(lambda rank, gather: gather(messages[rank]))
    assert found == [messages] * count
    assert workers.reductions == 2  # the lengths, then the payload


def test_an_exchange_where_every_worker_sends_nothing_runs_no_empty_all_reduce():
    workers = SimulatedWorkers(2)
    assert workers.run(lambda rank, gather: gather(b"")) == [[b"", b""]] * 2
    assert workers.sizes == [2]  # only the lengths: TensorFlow crashes on an empty reduce


def test_packed_arrays_round_trip_without_pickle():
    arrays = {"0/x": np.arange(6, dtype=np.float32).reshape(2, 3), "1/flag": np.array([True])}
    back = unpack_arrays(pack_arrays(arrays))
    assert sorted(back) == sorted(arrays)
    for key, value in arrays.items():
        assert back[key].dtype == value.dtype
        np.testing.assert_array_equal(back[key], value)
    with pytest.raises(ValueError):  # pickled objects are refused on arrival
        unpack_arrays(pack_arrays({"objects": np.array([{}], dtype=object)}))
