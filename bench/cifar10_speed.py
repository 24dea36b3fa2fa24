"""PGD example-steps/s of the CIFAR-10 challenge network (wide ResNet 28-10) on this machine.

    python -m bench.cifar10_speed --out bench/results_cifar10_speed.json
    python -m bench.cifar10_speed --batch_sizes=32 --steps=2 --repeats=1   # smoke run

The network is built with random weights (the cost of a step does not depend on the weight
values): ``models.madry_cifar10``, 45.9M parameters, images ``(N, 32, 32, 3)`` float32 on the
0-255 scale. Per batch size B, ``attacks.perturb`` runs PGD (eps 8, step 2, ``--steps``
steps, random start on) on B random images once to compile, then ``--repeats`` timed calls
alternate between the batch sizes; the figure is ``B * steps / median seconds``. The JSON
records every time, the CPU model (``lscpu``), the cores visible and the load average before
and after, so a loaded machine shows.
"""
from __future__ import annotations

import argparse
import os
import time

import numpy as np

from bench.throughput import machine


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--batch_sizes", default="32,128")
    p.add_argument("--steps", type=int, default=3, help="PGD steps per timed call")
    p.add_argument("--repeats", type=int, default=3, help="timed calls per batch size")
    p.add_argument("--out", default=None, help="JSON file for the results")
    return p.parse_args(argv)


def main(argv=None) -> dict:
    args = parse_args(argv)
    import attacks
    import models
    from experiments.report import write_json

    batches = [int(b) for b in args.batch_sizes.split(",")]
    model = models.build_model("madry_cifar10", seed=0)
    rng = np.random.default_rng(0)
    data = {b: (rng.integers(0, 256, size=(b, 32, 32, 3)).astype(np.float32),
                rng.integers(0, 10, size=b).astype(np.int64)) for b in batches}

    def call(b: int) -> float:
        x, y = data[b]
        started = time.perf_counter()
        attacks.perturb(model, x, y, method="pgd", epsilon=8.0, steps=args.steps, step_size=2.0,
                        bounds=(0.0, 255.0), batch_size=b, seed=0)
        return time.perf_counter() - started

    load_before = os.getloadavg()
    compile_s = {b: call(b) for b in batches}
    times: dict[int, list[float]] = {b: [] for b in batches}
    for r in range(args.repeats):
        for b in (batches if r % 2 == 0 else batches[::-1]):
            times[b].append(call(b))
            print(f"batch {b}: {times[b][-1]:.2f} s for {args.steps} steps", flush=True)
    rows = []
    for b in batches:
        median = float(np.median(times[b]))
        rows.append({"batch_size": b, "steps": args.steps, "times_s": times[b],
                     "first_call_s": compile_s[b], "median_s": median,
                     "example_steps_per_s": b * args.steps / median})
        print(f"batch {b}: {rows[-1]['example_steps_per_s']:.2f} example-steps/s "
              f"(median of {len(times[b])})", flush=True)
    result = {"network": "madry_cifar10 (WRN 28-10, random weights)", "method": "pgd",
              "epsilon": 8.0, "step_size": 2.0, "bounds": [0.0, 255.0], "rows": rows,
              "machine": machine(), "load_average_before": list(load_before),
              "load_average_after": list(os.getloadavg()),
              "date": time.strftime("%Y-%m-%d", time.gmtime())}
    if args.out:
        write_json(args.out, result)
    return result


if __name__ == "__main__":
    main()
