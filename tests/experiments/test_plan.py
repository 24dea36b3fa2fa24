"""The artifacts share cells where their settings coincide, and each reads only what it stores."""
import pytest

from experiments import plan
from experiments.artifacts import ARTIFACTS


def test_mnist_artifacts_at_eps_03_share_one_cell_per_method():
    sizes = plan.sizes_for("figure3")
    table = {(c.method, c.b): c for c in plan.table_specs("table2", plan.sizes_for("table2"))}
    fig4 = {(c.method, c.b): c for c in plan.figure4_specs(sizes)}
    sweep = {(c.method, c.b): c for c in plan.sweep_specs(sizes)}
    fig3 = {(c.method, c.b): c for c in plan.figure3_specs("mnist", sizes) if c.epsilon == 0.3}
    assert fig4[("pgd", None)] == table[("pgd", None)] == sweep[("pgd", None)] == fig3[("pgd", None)]
    assert fig4[("pqgd", 100.0)] == table[("pqgd", 100.0)] == sweep[("pqgd", 100.0)] == fig3[("pqgd", 100.0)]
    assert fig4[("pqgd", 1000.0)] == sweep[("pqgd", 1000.0)] == fig3[("pqgd", 1000.0)]


def test_sweep_b1_is_read_from_the_pgd_cell():
    specs = plan.sweep_specs(plan.sizes_for("sweep_b", num_examples=50))
    assert specs[0] == plan.spec("mnist", "pgd", None, 50, steps=100)
    assert len(set(specs)) == len(plan.SWEEP_BS)


def test_fashion_tables_4_and_5_share_their_cells():
    # quick: the shipped cells' milestones; paper: also 20-80 steps, for Figure 4b.
    for preset, eps, milestones in (("quick", 0.1, (100, 200)),
                                    ("paper", 0.2, (20, 40, 60, 80, 100, 200))):
        t4 = plan.table_specs("table4", plan.sizes_for("table4", preset))
        t5 = plan.table_specs("table5", plan.sizes_for("table5", preset))
        assert t4 == t5
        assert all(c.epsilon == eps and c.milestones == milestones for c in t4)


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
    from experiments.common import Target
    artifact = ARTIFACTS[name]
    sizes = plan.sizes_for(name, num_examples=10, runs=2, restarts=1)
    targets = {ds: Target(ds, None, "m", None, None, "d", {}, "data") for ds in artifact.datasets}
    needed = {"table2": [200], "table3": [200], "table4": [100], "table5": [200],
              "figure3": [100], "figure4": list(plan.FIGURE4_STEPS),
              "figure4b": list(plan.FIGURE4_STEPS), "sweep_b": list(plan.SWEEP_STEPS),
              "figure2": [], "table6": [plan.TABLE6_STEPS],
              "figure5": list(plan.FIGURE5_STEPS)}[name]
    optional = set(plan.table3_baseline_specs(sizes).values()) if name == "table3" else set()
    for _, cell, attacks in artifact.jobs(targets, sizes):
        assert attacks == (0 if cell in optional else 2)  # baselines: read only if stored
        assert set(needed) <= set(cell.milestones), (cell.label, cell.milestones)


def test_blob_milestones_must_follow_the_regrouping_schedule():
    from experiments.cells import CellSpec
    with pytest.raises(ValueError, match="multiples of steps_per_group"):
        CellSpec(dataset="mnist", method="blob", epsilon=0.3, step_size=0.01, milestones=(15, 30),
                 num_examples=10)
    with pytest.raises(ValueError, match="strictly increasing"):
        CellSpec(dataset="mnist", method="pgd", epsilon=0.3, step_size=0.01, milestones=(20, 20),
                 num_examples=10)


def _planned(name, preset):
    """``{(dataset, label, eps): (images, attacks, milestones)}`` of an artifact's plan."""
    sizes = plan.sizes_for(name, preset)
    return {(c.dataset, c.label, c.epsilon): (c.num_examples, k, c.milestones)
            for c, k in plan.artifact_cells(name, sizes)}


MNIST_LONG = (20, 40, 60, 80, 100, 200)


def test_the_paper_preset_plans_table2_and_3_on_4000_mnist_images_5_runs_200_steps():
    expected = {("mnist", label, 0.3): (4000, 5, MNIST_LONG)
                for label in ("PGD", "PQGD_100", "PQGD_200", "BLOB", "BLOB_QG_100", "BLOB_QG_200")}
    assert _planned("table2", "paper") == expected
    # 1 run x 5 restarts: the same 5 attacks; the baselines' cells are read only if stored.
    assert _planned("table3", "paper") == {
        **expected, ("mnist", "Interval", 0.3): (4000, 0, (200,)),
        ("mnist", "MultiTargeted", 0.3): (4000, 0, (200,))}


def test_the_paper_preset_plans_fashion_at_eps_02_on_2000_images_with_10_restarts():
    labels = ("PGD", "PQGD_100", "PQGD_200", "PQGD_1000", "BLOB", "BLOB_QG_100", "BLOB_QG_200",
              "BLOB_QG_500", "BLOB_QG_1000")
    long = (20, 40, 60, 80, 100, 200)
    assert _planned("table4", "paper") == {("fashion_mnist", l, 0.2): (2000, 5, long)
                                           for l in labels}
    assert _planned("table5", "paper") == {("fashion_mnist", l, 0.2): (2000, 10, long)
                                           for l in labels}
    fig3 = _planned("figure3", "paper")
    fashion = {k: v for k, v in fig3.items() if k[0] == "fashion_mnist"}
    assert {k[2] for k in fashion} == {0.1, 0.15, 0.2}
    assert all(n == 2000 and k == 5 for n, k, _ in fashion.values())
    assert fashion[("fashion_mnist", "PGD", 0.2)] == (2000, 5, long)  # Table 4's cell
    # Figure 4b at eps 0.2 on 2,000 images: Table 4's attacks, and PQGD_500 of its own.
    table4 = {c for c, _ in plan.artifact_cells("table4", plan.sizes_for("table4", "paper"))}
    fig4b = plan.artifact_cells("figure4b", plan.sizes_for("figure4b", "paper"))
    assert [c.label for c, _ in fig4b] == ["PGD", "PQGD_100", "PQGD_500", "PQGD_1000"]
    assert all(c.epsilon == 0.2 and c.num_examples == 2000 and k == 5 for c, k in fig4b)
    assert [c in table4 for c, _ in fig4b] == [True, True, False, True]
    assert fig4b[2][0].milestones == plan.FIGURE4_STEPS


def test_the_paper_preset_plans_the_sweep_and_figures_on_1000_mnist_images():
    sweep = _planned("sweep_b", "paper")
    assert {k[1] for k in sweep} == {"PGD"} | {f"PQGD_{b}" for b in plan.SWEEP_BS[1:]}
    assert all(n == 1000 and k == 5 and {20, 100} <= set(m) for n, k, m in sweep.values())
    assert all(n == 1000 for n, _, _ in _planned("figure4", "paper").values())
    mnist3 = {k: v for k, v in _planned("figure3", "paper").items() if k[0] == "mnist"}
    assert {k[2] for k in mnist3} == {0.1, 0.15, 0.2, 0.25, 0.3}
    assert all(n == 1000 for n, _, _ in mnist3.values())
    assert plan.sizes_for("figure2", "paper").n("mnist") == 1000


def test_the_quick_preset_keeps_the_shipped_sizes():
    assert all(n == 300 and k == 5 for n, k, _ in _planned("table2", "quick").values())
    assert all(n == 200 and k == 5 and eps == 0.1
               for (_, _, eps), (n, k, _) in _planned("table5", "quick").items())
    assert "PQGD_200" not in {k[1] for k in _planned("table4", "quick")}


def test_explicit_sizes_override_the_preset():
    sizes = plan.sizes_for("table5", "paper", num_examples=7, runs=2, restarts=3)
    assert (sizes.n("fashion_mnist"), sizes.runs, sizes.restarts) == (7, 2, 3)
    assert sizes.epsilon("fashion_mnist") == 0.2
    with pytest.raises(ValueError, match="preset must be one of"):
        plan.sizes_for("table2", "huge")


def test_shared_cells_are_found_across_artifacts():
    assert set(plan.shared_with("table2", plan.sizes_for("table2"))) == {
        "table3", "figure3", "figure4", "sweep_b"}
    # The paper preset attacks 4,000 images in Table 2 and 1,000 in the figures: not shared.
    assert plan.shared_with("table2", plan.sizes_for("table2", "paper")) == ["table3"]


def test_cifar10_table6_and_figure5_share_100_step_cells_on_the_0_255_scale():
    for preset, n in (("quick", 200), ("paper", 10000)):
        table6 = plan.artifact_cells("table6", plan.sizes_for("table6", preset))
        figure5 = plan.artifact_cells("figure5", plan.sizes_for("figure5", preset))
        assert {c for c, _ in figure5} <= {c for c, _ in table6}
        assert all(k == 1 for _, k in table6)  # the paper: one run, no restarts
        cells = [c for c, _ in table6]
        assert {(c.label, c.epsilon) for c in cells} == {
            (label, eps) for eps in (8.0, 16.0)
            for label in ("PGD", "PQGD_100", "PQGD_200", "PQGD_500", "PQGD_1000")}
        assert all(c.num_examples == n and c.bounds == (0.0, 255.0) and c.step_size == 2.0
                   and c.milestones == (10, 20, 30, 40, 100) for c in cells)
    assert plan.shared_with("table6", plan.sizes_for("table6")) == ["figure5"]


def test_default_bounds_leave_the_keys_of_mnist_cells_as_they_were():
    import dataclasses
    import hashlib
    import json
    from experiments.cells import CELL_FORMAT
    cell = plan.spec("mnist", "pgd", None, 300)
    # The key as it was computed before cells had bounds: every other field, nothing more.
    fields = {k: v for k, v in dataclasses.asdict(cell).items() if k != "bounds"}
    record = json.dumps({"format": CELL_FORMAT, "model": "m", "data": "d", **fields},
                        sort_keys=True)
    old = f"mnist-PGD-eps0.3-200steps-{hashlib.sha256(record.encode()).hexdigest()[:16]}"
    assert cell.key("m", "d") == old
    other = dataclasses.replace(cell, bounds=(0.0, 255.0))
    assert other.record()["bounds"] == [0.0, 255.0]
    assert other.key("m", "d") != cell.key("m", "d")


def test_the_paper_preset_attacks_fashion_on_the_eps_02_model_and_a_given_model_wins():
    import json
    from pathlib import Path

    from experiments.common import preset_model_dir
    folder = Path(preset_model_dir("fashion_mnist", "paper", None))
    assert folder.name == "daa_fashion_eps02"
    # the model the preset names was trained at the preset's eps
    trained_at = json.loads((folder / "config.json").read_text())["epsilon"]
    assert trained_at == pytest.approx(plan.PRESETS["paper"].epsilons["fashion_mnist"])
    assert preset_model_dir("fashion_mnist", "quick", None) is None
    assert preset_model_dir("mnist", "paper", None) is None
    assert preset_model_dir("fashion_mnist", "paper", "elsewhere") == "elsewhere"
