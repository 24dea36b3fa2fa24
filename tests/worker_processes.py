"""Worker processes of a ``--strategy=multi_worker`` run on 127.0.0.1, for the eval.py and
train.py tests: free ports, each worker's own ``TF_CONFIG``, logs in files, bounded waits,
and a ``stop`` that kills what is still running (call it in a ``finally``)."""
from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ENV = {**{k: v for k, v in os.environ.items() if k != "TF_CONFIG"},
       "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONUNBUFFERED": "1"}
LIMIT_S = 240


def free_ports(count: int) -> list[int]:
    sockets = [socket.socket() for _ in range(count)]
    try:
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def tf_config(ports: list[int], index: int) -> str:
    return json.dumps({"cluster": {"worker": [f"127.0.0.1:{p}" for p in ports]},
                       "task": {"type": "worker", "index": index}})


class Workers:
    """Starts ``script`` once per worker (worker i gets ``args[i]``), logs in ``folder``."""

    def __init__(self, folder: Path, args: list[list[str]], script: str = "eval.py"):
        folder.mkdir(parents=True, exist_ok=True)
        self.script = script
        ports = free_ports(len(args))
        self.logs = [(folder / f"worker{i}.out", folder / f"worker{i}.err")
                     for i in range(len(args))]
        self.procs = []
        for i, worker_args in enumerate(args):
            out, err = (open(path, "w") for path in self.logs[i])
            self.procs.append(subprocess.Popen(
                [sys.executable, script, "--strategy=multi_worker", *worker_args], cwd=REPO,
                env={**ENV, "TF_CONFIG": tf_config(ports, i)}, stdout=out, stderr=err))
            out.close()
            err.close()

    def stdout(self, i: int) -> str:
        return self.logs[i][0].read_text()

    def stderr_lines(self, i: int) -> list[str]:
        """The script's own error lines (``<script>: ...``) of worker ``i``."""
        return [l for l in self.logs[i][1].read_text().splitlines()
                if l.startswith(f"{self.script}:")]

    def wait(self, timeout: float = LIMIT_S) -> list[int]:
        deadline = time.monotonic() + timeout
        return [p.wait(timeout=max(1.0, deadline - time.monotonic())) for p in self.procs]

    def wait_for(self, i: int, text: str, timeout: float = LIMIT_S) -> None:
        """Until worker ``i``'s stdout holds ``text`` (it must keep running meanwhile)."""
        deadline = time.monotonic() + timeout
        while text not in self.stdout(i):
            assert time.monotonic() < deadline and self.procs[i].poll() is None, \
                (self.stdout(i)[-2000:], self.stderr_lines(i))
            time.sleep(0.2)

    def stop(self) -> None:
        for p in self.procs:
            if p.poll() is None:
                p.kill()
                p.wait(timeout=30)


def run_workers(folder: Path, args: list[list[str]], script: str = "eval.py",
                timeout: float = LIMIT_S) -> tuple[list[int], Workers]:
    """Runs the workers to their end (at most ``timeout`` s); their exit codes and logs."""
    workers = Workers(folder, args, script)
    try:
        return workers.wait(timeout), workers
    finally:
        workers.stop()


def kill_second_worker_after(folder: Path, args: list[list[str]], marker: str,
                             script: str = "eval.py") -> tuple[int, str | None]:
    """Starts two workers, kills worker 1 once the chief's stdout holds ``marker``, and
    returns the chief's exit code and its one error line (None when it had none)."""
    workers = Workers(folder, args, script)
    try:
        workers.wait_for(0, marker)
        workers.procs[1].send_signal(signal.SIGKILL)
        chief = workers.procs[0].wait(timeout=LIMIT_S)
    finally:
        workers.stop()
    lines = workers.stderr_lines(0)
    assert len(lines) <= 1, lines
    return chief, (lines[0] if lines else None)
