"""The shipped reports in ``results/`` and ``results/paper/`` are exactly what the shipped cells
in ``results/cells/`` render to: no number in them is edited by hand or left stale when a cell
is added, and each cell's provenance (machine, dates, seconds) survives the re-render."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from experiments.paper import SHARED_README
from tests.conftest import REPO_ROOT, require_fashion_mnist

CELLS = REPO_ROOT / "results" / "cells"

# Folder -> (artifacts, flags) of the command that renders it from the stored cells. Figure 2
# is left out: it computes its gradients while rendering, so its report carries the date and
# seconds of that render.
RENDERS = {
    "results": (("table2", "table3", "table4", "table5", "figure3", "figure4", "sweep_b"),
                ("--table3_baselines",)),
    "results/paper": (("table2", "table3", "table4", "figure4", "figure4b", "sweep_b"),
                      ("--preset=paper",)),
}


@pytest.mark.skipif(not SHARED_README.is_file(),
                    reason=f"the reports name {SHARED_README} as their source of the paper's "
                           "numbers; without it the footer reads otherwise")
@pytest.mark.parametrize("folder", sorted(RENDERS))
def test_shipped_reports_equal_a_stored_only_render_of_the_shipped_cells(folder, tmp_path):
    require_fashion_mnist()
    artifacts, flags = RENDERS[folder]
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", PYTHONPATH=str(REPO_ROOT))
    proc = subprocess.run(
        [sys.executable, "-m", "experiments.run_all", *artifacts, *flags, "--stored_only",
         f"--output_dir={tmp_path}", f"--cache_dir={CELLS}"],
        cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "0 example-steps to compute" in proc.stderr + proc.stdout
    shipped = REPO_ROOT / folder
    for name in artifacts:
        assert (tmp_path / f"{name}.md").read_text() == (shipped / f"{name}.md").read_text(), name
        rendered = json.loads((tmp_path / f"{name}.json").read_text())
        assert rendered == json.loads((shipped / f"{name}.json").read_text()), name
        assert rendered["compute"], name  # the cells' recorded compute, not this render's
    assert not (tmp_path / "cells").exists()  # read in place, nothing copied
