"""Accuracy under attack against the gradient budget, sign and quantized, with the peers.

    python -m bench.strength                          # 1000 MNIST test images from 1000,
                                                      # eps 0.3, budgets 10, 30, 100
    python -m bench.strength --dataset fashion_mnist --out bench/strength_fashion.json \
        --md /tmp/f.md --png /tmp/f.png               # daa_fashion_eps02 at eps 0.2
    python -m bench.strength --also bench/strength_fashion.json   # MNIST, with a Fashion section
    python -m bench.strength --n 20 --budgets 10 --out /tmp/s.json --md /tmp/s.md \\
        --png /tmp/s.png                              # smoke run

The budget is forward+backward passes per example. Every attack runs once (seed 0) at each
budget on the same held-out images (the ensemble's members were chosen on MNIST test images
0-499, see ``bench.strength_tuning``): ours with the most steps whose passes fit the budget
(``steps = budget``; ``budget - odi_steps`` with an ODI start; PGD-family step size
``2.5 * eps / steps``; APGD its own schedule), in ``--dtype`` (float32 by default, as the
peers, which always run float32), ``strongest`` (``attacks.ensemble``) with the
budget as its total, and the peers built on the same Keras weights: ART's APGD-CE and
APGD-DLR (``steps = budget``) and AutoAttack's APGD-CE + APGD-T part assembled from ART's
APGD (CE on all, then targeted DLR towards each of the 9 top wrong classes of the clean
logits on the examples still correct: ``budget // 10`` steps per run, AutoAttack's 1 : 9).
Results are saved after every (attack, budget) cell to ``--out``; rerunning the command
skips the cells already there with the same settings (and, for ``strongest``, the same
members); ``--merge`` takes over the cells of other result files. Then ``--md`` (table) and
``--png`` (plot) are written from the JSON, with one more section (table, plot panel) per
``--also`` result file (e.g. the Fashion-MNIST run).
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import subprocess
import time
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

import numpy as np

ATTACKS: dict[str, dict[str, Any]] = {
    # name -> our AttackConfig settings (besides epsilon, steps, step_size), family and unit
    "PGD": {"family": "PGD", "unit": "sign", "settings": {"method": "pgd"}},
    "PQGD b=10": {"family": "PGD", "unit": "quantized", "settings": {"method": "pqgd", "b": 10.0}},
    "PQGD b=100": {"family": "PGD", "unit": "quantized", "settings": {"method": "pqgd", "b": 100.0}},
    "BLOB": {"family": "BLOB", "unit": "sign", "settings": {"method": "blob"}},
    "BLOB_QG b=10": {"family": "BLOB", "unit": "quantized",
                     "settings": {"method": "blob_qg", "b": 10.0}},
    "BLOB_QG b=100": {"family": "BLOB", "unit": "quantized",
                      "settings": {"method": "blob_qg", "b": 100.0}},
    "APGD-CE": {"family": "APGD-CE", "unit": "sign", "settings": {"method": "apgd", "loss": "xent"}},
    "APGD-CE b=10": {"family": "APGD-CE", "unit": "quantized",
                     "settings": {"method": "apgd", "loss": "xent", "b": 10.0}},
    "APGD-CE ODI": {"family": "APGD-CE ODI", "unit": "sign",
                    "settings": {"method": "apgd", "loss": "xent", "start": "odi"}},
    "APGD-CE b=10 ODI": {"family": "APGD-CE ODI", "unit": "quantized",
                         "settings": {"method": "apgd", "loss": "xent", "b": 10.0, "start": "odi"}},
    "APGD-DLR": {"family": "APGD-DLR", "unit": "sign", "settings": {"method": "apgd", "loss": "dlr"}},
    "APGD-DLR b=10": {"family": "APGD-DLR", "unit": "quantized",
                      "settings": {"method": "apgd", "loss": "dlr", "b": 10.0}},
    "strongest": {"family": "ensemble", "unit": "mixed", "settings": None},
    "ART APGD-CE": {"family": "peer", "unit": "sign", "settings": None},
    "ART APGD-DLR": {"family": "peer", "unit": "sign", "settings": None},
    "ART APGD-CE + APGD-T": {"family": "peer", "unit": "sign", "settings": None},
}
PEERS = ("ART APGD-CE", "ART APGD-DLR", "ART APGD-CE + APGD-T")
# Rows of the paired test (strongest against the best peer): their cells must hold the
# per-image outcomes, so a saved cell without them (from before they were kept) is rerun.
PAIRED = ("strongest", *PEERS)
PGD_STEP_FACTOR = 2.5
AA_TARGETS = 9
# Per dataset: the shipped model and its eps. Fashion-MNIST: the paper's regime (its Tables 4
# and 5 attack at eps 0.2), the model adversarially trained at 0.2; at daa_fashion's eps 0.1
# nearly every image ends the same under every attack, so the rows cannot be told apart.
DATASETS = {"mnist": ("models/pretrained/madry_mnist", 0.3),
            "fashion_mnist": ("models/pretrained/daa_fashion_eps02", 0.2)}
DATASET_NAMES = {"mnist": "MNIST", "fashion_mnist": "Fashion-MNIST"}


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--dataset", default="mnist", choices=sorted(DATASETS))
    p.add_argument("--model_dir", default=None, help="default: the dataset's shipped model")
    p.add_argument("--start", type=int, default=1000, help="first test image (held out)")
    p.add_argument("--n", type=int, default=1000, help="test images attacked")
    p.add_argument("--epsilon", type=float, default=None, help="default: 0.3 for MNIST, "
                   "0.2 (the paper's, daa_fashion_eps02's training eps) for Fashion-MNIST")
    p.add_argument("--dtype", default="float32", choices=("float32", "bfloat16"),
                   help="compute dtype of our attacks (the peers run float32)")
    p.add_argument("--no_run", action="store_true", help="run nothing: write --out, --md and "
                   "--png from the saved and --merge'd cells")
    p.add_argument("--also", default="", help="comma-separated result files of other runs "
                   "(e.g. Fashion-MNIST) rendered as further sections of --md and --png")
    p.add_argument("--budgets", default="10,30,100", help="passes per example, comma-separated")
    p.add_argument("--attacks", default=",".join(ATTACKS), help="subset of the rows, comma-separated")
    p.add_argument("--batch_size", type=int, default=200)
    p.add_argument("--out", default="bench/strength.json")
    p.add_argument("--md", default="bench/strength.md")
    p.add_argument("--png", default="bench/strength.png")
    p.add_argument("--merge", default="", help="comma-separated result files of runs with the "
                   "same settings (e.g. some rows computed by another process): their cells "
                   "are taken over, not recomputed")
    args = p.parse_args(argv)
    try:
        args.budget_list = sorted({int(b) for b in args.budgets.split(",") if b.strip()})
    except ValueError:
        p.error(f"--budgets must be integers, got {args.budgets!r}")
    default_model, default_eps = DATASETS[args.dataset]
    args.model_dir = args.model_dir or default_model
    args.epsilon = default_eps if args.epsilon is None else args.epsilon
    args.also_list = [Path(a) for a in args.also.split(",") if a.strip()]
    missing = [str(a) for a in args.also_list if not a.is_file()]
    if missing:
        p.error(f"--also: no such file {missing[0]}")
    args.attack_list = [a for a in args.attacks.split(",") if a.strip()]
    unknown = [a for a in args.attack_list if a not in ATTACKS]
    if unknown:
        p.error(f"unknown attacks {unknown}; known: {', '.join(ATTACKS)}")
    if args.n < 1 or args.start < 0 or args.epsilon <= 0 or not args.budget_list \
            or min(args.budget_list) < 1:
        p.error("--n must be >= 1, --start >= 0, --epsilon > 0, --budgets >= 1")
    return args


# --------------------------------------------------------------------------- running
def run_ours(model, x, y, name: str, budget: int, epsilon: float, batch_size: int,
             dtype: str = "float32") -> dict:
    from attacks import attack
    from attacks.ensemble import Member
    settings = dict(ATTACKS[name]["settings"])
    factor = None if settings["method"].startswith("apgd") else PGD_STEP_FACTOR
    member = Member(name, 1.0, settings, step_factor=factor)
    steps = member.steps_within(budget, epsilon)  # budget minus an ODI start's steps
    if steps < 1:
        raise ValueError(f"budget {budget} leaves {name} no step")
    cfg = member.config(epsilon, steps, batch_size=batch_size, compute_dtype=dtype)
    state = attack(model, x, y, cfg, seed=0)
    return {"x_adv": state.x_adv, "passes_per_example": float(cfg.gradient_passes()),
            "steps": steps}


def run_strongest(model, x, y, budget: int, epsilon: float, batch_size: int,
                  dtype: str = "float32", seed: int = 0) -> dict:
    from attacks.ensemble import strongest
    state = strongest(model, x, y, epsilon, budget=budget, seed=seed, batch_size=batch_size,
                      compute_dtype=dtype)
    return {"x_adv": state.x_adv, "passes_per_example": state.passes_per_example,
            "members": state.summary()["members"]}


def run_peer(model, x, y, name: str, budget: int, epsilon: float, batch_size: int,
             seed: int = 0) -> dict:
    from art.attacks.evasion import AutoProjectedGradientDescent
    from bench.peers import make_art_classifier
    classifier = make_art_classifier(model)

    def apgd(x_in, labels, loss, steps, targeted):
        np.random.seed(seed)  # ART's random starts draw from numpy's global generator
        att = AutoProjectedGradientDescent(
            classifier, norm=np.inf, eps=epsilon, eps_step=2 * epsilon, max_iter=steps,
            targeted=targeted, nb_random_init=1, batch_size=batch_size, loss_type=loss,
            verbose=False)
        return att.generate(x=x_in, y=labels.astype(np.int64)).astype(np.float32)

    if name == "ART APGD-CE":
        return {"x_adv": apgd(x, y, "cross_entropy", budget, False), "passes_per_example": float(budget)}
    if name == "ART APGD-DLR":
        return {"x_adv": apgd(x, y, "difference_logits_ratio", budget, False),
                "passes_per_example": float(budget)}
    import attacks
    steps = budget // (1 + AA_TARGETS)
    if steps < 1:
        raise ValueError(f"budget {budget} is below {1 + AA_TARGETS} (one step per APGD run)")
    x_adv = apgd(x, y, "cross_entropy", steps, False)
    correct = attacks.predict(model, x_adv) == y
    passes = steps * len(x)
    targets = attacks.top_targets(np.asarray(model(x, training=False)), y, AA_TARGETS)
    for j in range(AA_TARGETS):
        idx = np.flatnonzero(correct)
        if idx.size == 0:
            break
        x_j = apgd(x[idx], targets[idx, j], "difference_logits_ratio", steps, True)
        passes += steps * idx.size
        fooled = attacks.predict(model, x_j) != y[idx]
        x_adv[idx[fooled]] = x_j[fooled]
        correct[idx[fooled]] = False
    return {"x_adv": x_adv, "passes_per_example": passes / len(x)}


def still_correct(model, x: np.ndarray, y: np.ndarray, x_adv: np.ndarray, epsilon: float,
                  key: str) -> np.ndarray:
    """``(N,)`` bool: where ``model`` still classifies ``x_adv`` correctly; exits naming
    ``key`` when an image leaves the eps-ball around ``x`` or [0, 1]."""
    from attacks import predict
    dist = float(np.abs(x_adv - x).max())
    if dist > epsilon * (1 + 1e-5) + 1e-6 or x_adv.min() < 0 or x_adv.max() > 1:
        raise SystemExit(f"{key}: images leave the eps-ball or [0, 1] (L-inf {dist:g})")
    return predict(model, x_adv) == y


def cell_key(name: str, budget: int) -> str:
    return f"{name}@{budget}"


def members_record(budget: int) -> list[dict]:
    """The members ``strongest`` runs at ``budget`` (``attacks.ensemble.default_members``)."""
    from attacks.ensemble import default_members
    return [m.record() for m in default_members(budget)]


def pack_outcomes(correct: np.ndarray) -> str:
    """``(N,)`` bool "still classified correctly" -> hex of its bits (``np.packbits``), so a
    cell keeps its per-image outcomes for the paired test."""
    return np.packbits(np.asarray(correct, dtype=bool)).tobytes().hex()


def unpack_outcomes(text: str, n: int) -> np.ndarray:
    """Inverse of :func:`pack_outcomes`: ``(n,)`` bool."""
    return np.unpackbits(np.frombuffer(bytes.fromhex(text), dtype=np.uint8))[:n].astype(bool)


def load_results(path: Path, settings: dict) -> dict:
    """The saved results when their settings equal ``settings``, else a fresh record."""
    if path.exists():
        saved = json.loads(path.read_text())
        if saved.get("settings") == settings:
            return saved
        print(f"{path}: settings differ from this run's; starting afresh", flush=True)
    return {"settings": settings, "cells": {}}


def settings(args) -> dict:
    """What a saved result file must share with this run for its cells to be kept."""
    return {"dataset": args.dataset, "model_dir": args.model_dir, "start": args.start,
            "n": args.n, "epsilon": args.epsilon, "batch_size": args.batch_size, "seed": 0,
            "pgd_step_factor": PGD_STEP_FACTOR, "aa_targets": AA_TARGETS,
            "dtype": args.dtype, "peer_dtype": "float32"}


def main(argv=None):
    args = parse_args(argv)
    from attacks import predict
    from bench.throughput import cpu_text, held_out_mnist, machine
    from experiments.report import write_json, write_text

    model, x, y = held_out_mnist(args.model_dir, args.start, args.n, args.dataset)
    out = Path(args.out)
    results = load_results(out, settings(args))
    commits = set(results.get("commits", [results["commit"]] if "commit" in results else []))
    for other in (Path(m) for m in args.merge.split(",") if m.strip()):
        saved = json.loads(other.read_text())
        if saved.get("settings") != results["settings"]:
            raise SystemExit(f"--merge {other}: its settings differ from this run's")
        for key, cell in saved["cells"].items():
            results["cells"].setdefault(key, cell)
        commits.update(saved.get("commits", [saved["commit"]] if "commit" in saved else []))
    results["clean_accuracy"] = float(np.mean(predict(model, x) == y))
    # The machine and date are those of the latest measured cell: a re-render (--no_run) or
    # a rerun that measures nothing keeps them.
    name_earlier_machine(results)
    here, today, this_commit = machine(), datetime.date.today().isoformat(), _commit()
    results.setdefault("machine", here)
    results.setdefault("date", today)
    # Like the machine and date, "commit" is that of the latest measured cell; "commits" are
    # those of every run that measured cells (a re-render adds neither).
    results.setdefault("commit", this_commit)
    results["commits"] = sorted(commits)

    def measured_here() -> None:
        results["machine"], results["date"], results["commit"] = here, today, this_commit
        commits.add(this_commit)
        results["commits"] = sorted(commits)
    for budget in [] if args.no_run else args.budget_list:           # every attack at a budget before the next budget
        for name in args.attack_list:
            key = cell_key(name, budget)
            cell = results["cells"].get(key)
            if cell is not None and (name != "strongest"
                                     or cell.get("ensemble") == members_record(budget)) \
                    and (name not in PAIRED or "correct" in cell):
                continue
            began = time.perf_counter()
            try:
                if name == "strongest":
                    run = run_strongest(model, x, y, budget, args.epsilon, args.batch_size,
                                        args.dtype)
                elif name in PEERS:
                    run = run_peer(model, x, y, name, budget, args.epsilon, args.batch_size)
                else:
                    run = run_ours(model, x, y, name, budget, args.epsilon, args.batch_size,
                                   args.dtype)
            except ValueError as err:  # a budget too small for the attack: recorded, not fatal
                results["cells"][key] = {"attack": name, "budget": budget, "skipped": str(err)}
                measured_here()
                write_json(out, results)
                print(f"{key}: skipped ({err})", flush=True)
                continue
            seconds = time.perf_counter() - began
            correct = still_correct(model, x, y, run.pop("x_adv"), args.epsilon, key)
            acc = float(np.mean(correct))
            cell = {"attack": name, "budget": budget, "accuracy": acc, "seconds": seconds,
                    "load_average": os.getloadavg()[0], "machine": cpu_text(here),
                    "family": ATTACKS[name]["family"], "unit": ATTACKS[name]["unit"],
                    "correct": pack_outcomes(correct), **run}
            if name == "strongest":
                cell["ensemble"] = members_record(budget)
            results["cells"][key] = cell
            measured_here()
            write_json(out, results)
            print(f"{key}: {100 * acc:.1f}% ({run['passes_per_example']:.1f} passes/example, "
                  f"{seconds:.0f} s)", flush=True)
    results["paired"] = paired_tests(results)
    write_json(out, results)
    others = [json.loads(a.read_text()) for a in args.also_list]
    write_text(args.md, "\n".join(render_table(r, level=1 if i == 0 else 2)
                                  for i, r in enumerate([results, *others])))
    write_plot([results, *others], args.png)
    print(f"wrote {args.out}, {args.md}, {args.png}", flush=True)


def _commit() -> str:
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,
                              text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


# --------------------------------------------------------------------------- reporting
def _cells(results: dict) -> list[dict]:
    return [c for c in results["cells"].values() if "accuracy" in c]


def dataset_name(results: dict) -> str:
    return DATASET_NAMES.get(results["settings"].get("dataset", "mnist"), "MNIST")


def load_text(results: dict) -> str:
    """``", 1-min load average a-b while the cells ran"`` from the cells' records, or ""."""
    loads = [c["load_average"] for c in _cells(results) if "load_average" in c]
    if not loads:
        return ""
    return f", 1-min load average {min(loads):.1f}-{max(loads):.1f} while the cells ran"


def bf16_text(machine: dict) -> str:
    """``"avx512_bf16 yes, "`` / ``"avx512_bf16 no, "`` from the machine record, "" without it."""
    if "avx512_bf16" not in machine:
        return ""
    return f"avx512_bf16 {'yes' if machine['avx512_bf16'] else 'no'}, "


def name_unnamed(records: Iterable[dict], machine: dict | None) -> None:
    """Gives every record (a cell or a run) saved without its CPU the machine its file
    recorded (the latest one's when it was saved: for records from before each named its
    own, the best there is), so that records added on another machine can join the file."""
    from bench.throughput import cpu_text
    if machine is None:
        return
    for record in records:
        record.setdefault("machine", cpu_text(machine))


def by_machine(records: Iterable[dict], default: str = "?") -> dict[str, list[dict]]:
    """The records grouped by the CPU each names (``default`` for none), in CPU order."""
    groups: dict[str, list[dict]] = {}
    for record in records:
        groups.setdefault(record.get("machine", default), []).append(record)
    return dict(sorted(groups.items()))


def name_earlier_machine(results: dict) -> None:
    """:func:`name_unnamed` over a result file's cells."""
    name_unnamed(results["cells"].values(), results.get("machine"))


def cells_per_machine(results: dict) -> str:
    """``" Cells per machine: CPU: k cells; ..."`` where the cells come from several machines
    (the header names the latest one); "" otherwise."""
    groups = by_machine(c for c in results["cells"].values() if "skipped" not in c)
    if len(groups) < 2:
        return ""
    return " Cells per machine: " + "; ".join(
        f"{cpu}: {len(cells)} cell{'s' if len(cells) != 1 else ''}"
        for cpu, cells in groups.items()) + "."


def header(results: dict) -> str:
    from bench.throughput import cpu_text
    s, m = results["settings"], results["machine"]
    dtype = s.get("dtype", "float32")
    return (f"{dataset_name(results)} test images {s['start']}-{s['start'] + s['n'] - 1} "
            f"({s['n']}, held out), model `{s['model_dir']}`, eps {s['epsilon']:g}, one run, "
            f"seed {s['seed']}; clean accuracy {100 * results['clean_accuracy']:.1f}%. Our "
            f"attacks compute in {dtype}, the peers (ART) in {s.get('peer_dtype', 'float32')}. "
            f"{results['date']}, {cpu_text(m)} ({bf16_text(m)}{m['cores']} cores, shared with other work"
            f"{load_text(results)}), TensorFlow "
            f"{m['tensorflow']}, commit {results['commit']}"
            + (f" (cells measured at {', '.join(results['commits'])})"
               if results.get("commits") and results["commits"] != [results["commit"]] else "")
            + "." + cells_per_machine(results))


def sign_vs_quantized(results: dict) -> list[str]:
    """One line per quantized row and budget where it is above its family's sign row."""
    by = {(c["attack"], c["budget"]): c for c in _cells(results)}
    lines = []
    for (name, budget), cell in sorted(by.items(), key=lambda kv: (kv[0][1], kv[0][0])):
        if cell.get("unit") != "quantized":
            continue
        sign = [c for (n, b), c in by.items()
                if b == budget and c.get("family") == cell["family"] and c.get("unit") == "sign"]
        if sign and cell["accuracy"] > sign[0]["accuracy"]:
            lines.append(f"{name} at budget {budget}: {100 * cell['accuracy']:.1f}% > "
                         f"{sign[0]['attack']} {100 * sign[0]['accuracy']:.1f}%")
    return lines


def strongest_vs_peers(results: dict) -> list[str]:
    """One line per budget where ``strongest`` is not below every peer at that budget."""
    by = {(c["attack"], c["budget"]): c for c in _cells(results)}
    lines = []
    for budget in sorted({b for _, b in by}):
        ours = by.get(("strongest", budget))
        if ours is None:
            continue
        peers = [by[(p, budget)] for p in PEERS if (p, budget) in by]
        worse = [p for p in peers if p["accuracy"] <= ours["accuracy"]]
        for p in worse:
            lines.append(f"budget {budget}: strongest {100 * ours['accuracy']:.1f}% is not below "
                         f"{p['attack']} {100 * p['accuracy']:.1f}%")
    return lines


def paired_tests(results: dict) -> list[dict]:
    """Per budget with a ``strongest`` cell: the exact McNemar test (``experiments.stats.
    paired_difference`` on one run each) of ``strongest`` against the best peer there (the
    lowest accuracy among the measured peers), from the cells' per-image outcomes.

    Each record: ``budget``, ``peer``, both accuracies, and either ``difference`` (strongest
    minus peer, accuracy units), its exact conditional 95% interval ``low``/``high``, ``p``,
    ``discordant``, ``resolved`` (p < 0.05), or ``missing`` (a cell without outcomes)."""
    from experiments.stats import paired_difference
    by = {(c["attack"], c["budget"]): c for c in _cells(results)}
    n = results["settings"]["n"]
    records = []
    for budget in sorted({b for _, b in by}):
        ours = by.get(("strongest", budget))
        peers = [by[(p, budget)] for p in PEERS if (p, budget) in by]
        if ours is None or not peers:
            continue
        best = min(peers, key=lambda c: c["accuracy"])
        rec = {"budget": budget, "peer": best["attack"], "strongest": ours["accuracy"],
               "peer_accuracy": best["accuracy"]}
        missing = [c["attack"] for c in (ours, best) if "correct" not in c]
        if missing:
            rec["missing"] = f"no per-image outcomes for {', '.join(missing)}"
        else:
            d = paired_difference(unpack_outcomes(ours["correct"], n)[None],
                                  unpack_outcomes(best["correct"], n)[None])
            rec.update(difference=d.mean, low=d.low, high=d.high, p=d.p,
                       discordant=d.discordant, resolved=d.resolved, test=d.test)
        records.append(rec)
    return records


def paired_text(rec: dict) -> str:
    """One line of :func:`paired_tests`' record."""
    head = (f"budget {rec['budget']}: strongest {100 * rec['strongest']:.1f}% vs "
            f"{rec['peer']} {100 * rec['peer_accuracy']:.1f}%")
    if "missing" in rec:
        return f"{head}: not tested ({rec['missing']})"
    from experiments.stats import format_p
    verdict = ("resolved" if rec["resolved"] else "not resolved") + " at the 5% level"
    return (f"{head}: difference {100 * rec['difference']:+.1f} points, 95% interval "
            f"[{100 * rec['low']:+.1f}, {100 * rec['high']:+.1f}] (exact conditional), "
            f"{rec['test']} p = {format_p(rec['p'])}, {rec['discordant']} discordant images: "
            f"{verdict}")


def render_table(results: dict, level: int = 1) -> str:
    """Markdown: accuracy (%) per attack (rows) and budget (columns), with the header and the
    goal checks; ``level`` 1 is the page's title, 2 a further dataset's section."""
    cells = _cells(results)
    budgets = sorted({c["budget"] for c in results["cells"].values()})
    names = [n for n in ATTACKS if any(c["attack"] == n for c in results["cells"].values())]
    names += sorted({c["attack"] for c in results["cells"].values()} - set(names))
    by = {(c["attack"], c["budget"]): c for c in results["cells"].values()}
    title = ("# Accuracy against the gradient budget (`python -m bench.strength`)" if level == 1
             else f"## {dataset_name(results)}")
    lines = [title, "",
             header(results), "",
             "Accuracy under attack (%, lower is a stronger attack) at a budget of forward+"
             "backward passes per example; `strongest` and APGD-CE + APGD-T spend less on "
             "examples broken early (mean passes per example in brackets).", "",
             "| attack | unit | " + " | ".join(f"budget {b}" for b in budgets) + " |",
             "| --- | --- | " + " | ".join("---:" for _ in budgets) + " |"]
    for name in names:
        row = []
        for b in budgets:
            c = by.get((name, b))
            if c is None:
                row.append("")
            elif "accuracy" not in c:
                row.append("n/a")
            else:
                spent = c.get("passes_per_example", b)
                extra = f" ({spent:.1f})" if abs(spent - b) > 0.05 else ""
                row.append(f"{100 * c['accuracy']:.1f}{extra}")
        unit = ATTACKS[name]["unit"] if name in ATTACKS else next(
            (c.get("unit", "") for c in results["cells"].values() if c["attack"] == name), "")
        lines.append(f"| {name} | {unit} | " + " | ".join(row) + " |")
    skipped = [c for c in results["cells"].values() if "skipped" in c]
    if skipped:
        lines += ["", "n/a: " + "; ".join(f"{c['attack']} at {c['budget']}: {c['skipped']}"
                                           for c in skipped)]
    strong = [c for c in cells if c["attack"] == "strongest" and "members" in c]
    if strong:
        lines += ["", "`strongest` per member (examples attacked / broken):"]
        for c in sorted(strong, key=lambda c: c["budget"]):
            parts = ", ".join(f"{m['name']} {m['steps']} steps {m['attacked']}/{m['broke']}"
                              for m in c["members"])
            lines.append(f"- budget {c['budget']}: {parts}")
    above = sign_vs_quantized(results)
    lines += ["", "Quantized at or below its sign variant: " +
              ("yes, at every budget." if not above else "not everywhere: " + "; ".join(above) + ".")]
    if strong:
        notbelow = strongest_vs_peers(results)
        lines.append("`strongest` below every peer at each budget: " +
                     ("yes." if not notbelow else "not everywhere: " + "; ".join(notbelow) + "."))
    tests = paired_tests(results)
    if tests:
        lines += ["", "`strongest` against the best peer at each budget (paired, the same "
                  "images, one run each):"]
        lines += [f"- {paired_text(r)}" for r in tests]
    return "\n".join(lines) + "\n"


def write_plot(results: dict | Sequence[dict], path: str | Path) -> Path:
    """Accuracy against budget (log x), one line per attack, one panel per results record
    (dataset); PNG at ``path``."""
    from experiments.report import pyplot, save_figure
    plt = pyplot()
    records = [results] if isinstance(results, dict) else list(results)
    fig, axes = plt.subplots(1, len(records), figsize=(8 * len(records), 5.5), squeeze=False)
    for ax, record in zip(axes[0], records):
        _plot_panel(ax, record)
    return save_figure(fig, path)


def _plot_panel(ax, results: dict) -> None:
    cells = _cells(results)
    names = [n for n in ATTACKS if any(c["attack"] == n for c in cells)]
    names += sorted({c["attack"] for c in cells} - set(names))
    for name in names:
        pts = sorted((c["budget"], 100 * c["accuracy"]) for c in cells if c["attack"] == name)
        unit = next(c.get("unit") for c in cells if c["attack"] == name)
        style = {"quantized": "-", "sign": "--", "mixed": "-"}.get(unit, ":")
        width = 2.5 if name == "strongest" else 1.2
        ax.plot([p[0] for p in pts], [p[1] for p in pts], style, marker="o", lw=width, label=name)
    ax.set_xscale("log")
    ax.set_xlabel("gradient budget (forward+backward passes per example)")
    ax.set_ylabel("accuracy under attack (%)")
    s, m = results["settings"], results["machine"]
    ax.set_title(f"{dataset_name(results)} {s['n']} held-out images, eps {s['epsilon']:g}, ours "
                 f"{s.get('dtype', 'float32')}; {results['date']}, {m['cpu']} (shared), "
                 f"commit {results['commit']}", fontsize=8)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7, ncol=2)


if __name__ == "__main__":
    main()
