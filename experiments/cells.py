"""A *cell*: one attack setting, run as independent random-start attacks, scored per example.

Every table and figure of the paper is a set of cells. A cell runs ``K`` independent attacks
(each from its own random start, no restarts inside) on the first ``N`` test images and
records, for every attack and every *milestone* step count, which examples the model still
classifies correctly: a boolean array ``(K, milestones, N)``. From that array the reports
derive everything they print:

* "Worst"/"Avg" over ``runs`` runs: per-attack accuracies (attack ``k`` = run ``k``);
* ``restarts`` restarts merged per example: an example counts as broken when any of the
  ``restarts`` attacks of its group breaks it (restarts are independent random starts, so a
  group of attacks *is* a multi-restart attack);
* accuracy after fewer steps: a ``k``-step PGD/PQGD attack is exactly the first ``k`` steps of a
  longer one from the same start, so each attack runs in segments between milestones
  (``attacks.attack`` with ``x_start`` = the previous segment's images) and is scored after each.

Cells are stored in ``cache_dir`` under a key of everything that determines their result
(model weights' digest, the digest of the images and labels attacked, attack settings,
milestones, seed), so commands that share a setting share the work, a rerun reads finished
cells back, and asking for more attacks extends a cell, while other weights or other images
never reuse it. The store is updated atomically after every segment: an interrupted run
resumes there.

Each cell also keeps where its compute happened (:func:`environment`): per machine and
TensorFlow version, the dates and seconds of the segments computed there. Reports describe the
cells they read from this record, never the machine that renders them.
"""
from __future__ import annotations

import dataclasses
import datetime
import hashlib
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import keras
import numpy as np

import tensorflow as tf

from attacks import AttackConfig, attack
from experiments import report
from mnist_challenge_compat import CompatError, load_state, save_state
from mnist_challenge_compat.atomic import write_file_atomic

# 2: keyed by the data's digest too, and with per-machine provenance.
CELL_FORMAT = 2

LABELS = {"pgd": "PGD", "pqgd": "PQGD", "blob": "BLOB", "blob_qg": "BLOB_QG", "fgsm": "FGSM",
          "interval": "Interval", "multitargeted": "MultiTargeted"}


@dataclass(frozen=True)
class CellSpec:
    """What determines a cell's result, apart from the model's weights and the attack count.

    Attributes:
      dataset: ``mnist``, ``fashion_mnist`` or ``cifar10`` (test split, first
        ``num_examples`` images).
      method, epsilon, step_size, b, loss, batch_size, steps_per_group, compute_dtype: as in
        :class:`attacks.AttackConfig`; BLOB methods use their default kernel weight ``c``.
      milestones: strictly increasing step counts >= 1; the last is the attack's length.
        For BLOB methods each must be a multiple of ``steps_per_group`` so that a segmented
        attack follows the DAA regrouping schedule of an unsegmented one.
      seed: attack ``k`` segment ``j`` draws its randomness from ``[seed, k, j]``.
      bounds: the pixel range (``(0, 255)`` for CIFAR-10); ``epsilon`` and ``step_size`` are on
        its scale. Left out of the cell's identity when it is the default ``(0, 1)``, so cells
        stored before the field existed keep their keys.
    """

    dataset: str
    method: str
    epsilon: float
    step_size: float
    milestones: tuple[int, ...]
    num_examples: int
    b: float | None = None
    loss: str = "xent"
    batch_size: int = 200
    steps_per_group: int = 10
    compute_dtype: str = "float32"
    seed: int = 0
    bounds: tuple[float, float] = (0.0, 1.0)

    def __post_init__(self):
        ms = self.milestones
        if not ms or any(not isinstance(m, int) or m < 1 for m in ms) or list(ms) != sorted(set(ms)):
            raise ValueError(f"milestones must be strictly increasing integers >= 1, got {ms}")
        if self.method in ("blob", "blob_qg") and any(m % self.steps_per_group for m in ms):
            raise ValueError(f"BLOB milestones must be multiples of steps_per_group "
                             f"({self.steps_per_group}), got {ms}")
        if not (isinstance(self.num_examples, int) and self.num_examples >= 1):
            raise ValueError(f"num_examples must be an integer >= 1, got {self.num_examples}")
        self.config(self.milestones[0])  # validates the attack settings

    @property
    def steps(self) -> int:
        return self.milestones[-1]

    @property
    def label(self) -> str:
        """``PGD``, ``PQGD_100``, ``BLOB_QG_1000``: the paper's names."""
        name = LABELS[self.method]
        return name if self.b is None else f"{name}_{self.b:g}"

    def config(self, steps: int, random_start: bool = True) -> AttackConfig:
        """The attack of one segment of ``steps`` steps."""
        return AttackConfig(method=self.method, epsilon=self.epsilon, steps=steps,
                            step_size=self.step_size, b=self.b, loss=self.loss,
                            random_start=random_start, batch_size=self.batch_size,
                            steps_per_group=self.steps_per_group,
                            compute_dtype=self.compute_dtype, bounds=self.bounds)

    def record(self) -> dict:
        """The settings as JSON-ready data: the cell's identity (default bounds left out)."""
        data = dataclasses.asdict(self)
        if tuple(self.bounds) == (0.0, 1.0):
            del data["bounds"]
        return json.loads(json.dumps(data))

    def key(self, model_digest: str, data_digest: str) -> str:
        """File-name-safe identity of the cell on the model whose weights hash to
        ``model_digest``, attacking the images and labels whose ``workflow.fingerprint``
        digest is ``data_digest``."""
        record = json.dumps({"format": CELL_FORMAT, "model": model_digest, "data": data_digest,
                             **self.record()}, sort_keys=True)
        digest = hashlib.sha256(record.encode()).hexdigest()[:16]
        return f"{self.dataset}-{self.label}-eps{self.epsilon:g}-{self.steps}steps-{digest}"


@dataclass
class CellResult:
    """A computed cell.

    Attributes:
      spec: the cell's settings.
      correct: ``(K, len(spec.milestones), N)`` bool; True where attack ``k`` stopped at
        milestone ``j`` leaves example ``n`` correctly classified.
      seconds: wall time spent computing the stored attacks (all sessions).
      provenance: where that time was spent, one entry per machine and TensorFlow version
        (see :func:`add_compute`).
    """

    spec: CellSpec
    correct: np.ndarray
    seconds: float = 0.0
    provenance: list[dict] = dataclasses.field(default_factory=list)

    @property
    def attacks(self) -> int:
        return self.correct.shape[0]

    def milestone_index(self, steps: int) -> int:
        if steps not in self.spec.milestones:
            raise KeyError(f"{self.spec.label}: no milestone at {steps} steps "
                           f"(milestones {self.spec.milestones})")
        return self.spec.milestones.index(steps)

    def outcomes(self, steps: int | None = None, runs: int | None = None,
                 restarts: int = 1) -> np.ndarray:
        """``(runs, N)`` bool: per run, examples still correct after ``restarts`` merged restarts.

        Run ``r`` merges attacks ``r*restarts .. r*restarts + restarts - 1`` per example.
        """
        j = self.milestone_index(self.spec.steps if steps is None else steps)
        runs = self.attacks // restarts if runs is None else runs
        need = runs * restarts
        if need > self.attacks:
            raise ValueError(f"{self.spec.label}: {runs} run(s) x {restarts} restart(s) need "
                             f"{need} attacks, the cell holds {self.attacks}")
        per_attack = self.correct[:need, j, :]
        return per_attack.reshape(runs, restarts, -1).all(axis=1)

    def accuracies(self, steps: int | None = None, runs: int | None = None,
                   restarts: int = 1) -> np.ndarray:
        """``(runs,)`` float accuracies in [0, 1] (see :meth:`outcomes`)."""
        return self.outcomes(steps, runs, restarts).mean(axis=1)


ProgressFn = Callable[[CellSpec, int, int, int], None]


def environment() -> dict[str, str]:
    """Where compute happens now: ``{"machine": "AMD EPYC (2 cores, 24 GiB)", "tensorflow":
    "2.21.0"}``."""
    return {"machine": report.machine(), "tensorflow": tf.__version__}


def add_compute(provenance: list[dict], seconds: float, where: dict[str, str],
                date: str) -> list[dict]:
    """``provenance`` with ``seconds`` more spent on ``date`` (ISO) at ``where``.

    Entries are ``{"machine", "tensorflow", "first_date", "last_date", "seconds"}``, one per
    distinct (machine, tensorflow); a new place appends an entry, a known one adds to its
    seconds and widens its dates.
    """
    out = [dict(entry) for entry in provenance]
    for entry in out:
        if entry["machine"] == where["machine"] and entry["tensorflow"] == where["tensorflow"]:
            entry["seconds"] += seconds
            entry["first_date"] = min(entry["first_date"], date)
            entry["last_date"] = max(entry["last_date"], date)
            return out
    return out + [{**where, "first_date": date, "last_date": date, "seconds": seconds}]


def run_cell(spec: CellSpec, model: keras.Model, x: np.ndarray, y: np.ndarray, *, attacks: int,
             cache_dir: str | Path, model_digest: str, data_digest: str,
             on_segment: ProgressFn | None = None) -> CellResult:
    """Computes (or reads back, or extends) ``spec``'s cell to at least ``attacks`` attacks.

    Args:
      spec: the cell; ``x``, ``y`` must be its ``num_examples`` images ``(N, *S)`` float32 in
        ``spec.bounds`` (MNIST ``(N, 784)`` in [0, 1], CIFAR-10 ``(N, 32, 32, 3)`` on 0-255)
        and labels ``(N,)`` int.
      model: the Keras model whose weights hash to ``model_digest``.
      data_digest: ``workflow.fingerprint.data_sha256(x, y)`` (part of the cell's key).
      attacks: independent attacks wanted (>= 1).
      cache_dir: where cells are stored (created if missing).
      on_segment: called as ``(spec, attack, milestone_index, example_steps)`` after each
        saved segment.

    Returns:
      The cell with ``max(attacks, stored)`` attacks.
    """
    if len(x) != spec.num_examples or len(y) != spec.num_examples:
        raise ValueError(f"{spec.label}: the cell is defined on {spec.num_examples} images, "
                         f"got {len(x)} images and {len(y)} labels")
    path = Path(cache_dir) / f"{spec.key(model_digest, data_digest)}.npz"
    path.parent.mkdir(parents=True, exist_ok=True)
    record = _load(path, spec, model_digest, data_digest)
    if record["partial"] is not None and record["partial"][0].shape != x.shape:
        raise CompatError(f"{path}: corrupt cell (partial attack of shape "
                          f"{record['partial'][0].shape}, images {x.shape})")
    where = None
    n_stages = len(spec.milestones)
    n = spec.num_examples
    while len(record["correct"]) < attacks:
        k = len(record["correct"])
        partial = record["partial"]
        x_cur, stage_correct = partial if partial is not None else (None, [])
        started = time.perf_counter()
        for j in range(len(stage_correct), n_stages):
            previous = spec.milestones[j - 1] if j else 0
            config = spec.config(spec.milestones[j] - previous, random_start=(j == 0))
            state = attack(model, x, y, config, restarts=1, seed=[spec.seed, k, j],
                           x_start=x_cur)
            x_cur = state.x_adv
            stage_correct = [*stage_correct, ~state.broken]
            seconds = time.perf_counter() - started
            where = where or environment()
            record["seconds"] += seconds
            record["provenance"] = add_compute(record["provenance"], seconds, where,
                                               datetime.date.today().isoformat())
            started = time.perf_counter()
            if j + 1 < n_stages:
                record["partial"] = (x_cur, stage_correct)
            else:
                record["correct"] = [*record["correct"], np.stack(stage_correct)]
                record["partial"] = None
            _save(path, spec, model_digest, data_digest, record)
            if on_segment is not None:
                on_segment(spec, k, j, n * (spec.milestones[j] - previous))
    correct = (np.stack(record["correct"]) if record["correct"]
               else np.zeros((0, n_stages, n), bool))
    return CellResult(spec=spec, correct=correct, seconds=record["seconds"],
                      provenance=record["provenance"])


def seed_from_shipped(spec: CellSpec, cache_dir: str | Path, shipped_dir: str | Path,
                      model_digest: str, data_digest: str) -> bool:
    """Copies ``spec``'s finished cell from the read-only ``shipped_dir`` (the tracked
    ``results/cells``) into ``cache_dir`` when ``cache_dir`` has none; the copy keeps its
    provenance. Returns True when a cell was copied. A shipped cell that is not ``spec``'s
    (other settings, damaged) is refused as :func:`run_cell` refuses a stored one."""
    name = f"{spec.key(model_digest, data_digest)}.npz"
    source, target = Path(shipped_dir) / name, Path(cache_dir) / name
    if target.exists() or not source.is_file() or source.resolve() == target.resolve():
        return False
    content = source.read_bytes()
    _load(source, spec, model_digest, data_digest, content)  # checks the bytes it copies
    target.parent.mkdir(parents=True, exist_ok=True)
    write_file_atomic(target, lambda f: f.write(content))
    return True


def ship_finished(spec: CellSpec, cache_dir: str | Path, shipped_dir: str | Path,
                  model_digest: str, data_digest: str, attacks: int) -> tuple[int, int] | None:
    """Copies ``spec``'s cell from a run's ``cache_dir`` into ``shipped_dir`` (the tracked
    ``results/cells``): the reverse of :func:`seed_from_shipped`.

    Copied, with its provenance, only when it is checked to be ``spec``'s, no attack of it is in
    progress, it holds at least the ``attacks`` an artifact reads and more than the shipped copy
    (so a cell some report reads is never replaced by a shorter one, and a half-finished cell
    never ships). Returns ``(shipped attacks before, after)`` when copied, else None.

    Raises:
      CompatError: either file belongs to other settings or is damaged.
    """
    name = f"{spec.key(model_digest, data_digest)}.npz"
    source, target = Path(cache_dir) / name, Path(shipped_dir) / name
    if not source.is_file() or source.resolve() == target.resolve():
        return None
    # The bytes checked are the bytes copied: a run may replace the file (atomically) with a
    # half-finished attack between a check and a second read.
    content = source.read_bytes()
    record = _load(source, spec, model_digest, data_digest, content)
    finished = len(record["correct"])
    before = len(_load(target, spec, model_digest, data_digest)["correct"])
    if record["partial"] is not None or finished < max(attacks, 1) or finished <= before:
        return None
    target.parent.mkdir(parents=True, exist_ok=True)
    write_file_atomic(target, lambda f: f.write(content))
    return before, finished


def stored_attacks(spec: CellSpec, cache_dir: str | Path, model_digest: str,
                   data_digest: str) -> int:
    """Attacks of ``spec`` already finished in ``cache_dir`` (0 when none)."""
    path = Path(cache_dir) / f"{spec.key(model_digest, data_digest)}.npz"
    return len(_load(path, spec, model_digest, data_digest)["correct"]) if path.exists() else 0


def _load(path: Path, spec: CellSpec, model_digest: str, data_digest: str,
          content: bytes | None = None) -> dict:
    """``path``'s cell (or ``content``, its bytes already read), checked to be ``spec``'s."""
    empty = {"correct": [], "partial": None, "seconds": 0.0, "provenance": []}
    if content is None and not path.exists():
        return empty
    arrays, meta = load_state(path, content)
    if meta.get("spec") != spec.record() \
            or meta.get("model_digest") != model_digest or meta.get("data_digest") != data_digest \
            or meta.get("format") != CELL_FORMAT:
        raise CompatError(f"{path}: stored cell belongs to other settings; delete it to recompute")
    n_stages, n = len(spec.milestones), spec.num_examples
    correct = arrays.get("correct", np.zeros((0, n_stages, n), bool)).astype(bool)
    if correct.ndim != 3 or correct.shape[1:] != (n_stages, n):
        raise CompatError(f"{path}: corrupt cell (outcomes of shape {correct.shape})")
    partial = None
    if "partial_x" in arrays:
        stage_correct = list(arrays["partial_correct"].astype(bool))
        x_cur = arrays["partial_x"].astype(np.float32)
        if x_cur.shape[0] != n or not 1 <= len(stage_correct) < n_stages:
            raise CompatError(f"{path}: corrupt cell (partial attack of shape {x_cur.shape})")
        partial = (x_cur, stage_correct)
    return {"correct": list(correct), "partial": partial, "seconds": float(meta.get("seconds", 0.0)),
            "provenance": list(meta.get("provenance", []))}


def _save(path: Path, spec: CellSpec, model_digest: str, data_digest: str, record: dict) -> None:
    n_stages, n = len(spec.milestones), spec.num_examples
    arrays = {"correct": (np.stack(record["correct"]) if record["correct"]
                          else np.zeros((0, n_stages, n), bool))}
    if record["partial"] is not None:
        x_cur, stage_correct = record["partial"]
        arrays["partial_x"] = x_cur
        arrays["partial_correct"] = np.stack(stage_correct)
    save_state(path, arrays, {"spec": spec.record(), "model_digest": model_digest,
                              "data_digest": data_digest, "seconds": record["seconds"],
                              "provenance": record["provenance"], "format": CELL_FORMAT})
