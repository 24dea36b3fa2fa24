"""eval.py --strategy=multi_worker: worker processes on 127.0.0.1, each with its own TF_CONFIG.

Every worker is a subprocess bounded in time and killed in a ``finally``; the images must be
those of one process (bit for bit), a worker killed mid-run must leave a state the rerun
resumes from, a lone worker must time out with its message, and workers with other flags
must be refused before anything is written.
"""
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ENV = {**{k: v for k, v in os.environ.items() if k != "TF_CONFIG"},
       "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONUNBUFFERED": "1"}
# 12 images in groups of 4 over 2 workers: whole waves of 2 groups and a lone last group.
TINY = ["--num_examples=12", "--batch_size=4", "--noplots"]
LIMIT_S = 240


def _free_ports(count: int) -> list[int]:
    sockets = [socket.socket() for _ in range(count)]
    try:
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def _tf_config(ports: list[int], index: int) -> str:
    return json.dumps({"cluster": {"worker": [f"127.0.0.1:{p}" for p in ports]},
                       "task": {"type": "worker", "index": index}})


class _Workers:
    """Starts ``eval.py`` once per worker (worker i gets ``args[i]``), logs in ``folder``."""

    def __init__(self, folder: Path, args: list[list[str]]):
        ports = _free_ports(len(args))
        self.logs = [(folder / f"worker{i}.out", folder / f"worker{i}.err")
                     for i in range(len(args))]
        self.procs = []
        for i, worker_args in enumerate(args):
            out, err = (open(path, "w") for path in self.logs[i])
            self.procs.append(subprocess.Popen(
                [sys.executable, "eval.py", "--strategy=multi_worker", *worker_args], cwd=REPO,
                env={**ENV, "TF_CONFIG": _tf_config(ports, i)}, stdout=out, stderr=err))
            out.close()
            err.close()

    def stdout(self, i: int) -> str:
        return self.logs[i][0].read_text()

    def stderr_lines(self, i: int) -> list[str]:
        return [l for l in self.logs[i][1].read_text().splitlines() if l.startswith("eval.py")]

    def wait(self, timeout: float = LIMIT_S) -> list[int]:
        deadline = time.monotonic() + timeout
        return [p.wait(timeout=max(1.0, deadline - time.monotonic())) for p in self.procs]

    def stop(self) -> None:
        for p in self.procs:
            if p.poll() is None:
                p.kill()
                p.wait(timeout=30)


def _run_workers(folder: Path, args: list[list[str]]) -> tuple[list[int], _Workers]:
    folder.mkdir(parents=True, exist_ok=True)
    workers = _Workers(folder, args)
    try:
        return workers.wait(), workers
    finally:
        workers.stop()


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
    codes, workers = _run_workers(tmp_path / "logs", [[*args, f"--output_dir={out}"],
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
    (tmp_path / "logs").mkdir()
    workers = _Workers(tmp_path / "logs", [[*args, f"--output_dir={out}"]] * 2)
    try:
        deadline = time.monotonic() + LIMIT_S
        while "restart 1/3 done" not in workers.stdout(0):
            assert time.monotonic() < deadline and workers.procs[0].poll() is None, \
                workers.stderr_lines(0)
            time.sleep(0.2)
        workers.procs[1].send_signal(signal.SIGKILL)
        chief = workers.procs[0].wait(timeout=LIMIT_S)
    finally:
        workers.stop()
    [line] = workers.stderr_lines(0)
    if chief == 0:  # the chief had finished its last exchange before the kill
        pytest.skip("the run ended before the worker was killed; nothing to resume")
    assert chief == 1 and "lost contact with another worker" in line, line
    assert "on the chief: rerun the same command on every worker to resume" in line
    assert (out / "state.npz").is_file() and not (out / "attack.npy").exists()
    codes, again = _run_workers(tmp_path / "logs2", [[*args, f"--output_dir={out}"]] * 2)
    assert codes == [0, 0], (again.stderr_lines(0), again.stderr_lines(1))
    assert "resuming after" in again.stdout(0) and "resuming after" in again.stdout(1)
    np.testing.assert_array_equal(np.load(out / "attack.npy"),
                                  _one_process(tmp_path / "one", args))


def _lone_worker_line(out: Path, *flags: str) -> str:
    """Runs worker 0 of a 2-worker TF_CONFIG alone with ``flags``; asserts exit 1 and returns
    its one eval.py error line."""
    res = subprocess.run([sys.executable, "eval.py", "--strategy=multi_worker", *flags,
                          f"--output_dir={out}"], cwd=REPO,
                         env={**ENV, "TF_CONFIG": _tf_config(_free_ports(2), 0)},
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
    codes, workers = _run_workers(tmp_path / "logs", [[*base, "--steps=3"], [*base, "--steps=4"]])
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
