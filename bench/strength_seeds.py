"""``strongest`` against the peers over several seeds: is the gap more than one run's noise?

    python -m bench.strength_seeds                    # MNIST test images 1000-1999, eps 0.3,
                                                      # budgets 10, 30, 100, seeds 0-4
    python -m bench.strength_seeds --n 20 --budgets 10 --seeds 0,1 --out /tmp/s.json \\
        --md /tmp/s.md                                # smoke run
    python -m bench.strength_seeds --dataset fashion_mnist --n 500 --budgets 10,30
                                                      # daa_fashion_eps02 at eps 0.2
    python -m bench.strength_seeds --n 9000 --budgets 30 --attacks "strongest,ART APGD-CE" \
        --out bench/strength_seeds_9000.json  # every held-out MNIST image, one peer

``bench.strength`` runs every attack once (seed 0); two seeds of the same attack differ by
several images of 1,000, as much as the gaps between ``strongest`` and the best peers. Here
``strongest`` (its default members at each budget, float32) and the peers ART APGD-CE and
ART APGD-DLR (``steps = budget``, one random start) run once per seed on the same held-out
images, with ``bench.strength``'s runners. Per budget the table gives each attack's mean
accuracy over the seeds with its range, and the paired comparison of ``strongest`` with each
peer over all runs (``experiments.stats.paired_difference``: per image, the difference of
the fractions of runs that left it correct; exact sign-flip test, normal interval). Results
are saved after every (attack, budget, seed) run to ``--out``; a rerun with the same
settings skips the runs already there (a ``strongest`` run only while its members are the
same), so an interrupted run resumes.
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import time
from pathlib import Path

import numpy as np

from bench.strength import (DATASETS, _commit, bf16_text, dataset_name, load_results,
                            by_machine, name_earlier_machine,
                            members_record, pack_outcomes, run_peer, run_strongest, still_correct,
                            unpack_outcomes)

ROWS = ("strongest", "ART APGD-CE", "ART APGD-DLR")


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--dataset", default="mnist", choices=sorted(DATASETS),
                   help="the dataset and its shipped model (bench.strength's)")
    p.add_argument("--start", type=int, default=1000, help="first test image (held out)")
    p.add_argument("--n", type=int, default=1000, help="test images attacked")
    p.add_argument("--epsilon", type=float, default=None,
                   help="default: the dataset's (0.3 MNIST, 0.2 Fashion-MNIST)")
    p.add_argument("--budgets", default="10,30,100", help="passes per example, comma-separated")
    p.add_argument("--seeds", default="0,1,2,3,4", help="comma-separated")
    p.add_argument("--attacks", default=",".join(ROWS),
                   help="the rows run, comma-separated (a peer already resolved can be left "
                        "out of a costly run)")
    p.add_argument("--batch_size", type=int, default=200)
    p.add_argument("--out", default=None, help="default: bench/strength_seeds.json "
                   "(MNIST), bench/strength_seeds_fashion.json (Fashion-MNIST)")
    p.add_argument("--md", default=None, help="default: --out's name with .md")
    args = p.parse_args(argv)
    args.epsilon = DATASETS[args.dataset][1] if args.epsilon is None else args.epsilon
    suffix = "" if args.dataset == "mnist" else "_fashion"
    args.out = args.out or f"bench/strength_seeds{suffix}.json"
    args.md = args.md or str(Path(args.out).with_suffix(".md"))
    try:
        args.budget_list = sorted({int(b) for b in args.budgets.split(",") if b.strip()})
        args.seed_list = sorted({int(s) for s in args.seeds.split(",") if s.strip()})
    except ValueError:
        p.error(f"--budgets and --seeds must be integers, got {args.budgets!r}, {args.seeds!r}")
    wanted = {a.strip() for a in args.attacks.split(",") if a.strip()}
    if not wanted or wanted - set(ROWS):
        p.error(f"--attacks must name rows among {', '.join(ROWS)}, got {args.attacks!r}")
    args.attack_list = [r for r in ROWS if r in wanted]  # in the table's order
    if args.n < 1 or args.start < 0 or args.epsilon <= 0 or not args.budget_list \
            or min(args.budget_list) < 1 or not args.seed_list or min(args.seed_list) < 0:
        p.error("--n must be >= 1, --start >= 0, --epsilon > 0, --budgets >= 1, --seeds >= 0")
    return args


def run_key(name: str, budget: int, seed: int) -> str:
    return f"{name}@{budget}#seed{seed}"


def settings(args) -> dict:
    """What a saved result file must share with this run for its runs to be kept."""
    return {"dataset": args.dataset, "model_dir": DATASETS[args.dataset][0],
            "start": args.start, "n": args.n, "epsilon": args.epsilon,
            "batch_size": args.batch_size, "dtype": "float32", "peer_dtype": "float32"}


def main(argv=None) -> dict:
    args = parse_args(argv)
    from attacks import predict
    from bench.throughput import cpu_text, held_out_mnist, machine
    from experiments.report import write_json, write_text

    model, x, y = held_out_mnist(DATASETS[args.dataset][0], args.start, args.n, args.dataset)
    out = Path(args.out)
    results = load_results(out, settings(args))
    name_earlier_machine(results)
    # The header's machine and date are those of the latest run: a rerun that runs nothing
    # keeps them (each run also names its own CPU).
    this_machine, today, this_commit = machine(), datetime.date.today().isoformat(), _commit()
    results.setdefault("machine", this_machine)
    results.setdefault("date", today)
    results["clean_accuracy"] = float(np.mean(predict(model, x) == y))
    here = cpu_text(this_machine)
    results.setdefault("commits", [])
    for budget in args.budget_list:
        for seed in args.seed_list:  # every row at a seed before the next seed
            for name in args.attack_list:
                key = run_key(name, budget, seed)
                saved = results["cells"].get(key)
                if saved is not None and (name != "strongest"
                                          or saved.get("ensemble") == members_record(budget)):
                    continue
                began = time.perf_counter()
                if name == "strongest":
                    run = run_strongest(model, x, y, budget, args.epsilon, args.batch_size,
                                        seed=seed)
                else:
                    run = run_peer(model, x, y, name, budget, args.epsilon, args.batch_size,
                                   seed=seed)
                seconds = time.perf_counter() - began
                correct = still_correct(model, x, y, run.pop("x_adv"), args.epsilon, key)
                cell = {"attack": name, "budget": budget, "seed": seed,
                        "accuracy": float(correct.mean()), "seconds": seconds,
                        "load_average": os.getloadavg()[0], "machine": here,
                        "correct": pack_outcomes(correct), **run}
                if name == "strongest":
                    cell["ensemble"] = members_record(budget)
                results["cells"][key] = cell
                results["machine"], results["date"] = this_machine, today
                results["commits"] = sorted({*results["commits"], this_commit})
                write_json(out, results)
                print(f"{key}: {100 * cell['accuracy']:.1f}% "
                      f"({cell['passes_per_example']:.1f} passes/example, {seconds:.0f} s)",
                      flush=True)
    results["summary"] = summarize(results)
    write_json(out, results)
    write_text(args.md, render(results))
    print(f"wrote {args.out}, {args.md}", flush=True)
    return results


def outcomes(results: dict, name: str, budget: int) -> tuple[list[int], np.ndarray]:
    """The seeds ``name`` ran at ``budget`` and its ``(runs, N)`` "still correct" outcomes."""
    n = results["settings"]["n"]
    cells = sorted((c for c in results["cells"].values()
                    if c["attack"] == name and c["budget"] == budget), key=lambda c: c["seed"])
    if not cells:
        return [], np.zeros((0, n), bool)
    return [c["seed"] for c in cells], np.stack([unpack_outcomes(c["correct"], n) for c in cells])


def summarize(results: dict) -> list[dict]:
    """Per budget: each row's accuracies by seed, mean and range; ``strongest`` against each
    peer over the runs (:func:`experiments.stats.paired_difference`)."""
    from experiments.stats import paired_difference
    budgets = sorted({c["budget"] for c in results["cells"].values()})
    summary = []
    for budget in budgets:
        rows = {}
        for name in ROWS:
            seeds, runs = outcomes(results, name, budget)
            if seeds:
                acc = runs.mean(axis=1)
                rows[name] = {"seeds": seeds, "accuracies": acc.tolist(),
                              "mean": float(acc.mean()), "min": float(acc.min()),
                              "max": float(acc.max())}
        comparisons = []
        if "strongest" in rows:
            ours = outcomes(results, "strongest", budget)[1]
            for peer in ROWS[1:]:
                if peer in rows:
                    diff = paired_difference(ours, outcomes(results, peer, budget)[1])
                    comparisons.append({"peer": peer, "runs": [len(ours), len(rows[peer]["seeds"])],
                                        "difference": diff.mean, "low": diff.low,
                                        "high": diff.high, "p": diff.p, "test": diff.test,
                                        "interval": diff.interval,
                                        "discordant": diff.discordant,
                                        "text": diff.describe()})
        summary.append({"budget": budget, "rows": rows, "comparisons": comparisons})
    return summary


def machines_lines(results: dict) -> list[str]:
    """A paragraph naming the CPU of each run where the runs come from several machines (the
    header names the latest one); none otherwise."""
    groups = by_machine(results["cells"].values())
    if len(groups) < 2:
        return []
    parts = [f"{cpu}: {len(runs)} runs (seeds "
             f"{', '.join(map(str, sorted({r['seed'] for r in runs})))})"
             for cpu, runs in groups.items()]
    return ["Runs per machine: " + "; ".join(parts) + ".", ""]


def render(results: dict) -> str:
    from bench.throughput import cpu_text
    s, m = results["settings"], results["machine"]
    summary = results.get("summary") or summarize(results)
    lines = [
        "# `strongest` against the peers over several seeds (`python -m bench.strength_seeds`)",
        "",
        f"{dataset_name(results)} test images {s['start']}-{s['start'] + s['n'] - 1} "
        f"({s['n']}, held out), model "
        f"`{s['model_dir']}`, eps {s['epsilon']:g}, float32; clean accuracy "
        f"{100 * results['clean_accuracy']:.1f}%. {results['date']}, {cpu_text(m)} "
        f"({bf16_text(m)}{m['cores']} cores), TensorFlow {m['tensorflow']}, commits "
        f"{', '.join(results['commits'])}.",
        "",
        *machines_lines(results),
        "Accuracy under attack (%, lower is stronger) at a budget of forward+backward passes "
        "per example: mean over the seeds [lowest, highest run].",
        "",
        "| attack | " + " | ".join(f"budget {b['budget']}" for b in summary) + " |",
        "| --- |" + " ---: |" * len(summary),
    ]
    for name in ROWS:
        if not any(name in b["rows"] for b in summary):
            continue  # a row left out of every run (--attacks)
        cells = []
        for b in summary:
            r = b["rows"].get(name)
            cells.append("" if r is None else f"{100 * r['mean']:.2f} [{100 * r['min']:.1f}, "
                                              f"{100 * r['max']:.1f}] ({len(r['seeds'])} seeds)")
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    lines += ["", "`strongest` minus each peer, paired over the same images and all runs "
              "(negative: `strongest` is stronger; accuracy points, 95% interval; per image the "
              "difference of the fractions of runs that left it correct):", ""]
    for b in summary:
        for c in b["comparisons"]:
            lines.append(f"- budget {b['budget']}: strongest - {c['peer']}: {c['text']}")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
