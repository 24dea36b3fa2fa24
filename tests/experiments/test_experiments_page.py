"""EXPERIMENTS.md's tables quote the shipped JSON: every accuracy, difference, p-value and
discordant count in them is the number ``results/*.json`` holds, so a re-render that moves a
number cannot leave the page quoting the old one."""
import json
import re

import pytest

from tests.conftest import REPO_ROOT

PAGE = REPO_ROOT / "EXPERIMENTS.md"
# The line that introduces a table on the page -> the JSON report it quotes.
QUOTED_TABLES = {
    "### Table 2 analog": "results/table2.json",
    "**Paper preset, Table 4**": "results/paper/table4.json",
    "**Paper preset, Table 5": "results/paper/table5.json",
}
NUMBER = r"[+-]?\d+(?:\.\d+)?(?:e[+-]?\d+)?"


def _table_after(lines: list[str], marker: str) -> list[list[str]]:
    """The first markdown table after the line starting with ``marker``: header and body rows,
    each a list of stripped cells (the separator row dropped)."""
    start = next(i for i, line in enumerate(lines) if line.startswith(marker))
    rows, i = [], start + 1
    while not lines[i].startswith("|"):
        i += 1
    while i < len(lines) and lines[i].startswith("|"):
        cells = [c.strip() for c in lines[i].strip().strip("|").split("|")]
        if not all(set(c) <= set("- ") for c in cells):
            rows.append(cells)
        i += 1
    return rows


def _same_p(quoted: str, p: float) -> bool:
    """``quoted`` is ``p`` rounded to the significant digits it shows ('0.0303', '2.2e-16', '1')."""
    mantissa = quoted.split("e")[0].replace(".", "").lstrip("0")
    return float(f"{p:.{max(len(mantissa), 1)}g}") == float(quoted)


def _check_difference(text: str, diff: dict, where: str) -> None:
    """``text`` like '-1.96 [-2.45, -1.47]; p = 2.2e-16 (192 discordant)' quotes ``diff``: its
    mean and p, and its discordant count, interval and Holm p where printed; no other number."""
    checked = 2
    mean = re.match(rf"\(?(?:vs PGD |BLOB - PGD: )?({NUMBER})", text)
    assert mean, where
    assert float(mean.group(1)) == pytest.approx(round(100 * diff["mean"], 2), abs=0.006), where
    p = re.search(rf"p = ({NUMBER})", text)
    assert p and _same_p(p.group(1), diff["p"]), (where, text, diff["p"])
    count = re.search(r"\((\d+)(?: discordant)?\)|, (\d+)(?: discordant)?\)", text)
    if count:
        checked += 1
        assert int(count.group(1) or count.group(2)) == diff["discordant"], (where, text)
    interval = re.search(rf"\[({NUMBER}), ({NUMBER})\]", text)
    if interval:
        checked += 2
        assert float(interval.group(1)) == pytest.approx(100 * diff["low"], abs=0.006), where
        assert float(interval.group(2)) == pytest.approx(100 * diff["high"], abs=0.006), where
    holm = re.search(rf"Holm ({NUMBER})", text)
    if holm:
        checked += 1
        assert _same_p(holm.group(1), diff["p_holm"]), (where, text)
    assert len(re.findall(NUMBER, text)) == checked, (where, text)  # none left unchecked


@pytest.mark.parametrize("marker", sorted(QUOTED_TABLES))
def test_experiments_page_tables_quote_the_shipped_json(marker):
    report = json.loads((REPO_ROOT / QUOTED_TABLES[marker]).read_text())
    rows = {r["attack"]: r for r in report["rows"]}
    header, *body = _table_after(PAGE.read_text().splitlines(), marker)
    ours = next(i for i, h in enumerate(header) if h.startswith("Our"))
    quoted = 0
    for cells in body:
        label, where = cells[0], f"{marker}: {cells[0]}"
        if label not in rows:  # pending rows ('BLOB_QG_200 / _500'): the JSON must say so
            first, *others = label.split(" / ")
            labels = [first] + [first.rsplit("_", 1)[0] + suffix for suffix in others]
            assert "pending" in cells[ours] and set(labels) <= set(report["pending"]), where
            continue
        row, quoted = rows[label], quoted + 1
        numbers = re.findall(NUMBER, cells[ours])
        assert len(numbers) in (1, 2), where  # 'Avg' or 'Worst / Avg'
        assert float(numbers[-1]) == pytest.approx(round(100 * row["avg"], 2), abs=0.006), where
        if len(numbers) == 2:
            assert float(numbers[0]) == pytest.approx(round(100 * row["worst"], 2),
                                                      abs=0.006), where
        rest = cells[ours + 1:]
        if not rest or rest[-1] == "-":
            continue
        if rest[-1].startswith("(BLOB - PGD"):  # Table 5 puts BLOB's gap on PGD's row
            diff = rows["BLOB"]["diff_vs_pgd"]
        elif rest[-1].startswith("("):  # '(vs PGD ...)': BLOB, whose sign-step attack is PGD
            diff = row["diff_vs_pgd"]
        else:
            diff = row["diff_vs_sign_counterpart"]
        _check_difference(rest[-1], diff, where)
    assert quoted >= 3, marker


def test_experiments_page_figure3_table_quotes_the_shipped_json():
    panels = json.loads((REPO_ROOT / "results/paper/figure3.json").read_text())["panels"]
    header, *body = _table_after(PAGE.read_text().splitlines(),
                                 "Paper preset ([`results/paper/figure3.md`]")
    # Columns after eps: per panel, PGD's Avg then each quantized attack - PGD.
    columns = [("mnist", "PGD"), ("mnist", "PQGD_100"), ("mnist", "PQGD_1000"),
               ("fashion_mnist", "PGD"), ("fashion_mnist", "PQGD_100"),
               ("fashion_mnist", "PQGD_1000")]
    assert len(header) == 1 + len(columns), header
    quoted = 0
    for eps, *cells in body:
        for (panel, attack), text in zip(columns, cells):
            where = f"figure 3 eps {eps}, {panel} {attack}"
            epsilons = panels[panel]["PGD"]["epsilon"]
            if not text:
                assert float(eps) not in epsilons, where  # left empty: no such point
                continue
            i, quoted = epsilons.index(float(eps)), quoted + 1
            if attack == "PGD":
                assert float(text) == pytest.approx(100 * panels[panel]["PGD"]["avg"][i],
                                                    abs=0.006), where
            else:
                _check_difference(text, panels[panel]["diff_vs_pgd"][attack][i], where)
    assert quoted == 24
