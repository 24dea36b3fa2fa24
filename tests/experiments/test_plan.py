"""The artifacts share cells where their settings coincide, and each reads only what it stores."""
import pytest

from experiments import plan
from experiments.artifacts import ARTIFACTS


def test_mnist_artifacts_at_eps_03_share_one_cell_per_method():
    n = 300
    table = {(c.method, c.b): c for c in plan.table_specs("mnist", plan.TABLE2_METHODS, n, 0, 200)}
    fig4 = {(c.method, c.b): c for c in plan.figure4_specs(n, 0, 200)}
    sweep = {(c.method, c.b): c for c in plan.sweep_specs(n, 0, 200)}
    fig3 = {(c.method, c.b): c for c in plan.figure3_specs("mnist", n, 0, 200) if c.epsilon == 0.3}
    assert fig4[("pgd", None)] == table[("pgd", None)] == sweep[("pgd", None)] == fig3[("pgd", None)]
    assert fig4[("pqgd", 100.0)] == table[("pqgd", 100.0)] == sweep[("pqgd", 100.0)] == fig3[("pqgd", 100.0)]
    assert fig4[("pqgd", 1000.0)] == sweep[("pqgd", 1000.0)] == fig3[("pqgd", 1000.0)]


def test_sweep_b1_is_read_from_the_pgd_cell():
    specs = plan.sweep_specs(50, 0, 200)
    assert specs[0] == plan.spec("mnist", "pgd", None, 50, steps=100)
    assert len(set(specs)) == len(plan.SWEEP_BS)


def test_fashion_tables_4_and_5_share_their_cells():
    t4 = plan.table_specs("fashion_mnist", plan.FASHION_TABLE_METHODS, 200, 0, 200, steps=100)
    t5 = plan.table_specs("fashion_mnist", plan.FASHION_TABLE_METHODS, 200, 0, 200, steps=200)
    assert t4 == t5
    assert all(c.epsilon == 0.1 and c.milestones == (100, 200) for c in t4)


def test_cells_differ_when_what_determines_the_result_differs():
    base = plan.spec("mnist", "pqgd", 100, 300)
    assert base.key("m1", "d1") != base.key("m2", "d1")  # other weights
    assert base.key("m1", "d1") != base.key("m1", "d2")  # other images
    for other in (plan.spec("mnist", "pqgd", 200, 300), plan.spec("mnist", "pqgd", 100, 301),
                  plan.spec("mnist", "pqgd", 100, 300, seed=1),
                  plan.spec("mnist", "pqgd", 100, 300, epsilon=0.2, steps=100)):
        assert other.key("m1", "d1") != base.key("m1", "d1")
    assert plan.spec("mnist", "pqgd", 100, 300).key("m1", "d1") == base.key("m1", "d1")


@pytest.mark.parametrize("name", sorted(ARTIFACTS))
def test_every_artifact_reads_only_milestones_its_cells_store(name):
    from experiments.artifacts import Sizes
    from experiments.common import Target
    artifact = ARTIFACTS[name]
    sizes = Sizes(num_examples=10, runs=2, restarts=1)
    targets = {ds: Target(ds, None, "m", None, None, "d", {}, "data") for ds in artifact.datasets}
    needed = {"table2": [200], "table3": [200], "table4": [100], "table5": [200],
              "figure3": [100], "figure4": list(plan.FIGURE4_STEPS), "sweep_b": list(plan.SWEEP_STEPS),
              "figure2": []}[name]
    for _, cell, attacks in artifact.jobs(targets, sizes):
        assert attacks == 2
        assert set(needed) <= set(cell.milestones), (cell.label, cell.milestones)


def test_blob_milestones_must_follow_the_regrouping_schedule():
    from experiments.cells import CellSpec
    with pytest.raises(ValueError, match="multiples of steps_per_group"):
        CellSpec(dataset="mnist", method="blob", epsilon=0.3, step_size=0.01, milestones=(15, 30),
                 num_examples=10)
    with pytest.raises(ValueError, match="strictly increasing"):
        CellSpec(dataset="mnist", method="pgd", epsilon=0.3, step_size=0.01, milestones=(20, 20),
                 num_examples=10)
