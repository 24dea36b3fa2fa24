"""The paper's tables and figures: which cells each needs and how it is written.

Each :class:`Artifact` names its cells (``jobs``) and turns computed cells into
``<output_dir>/<name>.md`` (+ ``.png`` for figures, + ``.json`` with every number).
The command modules (``experiments.table2`` ...) are thin absl wrappers around :func:`produce`.
"""
from __future__ import annotations

import datetime as _dt
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import tensorflow as tf

from attacks import AttackConfig, make_runner, quantize
from experiments import paper, plan
from experiments.cells import CellResult, CellSpec, add_compute, environment
from experiments.common import Target, compute, load_target
from experiments.plan import SETUPS, Sizes
from experiments.report import (display_path, markdown_table, pct, pyplot, save_figure,
                                write_json, write_text)
from experiments.stats import (EXACT_CONDITIONAL, EXACT_SIGN_FLIP_LIMIT, FEW_DISCORDANT, NORMAL,
                               PairedDifference, format_p, holm, images_for_power,
                               paired_difference, run_spread, wilson_interval)
from workflow.evaluate import default_model_dir

DATASET_NAMES = {"mnist": "MNIST", "fashion_mnist": "Fashion-MNIST", "cifar10": "CIFAR-10"}
# The sign-step attack each quantized attack replaces the step of (PQGD vs PGD, BLOB_QG vs BLOB).
SIGN_COUNTERPART = {"pqgd": "pgd", "blob_qg": "blob"}
# The paper's Table 3 claim: its BLOB_QG_200 outperforms every other attack of the MNIST
# Challenge leaderboard, the Interval Attack and the Surrogate among them.
TABLE3_RIVAL = "BLOB_QG_200"


Jobs = list[tuple[Target, CellSpec, int]]
Results = dict[CellSpec, CellResult]


@dataclass(frozen=True)
class Artifact:
    """A table or figure: its cells come from :func:`experiments.plan.artifact_cells`."""

    name: str
    title: str
    render: Callable[[dict[str, Target], Results, Sizes, Path], list[Path]]
    # Whether ``render`` takes results that lack some of the artifact's cells (the tables:
    # their rows without finished cells are marked pending, and they refuse to go without
    # their first row's); figures need every cell.
    partial: bool = False

    @property
    def datasets(self) -> tuple[str, ...]:
        return plan.ARTIFACT_DATASETS[self.name]

    def jobs(self, targets: dict[str, Target], sizes: Sizes) -> Jobs:
        return [(targets[c.dataset], c, attacks)
                for c, attacks in plan.artifact_cells(self.name, sizes)]


def describe_plan(artifact: Artifact, sizes: Sizes) -> list[str]:
    """One line per cell the artifact reads (nothing loaded or computed): what ``--dry_run``
    prints."""
    lines = [f"{artifact.name}: {artifact.title} [preset {sizes.preset}]"]
    for c, attacks in plan.artifact_cells(artifact.name, sizes):
        cost = (f"({attacks * c.num_examples * c.steps:,} example-steps if none is stored)"
                if attacks else "(read only if stored; --table3_baselines computes it)")
        lines.append(f"  {c.dataset} {c.label} eps={c.epsilon:g} milestones="
                     f"{','.join(map(str, c.milestones))} images={c.num_examples} "
                     f"attacks={attacks} {cost}")
    return lines


def produce(artifact: Artifact, sizes: Sizes, output_dir: str | Path,
            log: Callable[[str], None] = print, stored_only: bool = False) -> list[Path]:
    """Loads the models, computes (or reads back) the cells, writes the artifact's files.

    ``stored_only``: compute nothing; render from the finished cells alone (a table marks
    the rows whose cells are not finished as pending, and refuses without its first row's
    (PGD's) cell; a figure needs every cell: ValueError otherwise)."""
    paper.check_shared()  # a disagreeing table of the paper's numbers stops before any work
    targets = {ds: load_target(ds, sizes.n(ds)) for ds in artifact.datasets}
    log(f"{artifact.name}: {artifact.title} [preset {sizes.preset}]")
    jobs = artifact.jobs(targets, sizes)
    results = compute(jobs, log, stored_only=stored_only)
    # compute returns every job's cell, an unfinished one with the attacks it has stored.
    missing = [spec for _, spec, attacks in jobs if results[spec].attacks < attacks]
    if missing and not artifact.partial:
        raise ValueError(_unfinished_error(artifact.name, "every cell", missing))
    paths = artifact.render(targets, results, sizes, Path(output_dir))
    for path in paths:
        log(f"wrote {path}")
    return paths


def _unfinished_error(name: str, needed: str, missing) -> str:
    """The one-line refusal of ``--stored_only`` when cells ``name`` cannot do without are
    not finished."""
    return (f"--stored_only: {name} needs {needed} finished; not finished: "
            f"{', '.join(f'{c.dataset} {c.label}' for c in missing)} (run it without "
            f"--stored_only to compute them)")


# ---------------------------------------------------------------------------------------------
# Shared pieces of the reports.
# ---------------------------------------------------------------------------------------------

def _setting(dataset: str, epsilon: float) -> str:
    return f"{DATASET_NAMES[dataset]}, eps {epsilon:g}, a {SETUPS[dataset].step_size:g}"


def _model_line(target: Target) -> str:
    files = ", ".join(f"`{name}` sha256 {digest[:12]}..."
                      for name, digest in target.checkpoint_sha256.items())
    return (f"Model: `{display_path(target.model_dir)}` ({files}); data: the first "
            f"{len(target.x)} official {DATASET_NAMES[target.dataset]} test images; clean accuracy "
            f"{pct(target.clean_accuracy)}%.")


# What the shipped models are, against the paper's (from their MODEL_CARD.md).
SHIPPED_MODELS = {
    "mnist": "the shipped project model (first 10,000 training images, 6,000 steps of PGD-10)",
    "fashion_mnist": "the shipped project model, trained at eps 0.1 (2,400 steps of PGD-5)",
}


def _our_model(target: Target) -> str:
    default = default_model_dir(target.dataset)
    shipped = default is not None and Path(target.model_dir).resolve() == default.resolve()
    return SHIPPED_MODELS[target.dataset] if shipped else f"`{display_path(target.model_dir)}`"


def _protocol_line(target: Target, sizes: Sizes, paper_model: str, paper_protocol: str,
                   our_protocol: str, paper_epsilon: float) -> str:
    """The one line under every artifact that says how our protocol differs from the paper's."""
    eps = sizes.epsilon(target.dataset)
    eps_text = (f"eps {eps:g} in both" if eps == paper_epsilon else
                f"eps: ours {eps:g}, the paper's {paper_epsilon:g}"
                + (" (the shipped model's training eps; `--preset=paper` attacks at the paper's)"
                   if target.dataset == "fashion_mnist" and sizes.preset == "quick" else ""))
    return (f"Protocol vs the paper: model: ours {_our_model(target)}; the paper's: "
            f"{paper_model}; images: ours the first {len(target.x):,}, the paper's 10,000; "
            f"{our_protocol} (the paper: {paper_protocol}); {eps_text}.")


def compute_provenance(results: Results, cells) -> list[dict]:
    """Where the cells' compute happened, from the cells themselves: one entry per distinct
    machine and TensorFlow version, ``{"machine", "tensorflow", "first_date", "last_date",
    "seconds"}`` (a cell listed twice is counted once)."""
    merged: list[dict] = []
    for cell in dict.fromkeys(cells):
        for entry in results[cell].provenance:
            where = {"machine": entry["machine"], "tensorflow": entry["tensorflow"]}
            merged = add_compute(merged, entry["seconds"], where, entry["first_date"])
            merged = add_compute(merged, 0.0, where, entry["last_date"])
    return merged


def _provenance_text(provenance: list[dict]) -> str:
    """``"17.0 min on AMD EPYC (2 cores, 24 GiB), TensorFlow 2.21, 2026-11"``, ``"; "``-joined."""
    parts = []
    for p in provenance:
        dates = p["first_date"] if p["first_date"] == p["last_date"] \
            else f"{p['first_date']} to {p['last_date']}"
        parts.append(f"{p['seconds'] / 60:.1f} min on {p['machine']}, TensorFlow "
                     f"{p['tensorflow']}, {dates}")
    return "; ".join(parts) or "none recorded"


def _paper_source_line() -> str:
    return f"The paper's numbers: {paper.check_shared()}."


def _footer(command: str, results: Results, cells) -> str:
    return (f"\nRendered by `{command}` from the stored cells. Their compute: "
            f"{_provenance_text(compute_provenance(results, cells))} (a cell shared with "
            f"another command is counted once, whichever command computed it).\n\n"
            f"{_paper_source_line()}\n")


def _model_json(target: Target) -> dict:
    return {"model_dir": display_path(target.model_dir), "checkpoint_sha256": target.checkpoint_sha256,
            "dataset": target.dataset, "num_examples": len(target.x),
            "clean_accuracy": target.clean_accuracy}


def _command(name: str, sizes: Sizes) -> str:
    """The command line that reproduces ``sizes`` for artifact ``name``."""
    preset = plan.sizes_for(name, sizes.preset)
    parts = [f"python -m experiments.{name}"]
    if sizes.preset != "quick":
        parts.append(f"--preset={sizes.preset}")
    if sizes.num_examples_override is not None:
        parts.append(f"--num_examples={sizes.num_examples_override}")
    if sizes.runs != preset.runs:
        parts.append(f"--runs={sizes.runs}")
    if sizes.restarts != preset.restarts:
        parts.append(f"--restarts={sizes.restarts}")
    if sizes.seed:
        parts.append(f"--seed={sizes.seed}")
    if sizes.table3_baselines and name == "table3":
        parts.append("--table3_baselines")
    return " ".join(parts)


def _noise_note(n: int | dict[str, int], runs: int) -> str:
    """``n``: the images, or per dataset name when the panels differ (Figure 3)."""
    images = (f"{n:,} images" if isinstance(n, int) else "images of its panel ("
              + ", ".join(f"{DATASET_NAMES[ds]} {k:,}" for ds, k in n.items()) + ")")
    return (f"Noise: Avg's 95% interval is the Wilson interval over the {images}. A "
            f"difference is paired over the same images (per image: fraction of the {runs} "
            f"run(s) still correct). Its 95% interval names its method: with one run each, "
            f"'{EXACT_CONDITIONAL}' (Clopper-Pearson on how the discordant images split, "
            f"scaled by their share; it excludes 0 exactly when the exact McNemar p < 0.05); "
            f"with several runs, '{NORMAL}' (mean +- 1.96 standard errors) from "
            f"{FEW_DISCORDANT} discordant images on, and no interval below, where the normal "
            f"one is optimistic. The p-value is two-sided, from the test named beside it: the "
            f"exact McNemar test (one run: binomial with p = 1/2 on the discordant images) or "
            f"the exact sign-flip test (several runs: per-image differences of runs correct, "
            f"every sign pattern enumerated; beyond {EXACT_SIGN_FLIP_LIMIT:,} discordant images "
            f"its normal approximation, named so). Spread = lowest-highest run.")


def _same_runs_note(name: str, sizes: Sizes, within: str = "") -> str:
    """Which other artifacts read the same attacks (their numbers are not independent)."""
    others = plan.shared_with(name, sizes)
    shared = (f"its cells are also read by {', '.join(others)}, so those numbers come from the "
              f"same attacks, not independent runs" if others else
              "no other artifact reads its cells")
    return f"Same runs: {within}{shared}."


def _multiplicity_note(comparisons: int, primary: int, family: str | None) -> str:
    if family is None:
        return (f"Multiplicity: {comparisons} paired comparison(s) here, all exploratory "
                f"(p-values unadjusted; the primary ones are the paper's Table 2 and 4 claims).")
    return (f"Multiplicity: {comparisons} distinct paired comparison(s) here; the {primary} "
            f"primary ones are {family}: the rows of the paper's table in the column 'its "
            f"sign-step attack', Holm-adjusted within this table. The rest are exploratory "
            f"(unadjusted p).")


# ---------------------------------------------------------------------------------------------
# Tables 2-5: Worst / Avg accuracy per attack.
# ---------------------------------------------------------------------------------------------

def _write_outputs(out, name, text, data, provenance, png=None):
    """``<name>.md`` and ``<name>.json`` (atomic; the JSON gets ``provenance`` as
    ``"compute"``), plus an already saved PNG: the paths."""
    paths = [write_text(out / f"{name}.md", text),
             write_json(out / f"{name}.json", {**data, "compute": provenance,
                                               "paper_numbers_source": paper.check_shared()})]
    return paths + ([png] if png is not None else [])


def _diff_json(diff: PairedDifference | None, holm_p: float | None = None) -> dict | None:
    if diff is None:
        return None
    return {**vars(diff), **({} if holm_p is None else {"p_holm": holm_p})}


# The primary family of each table: the paper's own claims (quantized vs its sign step).
PRIMARY_TABLES = {"table2": "PQGD_b vs PGD and BLOB_QG_b vs BLOB (the paper's Table 2 claims)",
                  "table4": "PQGD_b vs PGD and BLOB_QG_b vs BLOB (the paper's Table 4 claims)"}


def _paper_cell(numbers: tuple[float, ...] | None) -> str:
    return "-" if numbers is None else " / ".join(f"{v:.2f}" for v in numbers)


def _paper_only_row(label: str, name: str, table: paper.PaperTable, columns: int) -> list[str]:
    """A row for an attack the paper reports and this artifact does not."""
    if label in paper.PENDING_BASELINES:
        why = (f"pending: no cells yet (the attack exists, "
               f"method={paper.PENDING_BASELINES[label]}; --table3_baselines computes them)")
    elif table.restarts_note and label in table.restarts_note:
        why = f"not run ({table.restarts_note[label]} restarts)"
    else:
        why = "not run at these sizes (`--preset=paper` runs it)"
    return [label, _paper_cell(table.numbers[label]), why] + ["-"] * (columns - 3)


def _table_artifact(name: str, title: str) -> Artifact:
    dataset = plan.ARTIFACT_DATASETS[name][0]
    steps = plan.TABLE_STEPS[name]
    table = paper.TABLES[name]

    def render(targets, results, sizes, out):
        target = targets[dataset]
        n = len(target.x)
        methods = plan.table_methods(name, sizes)
        specs = plan.table_specs(name, sizes)
        labels = _labels(methods)
        # Rows whose cells are not finished (``--stored_only``): marked pending, with the
        # example-steps they still need; every row is compared with the first (PGD).
        need = sizes.runs * sizes.restarts
        pending = {label: c for label, c in zip(labels, specs)
                   if c not in results or results[c].attacks < need}
        if specs[0] in pending.values():
            raise ValueError(_unfinished_error(name, f"its {labels[0]} cell",
                                               list(pending.values())))
        labels = [label for label in labels if label not in pending]
        specs = [c for c in specs if c not in pending.values()]
        outcomes = {c: results[c].outcomes(steps, sizes.runs, sizes.restarts) for c in specs}
        base = outcomes[specs[0]]  # PGD: the first method of every table
        sign_step = {c.method: c for c in specs if c.b is None}
        vs_pgd, vs_sign = {}, {}
        for c in specs[1:]:
            vs_pgd[c] = paired_difference(outcomes[c], base)
            counterpart = sign_step.get(SIGN_COUNTERPART.get(c.method))
            if counterpart is not None:
                vs_sign[c] = (vs_pgd[c] if counterpart == specs[0]
                              else paired_difference(outcomes[c], outcomes[counterpart]))
        # The paper's own claims: its table's quantized rows against their sign step.
        family = ([c for c, label in zip(specs, labels) if c in vs_sign and label in table.numbers]
                  if name in PRIMARY_TABLES else [])
        primary = bool(family)
        holm_p = dict(zip(family, holm([vs_sign[c].p for c in family])))
        comparisons = len({(c, "pgd") for c in vs_pgd} | {(c, c.method) for c in vs_sign
                                                          if vs_sign[c] is not vs_pgd[c]})
        # Images each primary comparison would need for the paper's own gap (its table's Avg
        # difference) at 80% power, from the per-image spread of our differences.
        power = {}
        for c in holm_p:
            label = labels[specs.index(c)]
            counterpart = labels[specs.index(sign_step[SIGN_COUNTERPART[c.method]])]
            gap = (table.numbers[label][-1] - table.numbers[counterpart][-1]) / 100
            enough = vs_sign[c].discordant >= POWER_MIN_DISCORDANT
            power[c] = {"paper_gap_points": round(100 * gap, 4),
                        "images_for_80pct_power": (images_for_power(vs_sign[c].sd, gap)
                                                   if enough else None),
                        "versus": counterpart, "discordant": vs_sign[c].discordant}
        rows, records = [], []
        for label, c in zip(labels, specs):
            acc = outcomes[c].mean(axis=1)
            low, high, sd = run_spread(acc)
            w_low, w_high = wilson_interval(float(acc.mean()), n)
            sign_text = "-"
            if c in vs_sign:
                sign_text = vs_sign[c].describe()
                if c in holm_p:
                    sign_text += f"; Holm p = {format_p(holm_p[c])}"
            rows.append([label, _paper_cell(table.numbers.get(label)), pct(acc.min()),
                         pct(acc.mean()), f"[{pct(w_low)}, {pct(w_high)}]",
                         f"{pct(low)}-{pct(high)}",
                         vs_pgd[c].describe() if c in vs_pgd else "-", sign_text])
            records.append({"attack": label, "method": c.method, "b": c.b,
                            "paper": (None if label not in table.numbers
                                      else list(table.numbers[label])),
                            "run_accuracies": acc.tolist(), "worst": float(acc.min()),
                            "avg": float(acc.mean()), "avg_wilson95": [w_low, w_high],
                            "run_sd": sd, "diff_vs_pgd": _diff_json(vs_pgd.get(c)),
                            "diff_vs_sign_counterpart": _diff_json(vs_sign.get(c),
                                                                   holm_p.get(c)),
                            "primary": c in holm_p, "power": power.get(c)})
        header = ["Attack", "Paper " + ("Worst / Avg" if table.runs > 1 else "accuracy") + " (%)",
                  "Worst (%)", "Avg (%)", "Avg 95% CI", "Spread",
                  "Avg - PGD: points [95% CI, method]; exact test",
                  "Avg - its sign-step attack: points [95% CI, method]; exact test"
                  + ("; Holm" if primary else "")]
        # Table 3's baselines: rows of our own where their cells hold enough attacks.
        baselines = ({label: c for label, c in plan.table3_baseline_specs(sizes).items()
                      if c in results and results[c].attacks >= need}
                     if name == "table3" else {})
        rival = specs[labels.index(TABLE3_RIVAL)] if TABLE3_RIVAL in labels else None
        vs_rival = {}
        for label, c in baselines.items():
            baseline_outcomes = results[c].outcomes(steps, sizes.runs, sizes.restarts)
            acc = baseline_outcomes.mean(axis=1)
            diff = paired_difference(baseline_outcomes, base)
            comparisons += 1
            if rival is not None:
                vs_rival[label] = paired_difference(outcomes[rival], baseline_outcomes)
                comparisons += 1
            w_low, w_high = wilson_interval(float(acc.mean()), n)
            low, high, sd = run_spread(acc)
            rows.append([f"{label} ({c.label})", _paper_cell(table.numbers[label]),
                         pct(acc.min()), pct(acc.mean()), f"[{pct(w_low)}, {pct(w_high)}]",
                         f"{pct(low)}-{pct(high)}", diff.describe(), "-"])
            records.append({"attack": label, "method": c.method, "b": c.b, "loss": c.loss,
                            "paper": list(table.numbers[label]),
                            "run_accuracies": acc.tolist(), "worst": float(acc.min()),
                            "avg": float(acc.mean()), "avg_wilson95": [w_low, w_high],
                            "run_sd": sd, "diff_vs_pgd": _diff_json(diff),
                            "diff_vs_sign_counterpart": None, "primary": False, "power": None,
                            "rival": TABLE3_RIVAL if label in vs_rival else None,
                            "diff_rival_minus_this": _diff_json(vs_rival.get(label))})
        for label, c in pending.items():
            stored = results[c].attacks if c in results else 0
            steps_left = (need - stored) * c.num_examples * c.steps
            rows.append([label, _paper_cell(table.numbers.get(label)),
                         f"pending: cell not finished ({stored} of {need} attacks; "
                         f"{steps_left:,} example-steps to compute)"] + ["-"] * (len(header) - 3))
        paper_only = [label for label in table.numbers if label not in labels
                      and label not in baselines and label not in pending]
        read = [*specs, *baselines.values()]  # every cell the rows come from
        rows += [_paper_only_row(label, name, table, len(header)) for label in paper_only]
        restart_text = ("no restarts" if sizes.restarts == 1 else
                        f"{sizes.restarts} random restarts merged per example")
        paper_protocol = (f"{table.runs} runs, no restarts" if table.restarts == 1 else
                          f"{table.restarts} restarts merged"
                          + ("".join(f", {k}: {v}" for k, v in (table.restarts_note or {}).items())))
        protocol = _protocol_line(target, sizes, table.model, paper_protocol,
                                  f"runs x restarts: ours {sizes.runs} x {sizes.restarts}",
                                  table.epsilon)
        within = ("Table 5's 200-step outcomes continue Table 4's 100-step attacks (one attack "
                  "per cell and run, scored at both); " if dataset == "fashion_mnist" else
                  "the 5 attacks per cell are Table 2's runs and Table 3's restarts; ")
        text_power = _power_note(power, labels, specs, n)
        text_rival = (f"The paper's claim for Table 3, {TABLE3_RIVAL} below every other attack "
                      f"of the leaderboard (exploratory, unadjusted): "
                      + "; ".join(f"{TABLE3_RIVAL} - {label}: {d.describe()}"
                                  for label, d in vs_rival.items()) + ".\n\n"
                      if vs_rival else "")
        text_pending = (f"Pending: {', '.join(pending)}: their cells are not finished; this "
                        f"table was rendered with `--stored_only`, and "
                        f"`{_command(name, sizes)}` computes them (resumable).\n\n"
                        if pending else "")
        text = (f"# {title}\n\n{_setting(dataset, sizes.epsilon(dataset))}, {steps} steps, "
                f"{restart_text}; {sizes.runs} independent run(s) per attack (Worst = lowest "
                f"run, Avg = mean). Paper column: the paper's Table {name[-1]} "
                f"({'Worst / Avg over 5 runs' if table.runs > 1 else 'one merged accuracy'}).\n\n"
                f"{_model_line(target)}\n\n"
                + markdown_table(header, rows)
                + f"\n{protocol}\n\n"
                + text_rival
                + f"{_multiplicity_note(comparisons, len(holm_p), PRIMARY_TABLES.get(name))}\n\n"
                + text_power
                + text_pending
                + f"{_same_runs_note(name, sizes, within)}\n\n"
                + f"{_noise_note(n, sizes.runs)}\n"
                + _footer(_command(name, sizes), results, read))
        data = {"artifact": name, "title": title, "steps": steps, "runs": sizes.runs,
                "restarts": sizes.restarts, "seed": sizes.seed, "preset": sizes.preset,
                "epsilon": sizes.epsilon(dataset), "model": _model_json(target), "rows": records,
                "paper": {"table": name, "numbers": {k: list(v) for k, v in table.numbers.items()},
                          "epsilon": table.epsilon, "runs": table.runs,
                          "restarts": table.restarts, "model": table.model,
                          "not_run_here": paper_only},
                "pending": list(pending),
                "protocol_differences": protocol,
                "comparisons": {"total": comparisons, "primary": len(holm_p)},
                "shared_cells_with": plan.shared_with(name, sizes)}
        return _write_outputs(out, name, text, data, compute_provenance(results, read))

    return Artifact(name, title, render, partial=True)


# Below this many discordant images the per-image spread is too coarse to size a study from.
POWER_MIN_DISCORDANT = 10


def _power_note(power: dict, labels: list[str], specs: list[CellSpec], n: int) -> str:
    """What the image count can resolve: per primary comparison, the images that the paper's
    own gap would need at 80% power (empty when the table has no primary family)."""
    if not power:
        return ""
    parts = []
    for c, entry in power.items():
        needed = entry["images_for_80pct_power"]
        parts.append(f"{labels[specs.index(c)]} vs {entry['versus']} "
                     f"({entry['paper_gap_points']:+.2f}): "
                     + (f"- ({entry['discordant']} discordant image(s), too few to scale "
                        f"from)" if needed is None else f"about {round(needed, -2):,.0f}"))
    return (f"Power: to detect the paper's own gap with 80% power in a two-sided 5% test, "
            f"given the per-image spread of our differences on these {n:,} images (normal "
            f"approximation), a comparison needs: " + "; ".join(parts) + ".\n\n")


def _labels(methods) -> list[str]:
    names = {"pgd": "PGD", "pqgd": "PQGD", "blob": "BLOB", "blob_qg": "BLOB_QG"}
    return [names[m] if b is None else f"{names[m]}_{b:g}" for m, b in methods]


# ---------------------------------------------------------------------------------------------
# Figures 3 and 4 and the b sweep: accuracy curves of PGD and PQGD.
# ---------------------------------------------------------------------------------------------

def _run_range(accs: np.ndarray, avg: np.ndarray) -> np.ndarray:
    """Error bars from the mean to the lowest and highest run, in points (never negative:
    the mean of equal runs can differ from them in the last bit)."""
    return 100 * np.maximum(0.0, np.stack([avg - accs.min(axis=1), accs.max(axis=1) - avg]))


def _plot_curve(ax, xs, outcomes: list[np.ndarray], label: str) -> tuple[np.ndarray, np.ndarray]:
    """Plots one attack's Avg accuracy over ``xs`` with lowest-highest run bars.

    ``outcomes[i]`` is the ``(runs, N)`` outcome at ``xs[i]``; returns ``(accs (len(xs), runs),
    avg (len(xs),))``.
    """
    accs = np.array([o.mean(axis=1) for o in outcomes])
    avg = accs.mean(axis=1)
    ax.errorbar(xs, 100 * avg, yerr=_run_range(accs, avg), marker="o", capsize=3, label=label)
    return accs, avg


def _plot_paper_points(ax, xs_and_values: list[tuple[float, float, str]], label: str,
                       text_left: bool = False) -> None:
    """The paper's numbers as black stars, each annotated with its attack, one legend entry
    (``text_left``: annotations left of the points, stacked, for points at the right edge)."""
    for i, (x, value, name) in enumerate(xs_and_values):
        ax.plot([x], [value], marker="*", markersize=13, color="black", linestyle="none",
                label=label if i == 0 else None)
        ax.annotate(f"paper {name} {value:.2f}", (x, value), textcoords="offset points",
                    xytext=(-8, 4 - 11 * i) if text_left else (6, 4), fontsize=8,
                    ha="right" if text_left else "left")


def _steps_rows(outcome: dict, specs: list, steps, points) -> list[list[str]]:
    """Per step count: the count, the paper's numbers at its own count (``points``; "-" at
    the others), PGD's (``specs[0]``) average and each other attack's average and paired
    difference against PGD."""
    rows = []
    for k in steps:
        pgd = outcome[(specs[0], k)]
        paper_text = (" / ".join(f"{name} {v:.2f}" for name, v in points.numbers.items())
                      if k == points.steps else "-")
        rows.append([str(k), paper_text, pct(pgd.mean())]
                    + [_avg_and_diff(outcome[(c, k)], pgd) for c in specs[1:]])
    return rows


def _avg_and_diff(outcome: np.ndarray, pgd: np.ndarray) -> str:
    """Table cell ``"84.93 (-0.73 [-1.36, -0.11]; p = 0.031, exact sign-flip, 9 discordant)"``."""
    return f"{pct(outcome.mean())} ({paired_difference(outcome, pgd).describe()})"


FIGURE3_PAPER_NOTE = ("The paper prints no numbers for Figure 3 (plot only); its text says PGD "
                      "and PQGD tie at eps 0.1 on MNIST and PQGD is sharper as eps grows, and on "
                      "Fashion-MNIST PQGD beats PGD for every eps from 0.1 to 0.2. The stars on "
                      "the Fashion-MNIST panel are its Table 4's 100-step Avg at eps 0.2 (PGD "
                      f"{paper.TABLES['table4'].numbers['PGD'][1]:.2f}, PQGD_100 "
                      f"{paper.TABLES['table4'].numbers['PQGD_100'][1]:.2f}), the same protocol "
                      "as that panel's eps 0.2 point.")


def _figure3_render(targets, results, sizes, out):
    plt = pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    sections, data = [], {"artifact": "figure3", "runs": sizes.runs, "restarts": sizes.restarts,
                          "steps": 100, "preset": sizes.preset, "panels": {},
                          "paper": FIGURE3_PAPER_NOTE}
    labels = _labels(plan.FIGURE3_METHODS)
    comparisons = 0
    for ax, ds in zip(axes, plan.ARTIFACT_DATASETS["figure3"]):
        epsilons = plan.figure3_epsilons(ds, sizes)
        n = sizes.n(ds)
        cell = {(eps, m, b): plan._spec(sizes, ds, m, b, epsilon=eps, steps=100)
                for eps in epsilons for m, b in plan.FIGURE3_METHODS}
        outcome = {k: results[c].outcomes(100, sizes.runs, sizes.restarts) for k, c in cell.items()}
        panel = {}
        for label, (m, b) in zip(labels, plan.FIGURE3_METHODS):
            accs, avg = _plot_curve(ax, epsilons, [outcome[(eps, m, b)] for eps in epsilons], label)
            panel[label] = {"epsilon": list(epsilons), "avg": avg.tolist(),
                            "run_accuracies": accs.tolist()}
        ax.set(title=f"{DATASET_NAMES[ds]} (first {n} test images), 100 steps",
               xlabel="maximum perturbation eps", ylabel="average accuracy (%)")
        if ds == "fashion_mnist":
            # Table 4's 100-step PGD and PQGD_100 Avg at eps 0.2 are points of this panel.
            t4 = paper.TABLES["table4"]
            _plot_paper_points(ax, [(t4.epsilon, t4.numbers[k][1], k) for k in ("PGD", "PQGD_100")],
                               "paper, Table 4 Avg (100 steps)", text_left=True)
            data["paper_points_fashion"] = {k: t4.numbers[k][1] for k in ("PGD", "PQGD_100")}
        ax.text(0.02, 0.03, "the paper's Fig. 3 prints no numbers", transform=ax.transAxes,
                fontsize=8, color="dimgray")
        if ds == "fashion_mnist":  # below the curve, above the note
            ax.legend(fontsize=8, loc="lower left", bbox_to_anchor=(0.0, 0.07))
        else:
            ax.legend(fontsize=8)
        rows = []
        for eps in epsilons:
            pgd = outcome[(eps, "pgd", None)]
            row = [f"{eps:g}", pct(pgd.mean())]
            for label, (m, b) in list(zip(labels, plan.FIGURE3_METHODS))[1:]:
                row.append(_avg_and_diff(outcome[(eps, m, b)], pgd))
                panel.setdefault("diff_vs_pgd", {}).setdefault(label, []).append(
                    vars(paired_difference(outcome[(eps, m, b)], pgd)))
                comparisons += 1
            rows.append(row)
        header = ["eps", "PGD Avg (%)"] + [f"{label} Avg (%) (- PGD [95% CI, method]; exact test)"
                                           for label in labels[1:]]
        target = targets[ds]
        paper_eps = "0.1-0.3" if ds == "mnist" else "0.1-0.2"
        protocol = _protocol_line(
            target, sizes, paper.PAPER_MNIST_MODEL if ds == "mnist" else paper.DAA_FASHION_MODEL,
            f"5 runs, eps {paper_eps}", f"runs: ours {sizes.runs}",
            sizes.epsilon(ds))
        sections.append(f"## {DATASET_NAMES[ds]}\n\n{_model_line(target)}\n\n"
                        + markdown_table(header, rows) + f"\n{protocol}\n")
        data["panels"][ds] = {"model": _model_json(target), "protocol_differences": protocol,
                              **panel}
    png = save_figure(fig, out / "figure3.png")
    specs = [c for c, _ in plan.artifact_cells("figure3", sizes)]
    within = (f"the eps {sizes.epsilon('mnist'):g} / {sizes.epsilon('fashion_mnist'):g} points "
              f"are the 100-step milestones of the tables' attacks; ")
    text = (f"# {ARTIFACTS['figure3'].title}\n\n100-step PGD and PQGD, a 0.01, {sizes.runs} "
            f"run(s) per point; error bars = lowest-highest run.\n\n![figure 3](figure3.png)\n\n"
            f"{FIGURE3_PAPER_NOTE}\n\n"
            + "\n".join(sections)
            + f"\n{_multiplicity_note(comparisons, 0, None)}\n\n"
            + f"{_same_runs_note('figure3', sizes, within)}\n\n"
            + f"{_noise_note({ds: sizes.n(ds) for ds in plan.ARTIFACT_DATASETS['figure3']}, sizes.runs)}\n"
            + _footer(_command("figure3", sizes), results, specs))
    return _write_outputs(out, "figure3", text, data, compute_provenance(results, specs), png)


def _figure4_renderer(name: str, dataset: str, figure: str):
    """Figure 4a (MNIST, ``figure4``) or 4b (Fashion-MNIST, ``figure4b``): accuracy against the
    number of steps, with the numbers the paper's text gives for that panel."""

    def render(targets, results, sizes, out):
        plt = pyplot()
        target = targets[dataset]
        specs = plan.figure4_specs(sizes, dataset)
        labels = _labels(plan.FIGURE4_METHODS)
        steps = plan.FIGURE4_STEPS
        points = paper.figure_points(figure)
        other = paper.figure_points("4b" if figure == "4a" else "4a")
        eps = specs[0].epsilon
        outcome = {(c, s): results[c].outcomes(s, sizes.runs, sizes.restarts)
                   for c in specs for s in steps}
        fig, ax = plt.subplots(figsize=(6.5, 4.5))
        data = {"artifact": name, "steps": list(steps), "runs": sizes.runs,
                "preset": sizes.preset, "epsilon": eps, "model": _model_json(target),
                "curves": {}, "paper": {"figure": figure, "steps": points.steps,
                                        "numbers": points.numbers, "model": points.model,
                                        "epsilon": points.epsilon}}
        for label, c in zip(labels, specs):
            accs, avg = _plot_curve(ax, steps, [outcome[(c, s)] for s in steps], label)
            data["curves"][label] = {"avg": avg.tolist(), "run_accuracies": accs.tolist(),
                                     "diff_vs_pgd": [vars(paired_difference(outcome[(c, s)],
                                                                            outcome[(specs[0], s)]))
                                                     for s in steps]}
        _plot_paper_points(ax, [(points.steps, v, k) for k, v in points.numbers.items()],
                           f"paper, Fig. {figure} text (its own {DATASET_NAMES[dataset]} model"
                           f"{'' if points.epsilon == eps else f', eps {points.epsilon:g}'})")
        ax.set(title=f"{DATASET_NAMES[dataset]} eps {eps:g}, a {SETUPS[dataset].step_size:g} "
                     f"(first {sizes.n(dataset)} test images)",
               xlabel="number of steps", ylabel="average accuracy (%)")
        ax.legend(fontsize=8)
        png = save_figure(fig, out / f"{name}.png")
        rows = _steps_rows(outcome, specs, steps, points)
        protocol = _protocol_line(target, sizes, points.model, "5 runs",
                                  f"runs: ours {sizes.runs}", points.epsilon)
        other_text = ", ".join(f"{k} {v:.2f}" for k, v in other.numbers.items())
        other_name = "figure4b" if figure == "4a" else "figure4"
        text = (f"# {ARTIFACTS[name].title}\n\n{_setting(dataset, eps)}, "
                f"{sizes.runs} run(s) per point (no restarts); the k-step accuracy is that of the "
                f"k-th iterate of one attack per run (a k-step attack is the first k steps of a "
                f"longer one from the same start). Paper column and stars: the numbers the "
                f"paper's text gives for its Figure {figure}.\n\n"
                f"![figure {figure}]({name}.png)\n\n{_model_line(target)}\n\n"
                + markdown_table(["steps (same runs: one attack per run scored at every step count)",
                                  f"paper (Fig. {figure} text)", "PGD Avg (%)"]
                                 + [f"{l} Avg (%) (- PGD [95% CI, method]; exact test)"
                                    for l in labels[1:]], rows)
                + f"\n{protocol}\n\n"
                + f"The paper's Figure {other.figure} ({DATASET_NAMES[other.dataset]}, eps "
                  f"{other.epsilon:g}; its text: at {other.steps} steps {other_text}) is "
                  f"`python -m experiments.{other_name}`.\n\n"
                + f"{_multiplicity_note(len(steps) * (len(specs) - 1), 0, None)}\n\n"
                + f"{_same_runs_note(name, sizes, 'its rows are milestones of the same attacks; ')}\n\n"
                + f"{_noise_note(sizes.n(dataset), sizes.runs)}\n"
                + _footer(_command(name, sizes), results, specs))
        data["protocol_differences"] = protocol
        data["shared_cells_with"] = plan.shared_with(name, sizes)
        return _write_outputs(out, name, text, data, compute_provenance(results, specs), png)

    return render


def _sweep_render(targets, results, sizes, out):
    plt = pyplot()
    specs = plan.sweep_specs(sizes)
    bs = plan.SWEEP_BS
    points = paper.figure_points("4a")
    paper_by_b = {paper.paper_b(k): v for k, v in points.numbers.items()}
    fig, ax = plt.subplots(figsize=(6.5, 4.5))
    rows = [[f"{b:g}", f"{paper_by_b[b]:.2f}" if b in paper_by_b else "-"] for b in bs]
    data = {"artifact": "sweep_b", "b": list(bs), "runs": sizes.runs, "preset": sizes.preset,
            "model": _model_json(targets["mnist"]), "steps": {},
            "paper": {"figure": "4a", "steps": points.steps,
                      "numbers_by_b": {str(b): v for b, v in paper_by_b.items()},
                      "model": points.model}}
    for s in plan.SWEEP_STEPS:
        outs = [results[c].outcomes(s, sizes.runs, sizes.restarts) for c in specs]
        avg = np.array([o.mean() for o in outs])
        diffs = [paired_difference(o, outs[0]) for o in outs]
        ax.plot(bs, 100 * avg, marker="o", label=f"{s} steps")
        for row, a, d, b in zip(rows, avg, diffs, bs):
            row += [pct(a), "- (PGD)" if b == 1 else d.describe()]
        data["steps"][str(s)] = {"avg": avg.tolist(),
                                 "run_accuracies": [o.mean(axis=1).tolist() for o in outs],
                                 "diff_vs_b1": [vars(d) for d in diffs]}
    _plot_paper_points(ax, [(paper.paper_b(k), v, k) for k, v in points.numbers.items()],
                       f"paper, Fig. 4a text ({points.steps} steps, its own MNIST model)")
    ax.set_xscale("log")
    ax.set(title=f"PQGD on MNIST eps 0.3, a 0.01 (first {sizes.n('mnist')} test images)",
           xlabel="quantization level b (b = 1 is PGD)", ylabel="average accuracy (%)")
    ax.legend(fontsize=8)
    png = save_figure(fig, out / "sweep_b.png")
    header = ["b", f"paper {points.steps} steps (Fig. 4a text)"]
    for i, s in enumerate(plan.SWEEP_STEPS):
        same = "" if i == 0 else f" (same runs as {plan.SWEEP_STEPS[0]} steps)"
        header += [f"{s} steps Avg (%){same}", f"{s} steps: - PGD [95% CI, method]; exact test"]
    protocol = _protocol_line(targets["mnist"], sizes, points.model, "5 runs",
                              f"runs: ours {sizes.runs}", points.epsilon)
    comparisons = len(plan.SWEEP_STEPS) * (len(bs) - 1)
    text = (f"# {ARTIFACTS['sweep_b'].title}\n\n{_setting('mnist', sizes.epsilon('mnist'))}, "
            f"{sizes.runs} run(s) per point; b = 1 is PGD exactly (the quantizer at b = 1 is the "
            f"sign). The paper gives no sweep numbers; its Figure 4a text gives the two at "
            f"{points.steps} steps shown.\n\n"
            f"![b sweep](sweep_b.png)\n\n{_model_line(targets['mnist'])}\n\n"
            + markdown_table(header, rows) + f"\n{protocol}\n\n"
            + f"{_multiplicity_note(comparisons, 0, None)}\n\n"
            + f"{_same_runs_note('sweep_b', sizes, 'the 20- and 100-step columns are the same attacks scored twice; ')}\n\n"
            + f"{_noise_note(sizes.n('mnist'), sizes.runs)}\n"
            + _footer(_command("sweep_b", sizes), results, specs))
    data["protocol_differences"] = protocol
    data["shared_cells_with"] = plan.shared_with("sweep_b", sizes)
    return _write_outputs(out, "sweep_b", text, data, compute_provenance(results, specs), png)


# ---------------------------------------------------------------------------------------------
# CIFAR-10: Table 6 (100 steps, eps 8 and 16) and Figure 5 (accuracy vs steps).
# ---------------------------------------------------------------------------------------------

CIFAR10_PAPER_MODEL = paper.TABLES["table6_eps8"].model


def _cifar10_protocol_line(target: Target, sizes: Sizes) -> str:
    """How our CIFAR-10 protocol differs from the paper's (one line)."""
    step = SETUPS["cifar10"].step_size
    return (f"Protocol vs the paper: model: ours `{display_path(target.model_dir)}`; the paper's: "
            f"{CIFAR10_PAPER_MODEL}; images: ours the first {len(target.x):,}, the paper's "
            f"10,000; runs: ours {sizes.runs}, the paper's 1, no restarts in both; eps 8 and 16 "
            f"on the 0-255 scale in both (the paper's 8/255 and 16/255 on [0, 1]); step size: "
            f"ours {step:g} (the CIFAR-10 challenge's), the paper does not state its own.")


def _table6_render(targets, results, sizes, out):
    target = targets["cifar10"]
    n = len(target.x)
    steps = plan.TABLE6_STEPS
    labels = _labels(plan.TABLE6_METHODS)
    tables = {eps: paper.TABLES[f"table6_eps{eps:g}"] for eps in plan.CIFAR10_EPSILONS}
    rows = {label: [label] for label in labels}
    data = {"artifact": "table6", "title": ARTIFACTS["table6"].title, "steps": steps,
            "runs": sizes.runs, "restarts": sizes.restarts, "seed": sizes.seed,
            "preset": sizes.preset, "model": _model_json(target), "epsilons": {}}
    comparisons = 0
    for eps in plan.CIFAR10_EPSILONS:
        specs = [plan.cifar10_spec(sizes, m, b, eps) for m, b in plan.TABLE6_METHODS]
        outcome = {c: results[c].outcomes(steps, sizes.runs, sizes.restarts) for c in specs}
        base = outcome[specs[0]]
        records = []
        for label, c in zip(labels, specs):
            acc = outcome[c].mean(axis=1)
            avg = float(acc.mean())
            w_low, w_high = wilson_interval(avg, n)
            diff = None if c == specs[0] else paired_difference(outcome[c], base)
            comparisons += diff is not None
            paper_value = tables[eps].numbers.get(label)
            rows[label] += [_paper_cell(paper_value), pct(avg), f"[{pct(w_low)}, {pct(w_high)}]",
                            "-" if diff is None else diff.describe()]
            records.append({"attack": label, "method": c.method, "b": c.b,
                            "paper": None if paper_value is None else paper_value[0],
                            "run_accuracies": acc.tolist(), "avg": avg,
                            "avg_wilson95": [w_low, w_high], "diff_vs_pgd": _diff_json(diff)})
        data["epsilons"][f"{eps:g}"] = {"rows": records, "paper_epsilon": tables[eps].epsilon}
    header = ["Attack"]
    for eps in plan.CIFAR10_EPSILONS:
        header += [f"eps {eps:g}: paper (%)", f"eps {eps:g}: ours (%)", f"eps {eps:g}: 95% CI",
                   f"eps {eps:g}: - PGD [95% CI, method]; exact test"]
    protocol = _cifar10_protocol_line(target, sizes)
    specs = plan.table6_specs(sizes)
    run_text = "one run" if sizes.runs == 1 else f"Avg of {sizes.runs} runs"
    text = (f"# {ARTIFACTS['table6'].title}\n\nCIFAR-10 challenge protocol, {steps} steps of "
            f"{SETUPS['cifar10'].step_size:g} on 0-255 images, random start, no restarts, "
            f"{run_text} per attack (the paper's `final` iterate). Paper columns: the paper's "
            f"Table 6.\n\n{_model_line(target)}\n\n"
            + markdown_table(header, [rows[label] for label in labels])
            + f"\n{protocol}\n\n"
            + f"{_multiplicity_note(comparisons, 0, None)}\n\n"
            + f"{_same_runs_note('table6', sizes, 'Figure 5 scores the same attacks at fewer steps; ')}\n\n"
            + f"{_noise_note(n, sizes.runs)}\n"
            + _footer(_command("table6", sizes), results, specs))
    data["protocol_differences"] = protocol
    data["shared_cells_with"] = plan.shared_with("table6", sizes)
    return _write_outputs(out, "table6", text, data, compute_provenance(results, specs))


def _figure5_render(targets, results, sizes, out):
    plt = pyplot()
    target = targets["cifar10"]
    steps = plan.FIGURE5_STEPS
    labels = _labels(plan.FIGURE5_METHODS)
    fig, axes = plt.subplots(1, len(plan.CIFAR10_EPSILONS), figsize=(11, 4.2))
    data = {"artifact": "figure5", "steps": list(steps), "runs": sizes.runs,
            "preset": sizes.preset, "model": _model_json(target), "panels": {}}
    sections, comparisons = [], 0
    for ax, eps, figure in zip(axes, plan.CIFAR10_EPSILONS, ("5a", "5b")):
        specs = [plan.cifar10_spec(sizes, m, b, eps) for m, b in plan.FIGURE5_METHODS]
        points = paper.figure_points(figure)
        outcome = {(c, k): results[c].outcomes(k, sizes.runs, sizes.restarts)
                   for c in specs for k in steps}
        panel = {"paper": {"figure": figure, "steps": points.steps, "numbers": points.numbers},
                 "curves": {}}
        for label, c in zip(labels, specs):
            accs, avg = _plot_curve(ax, steps, [outcome[(c, k)] for k in steps], label)
            panel["curves"][label] = {
                "avg": avg.tolist(), "run_accuracies": accs.tolist(),
                "diff_vs_pgd": [vars(paired_difference(outcome[(c, k)], outcome[(specs[0], k)]))
                                for k in steps]}
        _plot_paper_points(ax, [(points.steps, v, k) for k, v in points.numbers.items()],
                           f"paper, Fig. {figure} text")
        ax.set(title=f"CIFAR-10 eps {eps:g} (0-255), step {SETUPS['cifar10'].step_size:g}",
               xlabel="number of steps", ylabel="accuracy (%)")
        ax.legend(fontsize=8)
        rows = _steps_rows(outcome, specs, steps, points)
        comparisons += len(steps) * (len(specs) - 1)
        sections.append(f"## eps {eps:g}\n\n"
                        + markdown_table(["steps (one attack per run, scored at each count)",
                                          f"paper (Fig. {figure} text)", "PGD (%)"]
                                         + [f"{label} (%) (- PGD [95% CI, method]; exact test)"
                                            for label in labels[1:]], rows))
        data["panels"][f"{eps:g}"] = panel
    png = save_figure(fig, out / "figure5.png")
    specs = plan.figure5_specs(sizes)
    protocol = _cifar10_protocol_line(target, sizes)
    text = (f"# {ARTIFACTS['figure5'].title}\n\nCIFAR-10 challenge protocol, steps of "
            f"{SETUPS['cifar10'].step_size:g} on 0-255 images, {sizes.runs} run(s) per point; the "
            f"k-step accuracy is that of the k-th iterate of one 100-step attack per run (a "
            f"k-step attack is the first k steps of a longer one from the same start). Paper "
            f"column and stars: the numbers the paper's text gives for its Figure 5 (10 steps)."
            f"\n\n![figure 5](figure5.png)\n\n{_model_line(target)}\n\n"
            + "\n".join(sections) + f"\n{protocol}\n\n"
            + f"{_multiplicity_note(comparisons, 0, None)}\n\n"
            + f"{_same_runs_note('figure5', sizes, 'its rows are milestones of the same attacks; ')}\n\n"
            + f"{_noise_note(len(target.x), sizes.runs)}\n"
            + _footer(_command("figure5", sizes), results, specs))
    data["protocol_differences"] = protocol
    data["shared_cells_with"] = plan.shared_with("figure5", sizes)
    return _write_outputs(out, "figure5", text, data, compute_provenance(results, specs), png)


# ---------------------------------------------------------------------------------------------
# Figure 2: what the step looks like, sign vs raw vs quantized.
# ---------------------------------------------------------------------------------------------

FIGURE2_BS = (10, 100, 200, 1000)


def step_representations(gradients: np.ndarray) -> dict[str, np.ndarray]:
    """Per-pixel step in units of ``a``: sign, raw ``g / max|g|`` per image, and ``qg`` per b."""
    scale = np.max(np.abs(gradients), axis=1, keepdims=True)
    reps = {"sign": np.sign(gradients),
            "raw g / max|g|": gradients / np.where(scale > 0, scale, 1)}
    for b in FIGURE2_BS:
        reps[f"quantized b={b}"] = quantize(gradients, b)
    return reps


def _figure2_render(targets, results, sizes, out):
    plt = pyplot()
    target = targets["mnist"]
    setup = SETUPS["mnist"]
    config = AttackConfig(method="pgd", epsilon=setup.epsilon, steps=1, step_size=setup.step_size)
    runner = make_runner(target.model, config)
    started = time.perf_counter()
    grads = np.concatenate([runner.gradient(tf.constant(target.x[i:i + sizes.batch_size]),
                                            tf.constant(target.y[i:i + sizes.batch_size])).numpy()
                            for i in range(0, len(target.x), sizes.batch_size)])
    provenance = add_compute([], time.perf_counter() - started, environment(),
                             _dt.date.today().isoformat())
    reps = step_representations(grads)
    limit = setup.epsilon / setup.step_size
    fig, axes = plt.subplots(2, 3, figsize=(13, 7))
    rows, data = [], {"artifact": "figure2", "eps_over_a": limit, "model": _model_json(target),
                      "representations": {}}
    for ax, (name, values) in zip(axes.ravel(), reps.items()):
        v = values.ravel()
        if name == "sign":
            bins = np.arange(-1.5, 2.0, 1.0)
        elif name.startswith("raw"):
            bins = np.linspace(-1, 1, 101)
        else:
            b = float(name.split("=")[1])
            bins = np.arange(-b - 0.5, b + 1.0, max(1.0, round(b / 50)))
        ax.hist(v, bins=bins, log=True)
        if not name.startswith("raw"):
            for edge in (-limit, limit):
                ax.axvline(edge, color="red", linestyle="--", linewidth=1)
        ax.set(title=name, xlabel="step per pixel (units of a)" if not name.startswith("raw")
               else "g / max|g| per image", ylabel="pixels (log)")
        av = np.abs(v)
        stats = {"zero": float(np.mean(av == 0)), "abs_le_1": float(np.mean((av > 0) & (av <= 1))),
                 "abs_gt_1": float(np.mean(av > 1)), "abs_gt_eps_over_a": float(np.mean(av > limit)),
                 "max_abs": float(av.max()), "mean_abs": float(av.mean())}
        data["representations"][name] = stats
        rows.append([name.replace("|", "\\|"), pct(stats["zero"]), pct(stats["abs_le_1"]), pct(stats["abs_gt_1"]),
                     pct(stats["abs_gt_eps_over_a"]), f"{stats['mean_abs']:.3g}",
                     f"{stats['max_abs']:.3g}"])
    png = save_figure(fig, out / "figure2.png")
    text = (f"# {ARTIFACTS['figure2'].title}\n\nInput gradients of the cross-entropy at the clean "
            f"images ({len(target.x)} images x 784 pixels), {_setting('mnist', setup.epsilon)}. Red dashed lines: "
            f"+-eps/a = +-{limit:g}; a single step of a*q moves a pixel past the eps-ball (so the "
            f"projection clips it) where |q| > eps/a.\n\n![figure 2](figure2.png)\n\n"
            f"{_model_line(target)}\n\n"
            + markdown_table(["representation", "zero (%)", "0 < abs(v) <= 1 (%)",
                              "abs(v) > 1 (%)", f"abs(v) > eps/a = {limit:g} (%)", "mean abs(v)",
                              "max abs(v)"], rows)
            + "\nThe paper's Figure 2 shows the same histograms for its own adversarially trained "
            "MNIST model and prints no numbers.\n\n"
            + _protocol_line(target, sizes, paper.PAPER_MNIST_MODEL, "all test images",
                             "gradients at the clean images", setup.epsilon) + "\n"
            + f"\nComputed while rendering by `{_command('figure2', sizes)}`: "
            f"{_provenance_text(provenance)}.\n\n{_paper_source_line()}\n")
    return _write_outputs(out, "figure2", text, data, provenance, png)


# ---------------------------------------------------------------------------------------------
# The registry.
# ---------------------------------------------------------------------------------------------

ARTIFACTS: dict[str, Artifact] = {}


def _register(artifact: Artifact) -> None:
    ARTIFACTS[artifact.name] = artifact


_register(_table_artifact("table2", "Table 2 analog: MNIST, 200 steps, no restarts"))
_register(_table_artifact("table3", "Table 3 analog: MNIST, 200 steps, restarts merged per "
                          "example"))
_register(_table_artifact("table4", "Table 4 analog: Fashion-MNIST, 100 steps, no restarts"))
_register(_table_artifact("table5", "Table 5 analog: Fashion-MNIST, 200 steps, restarts merged "
                          "per example"))
_register(Artifact("figure2", "Figure 2 analog: sign, raw and quantized gradients (MNIST)",
                   _figure2_render))
_register(Artifact("figure3", "Figure 3 analog: average accuracy vs maximum perturbation",
                   _figure3_render))
_register(Artifact("figure4", "Figure 4 analog: average accuracy vs number of steps (MNIST)",
                   _figure4_renderer("figure4", "mnist", "4a")))
_register(Artifact("figure4b", "Figure 4b analog: average accuracy vs number of steps "
                   "(Fashion-MNIST)", _figure4_renderer("figure4b", "fashion_mnist", "4b")))
_register(Artifact("sweep_b", "Section 4.5 analog: sweep of the quantization level b (MNIST)",
                   _sweep_render))
_register(Artifact("table6", "Table 6 analog: the CIFAR-10 challenge model, 100 steps, eps 8 "
                   "and 16 (0-255)", _table6_render))
_register(Artifact("figure5", "Figure 5 analog: accuracy vs number of steps (CIFAR-10, eps 8 "
                   "and 16)", _figure5_render))
