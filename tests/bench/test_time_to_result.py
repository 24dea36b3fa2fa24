"""bench.time_to_result on a few images: every setting timed, the CPU recorded, and the
skip-broken protocol's merged result checked against attacking everything."""
import json

import pytest

from bench.time_to_result import main


@pytest.mark.slow  # four settings traced and run on the CNN: ~25 s idle, over a minute loaded
def test_a_small_run_records_the_cpu_and_identical_merged_results(tmp_path):
    out = tmp_path / "ttr.json"
    result = main(["--n", "24", "--steps", "3", "--restarts", "2", "--repeats", "1",
                   "--batch_size", "12", "--out", str(out)])
    assert json.loads(out.read_text()) == json.loads(json.dumps(result))
    assert result["machine"]["cpu"]
    assert (result["setup"]["compute_dtype"], result["setup"]["compute_dtype_resolved"]) == (
        "float32", "float32")
    assert [(r["keep"], r["skip_broken"]) for r in result["rows"]] == [
        ("final", False), ("final", True), ("best", False), ("best", True)]
    for row in result["rows"]:
        assert len(row["seconds"]) == 1 and row["median_s"] > 0
        assert row["restart_attacked"][0] == 24
        if not row["skip_broken"]:
            assert row["restart_attacked"] == [24, 24]
    assert all(c["identical_merged_accuracy_and_broken_flags"] for c in result["comparisons"])
