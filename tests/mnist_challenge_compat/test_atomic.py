"""Atomic writes: the old file or the complete new one, never a partial file or a temp left over."""
import os

import pytest

from mnist_challenge_compat import CompatError
from mnist_challenge_compat.atomic import remove_stale_temporaries, write_file_atomic


def test_a_completed_write_replaces_the_file(tmp_path):
    path = tmp_path / "out.txt"
    path.write_text("old")
    write_file_atomic(path, lambda f: f.write(b"new"))
    assert path.read_text() == "new" and [p.name for p in tmp_path.iterdir()] == ["out.txt"]


def test_a_failing_write_keeps_the_old_file_and_leaves_no_temp_file(tmp_path):
    path = tmp_path / "out.txt"
    path.write_text("old")

    def half_then_fail(f):
        f.write(b"partial")
        raise RuntimeError("disk on fire")

    with pytest.raises(RuntimeError, match="disk on fire"):
        write_file_atomic(path, half_then_fail)
    assert path.read_text() == "old" and [p.name for p in tmp_path.iterdir()] == ["out.txt"]


def test_an_unwritable_place_is_a_one_line_compat_error(tmp_path):
    with pytest.raises(CompatError, match="cannot write .*missing_dir"):
        write_file_atomic(tmp_path / "missing_dir" / "out.txt", lambda f: f.write(b"x"))


def _killed_mid_write(path) -> int:
    """A process that dies (SIGKILL) inside write_file_atomic; returns its pid."""
    import subprocess
    import sys
    code = ("import os, signal, sys; sys.path.insert(0, sys.argv[2]);"
            "from mnist_challenge_compat.atomic import write_file_atomic;"
            "write_file_atomic(sys.argv[1], lambda f: (f.write(b'half'), f.flush(),"
            " os.kill(os.getpid(), signal.SIGKILL)))")
    repo = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    proc = subprocess.Popen([sys.executable, "-c", code, str(path), repo],
                            stderr=subprocess.DEVNULL)
    assert proc.wait(timeout=300) == -9
    return proc.pid


@pytest.mark.slow  # the child imports TensorFlow with the package
def test_a_killed_writer_leaves_a_temp_file_named_with_its_pid_which_is_then_removed(tmp_path):
    pid = _killed_mid_write(tmp_path / "attack.npy")
    [left] = list(tmp_path.iterdir())
    assert left.name.startswith(f".attack.npy.{pid}.") and left.name.endswith(".tmp")
    assert remove_stale_temporaries(tmp_path) == [str(left)]
    assert list(tmp_path.iterdir()) == []


def test_temp_files_of_live_writers_and_other_files_are_kept(tmp_path):
    names = [f".a.npy.{os.getpid()}.0123456789ab.tmp",  # this process: a write in flight
             ".a.npy.1.0123456789ab.tmp",  # pid 1 is always alive
             "a.npy", ".a.npy.tmp", "x.0123456789ab.tmp", ".a.npy.12.0123456789ab.tmp.bak"]
    for name in names:
        (tmp_path / name).write_bytes(b"x")
    assert remove_stale_temporaries(tmp_path) == []
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(names)


def test_temp_files_without_a_pid_are_removed_only_by_the_folders_lock_holder(tmp_path):
    old = tmp_path / ".state.npz.0123456789ab.tmp"
    old.write_bytes(b"x")
    assert remove_stale_temporaries(tmp_path) == [] and old.exists()
    assert remove_stale_temporaries(tmp_path, exclusive=True) == [str(old)]
