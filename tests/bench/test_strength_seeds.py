"""bench.strength_seeds' summary and table, from a fake record of runs by seed."""
import numpy as np
import pytest

from bench.strength import pack_outcomes
from bench.strength import name_earlier_machine
from bench.strength_seeds import render, run_key, summarize
from experiments.stats import sign_flip_p

N = 6


def record(correct_by_run: dict) -> dict:
    cells = {}
    for (name, budget, seed), correct in correct_by_run.items():
        correct = np.asarray(correct, bool)
        cells[run_key(name, budget, seed)] = {
            "attack": name, "budget": budget, "seed": seed, "accuracy": float(correct.mean()),
            "correct": pack_outcomes(correct), "passes_per_example": float(budget)}
    return {"settings": {"start": 1000, "n": N, "epsilon": 0.3,
                         "model_dir": "models/pretrained/madry_mnist"},
            "machine": {"cpu": "Test CPU 9000", "cores": 2, "tensorflow": "2.x"},
            "clean_accuracy": 1.0, "date": "2026-01-02", "commits": ["abc1234"], "cells": cells}


def test_means_ranges_and_the_paired_comparison_over_all_runs():
    runs = {("strongest", 10, 0): [1, 0, 0, 1, 1, 1], ("strongest", 10, 1): [1, 0, 1, 1, 0, 1],
            ("ART APGD-CE", 10, 0): [1, 1, 0, 1, 1, 1], ("ART APGD-CE", 10, 1): [1, 1, 1, 1, 1, 1]}
    summary = summarize(record(runs))
    (budget,) = summary
    ours, peer = budget["rows"]["strongest"], budget["rows"]["ART APGD-CE"]
    assert ours["seeds"] == [0, 1] and np.allclose(ours["accuracies"], [4 / 6, 4 / 6])
    assert np.isclose(peer["mean"], (5 / 6 + 1) / 2) and np.isclose(peer["min"], 5 / 6)
    (comparison,) = budget["comparisons"]
    # Per image, runs correct: strongest [2, 0, 1, 2, 1, 2], peer [2, 2, 1, 2, 2, 2].
    assert np.isclose(comparison["difference"], np.mean([0, -1, 0, 0, -0.5, 0]))
    assert comparison["discordant"] == 2
    assert np.isclose(comparison["p"], sign_flip_p([0, -4, 0, 0, -2, 0])[0])
    text = render(record(runs))
    assert "| strongest | 66.67 [66.7, 66.7] (2 seeds) |" in text
    assert "| ART APGD-CE | 91.67 [83.3, 100.0] (2 seeds) |" in text
    assert "| ART APGD-DLR |" not in text  # a row with no run at any budget is left out
    assert "- budget 10: strongest - ART APGD-CE: -25.00" in text
    assert "Test CPU 9000" in text and "abc1234" in text


def test_the_header_names_the_cpu_family_and_model_when_recorded():
    rec = record({("strongest", 10, 0): [1, 0, 1, 1, 1, 1]})
    rec["machine"].update(cpu_family="26", cpu_model="2")
    assert "Test CPU 9000, family 26 model 2 (2 cores" in render(rec)


def test_runs_from_several_machines_are_named_per_machine_and_one_machine_adds_no_line():
    runs = {("strongest", 30, 0): [1] * N, ("strongest", 30, 5): [0] * N,
            ("ART APGD-CE", 30, 0): [1] * N, ("ART APGD-CE", 30, 5): [1] * N}
    results = record(runs)
    assert "Runs per machine" not in render(results)
    for key, cell in results["cells"].items():
        cell["machine"] = "CPU B" if key.endswith("#seed5") else "CPU A"
    assert ("Runs per machine: CPU A: 2 runs (seeds 0); CPU B: 2 runs (seeds 5)."
            in render(results))


def test_runs_saved_before_runs_named_their_machine_take_the_records_machine():
    results = record({("strongest", 10, 0): [1] * N})
    results["cells"]["strongest@10#seed1"] = {**results["cells"]["strongest@10#seed0"],
                                              "seed": 1, "machine": "CPU B"}
    name_earlier_machine(results)
    assert results["cells"]["strongest@10#seed0"]["machine"] == "Test CPU 9000"
    assert results["cells"]["strongest@10#seed1"]["machine"] == "CPU B"


def test_fashion_mnist_takes_its_own_eps_and_record_and_mnist_keeps_its_defaults():
    from bench.strength_seeds import parse_args
    fashion = parse_args(["--dataset", "fashion_mnist"])
    assert (fashion.epsilon, fashion.out, fashion.md) == (
        0.2, "bench/strength_seeds_fashion.json", "bench/strength_seeds_fashion.md")
    mnist = parse_args([])
    assert (mnist.epsilon, mnist.out, mnist.md) == (
        0.3, "bench/strength_seeds.json", "bench/strength_seeds.md")


def test_a_rerun_that_runs_nothing_keeps_the_machine_and_date_of_the_runs(tmp_path):
    import json
    from bench.strength import members_record
    from bench.strength_seeds import ROWS, main, parse_args, settings
    results = record({(name, 10, 0): [1, 0, 1, 1] for name in ROWS})
    results["cells"]["strongest@10#seed0"]["ensemble"] = members_record(10)
    results["settings"] = settings(parse_args(["--n", "4"]))
    out = tmp_path / "s.json"
    out.write_text(json.dumps(results))
    main(["--n", "4", "--budgets", "10", "--seeds", "0", "--out", str(out)])
    saved = json.loads(out.read_text())
    assert saved["machine"] == results["machine"] and saved["date"] == "2026-01-02"
    assert saved["commits"] == ["abc1234"]  # the commits of the runs, not of the rerun
    assert "2026-01-02, Test CPU 9000 (" in (tmp_path / "s.md").read_text()


def test_attacks_flag_runs_only_the_named_rows(tmp_path):
    import json
    from bench.strength import members_record
    from bench.strength_seeds import main, parse_args, settings
    results = record({("strongest", 10, 0): [1, 0, 1, 1]})
    results["cells"]["strongest@10#seed0"]["ensemble"] = members_record(10)
    results["settings"] = settings(parse_args(["--n", "4"]))
    out = tmp_path / "s.json"
    out.write_text(json.dumps(results))
    main(["--n", "4", "--budgets", "10", "--seeds", "0", "--attacks", "strongest",
          "--out", str(out)])
    saved = json.loads(out.read_text())
    assert sorted(saved["cells"]) == ["strongest@10#seed0"]  # no peer was run
    table = (tmp_path / "s.md").read_text()
    assert "| strongest | 75.00" in table
    assert "| ART" not in table and "strongest - ART" not in table  # no empty rows


@pytest.mark.parametrize("attacks", ["strongest,PGD", "", " , "])
def test_attacks_flag_rejects_unknown_or_empty_rows_in_one_line(attacks, capsys):
    from bench.strength_seeds import parse_args
    with pytest.raises(SystemExit) as err:
        parse_args(["--attacks", attacks])
    assert err.value.code == 2
    message = capsys.readouterr().err.strip().splitlines()[-1]
    assert "--attacks must name rows among strongest, ART APGD-CE, ART APGD-DLR" in message


def test_attacks_flag_keeps_the_table_s_row_order():
    from bench.strength_seeds import parse_args
    args = parse_args(["--attacks", "ART APGD-DLR, strongest,strongest"])
    assert args.attack_list == ["strongest", "ART APGD-DLR"]
