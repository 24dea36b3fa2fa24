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
from experiments import plan
from experiments.cells import CellResult, CellSpec, add_compute, environment
from experiments.common import Target, compute, load_target
from experiments.plan import SETUPS, spec
from experiments.report import (display_path, markdown_table, pct, pyplot, save_figure,
                                write_json, write_text)
from experiments.stats import paired_difference, run_spread, wilson_interval

DATASET_NAMES = {"mnist": "MNIST", "fashion_mnist": "Fashion-MNIST"}
# The sign-step attack each quantized attack replaces the step of (PQGD vs PGD, BLOB_QG vs BLOB).
SIGN_COUNTERPART = {"pqgd": "pgd", "blob_qg": "blob"}


@dataclass(frozen=True)
class Sizes:
    """How much to compute. ``num_examples`` None -> each dataset's default."""

    num_examples: int | None = None
    runs: int = 5
    restarts: int = 1
    seed: int = 0
    batch_size: int = 200

    def n(self, dataset: str) -> int:
        return plan.num_examples_for(dataset, self.num_examples)


Jobs = list[tuple[Target, CellSpec, int]]
Results = dict[CellSpec, CellResult]


@dataclass(frozen=True)
class Artifact:
    name: str
    title: str
    datasets: tuple[str, ...]
    default_runs: int
    default_restarts: int
    jobs: Callable[[dict[str, Target], Sizes], Jobs]
    render: Callable[[dict[str, Target], Results, Sizes, Path], list[Path]]


def produce(artifact: Artifact, sizes: Sizes, output_dir: str | Path,
            log: Callable[[str], None] = print) -> list[Path]:
    """Loads the models, computes (or reads back) the cells, writes the artifact's files."""
    targets = {ds: load_target(ds, sizes.n(ds)) for ds in artifact.datasets}
    log(f"{artifact.name}: {artifact.title}")
    results = compute(artifact.jobs(targets, sizes), log)
    paths = artifact.render(targets, results, sizes, Path(output_dir))
    for path in paths:
        log(f"wrote {path}")
    return paths


# ---------------------------------------------------------------------------------------------
# Shared pieces of the reports.
# ---------------------------------------------------------------------------------------------

def _setting(dataset: str, epsilon: float | None = None) -> str:
    setup = SETUPS[dataset]
    return f"{DATASET_NAMES[dataset]}, eps {epsilon or setup.epsilon:g}, a {setup.step_size:g}"


def _model_line(target: Target) -> str:
    files = ", ".join(f"`{name}` sha256 {digest[:12]}..."
                      for name, digest in target.checkpoint_sha256.items())
    return (f"Model: `{display_path(target.model_dir)}` ({files}); data: the first "
            f"{len(target.x)} official {DATASET_NAMES[target.dataset]} test images; clean accuracy "
            f"{pct(target.clean_accuracy)}%.")


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


def _footer(command: str, results: Results, cells) -> str:
    return (f"\nRendered by `{command}` from the stored cells. Their compute: "
            f"{_provenance_text(compute_provenance(results, cells))} (a cell shared with "
            f"another command is counted once, whichever command computed it).\n")


def _model_json(target: Target) -> dict:
    return {"model_dir": display_path(target.model_dir), "checkpoint_sha256": target.checkpoint_sha256,
            "dataset": target.dataset, "num_examples": len(target.x),
            "clean_accuracy": target.clean_accuracy}


def _command(name: str, sizes: Sizes, artifact: Artifact) -> str:
    parts = [f"python -m experiments.{name}"]
    if sizes.num_examples is not None:
        parts.append(f"--num_examples={sizes.num_examples}")
    if sizes.runs != artifact.default_runs:
        parts.append(f"--runs={sizes.runs}")
    if sizes.restarts != artifact.default_restarts:
        parts.append(f"--restarts={sizes.restarts}")
    if sizes.seed:
        parts.append(f"--seed={sizes.seed}")
    return " ".join(parts)


def _noise_note(n: int, runs: int) -> str:
    return (f"Avg's 95% interval is the Wilson interval over the {n} images; the difference to "
            f"PGD is paired over the same images (per image: fraction of the {runs} run(s) "
            f"still correct), mean +- 1.96 standard errors. Spread = lowest-highest run.")


# ---------------------------------------------------------------------------------------------
# Tables 2-5: Worst / Avg accuracy per attack.
# ---------------------------------------------------------------------------------------------

def _mnist_jobs(specs_of):
    """Jobs of an MNIST-only artifact whose cells are ``specs_of(n, seed, batch_size)``."""
    def jobs(targets, sizes):
        return [(targets["mnist"], c, sizes.runs * sizes.restarts)
                for c in specs_of(sizes.n("mnist"), sizes.seed, sizes.batch_size)]
    return jobs


def _write_outputs(out, name, text, data, provenance, png=None):
    """``<name>.md`` and ``<name>.json`` (atomic; the JSON gets ``provenance`` as
    ``"compute"``), plus an already saved PNG: the paths."""
    paths = [write_text(out / f"{name}.md", text),
             write_json(out / f"{name}.json", {**data, "compute": provenance})]
    return paths + ([png] if png is not None else [])


def _table_artifact(name: str, title: str, dataset: str, methods, steps: int, runs: int,
                    restarts: int) -> Artifact:
    def cells(sizes: Sizes) -> list[CellSpec]:
        return [spec(dataset, m, b, sizes.n(dataset), steps=steps, seed=sizes.seed,
                     batch_size=sizes.batch_size) for m, b in methods]

    def jobs(targets, sizes):
        return [(targets[dataset], c, sizes.runs * sizes.restarts) for c in cells(sizes)]

    def render(targets, results, sizes, out):
        target = targets[dataset]
        n = len(target.x)
        specs = cells(sizes)
        outcomes = {c: results[c].outcomes(steps, sizes.runs, sizes.restarts) for c in specs}
        base = outcomes[specs[0]]  # PGD: the first method of every table
        sign_step = {c.method: c for c in specs if c.b is None}
        rows, records = [], []
        for label, c in zip(_labels(methods), specs):
            acc = outcomes[c].mean(axis=1)
            low, high, sd = run_spread(acc)
            w_low, w_high = wilson_interval(float(acc.mean()), n)
            diff = paired_difference(outcomes[c], base)
            counterpart = sign_step.get(SIGN_COUNTERPART.get(c.method))
            vs_sign = None if counterpart is None else paired_difference(outcomes[c],
                                                                         outcomes[counterpart])
            rows.append([label, pct(acc.min()), pct(acc.mean()),
                         f"[{pct(w_low)}, {pct(w_high)}]", f"{pct(low)}-{pct(high)}",
                         "-" if c == specs[0] else diff.points(),
                         "-" if vs_sign is None else vs_sign.points()])
            records.append({"attack": label, "method": c.method, "b": c.b,
                            "run_accuracies": acc.tolist(), "worst": float(acc.min()),
                            "avg": float(acc.mean()), "avg_wilson95": [w_low, w_high],
                            "run_sd": sd, "diff_vs_pgd": vars(diff),
                            "diff_vs_sign_counterpart": None if vs_sign is None else vars(vs_sign)})
        restart_text = ("no restarts" if sizes.restarts == 1 else
                        f"{sizes.restarts} random restarts merged per example")
        text = (f"# {title}\n\n{_setting(dataset)}, {steps} steps, {restart_text}; "
                f"{sizes.runs} independent run(s) per attack (Worst = lowest run, Avg = mean).\n\n"
                f"{_model_line(target)}\n\n"
                + markdown_table(["Attack", "Worst (%)", "Avg (%)", "Avg 95% CI", "Spread",
                                  "Avg - PGD (points) [95% CI]",
                                  "Avg - its sign-step attack [95% CI]"], rows)
                + f"\n{_noise_note(n, sizes.runs)}\n"
                + _footer(_command(name, sizes, ARTIFACTS[name]), results, specs))
        data = {"artifact": name, "title": title, "steps": steps, "runs": sizes.runs,
                "restarts": sizes.restarts, "seed": sizes.seed, "model": _model_json(target),
                "rows": records}
        return _write_outputs(out, name, text, data, compute_provenance(results, specs))

    return Artifact(name, title, (dataset,), runs, restarts, jobs, render)


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


def _avg_and_diff(outcome: np.ndarray, pgd: np.ndarray) -> str:
    """Table cell ``"84.93 (-0.73 [-1.36, -0.11])"``: Avg and the paired difference to PGD."""
    return f"{pct(outcome.mean())} ({paired_difference(outcome, pgd).points()})"


def _figure3_jobs(targets, sizes):
    return [(targets[ds], c, sizes.runs * sizes.restarts) for ds in plan.FIGURE3_EPSILONS
            for c in plan.figure3_specs(ds, sizes.n(ds), sizes.seed, sizes.batch_size)]


def _figure3_render(targets, results, sizes, out):
    plt = pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    sections, data = [], {"artifact": "figure3", "runs": sizes.runs, "restarts": sizes.restarts,
                          "steps": 100, "panels": {}}
    for ax, ds in zip(axes, plan.FIGURE3_EPSILONS):
        epsilons = plan.FIGURE3_EPSILONS[ds]
        n = sizes.n(ds)
        cell = {(eps, m, b): spec(ds, m, b, n, epsilon=eps, steps=100, seed=sizes.seed,
                                  batch_size=sizes.batch_size)
                for eps in epsilons for m, b in plan.FIGURE3_METHODS}
        outcome = {k: results[c].outcomes(100, sizes.runs, sizes.restarts) for k, c in cell.items()}
        labels = _labels(plan.FIGURE3_METHODS)
        panel = {}
        for label, (m, b) in zip(labels, plan.FIGURE3_METHODS):
            accs, avg = _plot_curve(ax, epsilons, [outcome[(eps, m, b)] for eps in epsilons], label)
            panel[label] = {"epsilon": list(epsilons), "avg": avg.tolist(),
                            "run_accuracies": accs.tolist()}
        ax.set(title=f"{DATASET_NAMES[ds]} (first {n} test images), 100 steps",
               xlabel="maximum perturbation eps", ylabel="average accuracy (%)")
        ax.legend()
        rows = []
        for eps in epsilons:
            pgd = outcome[(eps, "pgd", None)]
            row = [f"{eps:g}", pct(pgd.mean())]
            for label, (m, b) in list(zip(labels, plan.FIGURE3_METHODS))[1:]:
                row.append(_avg_and_diff(outcome[(eps, m, b)], pgd))
                panel.setdefault("diff_vs_pgd", {}).setdefault(label, []).append(
                    vars(paired_difference(outcome[(eps, m, b)], pgd)))
            rows.append(row)
        header = ["eps", "PGD Avg (%)"] + [f"{label} Avg (%) (- PGD [95% CI])" for label in labels[1:]]
        sections.append(f"## {DATASET_NAMES[ds]}\n\n{_model_line(targets[ds])}\n\n"
                        + markdown_table(header, rows))
        data["panels"][ds] = {"model": _model_json(targets[ds]), **panel}
    png = save_figure(fig, out / "figure3.png")
    specs = [c for ds in plan.FIGURE3_EPSILONS
             for c in plan.figure3_specs(ds, sizes.n(ds), sizes.seed, sizes.batch_size)]
    text = (f"# {ARTIFACTS['figure3'].title}\n\n100-step PGD and PQGD, a 0.01, {sizes.runs} "
            f"run(s) per point; error bars = lowest-highest run.\n\n![figure 3](figure3.png)\n\n"
            + "\n".join(sections) + f"\n{_noise_note(sizes.n('mnist'), sizes.runs)}\n"
            + _footer(_command("figure3", sizes, ARTIFACTS["figure3"]), results, specs))
    return _write_outputs(out, "figure3", text, data, compute_provenance(results, specs), png)


def _figure4_render(targets, results, sizes, out):
    plt = pyplot()
    specs = plan.figure4_specs(sizes.n("mnist"), sizes.seed, sizes.batch_size)
    labels = _labels(plan.FIGURE4_METHODS)
    steps = plan.FIGURE4_STEPS
    outcome = {(c, s): results[c].outcomes(s, sizes.runs, sizes.restarts) for c in specs for s in steps}
    fig, ax = plt.subplots(figsize=(6, 4))
    data = {"artifact": "figure4", "steps": list(steps), "runs": sizes.runs,
            "model": _model_json(targets["mnist"]), "curves": {}}
    for label, c in zip(labels, specs):
        accs, avg = _plot_curve(ax, steps, [outcome[(c, s)] for s in steps], label)
        data["curves"][label] = {"avg": avg.tolist(), "run_accuracies": accs.tolist(),
                                 "diff_vs_pgd": [vars(paired_difference(outcome[(c, s)],
                                                                        outcome[(specs[0], s)]))
                                                 for s in steps]}
    ax.set(title=f"MNIST eps 0.3, a 0.01 (first {sizes.n('mnist')} test images)",
           xlabel="number of steps", ylabel="average accuracy (%)")
    ax.legend()
    png = save_figure(fig, out / "figure4.png")
    rows = []
    for s in steps:
        pgd = outcome[(specs[0], s)]
        rows.append([str(s), pct(pgd.mean())] + [_avg_and_diff(outcome[(c, s)], pgd)
                                                 for c in specs[1:]])
    text = (f"# {ARTIFACTS['figure4'].title}\n\n{_setting('mnist')}, {sizes.runs} run(s) per point "
            f"(no restarts); the k-step accuracy is that of the k-th iterate of one attack per run "
            f"(a k-step attack is the first k steps of a longer one from the same start).\n\n"
            f"![figure 4](figure4.png)\n\n{_model_line(targets['mnist'])}\n\n"
            + markdown_table(["steps", "PGD Avg (%)"] + [f"{l} Avg (%) (- PGD [95% CI])"
                                                          for l in labels[1:]], rows)
            + f"\n{_noise_note(sizes.n('mnist'), sizes.runs)}\n"
            + _footer(_command("figure4", sizes, ARTIFACTS["figure4"]), results, specs))
    return _write_outputs(out, "figure4", text, data, compute_provenance(results, specs), png)


def _sweep_render(targets, results, sizes, out):
    plt = pyplot()
    specs = plan.sweep_specs(sizes.n("mnist"), sizes.seed, sizes.batch_size)
    bs = plan.SWEEP_BS
    fig, ax = plt.subplots(figsize=(6, 4))
    rows = [[f"{b:g}"] for b in bs]
    data = {"artifact": "sweep_b", "b": list(bs), "runs": sizes.runs,
            "model": _model_json(targets["mnist"]), "steps": {}}
    for s in plan.SWEEP_STEPS:
        outs = [results[c].outcomes(s, sizes.runs, sizes.restarts) for c in specs]
        avg = np.array([o.mean() for o in outs])
        diffs = [paired_difference(o, outs[0]) for o in outs]
        ax.plot(bs, 100 * avg, marker="o", label=f"{s} steps")
        for row, a, d, b in zip(rows, avg, diffs, bs):
            row += [pct(a), "- (PGD)" if b == 1 else d.points()]
        data["steps"][str(s)] = {"avg": avg.tolist(),
                                 "run_accuracies": [o.mean(axis=1).tolist() for o in outs],
                                 "diff_vs_b1": [vars(d) for d in diffs]}
    ax.set_xscale("log")
    ax.set(title=f"PQGD on MNIST eps 0.3, a 0.01 (first {sizes.n('mnist')} test images)",
           xlabel="quantization level b (b = 1 is PGD)", ylabel="average accuracy (%)")
    ax.legend()
    png = save_figure(fig, out / "sweep_b.png")
    header = ["b"]
    for s in plan.SWEEP_STEPS:
        header += [f"{s} steps Avg (%)", f"{s} steps: - PGD [95% CI]"]
    text = (f"# {ARTIFACTS['sweep_b'].title}\n\n{_setting('mnist')}, {sizes.runs} run(s) per "
            f"point; b = 1 is PGD exactly (the quantizer at b = 1 is the sign).\n\n"
            f"![b sweep](sweep_b.png)\n\n{_model_line(targets['mnist'])}\n\n"
            + markdown_table(header, rows) + f"\n{_noise_note(sizes.n('mnist'), sizes.runs)}\n"
            + _footer(_command("sweep_b", sizes, ARTIFACTS["sweep_b"]), results, specs))
    return _write_outputs(out, "sweep_b", text, data, compute_provenance(results, specs), png)


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
            f"images ({len(target.x)} images x 784 pixels), {_setting('mnist')}. Red dashed lines: "
            f"+-eps/a = +-{limit:g}; a single step of a*q moves a pixel past the eps-ball (so the "
            f"projection clips it) where |q| > eps/a.\n\n![figure 2](figure2.png)\n\n"
            f"{_model_line(target)}\n\n"
            + markdown_table(["representation", "zero (%)", "0 < abs(v) <= 1 (%)",
                              "abs(v) > 1 (%)", f"abs(v) > eps/a = {limit:g} (%)", "mean abs(v)",
                              "max abs(v)"], rows)
            + f"\nComputed while rendering by `{_command('figure2', sizes, ARTIFACTS['figure2'])}`: "
            f"{_provenance_text(provenance)}.\n")
    return _write_outputs(out, "figure2", text, data, provenance, png)


# ---------------------------------------------------------------------------------------------
# The registry.
# ---------------------------------------------------------------------------------------------

ARTIFACTS: dict[str, Artifact] = {}


def _register(artifact: Artifact) -> None:
    ARTIFACTS[artifact.name] = artifact


_register(_table_artifact("table2", "Table 2 analog: MNIST, 200 steps, no restarts", "mnist",
                          plan.TABLE2_METHODS, 200, runs=5, restarts=1))
_register(_table_artifact("table3", "Table 3 analog: MNIST, 200 steps, restarts merged per example",
                          "mnist", plan.TABLE2_METHODS, 200, runs=1, restarts=5))
_register(_table_artifact("table4", "Table 4 analog: Fashion-MNIST, 100 steps, no restarts",
                          "fashion_mnist", plan.FASHION_TABLE_METHODS, 100, runs=5, restarts=1))
_register(_table_artifact("table5", "Table 5 analog: Fashion-MNIST, 200 steps, restarts merged "
                          "per example", "fashion_mnist", plan.FASHION_TABLE_METHODS, 200,
                          runs=1, restarts=5))
_register(Artifact("figure2", "Figure 2 analog: sign, raw and quantized gradients (MNIST)",
                   ("mnist",), 1, 1, lambda targets, sizes: [], _figure2_render))
_register(Artifact("figure3", "Figure 3 analog: average accuracy vs maximum perturbation",
                   ("mnist", "fashion_mnist"), 5, 1, _figure3_jobs, _figure3_render))
_register(Artifact("figure4", "Figure 4 analog: average accuracy vs number of steps (MNIST)",
                   ("mnist",), 5, 1, _mnist_jobs(plan.figure4_specs), _figure4_render))
_register(Artifact("sweep_b", "Section 4.5 analog: sweep of the quantization level b (MNIST)",
                   ("mnist",), 5, 1, _mnist_jobs(plan.sweep_specs), _sweep_render))
