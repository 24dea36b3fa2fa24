"""The paper's own numbers (Liu & Tsang), as data: the one place the reports read them from.

The numbers live in ``experiments/paper_numbers.json`` (tracked, with their provenance: which
file of ``../shared/paper`` they were transcribed from and its sha256), so that rendering works
without ``../shared``. Where ``../shared/paper/README.md`` (the paper's table of numbers) exists,
:func:`check_shared` reads its numbers at render time and refuses to render when they differ
from the tracked ones; ``tests/experiments/test_paper.py`` also checks them against the paper's
full text. Accuracy in %, lower = stronger attack. Figures 2 and 3 print no numbers (plots
only). Table 6 and Figure 5 (CIFAR-10) give eps on [0, 1] (8/255, 16/255);
``experiments.table6`` / ``figure5`` attack at 8 and 16 on the 0-255 scale, the same radii.
"""
from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from pathlib import Path

NUMBERS_FILE = Path(__file__).resolve().parent / "paper_numbers.json"
# ``../shared/paper`` beside the repository (the project's shared data folder).
SHARED_README = Path(__file__).resolve().parents[2] / "shared" / "paper" / "README.md"


@dataclass(frozen=True)
class PaperTable:
    """One table of the paper.

    Attributes:
      numbers: attack label -> ``(worst, avg)`` for tables over 5 runs, ``(worst,)`` for the
        restart tables (one merged number each).
      model: which model the paper attacked.
      epsilon, steps, runs, restarts: its protocol (all 10,000 test images).
      restarts_note: attacks whose restart count differs from ``restarts``.
    """

    numbers: dict[str, tuple[float, ...]]
    model: str
    epsilon: float
    steps: int
    runs: int
    restarts: int
    restarts_note: dict[str, int] | None = None
    num_examples: int = 10000


@dataclass(frozen=True)
class PaperPoint:
    """A number the paper's text gives for a point of one of its figures (average accuracy)."""

    figure: str
    dataset: str
    epsilon: float
    steps: int
    numbers: dict[str, float]
    model: str


def _load(path: Path = NUMBERS_FILE) -> tuple[dict[str, PaperTable], tuple[PaperPoint, ...],
                                              dict]:
    data = json.loads(path.read_text())
    tables = {name: PaperTable(numbers={k: tuple(v) for k, v in t["numbers"].items()},
                               model=t["model"], epsilon=t["epsilon"], steps=t["steps"],
                               runs=t["runs"], restarts=t["restarts"],
                               restarts_note=t.get("restarts_note"),
                               num_examples=t.get("num_examples", 10000))
              for name, t in data["tables"].items()}
    points = tuple(PaperPoint(p["figure"], p["dataset"], p["epsilon"], p["steps"],
                              dict(p["numbers"]), p["model"]) for p in data["figure_points"])
    return tables, points, data["provenance"]


TABLES, FIGURE_POINTS, PROVENANCE = _load()

# The models the paper evaluates (what our protocol lines compare against).
SECRET_MODEL = TABLES["table2"].model
PAPER_MNIST_MODEL = [p for p in FIGURE_POINTS if p.figure == "4a"][0].model
DAA_FASHION_MODEL = TABLES["table4"].model


# Baselines of the paper's Table 3 whose cells do not exist yet, with the attack that implements
# each (``attacks.AttackConfig.method``).
PENDING_BASELINES = {"Interval Attack": "interval", "Surrogate": "multitargeted"}


def figure_points(figure: str) -> PaperPoint:
    """The text's numbers for Figure ``figure`` (``"4a"``, ``"4b"``, ``"5a"``, ``"5b"``)."""
    for point in FIGURE_POINTS:
        if point.figure == figure:
            return point
    raise KeyError(f"the paper gives no numbers for Figure {figure}")


def paper_b(label: str) -> int:
    """``"PQGD_1000"`` -> 1000, ``"PGD"`` -> 1 (b = 1 is the sign step)."""
    return int(label.rsplit("_", 1)[1]) if "_" in label else 1


# ---------------------------------------------------------------------------------------------
# The paper's table of numbers in ../shared/paper/README.md.
# ---------------------------------------------------------------------------------------------

class PaperNumbersError(ValueError):
    """The shared table of the paper's numbers disagrees with ``paper_numbers.json``."""


def _pairs(numbers: str) -> dict[str, tuple[float, ...]]:
    """``"PGD 92.56/92.79; PQGD_100 92.27/92.37"`` -> ``{"PGD": (92.56, 92.79), ...}``."""
    out = {}
    for part in numbers.split(";"):
        name, values = part.strip().rsplit(" ", 1)
        out[name.strip()] = tuple(float(v) for v in values.split("/"))
    return out


def _versus(text: str, names: tuple[str, ...] | None = None) -> dict[str, float]:
    """``"PQGD_1000 88.89 vs PGD 94.26"`` (or ``"24.91 vs 28.98"`` with ``names`` from the
    part before) -> ``{"PQGD_1000": 88.89, "PGD": 94.26}``."""
    named = re.fullmatch(r"\s*(\S+) ([\d.]+) vs (\S+) ([\d.]+)\s*", text)
    if named:
        return {named[1]: float(named[2]), named[3]: float(named[4])}
    bare = re.fullmatch(r"\s*([\d.]+) vs ([\d.]+)\s*", text)
    if bare is None or names is None:
        raise PaperNumbersError(f"cannot read {text!r}")
    return {names[0]: float(bare[1]), names[1]: float(bare[2])}


def parse_readme(text: str) -> dict[str, dict[str, tuple[float, ...]]]:
    """The numbers of the README's table: ``{"table2": {"PGD": (92.56, 92.79), ...}, ...,
    "table6_eps8": {...}, "table6_eps16": {...}, "figure4a": {"PGD": (94.26,), ...},
    "figure4b", "figure5a", "figure5b"}`` (figure values as 1-tuples).

    Raises:
      PaperNumbersError: a row that cannot be read.
    """
    out: dict[str, dict[str, tuple[float, ...]]] = {}
    figure4 = iter(("4a", "4b"))
    for line in text.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) != 3 or not re.search(r"\d", cells[2]) or cells[0] in ("table", "---"):
            continue
        row, numbers = cells[0], cells[2]
        try:
            if row in ("2", "3", "4", "5"):
                out[f"table{row}"] = _pairs(numbers)
            elif row == "6":
                for part in numbers.split("; eps"):
                    eps, values = part.split(":", 1)
                    key = "table6_eps16" if eps.strip().startswith("16") else "table6_eps8"
                    out[key] = _pairs(values.replace(",", ";"))
            elif row.startswith("Fig. 4"):
                out[f"figure{next(figure4)}"] = {k: (v,) for k, v in _versus(numbers).items()}
            elif row.startswith("Fig. 5"):
                first, second = (part.split(":", 1)[1] for part in numbers.split("; eps"))
                five_a = _versus(first)
                out["figure5a"] = {k: (v,) for k, v in five_a.items()}
                out["figure5b"] = {k: (v,) for k, v in _versus(second, tuple(five_a)).items()}
        except (ValueError, StopIteration) as err:
            raise PaperNumbersError(f"row {row!r} of the paper's table: {err}") from None
    return out


def tracked_numbers() -> dict[str, dict[str, tuple[float, ...]]]:
    """The tracked numbers in :func:`parse_readme`'s shape."""
    out = {name: dict(t.numbers) for name, t in TABLES.items()}
    for p in FIGURE_POINTS:
        out[f"figure{p.figure}"] = {k: (v,) for k, v in p.numbers.items()}
    return out


def check_shared(readme: Path | None = None) -> str:
    """Where the reports' paper numbers come from, checked: reads the paper's table of
    numbers (``readme``, default ``../shared/paper/README.md``) when it exists and compares
    every number with ``paper_numbers.json``.

    Returns:
      A one-line statement of the source, for the reports.

    Raises:
      PaperNumbersError: a number differs or is missing (one line naming it).
    """
    readme = SHARED_README if readme is None else Path(readme)
    tracked_name = f"experiments/{NUMBERS_FILE.name}"
    if not readme.is_file():
        return (f"{tracked_name} (transcribed from ../shared/paper/README.md, sha256 "
                f"{PROVENANCE['readme_sha256'][:12]}...; that file is absent here, not re-read)")
    content = readme.read_bytes()
    shared = parse_readme(content.decode())
    tracked = tracked_numbers()
    for key in sorted(set(shared) | set(tracked)):
        if shared.get(key) != tracked.get(key):
            raise PaperNumbersError(
                f"the paper's numbers for {key} in {readme} ({shared.get(key)}) differ from "
                f"{tracked_name} ({tracked.get(key)}); correct one of them")
    digest = hashlib.sha256(content).hexdigest()
    return (f"../shared/paper/{readme.name} (sha256 {digest[:12]}...), read at render time and "
            f"equal to {tracked_name}")
