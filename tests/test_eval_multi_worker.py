"""eval.py --strategy=multi_worker: worker processes on 127.0.0.1, each with its own TF_CONFIG.

Every worker is a subprocess bounded in time and killed in a ``finally``; the images must be
those of one process (bit for bit), a worker killed mid-run must leave a state the rerun
resumes from, a lone worker must time out with its message, and workers with other flags
must be refused before anything is written.
"""
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from tests.worker_processes import (ENV, LIMIT_S, REPO, free_ports, kill_second_worker_after,
                                    run_workers, tf_config)

# 12 images in groups of 4 over 2 workers: whole waves of 2 groups and a lone last group.
TINY = ["--num_examples=12", "--batch_size=4", "--noplots"]


def _one_process(out: Path, args: list[str]) -> np.ndarray:
    res = subprocess.run([sys.executable, "eval.py", *args, f"--output_dir={out}"], cwd=REPO,
                         env=ENV, capture_output=True, text=True, timeout=LIMIT_S)
    assert res.returncode == 0, res.stderr[-2000:]
    return np.load(out / "attack.npy")


@pytest.mark.slow
def test_two_workers_write_the_attack_of_one_process_and_only_the_chief_writes(tmp_path):
    args = [*TINY, "--attack=blob_qg", "--b=5", "--steps=4", "--steps_per_group=2",
            "--restarts=2", "--join_timeout=120"]
    out = tmp_path / "multi"
    codes, workers = run_workers(tmp_path / "logs", [[*args, f"--output_dir={out}"],
                                                      [*args, f"--output_dir={tmp_path / 'w1'}"]])
    assert codes == [0, 0], (workers.stderr_lines(0), workers.stderr_lines(1))
    assert "MultiWorkerMirroredStrategy, 2 replica(s) on 2 worker(s); this is worker 0 (chief)" \
        in workers.stdout(0)
    assert "worker 1 of 2: attack finished" in workers.stdout(1)
    assert not (tmp_path / "w1").exists()  # another worker writes nothing, not even a folder
    expected = _one_process(tmp_path / "one", args)
    np.testing.assert_array_equal(np.load(out / "attack.npy"), expected)
    a, b = (json.loads((folder / "results.json").read_text()) for folder in (out, tmp_path / "one"))
    for key in ("adversarial_accuracy", "restart_accuracies", "merged_accuracies", "examples"):
        assert a[key] == b[key]
    # Progress is of the whole job: 12 examples x 4 steps x 2 restarts on every worker.
    assert "restart 2/2 done" in workers.stdout(1)


@pytest.mark.slow
def test_a_worker_killed_mid_run_leaves_a_state_both_resume_from_to_the_same_images(tmp_path):
    args = [*TINY, "--attack=pgd", "--steps=20", "--restarts=3", "--join_timeout=20"]
    out = tmp_path / "multi"
    chief, line = kill_second_worker_after(tmp_path / "logs", [[*args, f"--output_dir={out}"]] * 2,
                                           "restart 1/3 done")
    if chief == 0:  # the chief had finished its last exchange before the kill
        pytest.skip("the run ended before the worker was killed; nothing to resume")
    assert chief == 1 and "lost contact with another worker" in line, line
    assert "on the chief: rerun the same command on every worker to resume" in line
    assert (out / "state.npz").is_file() and not (out / "attack.npy").exists()
    codes, again = run_workers(tmp_path / "logs2", [[*args, f"--output_dir={out}"]] * 2)
    assert codes == [0, 0], (again.stderr_lines(0), again.stderr_lines(1))
    assert "resuming after" in again.stdout(0) and "resuming after" in again.stdout(1)
    np.testing.assert_array_equal(np.load(out / "attack.npy"),
                                  _one_process(tmp_path / "one", args))


def _lone_worker_line(out: Path, *flags: str) -> str:
    """Runs worker 0 of a 2-worker TF_CONFIG alone with ``flags``; asserts exit 1 and returns
    its one eval.py error line."""
    res = subprocess.run([sys.executable, "eval.py", "--strategy=multi_worker", *flags,
                          f"--output_dir={out}"], cwd=REPO,
                         env={**ENV, "TF_CONFIG": tf_config(free_ports(2), 0)},
                         capture_output=True, text=True, timeout=LIMIT_S)
    assert res.returncode == 1
    [line] = [l for l in res.stderr.splitlines() if l.startswith("eval.py")]
    return line


def test_a_worker_that_never_joins_times_out_in_one_line_and_writes_nothing(tmp_path):
    out = tmp_path / "out"
    started = time.monotonic()
    line = _lone_worker_line(out, "--join_timeout=3")
    assert "the cluster of 2 task(s) did not complete within --join_timeout=3 s (this task: " \
           "worker 0)" in line
    assert time.monotonic() - started < 120
    assert not out.exists()


@pytest.mark.slow
def test_workers_started_with_other_flags_are_refused_before_anything_is_written(tmp_path):
    out = tmp_path / "out"
    base = [*TINY, "--attack=pgd", "--join_timeout=120", f"--output_dir={out}"]
    codes, workers = run_workers(tmp_path / "logs", [[*base, "--steps=3"], [*base, "--steps=4"]])
    assert codes == [1, 1]
    for i in (0, 1):
        [line] = workers.stderr_lines(i)
        assert "worker 1 was started with other settings than the chief (" in line
        assert "steps: 4 there, 3 here" in line
    assert not out.exists()


def test_more_replicas_than_groups_is_refused_before_joining(tmp_path):
    out = tmp_path / "out"
    line = _lone_worker_line(out, "--join_timeout=60", "--num_examples=3", "--batch_size=4")
    assert "2 replicas (at least one per worker of TF_CONFIG) but 3 example(s) at batch_size 4 " \
           "make only 1 group(s)" in line
    assert not out.exists()


def test_a_worker_that_fails_before_the_job_check_stops_the_chief_at_once(tmp_path):
    # Worker 1's data folder does not exist: it fails after joining, before its fingerprint.
    # The chief must not wait for --join_timeout (300 s) but stop with the worker's line.
    out = tmp_path / "out"
    base = [*TINY, "--attack=pgd", "--steps=2", "--join_timeout=300", f"--output_dir={out}"]
    started = time.monotonic()
    codes, workers = run_workers(tmp_path / "logs", [base, [*base, "--data_dir=/nonexistent"]],
                                 timeout=150)
    assert codes == [1, 1]
    assert time.monotonic() - started < 150
    [own] = workers.stderr_lines(1)
    assert "/nonexistent" in own
    [chief] = workers.stderr_lines(0)
    assert chief.startswith("eval.py: --strategy=multi_worker: worker 1 stopped before the job "
                            "started (") and "/nonexistent" in chief
    assert not out.exists()
