"""The challenge's acceptance rules on the REAL test images; safe loading; atomic outputs."""
import datetime
import os
import pickle

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mnist_challenge_compat.data import load_dataset
from mnist_challenge_compat.errors import CompatError
from mnist_challenge_compat.submission import (
    LEADERBOARD_HEADER,
    SubmissionError,
    check_submission,
    leaderboard_row,
    load_submission,
    save_array_atomic,
    write_leaderboard,
)

EPS = 0.3


@pytest.fixture(scope="module")
def x_nat(mnist_dir):
    x, _ = load_dataset("mnist", "test", mnist_dir)
    x.setflags(write=False)
    return x


@pytest.fixture()
def x_adv(x_nat):
    return x_nat.copy()


def _zero_pixel(x_nat):
    """(row, col) of a natural pixel that is exactly 0."""
    rows, cols = np.nonzero(x_nat == 0.0)
    return rows[0], cols[0]


def _rejects(x_adv, x_nat, message, **kwargs):
    with pytest.raises(SubmissionError) as err:
        check_submission(x_adv, x_nat, EPS, **kwargs)
    assert str(err.value) == message
    assert isinstance(err.value, CompatError)


# --------------------------------------------------------------------------- acceptance

def test_real_test_images_are_what_the_rules_expect(x_nat):
    assert x_nat.shape == (10000, 784) and x_nat.dtype == np.float32
    assert x_nat.min() == 0.0 and x_nat.max() == 1.0


def test_accepts_the_natural_images(x_nat):
    check_submission(x_nat, x_nat, EPS)


def test_accepts_a_perturbation_of_exactly_eps(x_nat):
    # Every pixel moves by eps towards the middle, so the result stays inside [0, 1].
    x_adv = np.where(x_nat > 0.5, x_nat - EPS, x_nat + EPS).astype(np.float32)
    distance = np.abs(x_adv.astype(np.float64) - x_nat)
    assert distance.min() == pytest.approx(EPS, abs=1e-6)
    assert distance.max() == pytest.approx(EPS, abs=1e-6)
    check_submission(x_adv, x_nat, EPS)


def test_accepts_float64_and_within_the_tolerances(x_nat):
    x_adv = x_nat.astype(np.float64)
    r, c = _zero_pixel(x_nat)
    x_adv[r, c] = EPS + 0.00009  # the original allows eps + 0.0001
    rows, cols = np.nonzero(x_nat == 1.0)
    x_adv[rows[0], cols[0]] = 1.0001  # ... and pixels up to 1.0001
    check_submission(x_adv, x_nat, EPS)


def test_accepts_tolerated_pixel_range(x_nat):
    x_adv = x_nat.astype(np.float64)
    r, c = _zero_pixel(x_nat)
    x_adv[r, c] = -0.0001
    check_submission(x_adv, x_nat, EPS)


def test_accepts_integer_arrays(x_nat):
    check_submission(np.round(x_nat).astype(np.uint8), x_nat, 1.0)


def test_num_examples_is_configurable(x_nat):
    check_submission(x_nat[:100], x_nat, EPS, num_examples=100)
    _rejects(x_nat, x_nat, "Invalid shape: expected (100, 784), found (10000, 784)",
             num_examples=100)


# --------------------------------------------------------------------------- rejection

def test_rejects_one_pixel_beyond_eps(x_nat, x_adv):
    r, c = _zero_pixel(x_nat)
    x_adv[r, c] = EPS + 0.001
    _rejects(x_adv, x_nat, "Maximum perturbation found: 0.301 (allowed: 0.3)")


def test_rejects_just_beyond_the_tolerance_with_a_distinguishable_number(x_nat):
    x_adv = x_nat.astype(np.float64)
    r, c = _zero_pixel(x_nat)
    x_adv[r, c] = EPS + 0.0001 + 1e-9
    with pytest.raises(SubmissionError) as err:
        check_submission(x_adv, x_nat, EPS)
    found = float(str(err.value).split("found: ")[1].split(" ")[0])
    assert found > EPS + 0.0001  # not printed as 0.3001, which would look allowed


def test_rejects_nan(x_nat, x_adv):
    x_adv[1234, 400] = np.nan
    _rejects(x_adv, x_nat, "Invalid attack: contains NaN")


def test_rejects_a_pixel_above_one(x_nat, x_adv):
    x_adv[7, 300] = 1.01
    _rejects(x_adv, x_nat, "Invalid pixel range. Expected [0, 1], found [0, 1.01]")


def test_rejects_a_pixel_below_zero(x_nat, x_adv):
    x_adv[7, 0] = -0.01
    _rejects(x_adv, x_nat, "Invalid pixel range. Expected [0, 1], found [-0.01, 1]")


def test_rejects_both_ends_out_of_range(x_nat, x_adv):
    x_adv[0, 0], x_adv[1, 1] = -0.2, 1.01
    _rejects(x_adv, x_nat, "Invalid pixel range. Expected [0, 1], found [-0.2, 1.01]")


def test_rejects_infinity(x_nat, x_adv):
    x_adv[3, 3] = np.inf
    _rejects(x_adv, x_nat, "Invalid pixel range. Expected [0, 1], found [0, inf]")


def test_rejects_9999_rows(x_nat):
    _rejects(x_nat[:9999], x_nat, "Invalid shape: expected (10000, 784), found (9999, 784)")


@pytest.mark.parametrize("shape", [(10000, 785), (10000, 783), (10000, 28, 28), (7840000,)])
def test_rejects_wrong_width(x_nat, shape):
    x_adv = np.zeros(shape, np.float32)
    _rejects(x_adv, x_nat, f"Invalid shape: expected (10000, 784), found {shape}")


def test_rejects_non_numeric_arrays(x_nat):
    _rejects(np.zeros((10000, 784), dtype=bool), x_nat,
             "Invalid dtype: expected a numeric array, found bool")


def test_shape_is_checked_before_range(x_nat):
    x_adv = np.full((9999, 784), np.nan, np.float32)
    _rejects(x_adv, x_nat, "Invalid shape: expected (10000, 784), found (9999, 784)")


def test_bad_epsilon_is_a_programming_error(x_nat):
    with pytest.raises(ValueError):
        check_submission(x_nat, x_nat, -0.1)


def test_too_small_natural_set_is_a_compat_error(x_nat):
    with pytest.raises(CompatError, match="natural test set"):
        check_submission(x_nat[:10], x_nat[:10], EPS)


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), eps=st.floats(0.01, 0.5),
       beyond=st.floats(0.00011, 0.5))
def test_property_within_accepted_one_pixel_beyond_rejected(x_nat, seed, eps, beyond):
    nat = x_nat[:3]
    rng = np.random.default_rng(seed)
    x_adv = np.clip(nat + rng.uniform(-eps, eps, nat.shape), 0.0, 1.0)
    check_submission(x_adv, nat, eps, num_examples=3)
    r, c = _zero_pixel(nat)
    x_adv[r, c] = min(1.0, eps + beyond)  # > eps + 0.0001 either way (eps <= 0.5)
    with pytest.raises(SubmissionError, match="Maximum perturbation found"):
        check_submission(x_adv, nat, eps, num_examples=3)


# --------------------------------------------------------------------------- loading

class _CreatesMarker:
    """Unpickling this object would create the marker file (via builtins.open)."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return open, (self.marker, "w")


def test_load_round_trips_float32(tmp_path, x_nat):
    path = tmp_path / "attack.npy"
    np.save(path, x_nat)
    loaded = load_submission(path)
    assert loaded.dtype == np.float32 and np.array_equal(loaded, x_nat)


def test_the_pickle_payload_is_real(tmp_path):
    """Control: unpickling the payload DOES create its marker (so the next tests mean it)."""
    marker = tmp_path / "control_marker"
    pickle.loads(pickle.dumps(_CreatesMarker(marker))).close()
    assert marker.exists()


def test_rejects_pickled_object_array_without_running_it(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "attack.npy"
    np.save(path, np.array([_CreatesMarker(marker), 1], dtype=object), allow_pickle=True)
    with pytest.raises(SubmissionError, match="pickled object array") as err:
        load_submission(path)
    assert str(path) in str(err.value)
    assert not marker.exists()


def test_rejects_raw_pickle_file_without_running_it(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "attack.npy"
    path.write_bytes(pickle.dumps(_CreatesMarker(marker)))
    with pytest.raises(SubmissionError, match="pickled data"):
        load_submission(path)
    assert not marker.exists()


def test_rejects_npz_archive(tmp_path):
    path = tmp_path / "attack.npy"
    with open(path, "wb") as f:
        np.savez(f, x=np.zeros(3))
    with pytest.raises(SubmissionError, match="npz"):
        load_submission(path)


def test_rejects_missing_file(tmp_path):
    path = tmp_path / "absent.npy"
    with pytest.raises(SubmissionError, match="not found") as err:
        load_submission(path)
    assert str(path) in str(err.value)


def test_rejects_directory(tmp_path):
    with pytest.raises(SubmissionError, match="directory"):
        load_submission(tmp_path)


def test_rejects_garbage(tmp_path):
    path = tmp_path / "attack.npy"
    path.write_bytes(b"this is not a numpy file at all")
    with pytest.raises(SubmissionError, match="not a .npy file"):
        load_submission(path)


def test_rejects_empty_file(tmp_path):
    path = tmp_path / "attack.npy"
    path.write_bytes(b"")
    with pytest.raises(SubmissionError, match="not a .npy file"):
        load_submission(path)


def test_rejects_truncated_file(tmp_path, x_nat):
    path = tmp_path / "attack.npy"
    np.save(path, x_nat)
    path.write_bytes(path.read_bytes()[:-100])
    with pytest.raises(SubmissionError, match="truncated"):
        load_submission(path)


def test_rejects_corrupt_header(tmp_path):
    path = tmp_path / "attack.npy"
    np.save(path, np.zeros((2, 3), np.float32))
    raw = path.read_bytes()
    path.write_bytes(raw.replace(b"'shape'", b"'shapy'"))
    with pytest.raises(SubmissionError, match="corrupt"):
        load_submission(path)


@pytest.mark.parametrize("array", [
    np.array(["a", "b"]),
    np.zeros(3, dtype=np.complex64),
    np.zeros(3, dtype=bool),
    np.zeros(3, dtype=[("x", np.float32)]),
])
def test_rejects_non_numeric_dtype(tmp_path, array):
    path = tmp_path / "attack.npy"
    np.save(path, array)
    with pytest.raises(SubmissionError, match="expected a numeric array"):
        load_submission(path)


# --------------------------------------------------------------------------- atomic saving

def test_save_array_atomic_writes_exact_path_and_no_temp_files(tmp_path):
    path = tmp_path / "pred.bin"
    preds = np.arange(10, dtype=np.int64)
    save_array_atomic(path, preds)
    assert os.listdir(tmp_path) == ["pred.bin"]
    loaded = np.load(path, allow_pickle=False)
    assert loaded.dtype == np.int64 and np.array_equal(loaded, preds)


def test_save_array_atomic_replaces_existing(tmp_path):
    path = tmp_path / "pred.npy"
    save_array_atomic(path, np.zeros(3))
    save_array_atomic(path, np.ones(4))
    assert np.array_equal(np.load(path), np.ones(4))
    assert os.listdir(tmp_path) == ["pred.npy"]


def _failing_save(path, seen):
    real_save = np.save

    def fake_save(f, array, **kwargs):
        real_save(f, array[: len(array) // 2], **kwargs)  # half of the content...
        f.flush()
        seen.append(np.load(path) if path.exists() else None)  # ...what readers see now
        raise RuntimeError("disk on fire")

    return fake_save


def test_failed_save_never_exposes_a_new_file(tmp_path, monkeypatch):
    path = tmp_path / "pred.npy"
    seen = []
    monkeypatch.setattr(np, "save", _failing_save(path, seen))
    with pytest.raises(RuntimeError, match="disk on fire"):
        save_array_atomic(path, np.arange(1000))
    assert seen == [None]
    assert os.listdir(tmp_path) == []


def test_failed_save_keeps_old_content(tmp_path, monkeypatch):
    path = tmp_path / "pred.npy"
    np.save(path, np.arange(5))
    seen = []
    monkeypatch.setattr(np, "save", _failing_save(path, seen))
    with pytest.raises(RuntimeError):
        save_array_atomic(path, np.arange(1000))
    assert np.array_equal(seen[0], np.arange(5))
    assert np.array_equal(np.load(path), np.arange(5))
    assert os.listdir(tmp_path) == ["pred.npy"]


def test_save_into_missing_directory_is_a_compat_error(tmp_path):
    with pytest.raises(CompatError, match="cannot write"):
        save_array_atomic(tmp_path / "no" / "pred.npy", np.zeros(2))


def test_save_refuses_object_arrays(tmp_path):
    with pytest.raises(ValueError):
        save_array_atomic(tmp_path / "p.npy", np.array([object()]))
    assert os.listdir(tmp_path) == []


# --------------------------------------------------------------------------- leaderboard

def test_leaderboard_row_like_the_challenge_readme():
    row = leaderboard_row("PGD against the secret model", "Madry Lab", 0.9252,
                          datetime.date(2026, 11, 25))
    assert row == "| PGD against the secret model | Madry Lab | 92.52% | Nov 25, 2026 |"


def test_leaderboard_row_rounding_string_date_and_escaping():
    row = leaderboard_row("A|B", "me", 0.899996, "Sep 2, 2017")
    assert row == "| A\\|B | me | 90.00% | Sep 2, 2017 |"


@pytest.mark.parametrize("kwargs", [dict(accuracy=1.2), dict(accuracy=-0.1),
                                    dict(attack_name=""), dict(submitted_by="a\nb")])
def test_leaderboard_row_rejects_bad_cells(kwargs):
    args = dict(attack_name="x", submitted_by="y", accuracy=0.5, date="Jan 1, 2020")
    args.update(kwargs)
    with pytest.raises(ValueError):
        leaderboard_row(**args)


def test_write_leaderboard_has_header_and_rows(tmp_path):
    rows = [leaderboard_row("a", "b", 0.9, datetime.date(2017, 9, 2)),
            leaderboard_row("c", "d", 0.8, datetime.date(2018, 1, 31))]
    path = tmp_path / "leaderboard.md"
    write_leaderboard(path, rows)
    assert path.read_text() == (
        "| Attack | Submitted by | Accuracy | Submission Date |\n"
        "| --- | --- | --- | --- |\n"
        "| a | b | 90.00% | Sep 2, 2017 |\n"
        "| c | d | 80.00% | Jan 31, 2018 |\n")
    assert path.read_text().startswith(LEADERBOARD_HEADER)
    assert os.listdir(tmp_path) == ["leaderboard.md"]


def test_cifar10_rules_use_its_image_shape_and_0_255_bounds():
    rng = np.random.default_rng(0)
    x_nat = rng.integers(0, 256, (3, 32, 32, 3)).astype(np.float32)
    x_adv = np.clip(x_nat + rng.choice([-8.0, 8.0], x_nat.shape), 0, 255).astype(np.float32)
    rules = {"num_examples": 3, "image_shape": (32, 32, 3), "bounds": (0, 255)}
    check_submission(x_adv, x_nat, 8.0, **rules)  # eps 8 exactly on the 0-255 scale passes
    bad = x_adv.copy()
    bad[0, 0, 0, 0] = x_nat[0, 0, 0, 0] + 9 if x_nat[0, 0, 0, 0] <= 246 else x_nat[0, 0, 0, 0] - 9
    with pytest.raises(SubmissionError, match=r"^Maximum perturbation found: 9 \(allowed: 8.0\)$"):
        check_submission(bad, x_nat, 8.0, **rules)
    over = x_adv.copy()
    over[1, 2, 3, 1] = 255.5
    with pytest.raises(SubmissionError, match=r"^Invalid pixel range\. Expected \[0, 255\], found \[0, 255\.5\]$"):
        check_submission(over, np.clip(x_nat, 0, 255), 300.0, **rules)
    with pytest.raises(SubmissionError, match=r"expected \(3, 32, 32, 3\), found \(3, 3072\)"):
        check_submission(x_adv.reshape(3, -1), x_nat, 8.0, **rules)
    with pytest.raises(SubmissionError, match="Invalid pixel range. Expected \\[0, 1\\]"):
        check_submission(x_adv.reshape(3, -1)[:, :784] / 255 * 2, x_nat.reshape(3, -1)[:, :784] / 255,
                         1.0, num_examples=3)  # the MNIST defaults are unchanged
