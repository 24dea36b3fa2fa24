"""Pictures of an evaluation: the adversarial examples, and accuracy against restarts.

    python -m workflow.plots OUTPUT_DIR     # redraw examples.png / restarts.png of an eval.py run

The figure functions take arrays and records and do not care where they came from (any image
shape, any pixel ``bounds``); :func:`plot_outputs` writes them for an output folder whose
arrays are in memory (``eval.py``), :func:`write_plots` reads them back from the folder
(clean images from the data set named in ``results.json``, adversarial ones from the attack
file), so no model is needed. matplotlib is optional (the ``experiments`` extra) and imported
only when a figure is drawn.
"""
from __future__ import annotations

import io
import json
import math
import os
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from mnist_challenge_compat.atomic import write_file_atomic
from mnist_challenge_compat.errors import CompatError

EXAMPLES_FILE = "examples.png"
RESTARTS_FILE = "restarts.png"
RESULTS_FILE = "results.json"
MATPLOTLIB_MISSING = "figures need matplotlib: pip install -e '.[experiments]'"

DPI = 100
# examples.png is exactly (k * PANEL + 1.25) x (3 * PANEL + 1) inches at DPI: for k = 8,
# 1125 x 475 pixels. Margins in inches: row labels left, colour bar right, titles on top.
PANEL_IN = 1.25
LEFT_IN, RIGHT_IN, TOP_IN, BOTTOM_IN = 0.35, 0.9, 0.9, 0.1
ROW_LABELS = ("clean", "adversarial", "perturbation")
RESTARTS_SIZE_IN = (6.0, 4.0)


def pyplot():
    """matplotlib's pyplot on the non-interactive Agg backend; ImportError when missing."""
    try:
        import matplotlib
    except ImportError:
        raise ImportError(MATPLOTLIB_MISSING) from None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


def write_figure(fig, path: str | os.PathLike, dpi: int = DPI) -> Path:
    """Writes ``fig`` as a PNG of exactly its size in inches times ``dpi``, atomically; closes it."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi)
    pyplot().close(fig)
    write_file_atomic(path, lambda f: f.write(buffer.getvalue()))
    return Path(path)


# ---------------------------------------------------------------------------------------------
# Which examples, and what is shown about them
# ---------------------------------------------------------------------------------------------

def select_examples(y: np.ndarray, clean_pred: np.ndarray, adv_pred: np.ndarray,
                    k: int) -> np.ndarray:
    """Indices of the ``k`` examples to show: first the fooled ones, then the rest.

    Fooled: classified correctly when clean and wrongly after the attack. Both groups are in
    data-set order; fewer than ``k`` examples gives them all.
    """
    if k < 0:
        raise ValueError(f"the number of examples to show must be >= 0, got {k}")
    fooled = (np.asarray(clean_pred) == y) & (np.asarray(adv_pred) != y)
    return np.concatenate([np.flatnonzero(fooled), np.flatnonzero(~fooled)])[:k]


def example_records(index: Sequence[int], x: np.ndarray, x_adv: np.ndarray, y: Sequence[int],
                    clean_pred: Sequence[int], adv_pred: Sequence[int],
                    adv_confidence: Sequence[float]) -> list[dict[str, Any]]:
    """One JSON-able record per shown example; every argument is aligned with ``index``.

    Returns:
      ``[{"index", "label", "clean_pred", "adv_pred", "adv_confidence", "linf"}, ...]``:
      ``adv_confidence`` is the model's softmax probability of ``adv_pred`` on the adversarial
      image, ``linf`` the largest absolute pixel change (in the images' own scale).
    """
    diff = np.abs(np.asarray(x_adv, np.float64) - np.asarray(x, np.float64))
    return [{"index": int(i), "label": int(label), "clean_pred": int(c), "adv_pred": int(a),
             "adv_confidence": float(p), "linf": float(d.max()) if d.size else 0.0}
            for i, label, c, a, p, d in zip(index, y, clean_pred, adv_pred, adv_confidence, diff)]


def model_examples(model, x: np.ndarray, y: np.ndarray, x_adv: np.ndarray, adv_pred: np.ndarray,
                   k: int, batch_size: int = 200) -> list[dict[str, Any]]:
    """:func:`example_records` of the ``k`` examples :func:`select_examples` picks for ``model``."""
    from attacks import predict
    clean_pred = predict(model, x, batch_size)
    index = select_examples(y, clean_pred, adv_pred, k)
    logits = np.asarray(model(x_adv[index], training=False), np.float64)
    probs = np.exp(logits - logits.max(axis=1, keepdims=True))
    probs /= probs.sum(axis=1, keepdims=True)
    return example_records(index, x[index], x_adv[index], y[index], clean_pred[index],
                           adv_pred[index], probs[np.arange(len(index)), adv_pred[index]])


def example_title(record: dict[str, Any]) -> str:
    """The three title lines of one example column."""
    return (f"true {record['label']}, clean {record['clean_pred']}\n"
            f"adv {record['adv_pred']} ({100 * record['adv_confidence']:.1f}%)\n"
            f"L\u221e {record['linf']:.3g}")


# ---------------------------------------------------------------------------------------------
# Figures
# ---------------------------------------------------------------------------------------------

def image_shape_of(x: np.ndarray) -> tuple[int, ...]:
    """Display shape of one image of the batch ``x``: (H, W) or (H, W, 3), channels last.

    Flat images of ``s * s`` pixels are grey ``s x s`` (MNIST's 784 -> 28 x 28); of
    ``3 * s * s`` values RGB ``s x s x 3``; ``(N, H, W, 1)`` is grey.
    """
    shape = tuple(np.shape(x)[1:])
    if len(shape) == 1:
        side = math.isqrt(shape[0])
        if side * side == shape[0]:
            return side, side
        side = math.isqrt(shape[0] // 3)
        if shape[0] % 3 == 0 and 3 * side * side == shape[0]:
            return side, side, 3
    elif len(shape) == 2 or (len(shape) == 3 and shape[2] in (1, 3)):
        return shape[:2] if len(shape) == 2 or shape[2] == 1 else shape
    raise ValueError(f"cannot show images of shape {shape}: pass image_shape=(H, W) or (H, W, 3)")


def examples_figure(x: np.ndarray, x_adv: np.ndarray, records: Sequence[dict[str, Any]], *,
                    image_shape: tuple[int, ...] | None = None,
                    bounds: tuple[float, float] = (0.0, 1.0), epsilon: float | None = None):
    """A 3 x k grid: clean images, adversarial images, perturbations ``x_adv - x``.

    Args:
      x, x_adv: ``(k, ...)`` the shown examples' clean and adversarial images, in the order of
        ``records`` (whose numbers become the column titles, see :func:`example_title`).
      image_shape: display shape of one image; default :func:`image_shape_of`.
      bounds: the pixel range, drawn black to white.
      epsilon: the perturbation row's colour scale is ``[-epsilon, epsilon]`` (default: the
        largest change shown), a diverging map centred on 0. Of an RGB image it shows, per
        pixel, the channel with the largest change.

    Returns:
      A matplotlib Figure of exactly ``(k * 1.25 + 1.25) x 4.75`` inches (``k`` = len(records));
      its first ``3 k`` axes are the panels row by row, the last one the colour bar.
    """
    plt = pyplot()
    k = len(records)
    if k == 0 or len(x) != k or len(x_adv) != k:
        raise ValueError(f"need as many images as records (>= 1): {len(x)} clean, "
                         f"{len(x_adv)} adversarial, {k} records")
    shape = tuple(image_shape) if image_shape is not None else image_shape_of(x)
    clean = np.asarray(x, np.float64).reshape(k, *shape)
    adv = np.asarray(x_adv, np.float64).reshape(k, *shape)
    delta = adv - clean
    if delta.ndim == 4:  # RGB: the signed change of each pixel's most changed channel
        pick = np.abs(delta).argmax(axis=-1)[..., None]
        delta = np.take_along_axis(delta, pick, axis=-1)[..., 0]
    scale = epsilon if epsilon else float(np.abs(delta).max()) or 1.0
    lo, hi = bounds

    width = k * PANEL_IN + LEFT_IN + RIGHT_IN
    height = 3 * PANEL_IN + TOP_IN + BOTTOM_IN
    fig, axes = plt.subplots(3, k, figsize=(width, height), dpi=DPI, squeeze=False)
    fig.subplots_adjust(left=LEFT_IN / width, right=1 - RIGHT_IN / width, top=1 - TOP_IN / height,
                        bottom=BOTTOM_IN / height, wspace=0.08, hspace=0.08)
    for col, record in enumerate(records):
        for row, image in ((0, clean[col]), (1, adv[col])):
            if image.ndim == 3:
                axes[row, col].imshow(np.clip((image - lo) / (hi - lo), 0, 1))
            else:
                axes[row, col].imshow(image, cmap="gray", vmin=lo, vmax=hi)
        shown = axes[2, col].imshow(delta[col], cmap="RdBu_r", vmin=-scale, vmax=scale)
        fooled = record["clean_pred"] == record["label"] != record["adv_pred"]
        axes[0, col].set_title(example_title(record), fontsize=8,
                               color="firebrick" if fooled else "black")
    for row, label in enumerate(ROW_LABELS):
        axes[row, 0].set_ylabel(label, fontsize=9)
    for ax in axes.flat:
        ax.set_xticks([])
        ax.set_yticks([])
    box = axes[2, -1].get_position()
    colour_bar = fig.add_axes([box.x1 + 0.12 / width, box.y0, 0.12 / width, box.height])
    fig.colorbar(shown, cax=colour_bar).set_label("x_adv - x", fontsize=8)
    colour_bar.tick_params(labelsize=7)
    return fig


def restarts_figure(merged_accuracies: Sequence[Sequence[float | None]],
                    restart_accuracies: Sequence[Sequence[float | None]] | None = None,
                    restart_attacked: Sequence[Sequence[int | None]] | None = None):
    """Accuracy (%) against restarts, restarts merged per example.

    Args:
      merged_accuracies: per run, the accuracy after its first 1, 2, ... restarts merged
        (None where unknown).
      restart_accuracies: per run, each restart's accuracy on its own, of the examples it
        attacked; drawn as dots for a single run, only for the restarts that attacked the
        whole set (where ``restart_attacked`` says so; a restart that skipped the examples
        broken before scores a subset, not comparable with the merged line).
      restart_attacked: per run, how many examples each restart attacked (None: unknown,
        taken as the whole set).

    Returns:
      A matplotlib Figure of 6 x 4 inches: one line per run, and with several runs their worst
      (lowest) and average at each restart count.
    """
    plt = pyplot()
    from matplotlib.ticker import MaxNLocator
    merged = np.array([[np.nan if a is None else 100 * a for a in run] for run in merged_accuracies],
                      dtype=np.float64)
    if merged.ndim != 2 or merged.size == 0:
        raise ValueError("need the merged accuracies of at least one run, all of equal length")
    restarts = np.arange(1, merged.shape[1] + 1)
    fig, ax = plt.subplots(figsize=RESTARTS_SIZE_IN, dpi=DPI, layout="constrained")
    several = len(merged) > 1
    for k, run in enumerate(merged):
        if several:
            ax.plot(restarts, run, marker="o", markersize=3, linewidth=1, color="0.7",
                    label="each run" if k == 0 else None)
        else:
            ax.plot(restarts, run, marker="o", markersize=3, linewidth=1, label="restarts merged")
    if several:
        ax.plot(restarts, merged.min(axis=0), marker="o", color="C3", linewidth=2,
                label="worst of runs")
        ax.plot(restarts, merged.mean(axis=0), marker="o", color="C0", linewidth=2,
                label="average of runs")
    elif restart_accuracies:
        alone = np.array([np.nan if a is None else 100 * a for a in restart_accuracies[0]],
                         np.float64)
        if restart_attacked:
            counts = [c for c in restart_attacked[0]]
            whole = max((c for c in counts if c is not None), default=None)
            subset = np.array([c is not None and c != whole for c in counts])
            alone[subset[:len(alone)]] = np.nan
        if not np.all(np.isnan(alone)):
            ax.plot(restarts, alone, "o", color="C1", markersize=4,
                    label="each restart alone (whole set)")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("restarts")
    ax.set_ylabel("adversarial accuracy (%)")
    ax.set_title("accuracy with restarts merged per example"
                 + (f", {len(merged)} runs" if several else ""), fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return fig


# ---------------------------------------------------------------------------------------------
# Output folders
# ---------------------------------------------------------------------------------------------

def plot_outputs(output_dir: str | os.PathLike, results: dict[str, Any], x: np.ndarray,
                 x_adv: np.ndarray, log: Callable[[str], None] = print) -> list[Path]:
    """Writes examples.png (and restarts.png for several restarts or runs) for ``results``.

    ``x`` and ``x_adv`` are the evaluated clean and adversarial images, in ``results``'s
    order. What cannot be drawn (no matplotlib, results of an older version) is said in one
    line through ``log``; returns the files written.
    """
    out = Path(output_dir)
    wanted = [EXAMPLES_FILE]
    if len(results.get("run_accuracies", [])) > 1 or results["settings"].get("restarts", 1) > 1:
        wanted.append(RESTARTS_FILE)
    try:
        pyplot()
    except ImportError as err:
        log(f"{' and '.join(wanted)} not written: {err}")
        return []
    written = []
    records = results.get("examples")
    if records is None:
        log(f"{EXAMPLES_FILE} not written: {out / RESULTS_FILE} predates the recorded examples; "
            f"rerun eval.py to record them")
    elif records:
        index = [r["index"] for r in records]
        attack = results["attack_config"]
        fig = examples_figure(x[index], x_adv[index], records,
                              bounds=tuple(attack.get("bounds", (0.0, 1.0))),
                              epsilon=attack["epsilon"])
        written.append(write_figure(fig, out / EXAMPLES_FILE))
    if RESTARTS_FILE in wanted:
        if "merged_accuracies" not in results:
            log(f"{RESTARTS_FILE} not written: {out / RESULTS_FILE} predates the recorded "
                f"accuracies after each restart; rerun eval.py to record them")
        else:
            fig = restarts_figure(results["merged_accuracies"], results.get("restart_accuracies"),
                                  results.get("restart_attacked"))
            written.append(write_figure(fig, out / RESTARTS_FILE))
    return written


def read_results(output_dir: str | os.PathLike) -> dict[str, Any]:
    """``results.json`` of an eval.py output folder; CompatError in one line otherwise."""
    out = Path(output_dir)
    if not out.is_dir():
        raise CompatError(f"{out}: no such folder")
    path = out / RESULTS_FILE
    if not path.is_file():
        raise CompatError(f"{out}: no {RESULTS_FILE} here (not an eval.py output folder, or the "
                          f"run has not finished)")
    try:
        results = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise CompatError(f"{path}: not a readable JSON file ({err})") from None
    missing = [key for key in ("settings", "attack_config", "data")
               if not isinstance(results, dict) or key not in results]
    if missing:
        raise CompatError(f"{path}: not an eval.py results file (no {', '.join(missing)})")
    return results


def write_plots(output_dir: str | os.PathLike, log: Callable[[str], None] = print) -> list[Path]:
    """Redraws the pictures of an eval.py output folder without a model.

    Clean images: the first ``data.num_examples`` of the data set in ``results.json`` (its
    ``settings.data_dir`` if any); adversarial images: the folder's attack file.

    Raises:
      CompatError: no such folder, no or invalid results.json, missing or mismatched files.
    """
    from mnist_challenge_compat import load_dataset, load_submission
    out = Path(output_dir)
    results = read_results(out)
    settings, data = results["settings"], results["data"]
    attack_path = Path(settings.get("attack_path", "attack.npy"))
    x_adv = load_submission(attack_path if attack_path.is_absolute() else out / attack_path)
    x_all, _ = load_dataset(data["dataset"], data.get("split", "test"), settings.get("data_dir"))
    x = x_all[:data["num_examples"]]
    if x_adv.shape != x.shape:
        raise CompatError(f"{out / attack_path}: shape {x_adv.shape} does not match the "
                          f"{len(x)} {data['dataset']} images of {RESULTS_FILE} {x.shape}")
    return plot_outputs(out, results, x, x_adv, log)


def main(argv: Sequence[str]) -> None:
    from workflow.cli import fail
    program = "python -m workflow.plots"
    if len(argv) != 2:
        fail(program, "usage: python -m workflow.plots OUTPUT_DIR (an eval.py --output_dir)")
    try:
        written = write_plots(argv[1])
    except (CompatError, ValueError) as err:
        fail(program, str(err))
    if not written:
        fail(program, f"{argv[1]}: no picture written (see above)")
    for path in written:
        print(f"wrote {path}")


if __name__ == "__main__":
    from absl import app

    from workflow.cli import one_line_flags_parser
    app.run(main, flags_parser=one_line_flags_parser("python -m workflow.plots"))
