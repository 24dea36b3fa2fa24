"""Chooses the members of ``strongest`` (``attacks.ensemble.DEFAULT_PLAN``) by measurement
on the tuning split: test images ``start .. start + n - 1`` within 0-999 of MNIST (the
shipped ``madry_mnist`` at eps 0.3) or Fashion-MNIST (``daa_fashion_eps02`` at eps 0.2, the
paper's regime); the reported figures (``bench.strength``, ``bench.strength_seeds``) use
images from 1000 on.

    python -m bench.strength_tuning                   # MNIST images 0-999, budgets 10, 30, 100
    python -m bench.strength_tuning --dataset fashion_mnist   # into strength_tuning_fashion.json
    python -m bench.strength_tuning --budgets 100 --candidates "apgd_ce b=10,..."  # a subset
    python -m bench.strength_tuning --n 20 --budgets 10 --out /tmp/t.json   # smoke run

    python -m bench.strength_tuning --budgets 30,100 --seeds 0,1,2,3,4 \
        --candidates "apgd_ce b=10,apgd_ce b=10 x2"     # each candidate over 5 seeds

    python -m bench.strength_tuning --choose bench/strength_tuning.json,\
bench/strength_tuning_fashion.json --seeds 0,1,2,3,4   # the choice over both, computes nothing

Every candidate ensemble runs once per seed of ``--seeds`` (default 0) at each budget asked
for (the budgets ``bench.strength`` reports), float32. The choice is per budget (the
ensemble picks its members by the budget it is given): at each budget the candidate with the
lowest accuracy, averaged over the seeds asked for, among those measured there at every one
of them, ties going to fewer passes spent, then to the earlier candidate in ``CANDIDATES``.
Over several tuning files (``--choose``: one per dataset) the accuracy is the mean of each
file's mean over the seeds, among the candidates measured in every file: ``strongest`` does
not know the dataset, so one plan must serve both. ``--choose`` writes a table of every
candidate to ``--md`` and the choice beside it (``.json``).
Results are saved after each (candidate, budget, seed) to ``--out``; a rerun skips the runs
already measured with the same settings and members, so an interrupted run resumes, and a
run with other ``--budgets``, ``--seeds`` or ``--candidates`` adds to the same file.
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import time
from pathlib import Path
from typing import Iterator, Mapping, Sequence

import numpy as np

from attacks.ensemble import Member, repeated
from bench.strength import DATASETS, DATASET_NAMES, by_machine, name_unnamed
from bench.throughput import cpu_text

OUTS = {"mnist": "bench/strength_tuning.json",
        "fashion_mnist": "bench/strength_tuning_fashion.json"}

CE = Member("apgd_ce", 1.0, {"method": "apgd", "loss": "xent"})
CE_Q = Member("apgd_ce_q10", 1.0, {"method": "apgd", "loss": "xent", "b": 10.0})
CE_ODI = Member("apgd_ce_odi", 1.0, {"method": "apgd", "loss": "xent", "start": "odi"})
CE_Q_ODI = Member("apgd_ce_q10_odi", 1.0, {"method": "apgd", "loss": "xent", "b": 10.0,
                                           "start": "odi"})


BLOB_QG10 = Member("blob_qg_q10", 1.0, {"method": "blob_qg", "b": 10.0}, step_factor=2.5)
BLOB_QG100 = Member("blob_qg_q100", 1.0, {"method": "blob_qg", "b": 100.0}, step_factor=2.5)


def _share(member: Member, share: float) -> Member:
    return Member(member.name, share, member.settings, member.step_factor)


CANDIDATES: dict[str, tuple[Member, ...]] = {
    "apgd_ce sign": (CE,),
    "apgd_ce b=10": (CE_Q,),
    "apgd_ce b=3": (Member("apgd_ce_q3", 1.0, {"method": "apgd", "loss": "xent", "b": 3.0}),),
    "apgd_ce sign odi start": (CE_ODI,),
    "apgd_ce b=10 odi start": (CE_Q_ODI,),
    "apgd_ce b=10 0.5 + apgd_ce b=10 odi start 0.5": (_share(CE_Q, 0.5), _share(CE_Q_ODI, 0.5)),
    "apgd_ce b=10 0.7 + apgd_t(3 targets) b=10 0.3": (
        _share(CE_Q, 0.7), Member("apgd_t3_q10", 0.3, {"method": "apgd_t", "loss": "dlr",
                                                       "b": 10.0, "num_targets": 3})),
    "apgd_ce b=10 0.7 + multitargeted(3 targets) b=10 0.3": (
        _share(CE_Q, 0.7), Member("mt3_q10", 0.3, {"method": "multitargeted", "b": 10.0,
                                                   "num_targets": 3}, step_factor=2.5)),
    "apgd_ce b=10 0.7 + blob_qg b=100 0.3": (
        _share(CE_Q, 0.7), Member("blob_qg_q100", 0.3, {"method": "blob_qg", "b": 100.0},
                                  step_factor=2.5)),
    "pqgd b=10 0.3 + apgd_ce b=10 0.7": (
        Member("pqgd_q10", 0.3, {"method": "pqgd", "b": 10.0}, step_factor=2.5),
        _share(CE_Q, 0.7)),
    "apgd_ce b=10 odi start x2": repeated(CE_Q_ODI, 2),
    "apgd_ce b=10 odi start x4": repeated(CE_Q_ODI, 4),
    "apgd_ce b=10 x2": repeated(CE_Q, 2),
    "apgd_ce b=10 x4": repeated(CE_Q, 4),
    "apgd_ce b=10 0.8 + apgd_t(2 targets) b=10 0.2": (
        _share(CE_Q, 0.8), Member("apgd_t2_q10", 0.2, {"method": "apgd_t", "loss": "dlr",
                                                       "b": 10.0, "num_targets": 2})),
    # the strongest single attacks at budget 10 on held-out images of one seed (bench.strength)
    "blob_qg b=10": (BLOB_QG10,),
    "blob_qg b=100": (BLOB_QG100,),
}


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--dataset", default="mnist", choices=sorted(DATASETS))
    p.add_argument("--model_dir", default=None, help="default: the dataset's shipped model")
    p.add_argument("--start", type=int, default=0, help="first tuning image")
    p.add_argument("--n", type=int, default=1000, help="tuning images: start .. start + n - 1")
    p.add_argument("--epsilon", type=float, default=None,
                   help="default: the dataset's (bench.strength's): 0.3 MNIST, 0.2 Fashion-MNIST")
    p.add_argument("--budgets", default="10,30,100", help="passes per example, comma-separated")
    p.add_argument("--candidates", default=",".join(CANDIDATES),
                   help="subset of the candidates, comma-separated")
    p.add_argument("--seeds", default="0", help="seeds of the ensemble, comma-separated")
    p.add_argument("--batch_size", type=int, default=250)
    p.add_argument("--out", default=None, help="default: bench/strength_tuning.json (MNIST), "
                   "bench/strength_tuning_fashion.json (Fashion-MNIST)")
    p.add_argument("--choose", default="", help="comma-separated tuning files (one per "
                   "dataset): run nothing, choose over all of them at --seeds")
    p.add_argument("--md", default="bench/strength_tuning_choice.md",
                   help="with --choose: the table of every candidate; the choice (files, "
                   "seeds, chosen per budget) goes beside it as .json")
    args = p.parse_args(argv)
    default_model, default_eps = DATASETS[args.dataset]
    args.model_dir = args.model_dir or default_model
    args.epsilon = default_eps if args.epsilon is None else args.epsilon
    args.out = args.out or OUTS[args.dataset]
    args.choose_list = [Path(f) for f in args.choose.split(",") if f.strip()]
    missing = [str(f) for f in args.choose_list if not f.is_file()]
    if missing:
        p.error(f"--choose: no such file {missing[0]}")
    choice = Path(args.md).with_suffix(".json").resolve()
    if args.choose_list and choice in {f.resolve() for f in args.choose_list}:
        p.error(f"--md {args.md}: its .json would overwrite the tuning file {choice}")
    try:
        args.budget_list = sorted({int(b) for b in args.budgets.split(",") if b.strip()})
    except ValueError:
        p.error(f"--budgets must be integers, got {args.budgets!r}")
    try:
        args.seed_list = sorted({int(v) for v in args.seeds.split(",") if v.strip()})
    except ValueError:
        p.error(f"--seeds must be integers, got {args.seeds!r}")
    if not args.seed_list or min(args.seed_list) < 0:
        p.error(f"--seeds must name seeds >= 0, got {args.seeds!r}")
    args.candidate_list = [c for c in args.candidates.split(",") if c.strip()]
    unknown = [c for c in args.candidate_list if c not in CANDIDATES]
    if unknown:
        p.error(f"unknown candidates {unknown}; known: {', '.join(CANDIDATES)}")
    if args.start < 0 or args.n < 1 or args.start + args.n > 1000 or args.epsilon <= 0 \
            or not args.budget_list or min(args.budget_list) < 1:
        p.error("--start and --n must give images within 0-999 (the tuning split), "
                "--epsilon > 0, --budgets >= 1")
    return args


def seed_runs(cell: dict) -> dict[str, dict]:
    """A budget cell's runs by seed (``{"0": summary, ...}``); a cell saved before seeds
    were kept holds one run, seed 0's, at its top level."""
    return cell["runs"] if "runs" in cell else {"0": cell}


def with_means(runs: dict[str, dict]) -> dict:
    """A budget cell from its runs: their mean accuracy and passes per example, and the runs."""
    return {"accuracy": float(np.mean([r["accuracy"] for r in runs.values()])),
            "passes_per_example": float(np.mean([r["passes_per_example"]
                                                 for r in runs.values()])),
            "runs": runs}


def scores(candidates: Mapping | Sequence[Mapping], budget: int,
           seeds: Sequence[int] | None = None) -> dict[str, tuple[float, float]]:
    """Per candidate measured at ``budget``: (accuracy, passes per example), each the mean over
    ``seeds`` (None: over the seeds it was measured at) of its runs there. ``candidates`` is
    one tuning file's ``candidates`` or a sequence of them (one per dataset); over several,
    the means of each file's means, among the candidates measured in every file (and, with
    ``seeds``, at every one of them in each)."""
    files = [candidates] if isinstance(candidates, Mapping) else list(candidates)

    def runs(cands, name):
        cell = cands.get(name, {"budgets": {}})["budgets"].get(str(budget))
        if cell is None:
            return None
        by_seed = seed_runs(cell)
        if seeds is None:
            return list(by_seed.values()) or None
        wanted = [by_seed.get(str(s)) for s in seeds]
        return None if any(r is None for r in wanted) else wanted

    measured = {n: [runs(c, n) for c in files] for n in (files[0] if files else {})}
    return {n: tuple(float(np.mean([np.mean([r[key] for r in file_runs])
                                    for file_runs in per_file]))
                     for key in ("accuracy", "passes_per_example"))
            for n, per_file in measured.items() if all(per_file)}


def choose(candidates: Mapping | Sequence[Mapping], budget: int,
           seeds: Sequence[int] | None = None) -> str | None:
    """The candidate with the lowest accuracy at ``budget`` (:func:`scores`: averaged over
    ``seeds``, and over the files when ``candidates`` is a sequence of them), among those
    measured there at every one of ``seeds`` (ties: fewer mean passes per example, then the
    earlier candidate in ``CANDIDATES``); None when none is."""
    order = {name: i for i, name in enumerate(CANDIDATES)}
    measured = scores(candidates, budget, seeds)
    if not measured:
        return None
    return min(sorted(measured, key=lambda n: order.get(n, len(order))),
               key=lambda n: (round(measured[n][0], 9), round(measured[n][1], 9)))


def all_runs(tuning: dict) -> Iterator[dict]:
    """Every run of a tuning file, over its candidates, budgets and seeds."""
    for entry in tuning.get("candidates", {}).values():
        for cell in entry["budgets"].values():
            yield from seed_runs(cell).values()


def name_earlier_runs(results: dict) -> None:
    """Gives every run recorded without its CPU the machine its file recorded
    (:func:`bench.strength.name_unnamed`)."""
    name_unnamed(all_runs(results), results.get("machine"))


def runs_per_machine(tuning: dict) -> str:
    """``"runs on CPU A: 12, CPU B: 40"`` over every run of a tuning file (a run without its
    CPU counted under the file's)."""
    groups = by_machine(all_runs(tuning), default=cpu_text(tuning["machine"]))
    return "runs on " + ", ".join(f"{cpu}: {len(runs)}" for cpu, runs in groups.items())


def render_choice(tunings: Sequence[dict], seeds: Sequence[int], labels: Sequence[str]) -> str:
    """Markdown: every candidate's mean accuracy per budget in each tuning file and over all of
    them, the chosen one per budget in bold."""
    budgets = sorted({int(b) for t in tunings for c in t["candidates"].values()
                      for b in c["budgets"]})
    seed_text = ", ".join(str(s) for s in seeds)
    lines = ["# Tuning `strongest` (`python -m bench.strength_tuning`)", "",
             "Accuracy (%) under each candidate ensemble at a budget of forward+backward passes "
             f"per example, the mean over seeds {seed_text}, on the tuning split (test images "
             "0-999; the reported figures use images from 1000 on). The plan "
             "(`attacks.ensemble.DEFAULT_PLAN`) takes at each budget the lowest mean over the "
             "datasets (bold), among the candidates measured at every seed in every file; "
             "- where a candidate was not.", ""]
    for t, label in zip(tunings, labels):
        st = t["settings"]
        lines.append(f"- {label}: `{st['model_dir']}`, eps {st['epsilon']:g}, images "
                     f"{st['start']}-{st['start'] + st['n'] - 1}; latest run {t['date']}, "
                     f"commit {t['commit']}; {runs_per_machine(t)}.")
    lines += ["", "| candidate | budget | " + " | ".join(labels) + " | mean |",
              "| --- | ---: |" + " ---: |" * (len(labels) + 1)]
    for budget in budgets:
        per_file = [scores(t["candidates"], budget, seeds) for t in tunings]
        joint = scores([t["candidates"] for t in tunings], budget, seeds)
        chosen = choose([t["candidates"] for t in tunings], budget, seeds)
        for name in CANDIDATES:
            if not any(name in f for f in per_file):
                continue
            cells = [f"{100 * f[name][0]:.2f}" if name in f else "-" for f in per_file]
            mean = f"{100 * joint[name][0]:.2f}" if name in joint else "-"
            label = f"**{name}**" if name == chosen else name
            lines.append(f"| {label} | {budget} | " + " | ".join(cells) + f" | {mean} |")
    return "\n".join(lines) + "\n"


def tuning_file_problem(tuning) -> str | None:
    """What keeps ``tuning`` (parsed JSON) from being a ``bench.strength_tuning`` record that
    ``--choose`` can read; None when nothing does."""
    if not isinstance(tuning, dict):
        return f"a JSON {type(tuning).__name__}, not an object"
    missing = [k for k in ("candidates", "settings", "machine", "date", "commit")
               if k not in tuning]
    if missing:
        return f"no {', '.join(missing)}"
    if not isinstance(tuning["candidates"], dict) or not isinstance(tuning["settings"], dict):
        return "candidates and settings must be objects"
    if not isinstance(tuning["settings"].get("epsilon"), (int, float)):
        return "settings has no numeric epsilon"
    for name, entry in tuning["candidates"].items():
        if not isinstance(entry, dict) or not isinstance(entry.get("budgets"), dict):
            return f"candidate {name!r} has no budgets object"
    return None


def choose_over(args) -> None:
    """``--choose``: the choice over the tuning files, printed and written to ``--md``."""
    tunings = []
    for f in args.choose_list:
        try:
            tuning = json.loads(f.read_text())
        except ValueError as err:
            raise SystemExit(f"--choose {f}: not a bench.strength_tuning file (not JSON: {err})")
        problem = tuning_file_problem(tuning)
        if problem:
            raise SystemExit(f"--choose {f}: not a bench.strength_tuning file ({problem})")
        tunings.append(tuning)
    labels = [DATASET_NAMES[t["settings"].get("dataset", "mnist")] for t in tunings]
    budgets = sorted({int(b) for t in tunings for c in t["candidates"].values()
                      for b in c["budgets"]})
    chosen = {str(b): choose([t["candidates"] for t in tunings], b, args.seed_list)
              for b in budgets}
    from experiments.report import write_json, write_text
    write_text(Path(args.md), render_choice(tunings, args.seed_list, labels))
    write_json(Path(args.md).with_suffix(".json"),
               {"files": [str(f) for f in args.choose_list], "seeds": args.seed_list,
                "chosen": chosen})
    print(f"chosen per budget over {', '.join(labels)}: {chosen}", flush=True)


def settings(args) -> dict:
    """What a saved tuning file must share with this run for its runs to be kept."""
    return {"dataset": args.dataset, "model_dir": args.model_dir, "start": args.start,
            "n": args.n, "epsilon": args.epsilon, "batch_size": args.batch_size,
            "compute_dtype": "float32", "seed": 0}


def main(argv=None):
    args = parse_args(argv)
    if args.choose_list:
        return choose_over(args)
    from attacks import predict
    from attacks.ensemble import strongest
    from bench.strength import _commit
    from bench.throughput import machine
    from experiments.report import write_json
    from mnist_challenge_compat import load_dataset, load_model

    model = load_model(args.model_dir)
    x_all, y_all = load_dataset(args.dataset, "test")
    x, y = x_all[args.start:args.start + args.n], y_all[args.start:args.start + args.n]
    out = Path(args.out)
    results = json.loads(out.read_text()) if out.exists() else {}
    wanted = settings(args)
    if results.get("settings") != wanted:
        results = {"settings": wanted, "candidates": {}}
    name_earlier_runs(results)
    results["clean_accuracy"] = float(np.mean(predict(model, x) == y))
    # The file's machine, commit and date are those of its latest run: a rerun that runs
    # nothing keeps them (each run also names its own CPU).
    latest = {"machine": machine(), "commit": _commit(),
              "date": datetime.date.today().isoformat()}
    for key, value in latest.items():
        results.setdefault(key, value)
    here = cpu_text(latest["machine"])
    for budget in args.budget_list:
        for name in args.candidate_list:
            members = CANDIDATES[name]
            record = [m.record() for m in members]
            entry = results["candidates"].get(name)
            if entry is None or entry["members"] != record:
                entry = results["candidates"][name] = {"members": record, "budgets": {}}
            for seed in args.seed_list:
                runs = dict(seed_runs(entry["budgets"].get(str(budget), {"runs": {}})))
                if str(seed) in runs:
                    continue
                began = time.perf_counter()
                state = strongest(model, x, y, args.epsilon, budget=budget, members=members,
                                  seed=seed, batch_size=args.batch_size)
                runs[str(seed)] = {**state.summary(), "seconds": time.perf_counter() - began,
                                   "load_average": os.getloadavg()[0], "machine": here}
                entry["budgets"][str(budget)] = with_means(runs)
                results.update(latest)
                write_json(out, results)
                print(f"{name} @ {budget}, seed {seed}: {100 * state.accuracy:.1f}% "
                      f"({state.passes_per_example:.1f} passes/example, "
                      f"{time.perf_counter() - began:.0f} s)", flush=True)
    budgets = sorted({int(b) for c in results["candidates"].values() for b in c["budgets"]})
    results["chosen"] = {str(b): choose(results["candidates"], b, args.seed_list)
                         for b in budgets}
    results["chosen_over_seeds"] = args.seed_list
    write_json(out, results)
    print(f"chosen per budget: {results['chosen']}", flush=True)


if __name__ == "__main__":
    main()
