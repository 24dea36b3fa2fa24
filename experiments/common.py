"""What every experiment command shares: flags, the model and data, computing cells, errors."""
from __future__ import annotations

import functools
import hashlib
import json
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

from workflow.cli import quiet_tensorflow

quiet_tensorflow()  # the experiment commands import this module before TensorFlow

import keras  # noqa: E402
import numpy as np
from absl import flags

from attacks import predict
from experiments.cells import CellResult, CellSpec, run_cell, seed_from_shipped, stored_attacks
from experiments.plan import PRESETS
from mnist_challenge_compat import CompatError, checkpoint_sha256, load_dataset, load_model
from workflow.cli import fail, interrupted
from workflow.datasets import SHIPPED_MODELS, protocol, require_data, require_model_dir
from workflow.fingerprint import data_sha256
from workflow.progress import format_duration
from workflow.signals import Interrupted, raise_on_termination

FLAGS = flags.FLAGS
# Untracked (``runs/`` is git-ignored); the shipped ``results/`` is refreshed deliberately with
# --output_dir=results.
DEFAULT_OUTPUT_DIR = "runs/experiments"
# The shipped cells (tracked): a read-only source of finished cells for any output folder.
SHIPPED_CELLS = Path(__file__).resolve().parents[1] / "results" / "cells"


def define_flags() -> None:
    """The flags every experiment command takes (declared here once)."""
    flags.DEFINE_enum("preset", "quick", list(PRESETS),
                      "Sizes of every artifact. quick: 300 MNIST / 200 Fashion-MNIST images, "
                      "Fashion-MNIST at the shipped model's eps 0.1 (about 75 min on a 2-core "
                      "CPU). paper: the paper's protocol at GPU sizes: Tables 2/3 on 4,000 MNIST "
                      "images, the figures on 1,000, Fashion-MNIST on 2,000 at the paper's eps "
                      "0.2 (Table 5: 10 restarts). --num_examples/--runs/--restarts override it.")
    flags.DEFINE_bool("dry_run", False, "Print the cells the command would read or compute "
                      "(settings, images, attacks, example-steps) and exit: nothing is loaded, "
                      "computed or written.")
    flags.DEFINE_integer("num_examples", None, "First N test images of every dataset (default: "
                         "the preset's; the paper uses all 10000).", lower_bound=1)
    flags.DEFINE_integer("runs", None, "Independent runs (Worst/Avg are over these; default: "
                         "the preset's for each artifact).", lower_bound=1)
    flags.DEFINE_integer("restarts", None, "Random restarts merged per example within a run "
                         "(default: the preset's for each artifact).", lower_bound=1)
    flags.DEFINE_string("output_dir", DEFAULT_OUTPUT_DIR, "Where the markdown, PNG and JSON go "
                        "(--output_dir=results refreshes the shipped results).")
    flags.DEFINE_string("shipped_cells", str(SHIPPED_CELLS), "Read-only folder of finished "
                        "cells (default: the shipped results/cells): a cell the cache lacks is "
                        "copied from there, with its provenance, instead of computed. Empty: "
                        "compute every cell anew.")
    flags.DEFINE_string("cache_dir", None, "Where computed cells are kept (resume, sharing "
                        "between commands); default <output_dir>/cells.")
    flags.DEFINE_bool("table3_baselines", False, "Also compute Table 3's Interval Attack "
                      "(method interval) and Surrogate (method multitargeted, logit-margin loss) "
                      "cells: 200 steps x the table's restarts each, MultiTargeted up to 9 "
                      "targeted attacks per restart. Without it Table 3 shows them when their "
                      "cells are stored and marks them pending otherwise.")
    flags.DEFINE_bool("stored_only", False, "Compute nothing: render from the finished "
                      "cells alone (in --cache_dir or --shipped_cells). A table marks the rows "
                      "whose cells are not finished as pending; a figure needs all its cells.")
    flags.DEFINE_integer("seed", 0, "Seed of all attacks' randomness.", lower_bound=0)
    flags.DEFINE_integer("batch_size", 200, "Images per compiled call; BLOB's group size M.",
                         lower_bound=1)
    flags.DEFINE_string("mnist_model_dir", None, "MNIST challenge checkpoint (directory or "
                        "prefix); default: the shipped robust model.")
    flags.DEFINE_string("fashion_model_dir", None, "Fashion-MNIST checkpoint (daa_fashion "
                        "architecture); default: the shipped robust model.")
    flags.DEFINE_string("mnist_data_dir", None, "MNIST_data folder; default: the shipped test set.")
    flags.DEFINE_string("fashion_data_dir", None, "Fashion-MNIST IDX folder; default: Debian's "
                        "dataset-fashion-mnist or tensorflow-datasets.")
    flags.DEFINE_string("cifar10_model_dir", None, "The CIFAR-10 challenge's checkpoint "
                        "(madry_cifar10; table6, figure5). None ships: python -m "
                        "mnist_challenge_compat.model_download cifar10_adv_trained.")
    flags.DEFINE_string("cifar10_data_dir", None, "Folder with the CIFAR-10 binary test_batch.bin "
                        "(or its cifar-10-batches-bin); default: a prepared tensorflow-datasets "
                        "copy.")


@dataclass
class Target:
    """A model and its first ``N`` test images.

    Attributes:
      x: ``(N, *S)`` float32 in the dataset's bounds (``(N, 784)`` in [0, 1];
        CIFAR-10 ``(N, 32, 32, 3)`` on 0-255); y: ``(N,)`` int64.
      digest: sha256 over the checkpoint files' sha256s (part of every cell's key).
      data_digest: ``data_sha256(x, y)`` (part of every cell's key: other images never
        reuse a cell).
    """

    dataset: str
    model: keras.Model
    model_dir: str
    x: np.ndarray
    y: np.ndarray
    digest: str
    checkpoint_sha256: dict
    data_digest: str

    @functools.cached_property
    def clean_accuracy(self) -> float:
        return float(np.mean(predict(self.model, self.x) == self.y))


def preset_model_dir(dataset: str, preset: str, given: str | None) -> str | None:
    """The model folder to attack: ``given`` (a flag), else the preset's shipped model for
    ``dataset`` (``Preset.model_folders``), else None (the dataset's default)."""
    if given is not None:
        return given
    folder = PRESETS[preset].model_folders.get(dataset)
    return None if folder is None else str(SHIPPED_MODELS / folder)


def load_target(dataset: str, n: int) -> Target:
    """The model and the first ``n`` test images of ``dataset`` given the model/data flags.

    Raises:
      CompatError: a missing model or data set, in one line saying where to get it and which
        flag takes it (checked before anything is loaded).
    """
    model_dir, x, y, digests = _locate(dataset, n)
    model = load_model(model_dir, arch=protocol(dataset).arch)
    return Target(dataset=dataset, model=model, model_dir=model_dir, x=x, y=y,
                  digest=_model_digest(digests), checkpoint_sha256=digests,
                  data_digest=data_sha256(x, y))


def target_digests(dataset: str, n: int) -> tuple[str, str]:
    """``(digest, data_digest)`` of :func:`load_target`'s target (the two halves of a cell's
    key) without building the model: for commands that only find cells."""
    _, x, y, digests = _locate(dataset, n)
    return _model_digest(digests), data_sha256(x, y)


def _locate(dataset: str, n: int) -> tuple[str, np.ndarray, np.ndarray, dict]:
    """The model folder, the first ``n`` test images and labels, the checkpoint sha256s."""
    prefix = _flag_prefix(dataset)
    given = preset_model_dir(dataset, FLAGS.preset, getattr(FLAGS, f"{prefix}_model_dir"))
    model_dir = str(require_model_dir(dataset, given, flag=f"{prefix}_model_dir"))
    data_dir = getattr(FLAGS, f"{prefix}_data_dir")
    require_data(dataset, data_dir, flag=f"{prefix}_data_dir")
    x_all, y_all = load_dataset(dataset, "test", data_dir)
    if n > len(x_all):
        raise ValueError(f"num_examples must be at most {len(x_all)} for {dataset}, got {n}")
    return model_dir, x_all[:n], y_all[:n], checkpoint_sha256(model_dir)


def _model_digest(checkpoint_digests: dict) -> str:
    return hashlib.sha256(json.dumps(checkpoint_digests, sort_keys=True).encode()).hexdigest()


def _flag_prefix(dataset: str) -> str:
    return {"mnist": "mnist", "fashion_mnist": "fashion", "cifar10": "cifar10"}[dataset]


def cache_dir() -> Path:
    return Path(FLAGS.cache_dir or Path(FLAGS.output_dir) / "cells")


def check_writable(folder: Path) -> None:
    """Creates ``folder`` if missing and proves it writable with a temporary file.

    Raises:
      OSError: one line naming the folder (not creatable, not a folder, read-only).
    """
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as err:
        raise OSError(f"output folder {folder} is not writable "
                      f"({err.strerror or type(err).__name__})") from None


def prepare_outputs() -> None:
    """Checks, before anything is computed, that the command can write its outputs and cells.

    The one place every experiment command passes before its work (a lock on the output
    folder belongs here too).
    """
    for folder in dict.fromkeys([Path(FLAGS.output_dir), cache_dir()]):
        check_writable(folder)


def remaining_seconds(todo: Counter, done: Counter, spent: Counter) -> float | None:
    """Seconds left: each dataset's remaining example-steps at its own measured rate (the
    models differ ~2x in cost per step); a dataset not yet measured at the overall rate.
    ``None`` before anything was measured."""
    total_spent = sum(spent.values())
    if not total_spent or not sum(done.values()):
        return None
    overall = sum(done.values()) / total_spent
    left = 0.0
    for dataset, n in todo.items():
        rate = done[dataset] / spent[dataset] if done[dataset] and spent[dataset] else overall
        left += max(0, n - done[dataset]) / rate
    return left


def compute(jobs: Sequence[tuple[Target, CellSpec, int]],
            log: Callable[[str], None] = print,
            stored_only: bool = False) -> dict[CellSpec, CellResult]:
    """Computes every ``(target, cell, attacks)`` job (resuming stored work), with progress.

    Prints one line per finished segment: the cell, attack k/K, example-steps/s and the ETA
    of everything still to do in this command. ``stored_only``: computes nothing; each cell
    is read back with the attacks it has stored, finished or not (fewer than ``attacks``: a
    report marks it pending with what it still needs).
    """
    store = cache_dir()
    todo: Counter = Counter()
    shipped = FLAGS.shipped_cells
    seeded = sum(seed_from_shipped(spec, store, shipped, target.digest, target.data_digest)
                 for target, spec, _ in jobs) if shipped else 0
    if seeded:
        log(f"{seeded} finished cell(s) copied from {shipped}")
    unfinished = []
    for target, spec, attacks in jobs:
        stored = stored_attacks(spec, store, target.digest, target.data_digest)
        todo[spec.dataset] += max(0, attacks - stored) * spec.num_examples * spec.steps
        if stored < attacks:
            unfinished.append(spec)
    if stored_only:
        if unfinished:
            log(f"--stored_only: {len(unfinished)} cell(s) not finished, not computed: "
                + ", ".join(f"{c.dataset} {c.label}" for c in unfinished))
        todo.clear()
    log(f"{len(jobs) - (len(unfinished) if stored_only else 0)} cell(s); "
        f"{sum(todo.values()):,} example-steps to compute (stored cells in {store})")
    if stored_only:  # an unfinished cell is read back as far as it is stored (0 attacks: none)
        jobs = [(t, spec, 0 if spec in unfinished else a) for t, spec, a in jobs]
    done: Counter = Counter()
    spent: Counter = Counter()
    last = time.perf_counter()

    def on_segment(spec: CellSpec, k: int, j: int, example_steps: int, attacks: int) -> None:
        nonlocal last
        now = time.perf_counter()
        done[spec.dataset] += example_steps
        spent[spec.dataset] += now - last
        last = now
        rate = done[spec.dataset] / max(1e-9, spent[spec.dataset])
        eta = remaining_seconds(todo, done, spent)
        log(f"{spec.dataset} {spec.label} eps={spec.epsilon:g}: attack {k + 1}/{attacks} "
            f"at step {spec.milestones[j]}/{spec.steps} | {rate:,.0f} example-steps/s, "
            f"{rate / spec.steps:,.1f} examples/s | ETA "
            f"{'?' if eta is None else format_duration(eta)}")

    results = {}
    with raise_on_termination():
        for target, spec, attacks in jobs:
            results[spec] = run_cell(
                spec, target.model, target.x, target.y, attacks=attacks, cache_dir=store,
                model_digest=target.digest, data_digest=target.data_digest,
                on_segment=lambda s, k, j, e, a=attacks: on_segment(s, k, j, e, a))
    return results


def run_command(program: str, body: Callable[[], None]) -> None:
    """Runs a command's body after :func:`prepare_outputs` (not for ``--dry_run``): one-line
    errors (exit 1), interruption saved (exit 130)."""
    # Installed for the whole command, so that a signal between two of its steps (e.g. after
    # the plan is printed, before the first cell starts) also ends in one line and exit 130.
    try:
        with raise_on_termination():
            if not FLAGS.dry_run:
                prepare_outputs()
            body()
    except Interrupted:
        interrupted(program, f"interrupted; every attack segment finished before now is kept in "
                             f"{cache_dir()}; rerun the same command to resume")
    except (CompatError, ValueError, KeyError, OSError, ImportError) as err:
        fail(program, err)
