"""bench.strength_tuning's choice: per budget, the lowest accuracy measured there."""
from bench.strength_tuning import CANDIDATES, choose

NAMES = list(CANDIDATES)


def entry(**budgets):
    return {"members": [], "budgets": {b[1:]: {"accuracy": acc, "passes_per_example": passes}
                                       for b, (acc, passes) in budgets.items()}}


def test_each_budget_gets_the_candidate_lowest_there_among_those_measured_there():
    cands = {NAMES[0]: entry(b10=(0.80, 10.0), b100=(0.70, 99.0)),
             NAMES[1]: entry(b10=(0.81, 10.0), b100=(0.69, 98.0)),
             NAMES[2]: entry(b100=(0.60, 90.0), b30=(0.5, 30.0))}
    assert choose(cands, 10) == NAMES[0]
    assert choose(cands, 100) == NAMES[2]
    assert choose(cands, 30) == NAMES[2]
    assert choose(cands, 50) is None


def test_ties_go_to_fewer_passes_then_to_the_earlier_candidate():
    # inserted out of CANDIDATES' order: the order of CANDIDATES decides, not the file's
    cands = {NAMES[3]: entry(b10=(0.80, 9.0)), NAMES[1]: entry(b10=(0.80, 9.5)),
             NAMES[2]: entry(b10=(0.80, 9.0))}
    assert choose(cands, 10) == NAMES[2]
    cands[NAMES[2]]["budgets"]["10"]["passes_per_example"] = 9.5
    assert choose(cands, 10) == NAMES[3]


def seeded(**budgets):
    """Cells with runs per seed: ``b100={0: acc, 1: acc}`` (passes = the budget)."""
    return {"members": [], "budgets": {
        b[1:]: {"runs": {str(s): {"accuracy": acc, "passes_per_example": float(b[1:])}
                         for s, acc in runs.items()}} for b, runs in budgets.items()}}


def test_over_seeds_the_lowest_mean_wins_and_a_candidate_missing_a_seed_is_left_out():
    cands = {NAMES[0]: seeded(b100={0: 0.70, 1: 0.74}),    # mean 0.72
             NAMES[1]: seeded(b100={0: 0.72, 1: 0.71}),    # mean 0.715: lowest
             NAMES[2]: seeded(b100={0: 0.60})}             # best at seed 0, not run at 1
    assert choose(cands, 100, [0, 1]) == NAMES[1]
    assert choose(cands, 100, [0]) == NAMES[2]
    assert choose(cands, 100, [1]) == NAMES[1]
    assert choose(cands, 100, [2]) is None


def test_a_cell_saved_before_seeds_counts_as_seed_0():
    cands = {NAMES[0]: entry(b100=(0.70, 100.0)), NAMES[1]: seeded(b100={0: 0.71, 1: 0.60})}
    assert choose(cands, 100, [0]) == NAMES[0]
    assert choose(cands, 100, [0, 1]) == NAMES[1]


def test_the_default_plan_is_what_the_shipped_tuning_chose_at_each_budget():
    """attacks.ensemble.DEFAULT_PLAN states the members bench/strength_tuning.json chose."""
    import json
    from pathlib import Path
    from attacks.ensemble import DEFAULT_PLAN
    tuning = json.loads((Path(__file__).parents[2] / "bench" / "strength_tuning.json").read_text())
    chosen = tuning["chosen"]
    assert sorted(int(b) for b in chosen) == [b for b, _ in DEFAULT_PLAN]
    for budget, members in DEFAULT_PLAN:
        name = chosen[str(budget)]
        assert choose(tuning["candidates"], budget, tuning["chosen_over_seeds"]) == name
        assert [m.record() for m in members] == tuning["candidates"][name]["members"]
        assert [m.record() for m in members] == [m.record() for m in CANDIDATES[name]]
