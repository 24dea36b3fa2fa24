"""bfloat16 against float32 on the shipped MNIST model's step loop, and which oneDNN kernels run.

    python -m bench.bf16_kernels ab --rounds 7 --out bench/results_bf16_ab.json
    ONEDNN_VERBOSE=1 python -m bench.bf16_kernels trace float32 > f32.log 2>&1
    ONEDNN_VERBOSE=1 python -m bench.bf16_kernels trace bfloat16 > bf16.log 2>&1
    python -m bench.bf16_kernels summarize f32.log bf16.log

``ab``: PGD's compiled step loop (xent, sign step, eps 0.3, step 0.01) on the first 200 MNIST
test images at batch 200, 20 steps per timed call, three variants in one process: float32
(the fast-backward view), bfloat16 with TensorFlow's stock kernels, bfloat16 with the
fast-backward view (``attacks.fast_backward``); one untimed call each, then ``--rounds``
interleaved rotating rounds, medians; writes the CPU model and the load average.
``trace``: one untimed 10-step call, then one marked 10-step call of the step loop, then a
marked gradient with respect to the weights (what training's backward-filter kernels are).
``summarize``: oneDNN verbose lines of each marked section, grouped by primitive,
implementation, propagation kind, data types and problem; count and summed milliseconds.
"""
from __future__ import annotations

import argparse
import collections
import json
import os
import statistics
import sys
import time

import numpy as np

MARK = "=== MARK "


def _setup(data_dir):
    from mnist_challenge_compat import load_dataset, load_model
    from attacks.steps import LinfStep, sign_unit
    model = load_model("models/pretrained/madry_mnist")
    x, y = load_dataset("mnist", "test", data_dir)
    return model, x[:200], y[:200].astype(np.int64), LinfStep(epsilon=0.3, step_size=0.01,
                                                             unit=sign_unit())


def ab(rounds: int, data_dir, out: str | None) -> dict:
    from attacks.directions import gradient_direction
    from attacks.engine import StepRunner
    from attacks.fast_backward import with_fast_input_gradient
    from attacks.precision import model_in_dtype
    from bench.throughput import machine
    model, x, y, rule = _setup(data_dir)
    bf16 = model_in_dtype(model, "bfloat16")
    variants = {"float32": with_fast_input_gradient(model), "bfloat16_stock": bf16,
                "bfloat16_fast": with_fast_input_gradient(bf16)}
    runners = {k: StepRunner(m, "xent", rule, gradient_direction()) for k, m in variants.items()}
    for r in runners.values():
        r.run(x, x, y, 20)
    keys, times = list(runners), {k: [] for k in runners}
    load_before = os.getloadavg()
    for i in range(rounds):
        for k in keys[i % len(keys):] + keys[:i % len(keys)]:
            start = time.perf_counter()
            runners[k].run(x, x, y, 20)
            times[k].append(time.perf_counter() - start)
    result = {"machine": machine(), "batch": 200, "steps_per_call": 20, "rounds": rounds,
              "load_before": load_before, "load_after": os.getloadavg()}
    for k in keys:
        result[k] = {"times_s": times[k], "ex_steps_per_s": 200 * 20 / statistics.median(times[k])}
    rate = {k: result[k]["ex_steps_per_s"] for k in keys}
    result.update(bf16_fast_over_f32=rate["bfloat16_fast"] / rate["float32"],
                  bf16_stock_over_f32=rate["bfloat16_stock"] / rate["float32"],
                  bf16_fast_over_stock=rate["bfloat16_fast"] / rate["bfloat16_stock"])
    if out:
        from experiments.report import write_json
        write_json(out, result)
    print(json.dumps(result, indent=1))
    return result


def trace(dtype: str, data_dir) -> None:
    import tensorflow as tf
    from attacks.api import model_for_dtype
    from attacks.directions import gradient_direction
    from attacks.engine import StepRunner
    model, x, y, rule = _setup(data_dir)
    attacked = model_for_dtype(model, dtype)
    runner = StepRunner(attacked, "xent", rule, gradient_direction())
    runner.run(x, x, y, 10)
    print(f"{MARK}step loop {dtype}", flush=True)
    runner.run(x, x, y, 10)
    copy = model_for_dtype(model, dtype)

    @tf.function
    def weight_gradient(images):
        with tf.GradientTape() as tape:
            logits = tf.cast(copy(images, training=True), tf.float32)
            loss = tf.reduce_sum(tf.nn.sparse_softmax_cross_entropy_with_logits(y, logits))
        return tape.gradient(loss, copy.trainable_variables)
    weight_gradient(tf.constant(x))
    print(f"{MARK}weight gradient {dtype}", flush=True)
    weight_gradient(tf.constant(x))
    sys.stdout.flush()


def summarize(paths: list[str]) -> dict:
    """``{log: {section: [[count, ms, kind, impl, prop, dtypes, problem], ...]}}``."""
    result = {}
    for path in paths:
        sections, current = {}, None
        with open(path) as f:
            for line in f:
                if line.startswith(MARK):
                    current = line[len(MARK):].strip()
                    continue
                if current is None or not line.startswith("onednn_verbose") or ",exec," not in line:
                    continue
                fields = line.rstrip().split(",")
                i = fields.index("exec")
                kind, impl, prop, mds, problem = (fields[i + 2], fields[i + 3], fields[i + 4],
                                                  fields[i + 5], fields[i + 8])
                dtypes = " ".join(":".join(m.split(":")[:2]) for m in mds.split()
                                  if ":" in m and m.split(":")[0] in ("src", "wei", "dst"))
                entry = sections.setdefault(current, collections.defaultdict(lambda: [0, 0.0]))
                cell = entry[(kind, impl, prop, dtypes, problem)]
                cell[0] += 1
                cell[1] += float(fields[-1])
        result[path] = {name: sorted(([n, round(ms, 2), *key] for key, (n, ms) in rows.items()),
                                     key=lambda r: -r[1]) for name, rows in sections.items()}
        for name, rows in result[path].items():
            print(f"--- {path}: {name}")
            for n, ms, kind, impl, prop, dtypes, problem in rows:
                print(f"{n:4d} {ms:9.2f} ms  {kind:13s} {impl:30s} {prop:17s} {dtypes:28s} {problem}")
    return result


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("mode", choices=["ab", "trace", "summarize"])
    p.add_argument("args", nargs="*", help="trace: the dtype; summarize: the verbose logs")
    p.add_argument("--rounds", type=int, default=7)
    p.add_argument("--data_dir", default=None, help="MNIST IDX dir (None: the shipped test set)")
    p.add_argument("--out", default=None)
    a = p.parse_args(argv)
    if a.mode == "trace" and (len(a.args) != 1 or a.args[0] not in ("float32", "bfloat16")):
        p.error("trace takes one dtype: float32 or bfloat16")
    if a.mode == "summarize" and not a.args:
        p.error("summarize takes the verbose logs")
    if a.rounds < 1:
        p.error(f"--rounds must be >= 1, got {a.rounds}")
    if a.mode == "ab":
        ab(a.rounds, a.data_dir, a.out)
    elif a.mode == "trace":
        trace(a.args[0], a.data_dir)
    else:
        summary = summarize(a.args)
        if a.out:
            from experiments.report import write_json
            write_json(a.out, summary)


if __name__ == "__main__":
    main()
