"""The paper's numbers in ``experiments.paper`` equal the paper's own (``../shared/paper``)."""
import hashlib
import re
from pathlib import Path

import pytest

from experiments import paper

PAPER_DIR = Path(__file__).resolve().parents[3] / "shared" / "paper"
README = PAPER_DIR / "README.md"
FULL_TEXT = PAPER_DIR / "000_7be524c0a9cd4d4c.txt"
needs_paper = pytest.mark.skipif(not README.exists() or not FULL_TEXT.exists(),
                                 reason=f"the paper's text is not in {PAPER_DIR}")


def _readme_rows() -> dict[str, str]:
    """``{"2": "PGD 92.56/92.79; ...", "Fig. 4 (text) ...": ...}``: the numbers column per row,
    read here independently of ``experiments.paper.parse_readme``."""
    rows = {}
    for line in README.read_text().splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 3 and re.search(r"\d", cells[2]) and cells[0] not in ("table", "---"):
            rows[cells[0] if not cells[0].startswith("Fig") else f"{cells[0]} {cells[1]}"] = cells[2]
    return rows


def _pairs(numbers: str) -> dict[str, tuple[float, ...]]:
    """``"PGD 92.56/92.79; PQGD_100 92.27/92.37"`` -> ``{"PGD": (92.56, 92.79), ...}``."""
    out = {}
    for part in numbers.split(";"):
        name, values = part.strip().rsplit(" ", 1)
        out[name.strip()] = tuple(float(v) for v in values.split("/"))
    return out


@needs_paper
@pytest.mark.parametrize("table", ["2", "3", "4", "5"])
def test_tables_2_to_5_equal_the_papers_table_of_numbers(table):
    assert paper.TABLES[f"table{table}"].numbers == _pairs(_readme_rows()[table])


@needs_paper
def test_table_6_equals_the_papers_table_of_numbers():
    # "eps 8/255: PGD 45.31, PQGD_100 45.32, ...; eps 16/255: PGD 14.02, ..."
    eps8, eps16 = (part.split(":", 1)[1].replace(",", ";")
                   for part in _readme_rows()["6"].split("; eps"))
    assert paper.TABLES["table6_eps8"].numbers == _pairs(eps8)
    assert paper.TABLES["table6_eps16"].numbers == _pairs(eps16)


@needs_paper
def test_figure_4_text_numbers_equal_the_papers():
    rows = _readme_rows()
    mnist = rows["Fig. 4 (text) MNIST adv-trained, eps 0.3, 20 steps"]
    fashion = rows["Fig. 4 (text) Fashion, eps 0.2, 20 steps"]
    assert mnist == "PQGD_1000 {PQGD_1000} vs PGD {PGD}".format(**{
        k: f"{v:.2f}" for k, v in paper.figure_points("4a").numbers.items()})
    assert fashion == "PQGD_500 {PQGD_500} vs PGD {PGD}".format(**{
        k: f"{v:.2f}" for k, v in paper.figure_points("4b").numbers.items()})
    assert paper.figure_points("4a").steps == paper.figure_points("4b").steps == 20
    assert paper.figure_points("4b").epsilon == 0.2


@needs_paper
def test_the_tracked_numbers_record_the_digest_of_the_table_they_came_from():
    assert paper.PROVENANCE["readme_sha256"] == hashlib.sha256(README.read_bytes()).hexdigest()
    assert paper.PROVENANCE["full_text_sha256"] == hashlib.sha256(
        FULL_TEXT.read_bytes()).hexdigest()


@needs_paper
def test_render_time_check_reads_every_row_of_the_shared_table_and_finds_it_equal():
    parsed = paper.parse_readme(README.read_text())
    assert set(parsed) == {"table2", "table3", "table4", "table5", "table6_eps8",
                           "table6_eps16", "figure4a", "figure4b", "figure5a", "figure5b"}
    assert parsed["figure5b"] == {"PQGD_1000": (24.91,), "PGD": (28.98,)}
    assert parsed == paper.tracked_numbers()
    assert "read at render time and equal to experiments/paper_numbers.json" in paper.check_shared()


@needs_paper
def test_a_shared_table_that_disagrees_stops_the_render_in_one_line(tmp_path):
    changed = tmp_path / "README.md"
    changed.write_text(README.read_text().replace("BLOB 90.48/90.56", "BLOB 90.48/90.66"))
    with pytest.raises(paper.PaperNumbersError, match=r"^the paper's numbers for table2 .*"
                       r"differ from experiments/paper_numbers\.json") as err:
        paper.check_shared(changed)
    assert "\n" not in str(err.value)


def test_without_the_shared_table_the_tracked_numbers_are_used_and_said_so(tmp_path):
    source = paper.check_shared(tmp_path / "absent" / "README.md")
    assert source.startswith("experiments/paper_numbers.json (transcribed from ")
    assert "absent here" in source
    assert paper.TABLES["table2"].numbers["PGD"] == (92.56, 92.79)


@needs_paper
def test_every_number_appears_in_the_papers_full_text():
    text = FULL_TEXT.read_text()
    numbers = [v for t in paper.TABLES.values() for vs in t.numbers.values() for v in vs]
    numbers += [v for p in paper.FIGURE_POINTS for v in p.numbers.values()]
    missing = [v for v in numbers if f"{v:.2f}%" not in text and f"{v:g}%" not in text]
    assert not missing


@needs_paper
def test_protocols_match_the_papers_captions():
    text = FULL_TEXT.read_text()
    assert "Table 4. Performance Comparison of the adversarial trained Fashion-MNIST model without restart under 100-step attacks (0.2/1.0" in text
    assert paper.TABLES["table4"].epsilon == paper.TABLES["table5"].epsilon == 0.2
    assert "200-step attacks with 10 restarts" in text and paper.TABLES["table5"].restarts == 10
    assert "All other approaches are with 50 restarts" in text and paper.TABLES["table3"].restarts == 50
    assert paper.TABLES["table2"].steps == 200 and paper.TABLES["table4"].steps == 100


def test_paper_b_reads_the_quantization_level_from_a_label():
    assert paper.paper_b("PQGD_1000") == 1000 and paper.paper_b("PGD") == 1
    with pytest.raises(KeyError):
        paper.figure_points("3a")
