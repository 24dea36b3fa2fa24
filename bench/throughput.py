"""Throughput and correctness of our attacks against the peer PGD implementations.

One command (see bench/RESULTS.md):

    pip install -e .[bench]
    python -m bench.throughput --model_dir models/pretrained/madry_mnist \\
        --data_dir /work/shared/data/mnist --out bench/results.json
    python -m bench.throughput --quick            # smoke run: 200 images, batch 200, 2 repeats

Every implementation attacks the same N real test images with the same weights, eps 0.3,
step 0.01, 20 steps, random start OFF (identical work). Per batch size, every implementation
gets one warm-up call, then ``--repeats`` interleaved rounds time each of them once (the
starting one rotates); the figure is the median, as example-steps/s =
N * steps / median seconds. Achieved GFLOP/s uses the analytic count in ``bench/flops.py``
(55.54 MFLOP per example-step) against a float32 (and bfloat16) ``tf.matmul`` peak measured
in the same run. ``--pause_pid`` SIGSTOPs another process (e.g. a background training) only
while a measurement runs and always SIGCONTs it afterwards.
"""
from __future__ import annotations

import argparse
import contextlib
import datetime
import functools
import json
import os
import platform
import signal
import subprocess
import sys
import time

import numpy as np
import tensorflow as tf

import attacks
from bench.flops import STEP_FLOP, matmul_peak
from bench.peers import PEERS, make_peer
from mnist_challenge_compat import load_dataset, load_model
from experiments.report import write_json

OURS = {"pgd": None, "pqgd": 100.0, "blob": None, "blob_qg": 100.0}


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    default_model = "models/pretrained/madry_mnist"
    p.add_argument("--model_dir", default=default_model if os.path.isdir(default_model) else None,
                   help="TF1 checkpoint dir loadable by mnist_challenge_compat.load_model")
    p.add_argument("--data_dir", default=None, help="MNIST IDX dir (None: the shipped test set)")
    p.add_argument("--n", type=int, default=1000, help="test images timed")
    p.add_argument("--batch_sizes", default="50,200,1000")
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--epsilon", type=float, default=0.3)
    p.add_argument("--step_size", type=float, default=0.01)
    p.add_argument("--peers", default=",".join(PEERS), help="subset of " + ",".join(PEERS) + " or ''")
    p.add_argument("--ours", default="pgd,pqgd,blob,blob_qg")
    p.add_argument("--ours_all_batches", default="pgd",
                   help="our methods timed at every batch size; the others only at --main_batch")
    p.add_argument("--main_batch", type=int, default=200)
    p.add_argument("--dtypes", default="float32,bfloat16")
    p.add_argument("--xla", default="off", choices=["auto", "on", "off"])
    p.add_argument("--checks", default="on", choices=["on", "off"],
                   help="correctness cross-check, APGD-CE line, bfloat16 accuracy check")
    p.add_argument("--acc_n", type=int, default=2000, help="images of the bfloat16 accuracy check")
    p.add_argument("--acc_steps", type=int, default=40)
    p.add_argument("--pause_pid", type=int, default=None)
    p.add_argument("--quick", action="store_true", help="200 images, batch 200, 2 repeats, no APGD")
    p.add_argument("--out", default="bench/results.json")
    a = p.parse_args(argv)
    if a.quick:
        a.n, a.batch_sizes, a.repeats, a.acc_n, a.acc_steps = 200, "200", 2, 200, 20
    return a


@contextlib.contextmanager
def paused(pid):
    """SIGSTOP ``pid`` for the duration of a measurement; SIGCONT always follows."""
    if pid is None:
        yield
        return
    os.kill(pid, signal.SIGSTOP)
    try:
        yield
    finally:
        os.kill(pid, signal.SIGCONT)


def timed(fn, repeats, pause_pid):
    """One warm-up call, then ``repeats`` timed calls: ``(last output, seconds per call)``."""
    outs, times = timed_round_robin({0: fn}, repeats, pause_pid)
    return outs[0], times[0]


def timed_round_robin(fns, repeats, pause_pid, on_failure=None, label=""):
    """Times several implementations in interleaved rounds.

    Every callable gets one warm-up call (tracing, graph building, oneDNN primitive caches),
    then ``repeats`` rounds each time every callable once, the starting one rotating from
    round to round: a slow drift of the machine (another tenant, memory state left by the
    previous implementation) then affects every implementation alike instead of the ones
    that happened to run during it. A callable that raises is reported to ``on_failure(key,
    exception)`` (re-raised when there is none) and dropped.
    Returns ``(outputs, times)``: dicts keyed like ``fns``.
    """
    fns = dict(fns)
    outs, times = {}, {k: [] for k in fns}

    def call(key, timing):
        t = time.perf_counter()
        try:
            outs[key] = fns[key]()
        except Exception as e:
            if on_failure is None:
                raise
            on_failure(f"{key[0] if isinstance(key, tuple) else key}@{label}", e)
            del fns[key]
            outs.pop(key, None)
            times.pop(key, None)
            return
        if timing:
            times[key].append(time.perf_counter() - t)

    with paused(pause_pid):
        for key in list(fns):
            call(key, timing=False)
        for r in range(repeats):
            keys = list(fns)
            first = r % len(keys) if keys else 0
            for key in keys[first:] + keys[:first]:
                call(key, timing=True)
    return outs, times


def accuracy(model, x_adv, y, bs=500):
    return float(np.mean(attacks.api.predict(model, x_adv, bs) == y))


def held_out_mnist(model_dir: str, start: int, n: int, dataset: str = "mnist"):
    """The model of ``model_dir`` and ``dataset``'s ("mnist" or "fashion_mnist") test images
    ``start .. start + n - 1`` with their labels (float32 ``(n, 784)`` in [0, 1], int64
    ``(n,)``); a range past the test set is a one-line exit, before any attack."""
    from mnist_challenge_compat import load_dataset, load_model
    model = load_model(model_dir)
    x_all, y_all = load_dataset(dataset, "test")
    if start + n > len(x_all):
        raise SystemExit(f"--start + --n must be at most {len(x_all)}")
    return model, x_all[start:start + n], y_all[start:start + n]


def cpu_text(machine: dict) -> str:
    """``"AMD EPYC, family 26 model 2"``, or the model name alone for a record without them."""
    if machine.get("cpu_family") is None:
        return machine["cpu"]
    return f"{machine['cpu']}, family {machine['cpu_family']} model {machine.get('cpu_model')}"


def machine():
    """The CPU as ``lscpu`` names it (a virtual machine's model name can be as generic as
    "AMD EPYC": its family and model numbers tell the generations apart), cores, bfloat16
    support, GPUs and versions."""
    try:
        lscpu = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
        info = {k.strip(): v.strip() for k, v in (l.split(":", 1) for l in lscpu.splitlines()
                                                  if ":" in l)}
        cpu = info.get("Model name", "?")
        flags = info.get("Flags", "")
    except OSError:
        cpu, flags, info = platform.processor(), "", {}
    return {"cpu": cpu, "cpu_family": info.get("CPU family"), "cpu_model": info.get("Model"),
            "cores": os.cpu_count(), "avx512_bf16": "avx512_bf16" in flags,
            "gpus": [d.name for d in tf.config.list_physical_devices("GPU")],
            "tensorflow": tf.__version__, "python": platform.python_version()}


def main(argv=None):
    args = parse_args(argv)
    if args.pause_pid is not None:  # never leave the other process stopped
        import atexit
        atexit.register(lambda: os.kill(args.pause_pid, signal.SIGCONT))
    if args.model_dir is None:
        sys.exit("--model_dir is required (models/pretrained/madry_mnist does not exist)")
    model = load_model(args.model_dir)
    x_all, y_all = load_dataset("mnist", "test", args.data_dir)
    x, y = x_all[:args.n], y_all[:args.n].astype(np.int64)
    eps, a, steps = args.epsilon, args.step_size, args.steps
    batches = [int(b) for b in args.batch_sizes.split(",")]
    peers = [p for p in args.peers.split(",") if p]
    dtypes = args.dtypes.split(",")
    result = {"date": datetime.date.today().isoformat(), "argv": sys.argv, "machine": machine(),
              "model_dir": os.path.abspath(args.model_dir), "n": len(x), "steps": steps,
              "epsilon": eps, "step_size": a, "xla": args.xla, "step_flop": STEP_FLOP,
              "clean_accuracy": accuracy(model, x, y), "rows": [], "failures": {}, "checks": {}}
    with paused(args.pause_pid):
        result["peak_float32"] = matmul_peak()
        result["peak_bfloat16"] = matmul_peak(dtype=tf.bfloat16)
    print(f"matmul peak: float32 {result['peak_float32']['peak_gflops']:.0f} GFLOP/s, bfloat16 "
          f"{result['peak_bfloat16']['peak_gflops']:.0f} GFLOP/s", flush=True)
    outputs = {}

    def fail(key, e):
        result["failures"][key] = f"{type(e).__name__}: {e}"[:2000]
        print(f"{key} FAILED: {type(e).__name__}: {e}", flush=True)

    def record(impl, dtype, bs, times, x_adv):
        med = float(np.median(times))
        rate = len(x) * steps / med
        row = {"impl": impl, "dtype": dtype, "batch": bs, "times_s": times, "median_s": med,
               "example_steps_per_s": rate, "gflops": rate * STEP_FLOP / 1e9,
               "adv_accuracy": accuracy(model, x_adv, y)}
        row["pct_of_float32_peak"] = 100 * row["gflops"] / result["peak_float32"]["peak_gflops"]
        result["rows"].append(row)
        outputs[(impl, dtype, bs)] = x_adv
        print(f"{impl:12s} {dtype:9s} batch {bs:5d}: {rate:8.0f} ex-steps/s  {row['gflops']:6.1f} "
              f"GFLOP/s  adv acc {row['adv_accuracy']:.4f}  times {[round(t, 2) for t in times]}",
              flush=True)

    for bs in batches:
        fns = {}
        for dtype in dtypes:
            for method in args.ours.split(","):
                if bs != args.main_batch and method not in args.ours_all_batches.split(","):
                    continue
                fns[(f"ours_{method}", dtype)] = functools.partial(
                    attacks.perturb, model, x, y, method=method, epsilon=eps, steps=steps,
                    step_size=a, b=OURS[method], random_start=False, seed=0, batch_size=bs,
                    compute_dtype=dtype, xla=args.xla)
        for name in peers:
            try:
                fns[(name, "float32")] = functools.partial(make_peer(name, model), x, y, eps, a,
                                                           steps, bs)
            except Exception as e:  # a peer that cannot run is a measured failure
                fail(f"{name}@{bs}", e)
        outs, times = timed_round_robin(fns, args.repeats, args.pause_pid, on_failure=fail,
                                        label=f"batch {bs}")
        for (impl, dtype), x_adv in outs.items():
            record(impl, dtype, bs, times[(impl, dtype)], x_adv)
        write_json(args.out, result)  # after every batch size: a crash keeps what was measured

    for row in result["rows"]:
        ref = [r for r in result["rows"] if r["impl"] == "ours_pgd" and r["dtype"] == "float32"
               and r["batch"] == row["batch"]]
        if ref:
            row["ratio_to_ours_pgd_f32"] = row["example_steps_per_s"] / ref[0]["example_steps_per_s"]

    if args.checks == "on":
        checks = result["checks"]
        bs = args.main_batch
        ours = outputs.get(("ours_pgd", "float32", bs))
        if ours is not None and ("tf1", "float32", bs) in outputs:
            tf1 = outputs[("tf1", "float32", bs)]
            checks["pgd_vs_tf1_equal_pixels"] = float(np.mean(ours == tf1))
            checks["pgd_vs_tf1_max_abs_diff"] = float(np.max(np.abs(ours - tf1)))
        accs = {f"{r['impl']}/{r['dtype']}": r["adv_accuracy"] for r in result["rows"]
                if r["batch"] == bs and r["impl"] in ("ours_pgd",) + tuple(PEERS)}
        checks["pgd_adv_accuracies_at_batch_%d" % bs] = accs
        f32 = [v for k, v in accs.items() if k.endswith("float32")]
        if f32:
            checks["pgd_float32_accuracy_spread_points"] = 100 * (max(f32) - min(f32))
        if "art" in peers and not args.quick:
            try:
                apgd = make_peer("art_apgd", model)
                x_adv, times = timed(lambda: apgd(x, y, eps, a, steps, bs), 1, args.pause_pid)
                checks["art_apgd_ce"] = {"max_iter": steps, "nb_random_init": 1, "eps_step": 2 * eps,
                                         "adv_accuracy": accuracy(model, x_adv, y),
                                         "seconds": times[0]}
            except Exception as e:
                result["failures"]["art_apgd"] = f"{type(e).__name__}: {e}"[:2000]
        # bfloat16 vs float32 adversarial accuracy: acc_n images, PGD-acc_steps, same random start
        xa, ya = x_all[:args.acc_n], y_all[:args.acc_n].astype(np.int64)
        start = np.clip(xa + np.random.default_rng(0).uniform(-eps, eps, xa.shape)
                        .astype(np.float32), 0, 1)
        acc = {}
        for dtype in dtypes:
            with paused(args.pause_pid):
                t = time.perf_counter()
                adv = attacks.perturb(model, xa, ya, method="pgd", epsilon=eps, steps=args.acc_steps,
                                      step_size=a, x_start=start, batch_size=bs, compute_dtype=dtype,
                                      xla=args.xla)
                secs = time.perf_counter() - t
            acc[dtype] = {"adv_accuracy": accuracy(model, adv, ya), "seconds": secs}
        checks["dtype_accuracy"] = {"n": len(xa), "steps": args.acc_steps, "random_start_seed": 0,
                                    **acc}
        print("checks:", json.dumps(checks, indent=1), flush=True)
    write_json(args.out, result)
    print("wrote", args.out)


if __name__ == "__main__":
    main()
