"""Run in a fresh process (``python -m tests.attacks.replica_check N``): splits the CPU into
``N`` logical devices, then attacks a small CNN with and without a ``MirroredStrategy`` over
them and prints one JSON line of what it found (read by ``test_distribute.py``).

Logical devices can only be configured before TensorFlow initialises its devices, hence a
process of its own, so the rest of a test session keeps one CPU device.
"""
import json
import sys

import tensorflow as tf


def main(n_devices: int) -> dict:
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(
        cpu, [tf.config.LogicalDeviceConfiguration() for _ in range(n_devices)])
    import keras
    import numpy as np

    from attacks import AttackConfig, RunsState, attack_runs
    from attacks.distribute import run_schedule

    devices = [d.name for d in tf.config.list_logical_devices("CPU")]
    strategy = tf.distribute.MirroredStrategy(devices)
    keras.utils.set_random_seed(5)
    inputs = keras.Input((784,))
    h = keras.layers.Reshape((28, 28, 1))(inputs)
    h = keras.layers.Conv2D(4, 5, strides=2, activation="relu")(h)
    h = keras.layers.Flatten()(h)
    h = keras.layers.Dense(16, activation="relu")(h)
    model = keras.Model(inputs, keras.layers.Dense(10)(h))
    rng = np.random.default_rng(11)
    x = rng.random((30, 784), dtype=np.float32)
    y = rng.integers(0, 10, 30)

    # Which device ran each group of a 3-round BLOB-like schedule (two rounds share examples).
    order = rng.permutation(30)
    schedule = [(np.arange(i, min(i + 4, 30)), 1) for i in range(0, 30, 4)] + \
               [(np.sort(order[i:i + 4]), 1) for i in range(0, 30, 4)]
    ran = []
    run_schedule(iter(schedule), lambda idx, n: tf.identity(tf.constant(idx)).device,
                 lambda idx, n, dev: ran.append([idx.tolist(), dev]))

    def placed(idx, n):
        return tf.identity(tf.constant(idx)).device

    ran_multi = []
    run_schedule(iter(schedule), placed, lambda idx, n, dev: ran_multi.append([idx.tolist(), dev]),
                 strategy)

    equal, moved = {}, {}
    for method, extra in (("pgd", {"keep": "best"}), ("pqgd", {"b": 5}),
                          ("blob", {"steps_per_group": 2}),
                          ("blob_qg", {"b": 5, "steps_per_group": 2})):
        config = AttackConfig(method=method, epsilon=0.3, steps=5, step_size=0.05, batch_size=4,
                              **extra)
        one = attack_runs(model, x, y, config, runs=2, restarts=2, seed=3)
        many = attack_runs(model, x, y, config, runs=2, restarts=2, seed=3, strategy=strategy)
        equal[method] = bool(np.array_equal(one.worst_x_adv, many.worst_x_adv)
                             and one.run_restart_accuracies == many.run_restart_accuracies)
        moved[method] = float(np.abs(one.worst_x_adv - x).max())
    # A run interrupted under the strategy after its first restart, resumed without one.
    config = AttackConfig(method="pqgd", b=5, epsilon=0.3, steps=3, step_size=0.05, batch_size=4)
    saved = []

    class Stop(Exception):
        pass

    def save_then_stop(state, run):
        saved.append(state.to_record())
        raise Stop

    try:
        attack_runs(model, x, y, config, restarts=2, seed=8, strategy=strategy,
                    on_update=save_then_stop)
    except Stop:
        pass
    resumed = attack_runs(model, x, y, config, restarts=2, seed=8,
                          resume=RunsState.from_record(*saved[-1]))
    whole = attack_runs(model, x, y, config, restarts=2, seed=8)
    equal["resumed"] = bool(np.array_equal(resumed.worst_x_adv, whole.worst_x_adv)
                            and resumed.run_restart_accuracies == whole.run_restart_accuracies)
    try:
        attack_runs(model, x[:4 * (n_devices - 1)], y[:4 * (n_devices - 1)],
                    AttackConfig(method="blob", epsilon=0.3, steps=2, step_size=0.05, batch_size=4),
                    seed=0, strategy=strategy)
        refusal = None
    except ValueError as err:
        refusal = str(err)
    return {"devices": devices, "replicas": strategy.num_replicas_in_sync,
            "schedule": [[idx.tolist(), 1] for idx, _ in schedule], "ran_single": ran,
            "ran_multi": ran_multi, "equal": equal, "moved": moved, "refusal": refusal}


if __name__ == "__main__":
    print("RESULT " + json.dumps(main(int(sys.argv[1]))))
