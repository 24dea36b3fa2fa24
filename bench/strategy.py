"""The cost of running an attack on a tf.distribute strategy: one device against a
MirroredStrategy over the CPU split into logical devices (or over GPUs), interleaved.

    python -m bench.strategy --devices=2 --out bench/results_strategy.json

One process: the CPU is split into ``max(--devices)`` logical devices before TensorFlow
starts (on a machine with GPUs, the first N GPUs are used instead), then for every repeat
and method each configuration runs the same attack (same seed) in alternating order
(ABBA...), after one untimed warm-up each. Records example-steps/s per run, their medians,
the ratio strategy / one device, and whether the images were identical bit for bit.
"""
from __future__ import annotations

import argparse
import json
import statistics
import time


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--devices", default="2", help="replica counts to compare with one "
                        "device, comma-separated (e.g. 2,3)")
    parser.add_argument("--methods", default="pgd,blob")
    parser.add_argument("--num_examples", type=int, default=400)
    parser.add_argument("--batch_size", type=int, default=100)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--model_dir", default="models/pretrained/madry_mnist")
    parser.add_argument("--data_dir", default=None)
    parser.add_argument("--out", default=None, help="JSON file for the raw numbers")
    args = parser.parse_args()
    counts = [int(c) for c in args.devices.split(",")]
    if not counts or min(counts) < 2:
        parser.error("--devices: replica counts must be >= 2")

    import tensorflow as tf
    gpus = tf.config.list_physical_devices("GPU")
    if gpus:
        if max(counts) > len(gpus):
            parser.error(f"--devices: {max(counts)} GPUs asked, {len(gpus)} visible")
        names = [f"/gpu:{i}" for i in range(max(counts))]
    else:
        cpu = tf.config.list_physical_devices("CPU")[0]
        tf.config.set_logical_device_configuration(
            cpu, [tf.config.LogicalDeviceConfiguration() for _ in range(max(counts))])
        names = [f"/cpu:{i}" for i in range(max(counts))]
    import numpy as np

    from attacks import AttackConfig, attack, cpu_model
    from mnist_challenge_compat import load_dataset, load_model

    model = load_model(args.model_dir)
    x_all, y_all = load_dataset("mnist", "test", args.data_dir)
    x, y = x_all[:args.num_examples], y_all[:args.num_examples]
    configs = {"one device": None}
    for count in counts:
        configs[f"mirrored x{count}"] = tf.distribute.MirroredStrategy(names[:count])
    example_steps = args.num_examples * args.steps
    record = {"cpu_model": cpu_model(), "cores": __import__("os").cpu_count(),
              "gpus": len(gpus), "devices": names, "tensorflow": tf.__version__,
              "num_examples": args.num_examples, "batch_size": args.batch_size,
              "steps": args.steps, "repeats": args.repeats, "methods": {}}
    for method in args.methods.split(","):
        config = AttackConfig(method=method, epsilon=0.3, steps=args.steps, step_size=0.01,
                              batch_size=args.batch_size)
        images, rates = {}, {name: [] for name in configs}
        for name, strategy in configs.items():  # warm-up: tracing and first-call costs
            images[name] = attack(model, x, y, config, seed=1, strategy=strategy).x_adv
        order = list(configs)
        for repeat in range(args.repeats):
            for name in (order if repeat % 2 == 0 else order[::-1]):
                start = time.perf_counter()
                attack(model, x, y, config, seed=1, strategy=configs[name])
                rates[name].append(example_steps / (time.perf_counter() - start))
        medians = {name: statistics.median(r) for name, r in rates.items()}
        record["methods"][method] = {
            "example_steps_per_s": rates, "median": medians,
            "ratio_to_one_device": {name: medians[name] / medians["one device"]
                                    for name in configs if name != "one device"},
            "identical_images": {name: bool(np.array_equal(images[name], images["one device"]))
                                 for name in configs if name != "one device"}}
        print(method, json.dumps(record["methods"][method]["median"]),
              json.dumps(record["methods"][method]["ratio_to_one_device"]), flush=True)
    text = json.dumps(record, indent=2)
    if args.out:
        with open(args.out, "w") as f:
            f.write(text + "\n")
    print(text)


if __name__ == "__main__":
    main()
