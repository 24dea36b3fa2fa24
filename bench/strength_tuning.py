"""Chooses the members of ``strongest`` (``attacks.ensemble.DEFAULT_MEMBERS``) by measurement
on the tuning split: MNIST test images 0 .. n-1 (the reported figures, ``bench.strength``,
use images from 1000 on).

    python -m bench.strength_tuning                   # 200 images, budget 100
    python -m bench.strength_tuning --n 20 --out /tmp/t.json   # smoke run

Every candidate ensemble runs once (seed 0) at the same budget; the lowest accuracy wins,
ties going to fewer passes spent. Results are saved after each candidate to ``--out``
(a rerun skips candidates already measured with the same settings).
"""
from __future__ import annotations

import argparse
import datetime
import json
import time
from pathlib import Path

import numpy as np

from attacks.ensemble import Member

CE_Q = Member("apgd_ce_q10", 0.5, {"method": "apgd", "loss": "xent", "b": 10.0})
DLR_Q = Member("apgd_dlr_q10", 0.5, {"method": "apgd", "loss": "dlr", "b": 10.0})
CANDIDATES: dict[str, tuple[Member, ...]] = {
    "apgd_ce sign": (Member("apgd_ce", 1.0, {"method": "apgd", "loss": "xent"}),),
    "apgd_ce b=10": (Member("apgd_ce_q10", 1.0, {"method": "apgd", "loss": "xent", "b": 10.0}),),
    "apgd_ce + apgd_dlr, sign": (
        Member("apgd_ce", 0.5, {"method": "apgd", "loss": "xent"}),
        Member("apgd_dlr", 0.5, {"method": "apgd", "loss": "dlr"})),
    "apgd_ce + apgd_dlr, b=10": (CE_Q, DLR_Q),
    "apgd_ce + apgd_dlr, b=100": (
        Member("apgd_ce_q100", 0.5, {"method": "apgd", "loss": "xent", "b": 100.0}),
        Member("apgd_dlr_q100", 0.5, {"method": "apgd", "loss": "dlr", "b": 100.0})),
    "apgd_ce 0.3 + apgd_t(3 targets) 0.7, b=10": (
        Member("apgd_ce_q10", 0.3, {"method": "apgd", "loss": "xent", "b": 10.0}),
        Member("apgd_t3_q10", 0.7, {"method": "apgd_t", "loss": "dlr", "b": 10.0,
                                    "num_targets": 3})),
    "apgd_ce + blob_qg b=100, b=10": (
        CE_Q, Member("blob_qg_q100", 0.5, {"method": "blob_qg", "b": 100.0}, step_factor=2.5)),
}


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--model_dir", default="models/pretrained/madry_mnist")
    p.add_argument("--n", type=int, default=200, help="tuning images: test images 0 .. n-1")
    p.add_argument("--epsilon", type=float, default=0.3)
    p.add_argument("--budget", type=int, default=100)
    p.add_argument("--batch_size", type=int, default=200)
    p.add_argument("--out", default="bench/strength_tuning.json")
    args = p.parse_args(argv)
    if not 1 <= args.n <= 1000 or args.epsilon <= 0 or args.budget < 1:
        p.error("--n must be in 1..1000 (the tuning split), --epsilon > 0, --budget >= 1")
    return args


def main(argv=None):
    args = parse_args(argv)
    from attacks import predict
    from attacks.ensemble import strongest
    from bench.strength import _commit
    from bench.throughput import machine
    from experiments.report import write_json
    from mnist_challenge_compat import load_dataset, load_model

    model = load_model(args.model_dir)
    x_all, y_all = load_dataset("mnist", "test")
    x, y = x_all[:args.n], y_all[:args.n]
    settings = {k: getattr(args, k) for k in ("model_dir", "n", "epsilon", "budget", "batch_size")}
    out = Path(args.out)
    results = json.loads(out.read_text()) if out.exists() else {}
    if results.get("settings") != settings:
        results = {"settings": settings, "candidates": {}}
    results.update(clean_accuracy=float(np.mean(predict(model, x) == y)), machine=machine(),
                   commit=_commit(), date=datetime.date.today().isoformat())
    for name, members in CANDIDATES.items():
        record = [m.record() for m in members]
        done = results["candidates"].get(name)
        if done is not None and done["members"] == record:
            continue
        began = time.perf_counter()
        state = strongest(model, x, y, args.epsilon, budget=args.budget, members=members,
                          seed=0, batch_size=args.batch_size)
        results["candidates"][name] = {"members": record, **state.summary(),
                                       "seconds": time.perf_counter() - began}
        write_json(out, results)
        print(f"{name}: {100 * state.accuracy:.1f}% ({state.passes_per_example:.1f} passes/example)",
              flush=True)
    best = min(results["candidates"],
               key=lambda n: (results["candidates"][n]["accuracy"],
                              results["candidates"][n]["passes_per_example"]))
    results["chosen"] = best
    write_json(out, results)
    print(f"chosen: {best}", flush=True)


if __name__ == "__main__":
    main()
