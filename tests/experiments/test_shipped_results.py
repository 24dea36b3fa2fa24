"""The shipped reports in ``results/`` and ``results/paper/`` are exactly what the shipped cells
in ``results/cells/`` render to: no number in them is edited by hand or left stale when a cell
is added, and each cell's provenance (machine, dates, seconds) survives the re-render."""
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from experiments.paper import SHARED_README
from tests.conftest import REPO_ROOT, require_fashion_mnist

CELLS = REPO_ROOT / "results" / "cells"

# Folder -> flags of the command that renders it from the stored cells.
RENDERS = {"results": ("--table3_baselines",), "results/paper": ("--preset=paper",)}
# Figure 2 computes its gradients while rendering, so its report carries the date and seconds
# of that render, not of stored cells.
RENDERED_WHILE_RENDERING = {"figure2"}


def _shipped_artifacts(folder: Path) -> list[str]:
    """Every report shipped in ``folder``, so a newly shipped one is checked without a list here."""
    return sorted(p.stem for p in folder.glob("*.md") if p.stem not in RENDERED_WHILE_RENDERING)


@pytest.mark.skipif(not SHARED_README.is_file(),
                    reason=f"the reports name {SHARED_README} as their source of the paper's "
                           "numbers; without it the footer reads otherwise")
@pytest.mark.parametrize("folder", sorted(RENDERS))
def test_shipped_reports_equal_a_stored_only_render_of_the_shipped_cells(folder, tmp_path):
    require_fashion_mnist()
    shipped = REPO_ROOT / folder
    artifacts = _shipped_artifacts(shipped)
    assert len(artifacts) >= 6, artifacts  # the folder's reports are found
    before = {p.name: p.stat().st_mtime_ns for p in CELLS.iterdir()}
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", PYTHONPATH=str(REPO_ROOT))
    proc = subprocess.run(
        [sys.executable, "-m", "experiments.run_all", *artifacts, *RENDERS[folder],
         "--stored_only",
         f"--output_dir={tmp_path}", f"--cache_dir={CELLS}"],
        cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert not re.search(r"attack \d+/\d+ at step", proc.stdout)  # no segment computed
    # The shipped cells are read in place: none written, added or removed by a render.
    assert {p.name: p.stat().st_mtime_ns for p in CELLS.iterdir()} == before
    for name in artifacts:
        assert (tmp_path / f"{name}.md").read_text() == (shipped / f"{name}.md").read_text(), name
        rendered = json.loads((tmp_path / f"{name}.json").read_text())
        assert rendered == json.loads((shipped / f"{name}.json").read_text()), name
        assert rendered["compute"], name  # the reports name the cells' recorded compute
    assert not (tmp_path / "cells").exists()  # read in place, nothing copied
