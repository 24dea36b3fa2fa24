"""Atomic writes: the old file or the complete new one, never a partial file or a temp left over."""
import pytest

from mnist_challenge_compat import CompatError
from mnist_challenge_compat.atomic import write_file_atomic


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
