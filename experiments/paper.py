"""The paper's own numbers (Liu & Tsang), as data: the one place the reports read them from.

Transcribed from the paper's tables and the numbers its text gives for Figures 4 and 5
(accuracy in %, lower = stronger attack). ``tests/experiments/test_paper.py`` checks them
against the paper's table of numbers and its full text in ``../shared/paper``. Figures 2 and 3
print no numbers (plots only). Table 6 and Figure 5 (CIFAR-10) give eps on [0, 1] (8/255, 16/255);
``experiments.table6`` / ``figure5`` attack at 8 and 16 on the 0-255 scale, the same radii.
"""
from __future__ import annotations

from dataclasses import dataclass

# The models the paper evaluates (what our protocol lines compare against).
SECRET_MODEL = "the MNIST Challenge's secret model (60,000 training images, 100,000 steps of PGD-40)"
PAPER_MNIST_MODEL = "the paper's own adversarially trained MNIST model"
DAA_FASHION_MODEL = "the DAA authors' adversarially trained Fashion-MNIST model (eps 0.2)"


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


TABLES: dict[str, PaperTable] = {
    "table2": PaperTable(
        numbers={"PGD": (92.56, 92.79), "PQGD_100": (92.27, 92.37), "PQGD_200": (92.17, 92.33),
                 "BLOB": (90.48, 90.56), "BLOB_QG_100": (90.07, 90.18),
                 "BLOB_QG_200": (90.08, 90.15)},
        model=SECRET_MODEL, epsilon=0.3, steps=200, runs=5, restarts=1),
    "table3": PaperTable(
        numbers={"PGD": (89.49,), "Interval Attack": (88.42,), "BLOB": (88.56,),
                 "Surrogate": (88.36,), "BLOB_QG_100": (88.40,), "BLOB_QG_200": (88.35,),
                 "BLOB_QG_200 (100 restarts)": (88.32,)},
        model=SECRET_MODEL, epsilon=0.3, steps=200, runs=1, restarts=50,
        restarts_note={"BLOB_QG_200 (100 restarts)": 100}),
    "table4": PaperTable(
        numbers={"PGD": (71.11, 71.21), "PQGD_100": (70.79, 70.85), "PQGD_200": (70.66, 70.75),
                 "BLOB": (67.90, 67.98), "BLOB_QG_100": (67.33, 67.45),
                 "BLOB_QG_200": (67.30, 67.39)},
        model=DAA_FASHION_MODEL, epsilon=0.2, steps=100, runs=5, restarts=1),
    "table5": PaperTable(
        numbers={"BLOB": (66.24,), "BLOB_QG_100": (65.78,), "BLOB_QG_200": (65.69,),
                 "BLOB_QG_500": (65.61,), "BLOB_QG_1000": (65.64,)},
        model=DAA_FASHION_MODEL, epsilon=0.2, steps=200, runs=1, restarts=10),
    # CIFAR-10 (Madry Lab's adversarially trained model), 100 steps, 1 run (experiments.table6).
    "table6_eps8": PaperTable(
        numbers={"PGD": (45.31,), "PQGD_100": (45.32,), "PQGD_200": (45.32,),
                 "PQGD_500": (45.33,), "PQGD_1000": (45.57,)},
        model="Madry Lab's adversarially trained CIFAR-10 model", epsilon=8 / 255, steps=100,
        runs=1, restarts=1),
    "table6_eps16": PaperTable(
        numbers={"PGD": (14.02,), "PQGD_100": (14.24,), "PQGD_200": (14.11,),
                 "PQGD_500": (13.98,), "PQGD_1000": (13.87,)},
        model="Madry Lab's adversarially trained CIFAR-10 model", epsilon=16 / 255, steps=100,
        runs=1, restarts=1),
}


@dataclass(frozen=True)
class PaperPoint:
    """A number the paper's text gives for a point of one of its figures (average accuracy)."""

    figure: str
    dataset: str
    epsilon: float
    steps: int
    numbers: dict[str, float]
    model: str


FIGURE_POINTS: tuple[PaperPoint, ...] = (
    PaperPoint("4a", "mnist", 0.3, 20, {"PGD": 94.26, "PQGD_1000": 88.89}, PAPER_MNIST_MODEL),
    PaperPoint("4b", "fashion_mnist", 0.2, 20, {"PGD": 75.27, "PQGD_500": 72.68},
               "the paper's adversarially trained Fashion-MNIST model"),
    PaperPoint("5a", "cifar10", 8 / 255, 10, {"PGD": 47.3, "PQGD_1000": 46.68},
               "Madry Lab's adversarially trained CIFAR-10 model"),
    PaperPoint("5b", "cifar10", 16 / 255, 10, {"PGD": 28.98, "PQGD_1000": 24.91},
               "Madry Lab's adversarially trained CIFAR-10 model"),
)

# Baselines of the paper's Table 3 that this project does not implement yet.
PENDING_BASELINES = ("Interval Attack", "Surrogate")


def figure_points(figure: str) -> PaperPoint:
    """The text's numbers for Figure ``figure`` (``"4a"``, ``"4b"``, ``"5a"``, ``"5b"``)."""
    for point in FIGURE_POINTS:
        if point.figure == figure:
            return point
    raise KeyError(f"the paper gives no numbers for Figure {figure}")


def paper_b(label: str) -> int:
    """``"PQGD_1000"`` -> 1000, ``"PGD"`` -> 1 (b = 1 is the sign step)."""
    return int(label.rsplit("_", 1)[1]) if "_" in label else 1
