"""FolderLock: one holder at a time, the holder named, free again once the holder is gone."""
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from workflow.lock import FolderBusy, FolderLock

REPO = Path(__file__).resolve().parents[2]
HOLD = ("import sys, time; sys.path.insert(0, sys.argv[2]); from workflow.lock import FolderLock;"
        "FolderLock(sys.argv[1]).acquire(); print('locked', flush=True); time.sleep(60)")


def _holder(folder: Path) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, "-c", HOLD, str(folder), str(REPO)],
                            stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "locked"
    return proc


def test_second_lock_is_refused_naming_the_holders_pid(tmp_path):
    holder = _holder(tmp_path)
    try:
        with pytest.raises(FolderBusy, match=f"in use by process {holder.pid} "):
            FolderLock(tmp_path).acquire()
    finally:
        holder.kill()
        holder.wait(timeout=30)


def test_lock_of_a_killed_process_is_free_again(tmp_path):
    holder = _holder(tmp_path)
    holder.send_signal(signal.SIGKILL)
    holder.wait(timeout=30)
    assert (tmp_path / ".lock").read_text().strip() == str(holder.pid)  # left behind
    with FolderLock(tmp_path) as lock:
        assert lock.held and (tmp_path / ".lock").read_text().strip() == str(os.getpid())


def test_released_lock_can_be_taken_again_and_forgets_the_pid(tmp_path):
    with FolderLock(tmp_path):
        with pytest.raises(FolderBusy, match=f"process {os.getpid()}"):
            FolderLock(tmp_path).acquire()
    assert (tmp_path / ".lock").read_text() == ""
    with FolderLock(tmp_path) as again:
        assert again.held
    assert not again.held


def test_lock_in_a_missing_folder_is_a_one_line_error(tmp_path):
    from mnist_challenge_compat import CompatError
    with pytest.raises(CompatError, match="cannot create the lock file .*missing"):
        FolderLock(tmp_path / "missing").acquire()
