"""The cells behind each table and figure, as functions of the sizes a user asks for.

Settings that several artifacts share are built by the same function so that they produce
the same :class:`experiments.cells.CellSpec` and therefore share stored work:

* MNIST at eps 0.3: every method runs 200 steps scored at 20, 40, 60, 80, 100 and 200 steps;
  Tables 2 and 3, Figure 4, the b sweep and Figure 3's eps = 0.3 points all read these cells.
* Fashion-MNIST at its training eps 0.1: 200 steps scored at 100 and 200; Tables 4 and 5 and
  Figure 3's eps = 0.1 points read these.
"""
from __future__ import annotations

from dataclasses import dataclass

from experiments.cells import CellSpec


@dataclass(frozen=True)
class DatasetSetup:
    """The paper's threat model for a dataset and our default sample size on a 2-core CPU."""

    epsilon: float
    step_size: float
    default_examples: int
    long_milestones: tuple[int, ...]


SETUPS = {
    "mnist": DatasetSetup(epsilon=0.3, step_size=0.01, default_examples=300,
                          long_milestones=(20, 40, 60, 80, 100, 200)),
    "fashion_mnist": DatasetSetup(epsilon=0.1, step_size=0.01, default_examples=200,
                                  long_milestones=(100, 200)),
}

# The methods of each artifact: (method, b).
TABLE2_METHODS = (("pgd", None), ("pqgd", 100), ("pqgd", 200), ("blob", None),
                  ("blob_qg", 100), ("blob_qg", 200))
FASHION_TABLE_METHODS = (("pgd", None), ("pqgd", 100), ("pqgd", 1000), ("blob", None),
                         ("blob_qg", 100), ("blob_qg", 200), ("blob_qg", 500), ("blob_qg", 1000))
FIGURE3_METHODS = (("pgd", None), ("pqgd", 100), ("pqgd", 1000))
FIGURE3_EPSILONS = {"mnist": (0.1, 0.15, 0.2, 0.25, 0.3), "fashion_mnist": (0.1, 0.15, 0.2)}
FIGURE4_METHODS = (("pgd", None), ("pqgd", 100), ("pqgd", 500), ("pqgd", 1000))
FIGURE4_STEPS = (20, 40, 60, 80, 100)
SWEEP_BS = (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000)
SWEEP_STEPS = (20, 100)
# Methods that the long MNIST cells hold (every b another artifact asks for at eps 0.3).
MNIST_LONG_METHODS = (("pgd", None), ("pqgd", 100), ("pqgd", 200), ("pqgd", 500),
                      ("pqgd", 1000), ("blob", None), ("blob_qg", 100), ("blob_qg", 200))


def num_examples_for(dataset: str, requested: int | None) -> int:
    return SETUPS[dataset].default_examples if requested is None else requested


def spec(dataset: str, method: str, b: float | None, num_examples: int, *,
         epsilon: float | None = None, steps: int = 200, seed: int = 0,
         batch_size: int = 200) -> CellSpec:
    """The cell for one attack setting; settings other artifacts share map to shared cells.

    At the dataset's own eps, a pgd/pqgd/blob/blob_qg setting with at most 200 steps whose
    milestones the long cells hold is read from the long cell. ``pqgd`` with ``b = 1`` is
    PGD step for step (the quantizer's b = 1 is the sign), so it is read from the PGD cell.
    """
    setup = SETUPS[dataset]
    eps = setup.epsilon if epsilon is None else epsilon
    if method == "pqgd" and b == 1:
        method, b = "pgd", None
    long_cell = (eps == setup.epsilon and steps in setup.long_milestones
                 and _in_long_family(dataset, method, b))
    milestones = setup.long_milestones if long_cell else _milestones_up_to(steps, dataset)
    return CellSpec(dataset=dataset, method=method, b=None if b is None else float(b),
                    epsilon=float(eps), step_size=setup.step_size, milestones=milestones,
                    num_examples=num_examples, seed=seed, batch_size=batch_size)


def _in_long_family(dataset: str, method: str, b) -> bool:
    family = MNIST_LONG_METHODS if dataset == "mnist" else FASHION_TABLE_METHODS
    return (method, None if b is None else int(b)) in family


def _milestones_up_to(steps: int, dataset: str) -> tuple[int, ...]:
    """Milestones of a cell outside the long family: the sweep's 20 and the final step."""
    if dataset == "mnist" and steps == 100:
        return SWEEP_STEPS
    return (steps,)


def table_specs(dataset: str, methods, num_examples: int, seed: int, batch_size: int,
                steps: int = 200) -> list[CellSpec]:
    return [spec(dataset, m, b, num_examples, steps=steps, seed=seed, batch_size=batch_size)
            for m, b in methods]


def figure3_specs(dataset: str, num_examples: int, seed: int, batch_size: int) -> list[CellSpec]:
    return [spec(dataset, m, b, num_examples, epsilon=eps, steps=100, seed=seed,
                 batch_size=batch_size)
            for eps in FIGURE3_EPSILONS[dataset] for m, b in FIGURE3_METHODS]


def figure4_specs(num_examples: int, seed: int, batch_size: int) -> list[CellSpec]:
    return [spec("mnist", m, b, num_examples, steps=100, seed=seed, batch_size=batch_size)
            for m, b in FIGURE4_METHODS]


def sweep_specs(num_examples: int, seed: int, batch_size: int) -> list[CellSpec]:
    return [spec("mnist", "pqgd", b, num_examples, steps=100, seed=seed, batch_size=batch_size)
            for b in SWEEP_BS]
