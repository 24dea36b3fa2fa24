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
