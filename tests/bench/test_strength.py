"""bench.strength's table and plot, written from a fake results record."""
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
    assert "Test CPU 9000" in text and "abc1234" in text and "2026-01-02" in text
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
