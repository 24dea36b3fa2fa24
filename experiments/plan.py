"""The cells behind each table and figure, as functions of the sizes a user asks for.

The sizes come from a preset (``--preset``): ``quick`` (the default, about 75 minutes on a
2-core CPU: 300 MNIST / 200 Fashion-MNIST images, Fashion-MNIST at the shipped model's eps
0.1) or ``paper`` (the paper's protocol at sizes a GPU makes practical: Tables 2 and 3 on
4,000 MNIST images, the figures on 1,000, Fashion-MNIST on 2,000 images at the paper's eps 0.2
with Table 5's 10 restarts and Table 4's PQGD_200). Explicit flags override a preset.

Settings that several artifacts share are built by the same function so that they produce
the same :class:`experiments.cells.CellSpec` and therefore share stored work:

* MNIST at eps 0.3: every method runs 200 steps scored at 20, 40, 60, 80, 100 and 200 steps;
  Tables 2 and 3, Figure 4, the b sweep and Figure 3's eps = 0.3 points all read these cells.
* Fashion-MNIST at the preset's eps (0.1 quick, 0.2 paper): 200 steps scored at 100 and 200;
  Tables 4 and 5 and Figure 3's point at that eps read these.
* CIFAR-10 (the challenge's model, pixels 0-255) at eps 8 and 16, step 2: 100 steps scored at
  10, 20, 30, 40 and 100; Table 6 reads the 100-step outcomes, Figure 5 every milestone.
  These need the released model and the CIFAR-10 test set (``workflow.datasets``) and, at the
  presets' sizes, a GPU: the wide ResNet runs well under one example-step per second on a
  2-core CPU (``bench/RESULTS.md``).
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

from experiments.cells import CellSpec
from workflow.datasets import protocol


@dataclass(frozen=True)
class DatasetSetup:
    """The paper's threat model for a dataset (the quick preset's eps) and the milestones of
    its long cells."""

    epsilon: float
    step_size: float
    long_milestones: tuple[int, ...]


SETUPS = {
    "mnist": DatasetSetup(epsilon=0.3, step_size=0.01, long_milestones=(20, 40, 60, 80, 100, 200)),
    # 0.1: the shipped Fashion-MNIST model's training eps (the paper attacks at 0.2).
    "fashion_mnist": DatasetSetup(epsilon=0.1, step_size=0.01, long_milestones=(100, 200)),
    # The CIFAR-10 challenge's eps and step on 0-255 (the paper does not give its step size).
    "cifar10": DatasetSetup(epsilon=8.0, step_size=2.0, long_milestones=(10, 20, 30, 40, 100)),
}

# The methods of each artifact: (method, b).
TABLE2_METHODS = (("pgd", None), ("pqgd", 100), ("pqgd", 200), ("blob", None),
                  ("blob_qg", 100), ("blob_qg", 200))
FASHION_TABLE_METHODS = (("pgd", None), ("pqgd", 100), ("pqgd", 1000), ("blob", None),
                         ("blob_qg", 100), ("blob_qg", 200), ("blob_qg", 500), ("blob_qg", 1000))
# The paper preset adds the paper's Table 4 PQGD_200 (after PQGD_100).
FASHION_PAPER_TABLE_METHODS = (FASHION_TABLE_METHODS[:2] + (("pqgd", 200),)
                               + FASHION_TABLE_METHODS[2:])
FIGURE3_METHODS = (("pgd", None), ("pqgd", 100), ("pqgd", 1000))
FIGURE3_EPSILONS = {"mnist": (0.1, 0.15, 0.2, 0.25, 0.3), "fashion_mnist": (0.1, 0.15, 0.2)}
FIGURE4_METHODS = (("pgd", None), ("pqgd", 100), ("pqgd", 500), ("pqgd", 1000))
FIGURE4_STEPS = (20, 40, 60, 80, 100)
SWEEP_BS = (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000)
# CIFAR-10: Table 6 (100 steps) and Figure 5 (accuracy vs steps), each at both eps (0-255).
CIFAR10_EPSILONS = (8.0, 16.0)
TABLE6_METHODS = (("pgd", None), ("pqgd", 100), ("pqgd", 200), ("pqgd", 500), ("pqgd", 1000))
TABLE6_STEPS = 100
FIGURE5_METHODS = (("pgd", None), ("pqgd", 100), ("pqgd", 500), ("pqgd", 1000))
FIGURE5_STEPS = (10, 20, 30, 40, 100)
SWEEP_STEPS = (20, 100)
# The paper's Table 3 baselines: its row label -> (method, loss) of the attack that implements
# it. Their cells (200 steps, one attack per restart) are computed only when asked
# (``Sizes.table3_baselines``); otherwise Table 3 reads them when stored and else marks them
# pending.
TABLE3_BASELINES = {"Interval Attack": ("interval", "xent"),
                    "Surrogate": ("multitargeted", "logit_margin")}
# Methods that the long MNIST cells hold (every b another artifact asks for at eps 0.3).
MNIST_LONG_METHODS = (("pgd", None), ("pqgd", 100), ("pqgd", 200), ("pqgd", 500),
                      ("pqgd", 1000), ("blob", None), ("blob_qg", 100), ("blob_qg", 200))

ARTIFACT_NAMES = ("table2", "table3", "table4", "table5", "figure2", "figure3", "figure4",
                  "figure4b",
                  "sweep_b", "table6", "figure5")
# The datasets each artifact attacks.
ARTIFACT_DATASETS = {"table2": ("mnist",), "table3": ("mnist",), "table4": ("fashion_mnist",),
                     "table5": ("fashion_mnist",), "figure2": ("mnist",),
                     "figure3": ("mnist", "fashion_mnist"), "figure4": ("mnist",),
                     "figure4b": ("fashion_mnist",),
                     "sweep_b": ("mnist",), "table6": ("cifar10",), "figure5": ("cifar10",)}


@dataclass(frozen=True)
class ArtifactSizes:
    """A preset's sizes for one artifact: images per dataset, runs, restarts merged per run."""

    examples: dict[str, int]
    runs: int
    restarts: int


@dataclass(frozen=True)
class Preset:
    """Named sizes for every artifact, the eps of each dataset's tables, Fashion's methods."""

    name: str
    epsilons: dict[str, float]
    artifacts: dict[str, ArtifactSizes]
    fashion_table_methods: tuple = FASHION_TABLE_METHODS
    # Milestones of the long cells where they differ from ``SETUPS`` (the quick preset keeps
    # the milestones its shipped cells were computed with).
    long_milestones: dict[str, tuple[int, ...]] = field(default_factory=dict)
    # Shipped model folder (under models/pretrained) per dataset where the preset's eps needs
    # another model than the dataset's default (e.g. Fashion-MNIST at eps 0.2).
    model_folders: dict[str, str] = field(default_factory=dict)


def _preset(name, epsilons, mnist, fashion, figures_mnist, table3_restarts, table5_restarts,
            fashion_methods, cifar10, long_milestones=None, model_folders=None) -> Preset:
    runs5 = {"runs": 5, "restarts": 1}
    return Preset(name, epsilons, {
        "table2": ArtifactSizes({"mnist": mnist}, **runs5),
        "table3": ArtifactSizes({"mnist": mnist}, runs=1, restarts=table3_restarts),
        "table4": ArtifactSizes({"fashion_mnist": fashion}, **runs5),
        "table5": ArtifactSizes({"fashion_mnist": fashion}, runs=1, restarts=table5_restarts),
        "figure2": ArtifactSizes({"mnist": figures_mnist}, runs=1, restarts=1),
        "figure3": ArtifactSizes({"mnist": figures_mnist, "fashion_mnist": fashion}, **runs5),
        "figure4": ArtifactSizes({"mnist": figures_mnist}, **runs5),
        "figure4b": ArtifactSizes({"fashion_mnist": fashion}, **runs5),
        "sweep_b": ArtifactSizes({"mnist": figures_mnist}, **runs5),
        # The paper: one run of each attack, no restarts.
        "table6": ArtifactSizes({"cifar10": cifar10}, runs=1, restarts=1),
        "figure5": ArtifactSizes({"cifar10": cifar10}, runs=1, restarts=1),
    }, fashion_methods, dict(long_milestones or {}), dict(model_folders or {}))


PRESETS = {
    # 2-core CPU: every MNIST artifact shares Table 2's 300-image cells.
    # CIFAR-10: 200 images (minutes on a GPU; the wide ResNet is far too slow for a CPU).
    "quick": _preset("quick", {"mnist": 0.3, "fashion_mnist": 0.1, "cifar10": 8.0}, mnist=300,
                     fashion=200, figures_mnist=300, table3_restarts=5, table5_restarts=5,
                     fashion_methods=FASHION_TABLE_METHODS, cifar10=200),
    # The paper's protocol (Table 3: 5 restarts merged from Table 2's runs, not its 50).
    # CIFAR-10: all 10,000 test images, one run (the paper's Table 6 and Figure 5).
    "paper": _preset("paper", {"mnist": 0.3, "fashion_mnist": 0.2, "cifar10": 8.0}, mnist=4000,
                     fashion=2000, figures_mnist=1000, table3_restarts=5, table5_restarts=10,
                     fashion_methods=FASHION_PAPER_TABLE_METHODS, cifar10=10000,
                     # Figure 4b (Fashion-MNIST, 20-100 steps) reads Table 4's attacks.
                     long_milestones={"fashion_mnist": (20, 40, 60, 80, 100, 200)},
                     # The paper's Fashion-MNIST regime: the model trained at eps 0.2.
                     model_folders={"fashion_mnist": "daa_fashion_eps02"}),
}


@dataclass(frozen=True)
class Sizes:
    """How much one artifact computes: images per dataset, runs, restarts, eps per dataset."""

    examples: dict[str, int]
    runs: int = 5
    restarts: int = 1
    seed: int = 0
    batch_size: int = 200
    preset: str = "quick"
    epsilons: dict[str, float] = field(default_factory=lambda: dict(PRESETS["quick"].epsilons))
    num_examples_override: int | None = None
    table3_baselines: bool = False

    def n(self, dataset: str) -> int:
        return self.examples[dataset]

    def epsilon(self, dataset: str) -> float:
        """The eps of ``dataset``'s tables (its long cells)."""
        return self.epsilons[dataset]

    @property
    def fashion_table_methods(self) -> tuple:
        return PRESETS[self.preset].fashion_table_methods

    def long_milestones(self, dataset: str) -> tuple[int, ...]:
        """The milestones of ``dataset``'s long cells under this preset."""
        return PRESETS[self.preset].long_milestones.get(dataset, SETUPS[dataset].long_milestones)


def sizes_for(artifact: str, preset: str = "quick", *, num_examples: int | None = None,
              runs: int | None = None, restarts: int | None = None, seed: int = 0,
              batch_size: int = 200, table3_baselines: bool = False) -> Sizes:
    """``artifact``'s sizes under ``preset``; a given ``num_examples`` / ``runs`` /
    ``restarts`` overrides the preset's (``num_examples`` for every dataset);
    ``table3_baselines`` computes Table 3's Interval Attack and Surrogate cells."""
    if preset not in PRESETS:
        raise ValueError(f"preset must be one of {', '.join(PRESETS)}, got {preset!r}")
    chosen = PRESETS[preset]
    own = chosen.artifacts[artifact]
    examples = {ds: own.examples[ds] if num_examples is None else num_examples
                for ds in ARTIFACT_DATASETS[artifact]}
    return Sizes(examples=examples, runs=own.runs if runs is None else runs,
                 restarts=own.restarts if restarts is None else restarts, seed=seed,
                 batch_size=batch_size, preset=preset, epsilons=dict(chosen.epsilons),
                 num_examples_override=num_examples, table3_baselines=table3_baselines)


def shared_with(name: str, sizes: Sizes) -> list[str]:
    """The other artifacts (same preset, images, seed and batch size) that read at least one
    of ``name``'s cells: their numbers come from the same attacks."""
    own = {c for c, _ in artifact_cells(name, sizes)}
    others = []
    for other in ARTIFACT_NAMES:
        if other == name:
            continue
        other_sizes = sizes_for(other, sizes.preset, num_examples=sizes.num_examples_override,
                                seed=sizes.seed, batch_size=sizes.batch_size)
        if own & {c for c, _ in artifact_cells(other, other_sizes)}:
            others.append(other)
    return others


def spec(dataset: str, method: str, b: float | None, num_examples: int, *,
         epsilon: float | None = None, steps: int = 200, seed: int = 0,
         batch_size: int = 200, home_epsilon: float | None = None,
         long_milestones: tuple[int, ...] | None = None) -> CellSpec:
    """The cell for one attack setting; settings other artifacts share map to shared cells.

    At the tables' eps ``home_epsilon`` (default: the quick preset's), a
    pgd/pqgd/blob/blob_qg setting with at most 200 steps whose milestones the long cells hold
    is read from the long cell (``long_milestones``, default the dataset's ``SETUPS``).
    ``pqgd`` with ``b = 1`` is PGD step for step (the quantizer's b = 1 is the sign), so it
    is read from the PGD cell.
    """
    setup = SETUPS[dataset]
    long = setup.long_milestones if long_milestones is None else tuple(long_milestones)
    home = setup.epsilon if home_epsilon is None else home_epsilon
    eps = home if epsilon is None else epsilon
    if method == "pqgd" and b == 1:
        method, b = "pgd", None
    long_cell = eps == home and steps in long and _in_long_family(dataset, method, b)
    milestones = long if long_cell else _milestones_up_to(steps, dataset)
    return CellSpec(dataset=dataset, method=method, b=None if b is None else float(b),
                    epsilon=float(eps), step_size=setup.step_size, milestones=milestones,
                    num_examples=num_examples, seed=seed, batch_size=batch_size)


def _in_long_family(dataset: str, method: str, b) -> bool:
    family = MNIST_LONG_METHODS if dataset == "mnist" else FASHION_PAPER_TABLE_METHODS
    return (method, None if b is None else int(b)) in family


def _milestones_up_to(steps: int, dataset: str) -> tuple[int, ...]:
    """Milestones of a cell outside the long family: the sweep's 20 and the final step."""
    if dataset == "mnist" and steps == 100:
        return SWEEP_STEPS
    return (steps,)


def _spec(sizes: Sizes, dataset: str, method: str, b, *, steps: int,
          epsilon: float | None = None) -> CellSpec:
    return spec(dataset, method, b, sizes.n(dataset), epsilon=epsilon, steps=steps,
                seed=sizes.seed, batch_size=sizes.batch_size,
                home_epsilon=sizes.epsilon(dataset),
                long_milestones=sizes.long_milestones(dataset))


def table_methods(name: str, sizes: Sizes) -> tuple:
    """The ``(method, b)`` rows of Table ``name``, PGD first."""
    return TABLE2_METHODS if name in ("table2", "table3") else sizes.fashion_table_methods


TABLE_STEPS = {"table2": 200, "table3": 200, "table4": 100, "table5": 200}


def table_specs(name: str, sizes: Sizes) -> list[CellSpec]:
    dataset = ARTIFACT_DATASETS[name][0]
    return [_spec(sizes, dataset, m, b, steps=TABLE_STEPS[name])
            for m, b in table_methods(name, sizes)]


def table3_baseline_specs(sizes: Sizes) -> dict[str, CellSpec]:
    """Table 3's baselines (paper label -> cell): 200 steps at the MNIST tables' eps."""
    setup = SETUPS["mnist"]
    return {label: CellSpec(dataset="mnist", method=method, epsilon=float(sizes.epsilon("mnist")),
                            step_size=setup.step_size, milestones=(TABLE_STEPS["table3"],),
                            num_examples=sizes.n("mnist"), loss=loss, seed=sizes.seed,
                            batch_size=sizes.batch_size)
            for label, (method, loss) in TABLE3_BASELINES.items()}


def figure3_epsilons(dataset: str, sizes: Sizes) -> tuple[float, ...]:
    """The eps grid of Figure 3's ``dataset`` panel, with the tables' eps included."""
    return tuple(sorted(set(FIGURE3_EPSILONS[dataset]) | {sizes.epsilon(dataset)}))


def figure3_specs(dataset: str, sizes: Sizes) -> list[CellSpec]:
    return [_spec(sizes, dataset, m, b, epsilon=eps, steps=100)
            for eps in figure3_epsilons(dataset, sizes) for m, b in FIGURE3_METHODS]


def figure4_specs(sizes: Sizes, dataset: str = "mnist") -> list[CellSpec]:
    """Figure 4's (``dataset="fashion_mnist"``: Figure 4b's) cells, PGD first, each scored at
    every ``FIGURE4_STEPS`` count: the long cells where they hold those milestones (MNIST; the
    paper preset's Fashion-MNIST), else cells of their own scored at 20-100 steps."""
    specs = [_spec(sizes, dataset, m, b, steps=100) for m, b in FIGURE4_METHODS]
    return [c if set(FIGURE4_STEPS) <= set(c.milestones)
            else dataclasses.replace(c, milestones=FIGURE4_STEPS) for c in specs]


def sweep_specs(sizes: Sizes) -> list[CellSpec]:
    return [_spec(sizes, "mnist", "pqgd", b, steps=100) for b in SWEEP_BS]


def cifar10_spec(sizes: Sizes, method: str, b, epsilon: float) -> CellSpec:
    """A CIFAR-10 cell: 100 steps of 2 at ``epsilon`` (0-255), scored at every Figure 5 step
    count, so Table 6 and Figure 5 read the same attacks."""
    setup = SETUPS["cifar10"]
    return CellSpec(dataset="cifar10", method=method, b=None if b is None else float(b),
                    epsilon=float(epsilon), step_size=setup.step_size,
                    milestones=setup.long_milestones, num_examples=sizes.n("cifar10"),
                    seed=sizes.seed, batch_size=sizes.batch_size,
                    bounds=protocol("cifar10").bounds)


def table6_specs(sizes: Sizes) -> list[CellSpec]:
    """Per eps (8, then 16), the Table 6 methods, PGD first."""
    return [cifar10_spec(sizes, m, b, eps) for eps in CIFAR10_EPSILONS for m, b in TABLE6_METHODS]


def figure5_specs(sizes: Sizes) -> list[CellSpec]:
    return [cifar10_spec(sizes, m, b, eps) for eps in CIFAR10_EPSILONS for m, b in FIGURE5_METHODS]


def artifact_cells(name: str, sizes: Sizes) -> list[tuple[CellSpec, int]]:
    """Every cell artifact ``name`` reads, with the attacks it needs (runs x restarts; 0 for
    a cell read only if stored: Table 3's baselines unless ``sizes.table3_baselines``)."""
    if name == "table3":
        baselines = sizes.runs * sizes.restarts if sizes.table3_baselines else 0
        return ([(c, sizes.runs * sizes.restarts) for c in table_specs(name, sizes)]
                + [(c, baselines) for c in table3_baseline_specs(sizes).values()])
    if name in TABLE_STEPS:
        specs = table_specs(name, sizes)
    elif name == "figure3":
        specs = [c for ds in ARTIFACT_DATASETS[name] for c in figure3_specs(ds, sizes)]
    elif name == "figure4":
        specs = figure4_specs(sizes)
    elif name == "figure4b":
        specs = figure4_specs(sizes, "fashion_mnist")
    elif name == "sweep_b":
        specs = sweep_specs(sizes)
    elif name == "table6":
        specs = table6_specs(sizes)
    elif name == "figure5":
        specs = figure5_specs(sizes)
    elif name == "figure2":
        specs = []  # gradients at the clean images, computed while rendering
    else:
        raise KeyError(f"no artifact {name!r}")
    return [(c, sizes.runs * sizes.restarts) for c in specs]
