"""APGD with the sign step against APGD with the quantized step, on the shipped MNIST model.

    python -m bench.apgd_quantized                       # 500 images from 1000, eps 0.3, 100 steps
    python -m bench.apgd_quantized --n 100 --steps 20    # smoke run

Every variant attacks the same held-out test images (from ``--start`` on), one restart from
the same random start (seed 0), for CE (``xent``) and DLR; ``b = 1`` is the sign step bit
for bit (tested), so it is not run again. Prints a markdown table (accuracy under attack,
wall seconds) with the machine, and writes it with the settings as JSON to ``--out``.
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
    p.add_argument("--n", type=int, default=500, help="test images attacked")
    p.add_argument("--steps", type=int, default=100)
    p.add_argument("--epsilon", type=float, default=0.3)
    p.add_argument("--b", default="10,100,1000", help="quantization levels besides the sign")
    p.add_argument("--losses", default="xent,dlr")
    p.add_argument("--batch_size", type=int, default=250)
    p.add_argument("--out", default="bench/results_apgd_quantized.json")
    args = p.parse_args(argv)
    if args.n < 1 or args.steps < 1 or args.start < 0 or args.epsilon <= 0:
        p.error("--n and --steps must be >= 1, --start >= 0, --epsilon > 0")
    return args


def main(argv=None):
    args = parse_args(argv)
    model, x, y = held_out_mnist(args.model_dir, args.start, args.n)
    levels = [None] + [float(b) for b in args.b.split(",") if b]
    clean = float(np.mean(attacks.predict(model, x) == y))
    rows = []
    for loss in args.losses.split(","):
        for b in levels:
            began = time.perf_counter()
            x_adv = attacks.perturb(model, x, y, method="apgd", epsilon=args.epsilon,
                                    steps=args.steps, b=b, loss=loss, seed=0,
                                    batch_size=args.batch_size)
            seconds = time.perf_counter() - began
            acc = float(np.mean(attacks.predict(model, x_adv) == y))
            rows.append({"loss": loss, "b": b, "accuracy": acc, "seconds": seconds})
            print(f"{loss} {'sign' if b is None else f'b={b:g}'}: {100 * acc:.1f}% "
                  f"({seconds:.0f} s)", flush=True)
    info = machine()
    header = (f"APGD, {args.n} MNIST test images from {args.start}, eps {args.epsilon:g}, "
              f"{args.steps} steps, 1 restart, seed 0; clean {100 * clean:.1f}%; "
              f"{info['cpu']}, {info['cores']} cores, TensorFlow {info['tensorflow']}, "
              f"{datetime.date.today().isoformat()}")
    print("\n" + header + "\n\n| loss | unit | accuracy | wall s |\n| --- | --- | --- | --- |")
    for r in rows:
        unit = "sign (APGD)" if r["b"] is None else f"quantized b={r['b']:g}"
        print(f"| {r['loss']} | {unit} | {100 * r['accuracy']:.1f}% | {r['seconds']:.0f} |")
    write_json(args.out, {"settings": vars(args), "clean_accuracy": clean, "rows": rows,
                          "machine": info, "date": datetime.date.today().isoformat()})


if __name__ == "__main__":
    main()
