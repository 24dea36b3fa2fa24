"""Time to result of the merged-restart protocol: every restart attacks everything vs
restarts that skip the examples already broken (and, with keep=best, compaction).

    python -m bench.time_to_result                       # 200 images x 20 steps x 4 restarts
    python -m bench.time_to_result --n 1000 --steps 200 --restarts 10   # the full protocol
    python -m bench.time_to_result --compute_dtype auto   # in the dtype the calibration picks

One attack is ``attacks.attack(model, x, y, config, restarts=R, seed=0)`` on the shipped MNIST
model (PGD, eps 0.3, step 0.01, random start, batch 200), timed end to end (all restarts,
their merging and the prediction passes). Four settings: keep final / best, each with
``skip_broken`` False (before: every restart attacks the whole set) and True (after). Each
setting gets one short warm-up attack (tracing), then ``--repeats`` interleaved rounds time
every setting once, the starting one rotating; the figure is the median. The output checks
that the merged accuracy and the per-example broken flags of each "after" equal its
"before", records the example-steps each protocol actually ran, and the CPU model (lscpu).
"""
from __future__ import annotations

import argparse
import datetime
import hashlib
import os
import statistics
import sys
import time

import numpy as np

import attacks
from attacks.calibration import resolve_compute_dtype
from bench.throughput import machine
from experiments.report import write_json
from mnist_challenge_compat import load_dataset, load_model


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--model_dir", default="models/pretrained/madry_mnist")
    p.add_argument("--data_dir", default=None, help="MNIST IDX dir (None: the shipped test set)")
    p.add_argument("--n", type=int, default=200, help="test images attacked")
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--restarts", type=int, default=4)
    p.add_argument("--repeats", type=int, default=2, help="interleaved timed rounds")
    p.add_argument("--epsilon", type=float, default=0.3)
    p.add_argument("--step_size", type=float, default=0.01)
    p.add_argument("--batch_size", type=int, default=200)
    p.add_argument("--keeps", default="final,best")
    p.add_argument("--compute_dtype", default="float32", choices=("float32", "bfloat16", "auto"),
                   help="the attacks' compute dtype (auto: what the calibration picks here)")
    p.add_argument("--out", default="bench/results_time_to_result.json")
    a = p.parse_args(argv)
    for name in ("n", "steps", "restarts", "repeats", "batch_size"):
        if getattr(a, name) < 1:
            p.error(f"--{name} must be >= 1, got {getattr(a, name)}")
    if not set(a.keeps.split(",")) <= {"final", "best"}:
        p.error(f"--keeps must list final and/or best, got {a.keeps!r}")
    return a


def main(argv=None) -> dict:
    a = parse_args(argv)
    model = load_model(a.model_dir)
    x, y = load_dataset("mnist", "test", a.data_dir)
    x, y = x[:a.n], y[:a.n]
    resolved = resolve_compute_dtype(model, a.compute_dtype, a.batch_size)
    settings = [(keep, skip) for keep in a.keeps.split(",") for skip in (False, True)]

    def config(keep, skip, steps=a.steps):
        return attacks.AttackConfig(method="pgd", epsilon=a.epsilon, steps=steps,
                                    step_size=a.step_size, batch_size=a.batch_size, keep=keep,
                                    skip_broken=skip, compute_dtype=resolved)

    # Warm-up: one batch, one restart, enough steps to trace every chunk length the timed
    # runs use (full chunks and the remainder; a shrinking batch does not retrace).
    chunk = attacks.engine.DEFAULT_CHUNK
    warm_steps = min(a.steps, chunk + a.steps % chunk)
    for keep, skip in settings:
        attacks.attack(model, x[:a.batch_size], y[:a.batch_size], config(keep, skip, warm_steps),
                       restarts=1, seed=1)
    times = {s: [] for s in settings}
    states = {}
    for r in range(a.repeats):
        order = settings[r % len(settings):] + settings[:r % len(settings)]
        for keep, skip in order:
            start = time.perf_counter()
            states[keep, skip] = attacks.attack(model, x, y, config(keep, skip),
                                                restarts=a.restarts, seed=0)
            times[keep, skip].append(time.perf_counter() - start)
            print(f"round {r + 1}/{a.repeats} keep={keep} skip_broken={skip}: "
                  f"{times[keep, skip][-1]:.1f} s, merged accuracy "
                  f"{100 * states[keep, skip].accuracy:.2f}%", flush=True)
    rows = []
    for keep, skip in settings:
        state = states[keep, skip]
        attacked = sum(state.restart_attacked)
        rows.append({"keep": keep, "skip_broken": skip, "seconds": times[keep, skip],
                     "median_s": statistics.median(times[keep, skip]),
                     "merged_accuracy": state.accuracy,
                     "restart_accuracies": state.restart_accuracies,
                     "restart_attacked": state.restart_attacked,
                     "example_steps_scheduled": attacked * a.steps,
                     "broken_sha256": hashlib.sha256(state.broken.tobytes()).hexdigest()})
    comparisons = []
    for keep in a.keeps.split(","):
        before = next(r for r in rows if r["keep"] == keep and not r["skip_broken"])
        after = next(r for r in rows if r["keep"] == keep and r["skip_broken"])
        identical = (np.array_equal(states[keep, False].broken, states[keep, True].broken)
                     and before["merged_accuracy"] == after["merged_accuracy"])
        comparisons.append({"keep": keep, "before_s": before["median_s"],
                            "after_s": after["median_s"],
                            "reduction": 1 - after["median_s"] / before["median_s"],
                            "identical_merged_accuracy_and_broken_flags": identical})
        print(f"keep={keep}: {before['median_s']:.1f} s -> {after['median_s']:.1f} s "
              f"({100 * comparisons[-1]['reduction']:.1f}% less), merged accuracy "
              f"{100 * after['merged_accuracy']:.2f}%, identical to attacking everything: "
              f"{identical}", flush=True)
    result = {"date": datetime.date.today().isoformat(), "machine": machine(),
              "load_average": os.getloadavg(), "command": " ".join(sys.argv),
              "setup": {"model_dir": a.model_dir, "n": a.n, "steps": a.steps,
                        "restarts": a.restarts, "repeats": a.repeats, "epsilon": a.epsilon,
                        "step_size": a.step_size, "batch_size": a.batch_size, "method": "pgd",
                        "seed": 0, "compute_dtype": a.compute_dtype,
                        "compute_dtype_resolved": resolved},
              "rows": rows, "comparisons": comparisons}
    write_json(a.out, result)
    print(f"CPU: {result['machine']['cpu']}; wrote {a.out}")
    return result


if __name__ == "__main__":
    main()
