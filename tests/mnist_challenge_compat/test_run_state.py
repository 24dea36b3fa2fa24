"""State files: round trip, and one-line errors for anything that is not one."""
import numpy as np
import pytest

from mnist_challenge_compat import CompatError, load_state, save_state


def test_round_trip_keeps_arrays_and_metadata(tmp_path):
    x = np.arange(12, dtype=np.float32).reshape(3, 4)
    save_state(tmp_path / "s.npz", {"x": x}, {"a": [0.5], "b": None})
    arrays, meta = load_state(tmp_path / "s.npz")
    np.testing.assert_array_equal(arrays["x"], x)
    assert meta == {"a": [0.5], "b": None}


def test_a_npy_file_is_a_one_line_error(tmp_path):
    np.save(tmp_path / "pred.npy", np.zeros(5, np.int64))
    with pytest.raises(CompatError, match=r"pred.npy: not a run state file \(a single .npy"):
        load_state(tmp_path / "pred.npy")


def test_an_npz_without_metadata_is_a_one_line_error(tmp_path):
    np.savez(tmp_path / "plain.npz", x=np.zeros(3))
    with pytest.raises(CompatError, match="not a run state file"):
        load_state(tmp_path / "plain.npz")


@pytest.mark.parametrize("content", [b"", b"not a zip", b"PK\x03\x04broken"])
def test_garbage_is_a_one_line_error(tmp_path, content):
    (tmp_path / "s.npz").write_bytes(content)
    with pytest.raises(CompatError, match="s.npz: corrupt state file"):
        load_state(tmp_path / "s.npz")


def test_metadata_that_is_not_an_object_is_refused(tmp_path):
    np.savez(tmp_path / "s.npz", __meta__=np.asarray("[1, 2]"))
    with pytest.raises(CompatError, match="not a JSON object"):
        load_state(tmp_path / "s.npz")


def test_a_folder_is_a_one_line_error(tmp_path):
    with pytest.raises(CompatError, match="is a directory"):
        load_state(tmp_path)


def test_bytes_already_read_are_parsed_instead_of_the_file_and_errors_name_the_path(tmp_path):
    save_state(tmp_path / "old.npz", {"x": np.zeros(2)}, {"v": 1})
    content = (tmp_path / "old.npz").read_bytes()
    save_state(tmp_path / "s.npz", {"x": np.ones(3)}, {"v": 2})  # the file now holds another
    arrays, meta = load_state(tmp_path / "s.npz", content)
    assert meta == {"v": 1}
    np.testing.assert_array_equal(arrays["x"], np.zeros(2))
    with pytest.raises(CompatError, match=r"s\.npz: corrupt state file"):
        load_state(tmp_path / "s.npz", b"not a zip")
