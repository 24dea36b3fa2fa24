"""bench.strength's table, plot and paired test, written from fake results records."""
import math

import numpy as np
import pytest

from bench.strength import render_table, sign_vs_quantized, strongest_vs_peers, write_plot


def cell(attack, budget, acc, unit, family, **extra):
    return {"attack": attack, "budget": budget, "accuracy": acc, "unit": unit, "family": family,
            "passes_per_example": float(budget), "seconds": 1.0, **extra}


@pytest.fixture
def results():
    cells = [
        cell("PGD", 10, 0.90, "sign", "PGD"), cell("PGD", 100, 0.85, "sign", "PGD"),
        cell("PQGD b=10", 10, 0.88, "quantized", "PGD"),
        cell("PQGD b=10", 100, 0.86, "quantized", "PGD"),        # above PGD's 85%
        cell("strongest", 10, 0.80, "mixed", "ensemble", passes_per_example=7.25,
             members=[{"name": "apgd_ce_q10", "steps": 10, "attacked": 4, "broke": 1,
                       "passes": 40}]),
        cell("strongest", 100, 0.84, "mixed", "ensemble"),
        cell("ART APGD-CE", 10, 0.82, "sign", "peer"), cell("ART APGD-CE", 100, 0.83, "sign", "peer"),
    ]
    by = {f"{c['attack']}@{c['budget']}": c for c in cells}
    by["ART APGD-CE + APGD-T@5"] = {"attack": "ART APGD-CE + APGD-T", "budget": 5,
                                    "skipped": "budget 5 is below 10"}
    return {"settings": {"start": 1000, "n": 4, "epsilon": 0.3, "seed": 0,
                         "model_dir": "models/pretrained/madry_mnist"},
            "machine": {"cpu": "Test CPU 9000", "cores": 2, "tensorflow": "2.x"},
            "clean_accuracy": 0.98, "commit": "abc1234", "date": "2026-01-02", "cells": by}


def test_the_table_has_one_row_per_attack_and_one_column_per_budget(results):
    text = render_table(results)
    assert "| attack | unit | budget 5 | budget 10 | budget 100 |" in text
    assert "| PGD | sign |  | 90.0 | 85.0 |" in text
    assert "| strongest | mixed |  | 80.0 (7.2) | 84.0 |" in text  # passes below budget shown
    assert "| ART APGD-CE + APGD-T | sign | n/a |  |  |" in text
    assert "Test CPU 9000 (2 cores" in text and "abc1234" in text and "2026-01-02" in text
    results["machine"]["avx512_bf16"] = True
    assert "Test CPU 9000 (avx512_bf16 yes, 2 cores" in render_table(results)
    assert "MNIST test images 1000-1003 (4, held out)" in text
    assert "- budget 10: apgd_ce_q10 10 steps 4/1" in text


def test_the_goal_lines_name_each_cell_that_misses_them(results):
    assert sign_vs_quantized(results) == ["PQGD b=10 at budget 100: 86.0% > PGD 85.0%"]
    assert strongest_vs_peers(results) == [
        "budget 100: strongest 84.0% is not below ART APGD-CE 83.0%"]
    text = render_table(results)
    assert "Quantized at or below its sign variant: not everywhere: PQGD b=10 at budget 100" in text
    results["cells"]["PQGD b=10@100"]["accuracy"] = 0.85  # equal counts as at or below
    results["cells"]["strongest@100"]["accuracy"] = 0.80
    assert "Quantized at or below its sign variant: yes, at every budget." in render_table(results)
    assert "`strongest` below every peer at each budget: yes." in render_table(results)


def test_the_plot_is_a_png_file(results, tmp_path):
    path = write_plot(results, tmp_path / "s.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_per_image_outcomes_survive_packing():
    from bench.strength import pack_outcomes, unpack_outcomes
    rng = np.random.default_rng(0)
    for n in (1, 7, 8, 1000):
        correct = rng.random(n) < 0.5
        np.testing.assert_array_equal(unpack_outcomes(pack_outcomes(correct), n), correct)


def _paired_results(ours: np.ndarray, peer: np.ndarray, other_peer_acc: float) -> dict:
    from bench.strength import pack_outcomes
    n = len(ours)
    cells = [cell("strongest", 10, ours.mean(), "mixed", "ensemble", correct=pack_outcomes(ours)),
             cell("ART APGD-CE", 10, peer.mean(), "sign", "peer", correct=pack_outcomes(peer)),
             cell("ART APGD-DLR", 10, other_peer_acc, "sign", "peer"),  # no outcomes kept
             cell("strongest", 30, 0.5, "mixed", "ensemble"),
             cell("ART APGD-CE", 30, 0.6, "sign", "peer")]
    return {"settings": {"start": 1000, "n": n, "epsilon": 0.3, "seed": 0,
                         "model_dir": "m"},
            "machine": {"cpu": "Test CPU 9000", "cores": 2, "tensorflow": "2.x"},
            "clean_accuracy": 1.0, "commit": "abc1234", "date": "2026-01-02",
            "cells": {f"{c['attack']}@{c['budget']}": c for c in cells}}


def test_the_paired_test_is_exact_mcnemar_against_the_best_peer_at_each_budget():
    from bench.strength import paired_tests, render_table
    n = 40
    ours = np.ones(n, dtype=bool)
    peer = np.ones(n, dtype=bool)
    ours[:2] = False            # broken by strongest only: 2
    peer[2:12] = False          # broken by the peer only: 10
    results = _paired_results(ours, peer, other_peer_acc=0.99)
    [at10, at30] = paired_tests(results)
    assert at10["peer"] == "ART APGD-CE"  # the lower of the two peers
    # two-sided exact binomial test of 2 successes in 12 at 1/2, computed here
    expected_p = min(1.0, 2 * sum(math.comb(12, k) for k in range(3)) / 2 ** 12)
    assert at10["p"] == pytest.approx(expected_p)
    assert at10["discordant"] == 12
    assert at10["difference"] == pytest.approx((n - 2) / n - (n - 10) / n)
    assert at10["low"] <= at10["difference"] <= at10["high"]
    assert at10["resolved"] == (expected_p < 0.05) and at10["resolved"]
    assert at30["missing"] == "no per-image outcomes for strongest, ART APGD-CE"
    text = render_table(results)
    assert "- budget 10: strongest 95.0% vs ART APGD-CE 75.0%: difference +20.0 points" in text
    assert "resolved at the 5% level" in text and "budget 30: strongest 50.0% vs ART APGD-CE " \
        "60.0%: not tested" in text


def test_a_gap_of_one_discordant_image_is_not_resolved():
    from bench.strength import paired_tests
    ours = np.ones(10, dtype=bool)
    peer = ours.copy()
    peer[0] = False
    [rec, _] = paired_tests(_paired_results(ours, peer, other_peer_acc=1.0))
    assert rec["p"] == 1.0 and not rec["resolved"] and rec["discordant"] == 1


def test_a_rerender_keeps_the_machine_date_and_commit_the_cells_were_measured_with(results, tmp_path):
    import json
    from bench.strength import main, parse_args, settings
    results["settings"] = settings(parse_args(["--n", "4"]))
    results["machine"]["cpu_family"], results["machine"]["cpu_model"] = "7", "9"
    out = tmp_path / "s.json"
    out.write_text(json.dumps(results))
    main(["--no_run", "--n", "4", "--out", str(out), "--md", str(tmp_path / "s.md"),
          "--png", str(tmp_path / "s.png")])
    saved = json.loads(out.read_text())
    assert saved["machine"] == results["machine"] and saved["date"] == "2026-01-02"
    assert saved["commit"] == "abc1234" and saved["commits"] == ["abc1234"]  # not the renderer
    text = (tmp_path / "s.md").read_text()
    assert "2026-01-02, Test CPU 9000, family 7 model 9 (" in text
    assert "commit abc1234." in text and "cells measured at" not in text


def test_cells_from_several_machines_are_counted_per_machine_and_older_cells_get_the_record_s(
        results):
    from bench.strength import name_earlier_machine
    assert "Cells per machine" not in render_table(results)  # one machine: the header says it
    results["cells"]["strongest@10"]["machine"] = "Other CPU, family 1 model 2"
    name_earlier_machine(results)
    assert results["cells"]["PGD@10"]["machine"] == "Test CPU 9000"
    assert results["cells"]["strongest@10"]["machine"] == "Other CPU, family 1 model 2"
    assert ("Cells per machine: Other CPU, family 1 model 2: 1 cell; Test CPU 9000: 7 cells."
            in render_table(results))  # the skipped cell measured nothing
