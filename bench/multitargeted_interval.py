"""MultiTargeted and the Interval Attack, sign step against quantized step, on the shipped MNIST model.

    python -m bench.multitargeted_interval                    # 300 images from 1000, eps 0.3, 40 steps
    python -m bench.multitargeted_interval --n 50 --steps 10  # smoke run

Every row attacks the same held-out test images (from ``--start`` on), one restart, seed 0,
PGD steps of ``--step_size``; PGD with the sign step is the reference row (PQGD against PGD
is measured in ``bench.report`` / the experiments). ``b = 1`` is the sign step bit
for bit (tested), so it is not run again. Rows run one after another: on a shared machine
their wall seconds are not a speed comparison. Prints a markdown table (accuracy under attack, forward+backward passes per example, wall seconds)
with the machine, and writes it with the settings as JSON to ``--out``.
"""
from __future__ import annotations

import argparse
import datetime
import time

import numpy as np

import attacks
from bench.throughput import held_out_mnist, machine
from experiments.report import write_json


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--model_dir", default="models/pretrained/madry_mnist")
    p.add_argument("--start", type=int, default=1000, help="first test image")
    p.add_argument("--n", type=int, default=300, help="test images attacked")
    p.add_argument("--steps", type=int, default=40)
    p.add_argument("--step_size", type=float, default=0.01)
    p.add_argument("--epsilon", type=float, default=0.3)
    p.add_argument("--num_targets", type=int, default=3, help="MultiTargeted's targets")
    p.add_argument("--b", default="10,100", help="quantization levels besides the sign")
    p.add_argument("--methods", default="multitargeted,interval")
    p.add_argument("--batch_size", type=int, default=300)
    p.add_argument("--out", default="bench/results_multitargeted_interval.json")
    args = p.parse_args(argv)
    if args.n < 1 or args.steps < 1 or args.start < 0 or args.epsilon <= 0 \
            or args.step_size <= 0 or args.num_targets < 1:
        p.error("--n, --steps and --num_targets must be >= 1, --start >= 0, --epsilon and "
                "--step_size > 0")
    return args


def _config(method: str, b: float | None, args) -> attacks.AttackConfig:
    if method == "pgd" and b is not None:
        method = "pqgd"
    extra = {"num_targets": args.num_targets} if method == "multitargeted" else {}
    return attacks.AttackConfig(method=method, epsilon=args.epsilon, steps=args.steps,
                                step_size=args.step_size, b=b, batch_size=args.batch_size,
                                **extra)


def main(argv=None):
    args = parse_args(argv)
    model, x, y = held_out_mnist(args.model_dir, args.start, args.n)
    levels = [None] + [float(b) for b in args.b.split(",") if b]
    clean = float(np.mean(attacks.predict(model, x) == y))
    fgsm = float(np.mean(attacks.predict(
        model, attacks.perturb(model, x, y, method="fgsm", epsilon=args.epsilon)) == y))
    print(f"clean {100 * clean:.1f}%, FGSM {100 * fgsm:.1f}%", flush=True)
    rows = []
    runs = [("pgd", None)] + [(m, b) for m in args.methods.split(",") for b in levels]
    for method, b in runs:
        config = _config(method, b, args)
        began = time.perf_counter()
        state = attacks.attack(model, x, y, config, seed=0)
        seconds = time.perf_counter() - began
        acc = float(np.mean(attacks.predict(model, state.x_adv) == y))
        rows.append({"method": method, "b": b, "accuracy": acc, "seconds": seconds,
                     "gradient_passes": config.gradient_passes(),
                     "bound_passes": config.bound_passes()})
        print(f"{method} {'sign' if b is None else f'b={b:g}'}: {100 * acc:.1f}% "
              f"({seconds:.0f} s)", flush=True)
    info = machine()
    header = (f"{args.n} MNIST test images from {args.start}, eps {args.epsilon:g}, "
              f"{args.steps} steps of {args.step_size:g}, 1 restart, seed 0; clean "
              f"{100 * clean:.1f}%, FGSM {100 * fgsm:.1f}%; {info['cpu']}, {info['cores']} "
              f"cores, TensorFlow {info['tensorflow']}, {datetime.date.today().isoformat()}")
    print("\n" + header + "\n\n| method | unit | accuracy | passes/example (max) | wall s |\n"
          "| --- | --- | --- | --- | --- |")
    for r in rows:
        unit = "sign" if r["b"] is None else f"quantized b={r['b']:g}"
        print(f"| {r['method']} | {unit} | {100 * r['accuracy']:.1f}% | {r['gradient_passes']} "
              f"| {r['seconds']:.0f} |")
    write_json(args.out, {"settings": vars(args), "clean_accuracy": clean,
                          "fgsm_accuracy": fgsm, "rows": rows, "machine": info,
                          "date": datetime.date.today().isoformat()})


if __name__ == "__main__":
    main()
