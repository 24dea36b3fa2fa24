"""bench.strength_tuning's choice: per budget, the lowest accuracy measured there."""
from bench.strength_tuning import CANDIDATES, choose, render_choice, scores

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


def test_the_default_plan_is_what_the_shipped_tuning_chose_over_both_datasets_at_each_budget():
    """attacks.ensemble.DEFAULT_PLAN states the members bench/strength_tuning_choice.json
    chose over the MNIST and Fashion-MNIST tuning files, and that choice follows from them."""
    import json
    from pathlib import Path
    from attacks.ensemble import DEFAULT_PLAN
    root = Path(__file__).parents[2]
    choice = json.loads((root / "bench" / "strength_tuning_choice.json").read_text())
    tunings = [json.loads((root / f).read_text()) for f in choice["files"]]
    assert sorted(t["settings"]["dataset"] for t in tunings) == ["fashion_mnist", "mnist"]
    assert all((t["settings"]["start"], t["settings"]["n"]) == (0, 1000) for t in tunings)
    assert sorted(int(b) for b in choice["chosen"]) == [b for b, _ in DEFAULT_PLAN]
    for budget, members in DEFAULT_PLAN:
        name = choice["chosen"][str(budget)]
        assert choose([t["candidates"] for t in tunings], budget, choice["seeds"]) == name
        for t in tunings:
            assert [m.record() for m in members] == t["candidates"][name]["members"]
        assert [m.record() for m in members] == [m.record() for m in CANDIDATES[name]]


def test_over_several_files_the_lowest_mean_of_the_files_means_wins_among_those_in_every_file():
    mnist = {NAMES[0]: seeded(b30={0: 0.80, 1: 0.82}),     # file mean 0.81
             NAMES[1]: seeded(b30={0: 0.805, 1: 0.805}),   # 0.805: MNIST's own choice
             NAMES[2]: seeded(b30={0: 0.50, 1: 0.50})}     # lowest, but only in one file
    fashion = {NAMES[0]: seeded(b30={0: 0.60, 1: 0.62}),   # 0.61: joint (0.81 + 0.61) / 2 = 0.71
               NAMES[1]: seeded(b30={0: 0.62, 1: 0.62})}   # 0.62: joint 0.7125
    assert choose(mnist, 30, [0, 1]) == NAMES[2]
    assert choose({n: mnist[n] for n in NAMES[:2]}, 30, [0, 1]) == NAMES[1]
    assert choose([mnist, fashion], 30, [0, 1]) == NAMES[0]
    acc, passes = scores([mnist, fashion], 30, [0, 1])[NAMES[0]]
    assert abs(acc - (0.81 + 0.61) / 2) < 1e-12 and passes == 30.0
    assert set(scores([mnist, fashion], 30, [0, 1])) == {NAMES[0], NAMES[1]}
    assert choose([mnist, fashion], 30, [0, 1, 2]) is None


def test_the_choice_table_marks_the_chosen_candidate_and_unmeasured_cells():
    def tuning(cands, dataset):
        return {"settings": {"dataset": dataset, "model_dir": "m", "epsilon": 0.3, "start": 0,
                             "n": 1000},
                "date": "2026-12-07", "machine": {"cpu": "AMD EPYC"}, "commit": "abc",
                "candidates": cands}
    mnist = {NAMES[0]: seeded(b10={0: 0.80}), NAMES[1]: seeded(b10={0: 0.79})}
    fashion = {NAMES[0]: seeded(b10={0: 0.60}), NAMES[1]: seeded(b10={0: 0.62})}
    text = render_choice([tuning(mnist, "mnist"), tuning(fashion, "fashion_mnist")], [0],
                         ["MNIST", "Fashion-MNIST"])
    rows = {line.split("|")[1].strip(): line for line in text.splitlines()
            if line.startswith("| ") and "budget" not in line}
    assert rows[f"**{NAMES[0]}**"].replace(" ", "").endswith("|10|80.00|60.00|70.00|")
    assert rows[NAMES[1]].replace(" ", "").endswith("|10|79.00|62.00|70.50|")
    text = render_choice([tuning({**mnist, NAMES[2]: seeded(b10={0: 0.1})}, "mnist"),
                          tuning(fashion, "fashion_mnist")], [0], ["MNIST", "Fashion-MNIST"])
    row = next(line for line in text.splitlines() if line.startswith(f"| {NAMES[2]} "))
    assert row.replace(" ", "").endswith("|10|10.00|-|-|")


def test_choose_refuses_an_md_whose_json_would_overwrite_a_tuning_file(tmp_path, capsys):
    import pytest
    from bench.strength_tuning import parse_args
    tuning = tmp_path / "t.json"
    tuning.write_text("{}")
    with pytest.raises(SystemExit):
        parse_args(["--choose", str(tuning), "--md", str(tmp_path / "t.md")])
    assert "would overwrite the tuning file" in capsys.readouterr().err
    assert tuning.read_text() == "{}"


def test_choose_refuses_a_file_that_is_not_a_tuning_file_in_one_line(tmp_path):
    import pytest
    from bench.strength_tuning import main
    for text in ("not json", '{"settings": {}}', "[1, 2]",
                 '{"candidates": {"x": {}}, "settings": {"epsilon": 0.3}, "machine": {}, '
                 '"date": "d", "commit": "c"}'):
        bad = tmp_path / "bad.json"
        bad.write_text(text)
        with pytest.raises(SystemExit) as err:
            main(["--choose", str(bad), "--md", str(tmp_path / "c.md")])
        assert str(err.value).startswith(f"--choose {bad}: not a bench.strength_tuning file")
        assert "\n" not in str(err.value)
    assert not (tmp_path / "c.md").exists()


def test_runs_without_a_machine_take_the_file_s_and_the_table_counts_runs_per_machine():
    from bench.strength_tuning import name_earlier_runs, runs_per_machine
    tuning = {"machine": {"cpu": "Old CPU"},
              "candidates": {NAMES[0]: seeded(b10={0: 0.8, 1: 0.8}, b30={0: 0.7}),
                             NAMES[1]: entry(b10=(0.8, 10.0))}}
    tuning["candidates"][NAMES[0]]["budgets"]["30"]["runs"]["0"]["machine"] = "New CPU"
    name_earlier_runs(tuning)
    assert tuning["candidates"][NAMES[0]]["budgets"]["10"]["runs"]["1"]["machine"] == "Old CPU"
    assert tuning["candidates"][NAMES[1]]["budgets"]["10"]["machine"] == "Old CPU"  # pre-seed cell
    assert runs_per_machine(tuning) == "runs on New CPU: 1, Old CPU: 3"


def test_the_shipped_tuning_files_pass_the_tuning_file_check_and_others_name_their_fault():
    import json
    from pathlib import Path
    from bench.strength_tuning import tuning_file_problem
    for name in ("bench/strength_tuning.json", "bench/strength_tuning_fashion.json"):
        assert tuning_file_problem(json.loads(Path(name).read_text())) is None
    ok = {"candidates": {"c": {"budgets": {}}}, "settings": {"epsilon": 0.3}, "machine": {},
          "date": "d", "commit": "c"}
    assert tuning_file_problem([]) == "a JSON list, not an object"
    assert tuning_file_problem({**ok, "settings": {}}) == "settings has no numeric epsilon"
    assert tuning_file_problem({k: v for k, v in ok.items() if k != "commit"}) == "no commit"
    assert tuning_file_problem({**ok, "candidates": {"c": {"budgets": []}}}) == (
        "candidate 'c' has no budgets object")


def test_a_rerun_that_runs_nothing_keeps_the_machine_commit_and_date_of_the_latest_run(tmp_path):
    import json
    from bench.strength_tuning import main, parse_args, settings
    name = NAMES[0]
    argv = ["--n", "4", "--budgets", "10", "--seeds", "0", "--candidates", name]
    run = {"accuracy": 0.5, "passes_per_example": 10.0, "machine": "Old CPU"}
    saved = {"settings": settings(parse_args(argv)), "machine": {"cpu": "Old CPU"},
             "commit": "abc1234", "date": "2026-01-02",
             "candidates": {name: {"members": [m.record() for m in CANDIDATES[name]],
                                   "budgets": {"10": {"runs": {"0": run}}}}}}
    out = tmp_path / "t.json"
    out.write_text(json.dumps(saved))
    main([*argv, "--out", str(out)])
    after = json.loads(out.read_text())
    assert (after["machine"], after["commit"], after["date"]) == (
        {"cpu": "Old CPU"}, "abc1234", "2026-01-02")
    assert after["candidates"][name]["budgets"]["10"]["runs"] == {"0": run}  # nothing rerun
    assert after["chosen"] == {"10": name}
