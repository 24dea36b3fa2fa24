"""compute_dtype="auto": the calibration, its per-machine cache (corrupt or stale files
ignored with a note) and the warning for an explicit bfloat16 that is slower here."""
import io
import json

import numpy as np
import pytest

from attacks import AttackConfig, make_runner
from attacks import calibration
from attacks.calibration import CACHE_FILE, calibrate, resolve_compute_dtype


class FakeTimer:
    """An injected ``(dtype) -> seconds per step`` that counts its calls."""

    def __init__(self, float32_s: float, bfloat16_s: float):
        self.seconds = {"float32": float32_s, "bfloat16": bfloat16_s}
        self.calls = []

    def __call__(self, dtype: str) -> float:
        self.calls.append(dtype)
        return self.seconds[dtype]


@pytest.fixture(autouse=True)
def fresh_warnings(monkeypatch):
    monkeypatch.setattr(calibration, "_WARNED", set())


@pytest.mark.parametrize("f32,bf16,want", [(2.0, 1.0, "bfloat16"), (1.0, 2.0, "float32"),
                                           (1.0, 0.99, "float32")])
def test_auto_picks_bfloat16_only_where_it_measured_faster(tiny_model, tmp_path, f32, bf16, want):
    timer = FakeTimer(f32, bf16)
    assert resolve_compute_dtype(tiny_model, "auto", 200, measure=timer, directory=tmp_path) == want
    # Interleaved rounds of both dtypes, the median of each.
    assert timer.calls == ["float32", "bfloat16"] * calibration.ROUNDS


def test_a_cache_hit_does_not_measure_again(tiny_model, tmp_path):
    first = FakeTimer(3.0, 1.0)
    calibrate(tiny_model, 200, measure=first, directory=tmp_path)
    record = json.loads((tmp_path / CACHE_FILE).read_text())
    assert record["machine"]["cpu"] == calibration.cpu_model()
    again = FakeTimer(1.0, 3.0)
    out = io.StringIO()
    result = calibrate(tiny_model, 200, measure=again, directory=tmp_path, out=out)
    assert again.calls == [] and out.getvalue() == ""
    assert result.speedup == 3.0
    # Another batch size is another entry: measured, and both are kept.
    calibrate(tiny_model, 50, measure=again, directory=tmp_path)
    assert again.calls and len(json.loads((tmp_path / CACHE_FILE).read_text())["entries"]) == 2


@pytest.mark.parametrize("content", ["{not json", json.dumps([1, 2]),
                                     json.dumps({"format": 1, "machine": {}, "entries": {"k": {"float32_s": -1, "bfloat16_s": 1}}})],
                         ids=["not-json", "not-a-mapping", "negative-time"])
def test_a_corrupt_cache_is_ignored_with_a_note_and_replaced(tiny_model, tmp_path, content):
    (tmp_path / CACHE_FILE).write_text(content)
    timer, out = FakeTimer(2.0, 1.0), io.StringIO()
    assert calibrate(tiny_model, 200, measure=timer, directory=tmp_path, out=out).speedup == 2.0
    note = out.getvalue()
    assert note.count("\n") == 1 and "corrupt" in note and str(tmp_path / CACHE_FILE) in note
    assert timer.calls
    assert json.loads((tmp_path / CACHE_FILE).read_text())["format"] == calibration.CACHE_FORMAT


@pytest.mark.parametrize("change", ["cpu", "tensorflow", "format"])
def test_a_stale_cache_is_ignored_with_a_note(tiny_model, tmp_path, change):
    calibrate(tiny_model, 200, measure=FakeTimer(2.0, 1.0), directory=tmp_path)
    record = json.loads((tmp_path / CACHE_FILE).read_text())
    if change == "format":
        record["format"] = calibration.CACHE_FORMAT + 1
    else:
        record["machine"][change] = "something else"
    (tmp_path / CACHE_FILE).write_text(json.dumps(record))
    timer, out = FakeTimer(1.0, 2.0), io.StringIO()
    assert calibrate(tiny_model, 200, measure=timer, directory=tmp_path, out=out).speedup == 0.5
    assert out.getvalue().count("\n") == 1 and "stale" in out.getvalue()
    assert timer.calls  # measured anew, and the new figures replace the stale file's
    assert calibrate(tiny_model, 200, measure=FakeTimer(9, 9), directory=tmp_path).speedup == 0.5


def test_explicit_bfloat16_slower_than_float32_warns_once_in_one_line(tiny_model, tmp_path):
    out = io.StringIO()
    for _ in range(2):
        got = resolve_compute_dtype(tiny_model, "bfloat16", 200, measure=FakeTimer(1.0, 1.7),
                                    directory=tmp_path, out=out)
        assert got == "bfloat16"  # honoured, only warned about
    lines = out.getvalue().splitlines()
    assert len(lines) == 1 and lines[0].startswith("warning: compute_dtype=bfloat16 is slower")
    assert calibration.cpu_model() in lines[0] and "0.59x" in lines[0]


def test_explicit_bfloat16_that_is_faster_and_float32_say_nothing(tiny_model, tmp_path):
    out = io.StringIO()
    timer = FakeTimer(2.0, 1.0)
    assert resolve_compute_dtype(tiny_model, "bfloat16", 200, measure=timer, directory=tmp_path,
                                 out=out) == "bfloat16"
    calls = len(timer.calls)
    assert resolve_compute_dtype(tiny_model, "float32", 200, measure=timer, directory=tmp_path,
                                 out=out) == "float32"
    assert out.getvalue() == "" and len(timer.calls) == calls  # float32 never calibrates


def test_the_cache_follows_qg_cache_dir_then_xdg(monkeypatch, tmp_path):
    monkeypatch.setenv("QG_CACHE_DIR", str(tmp_path / "qg"))
    assert calibration.cache_dir() == tmp_path / "qg"
    monkeypatch.delenv("QG_CACHE_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert calibration.cache_dir() == tmp_path / "xdg" / "qg-attacks"


def test_the_network_key_depends_on_architecture_and_batch_not_weights(tiny_model, cifar_cnn):
    key = calibration.network_key(tiny_model, 200)
    original = tiny_model.get_weights()
    try:
        tiny_model.set_weights([w + 1 for w in original])
        assert calibration.network_key(tiny_model, 200) == key
    finally:
        tiny_model.set_weights(original)
    assert calibration.network_key(tiny_model, 100) != key
    assert calibration.network_key(cifar_cnn, 200) != key


def test_auto_runs_the_attack_in_the_calibrated_dtype(tiny_model, monkeypatch, tmp_path):
    """The real step-loop timer on the tiny model (a short measurement), then an attack
    whose runner differentiates the copy in the chosen dtype."""
    monkeypatch.setenv("QG_CACHE_DIR", str(tmp_path))
    config = AttackConfig(method="pgd", epsilon=0.1, steps=2, step_size=0.05, batch_size=32,
                          compute_dtype="auto")
    runner = make_runner(tiny_model, config)
    entry = next(iter(json.loads((tmp_path / CACHE_FILE).read_text())["entries"].values()))
    want = "bfloat16" if entry["float32_s"] / entry["bfloat16_s"] >= calibration.MIN_SPEEDUP else "float32"
    layer_dtypes = {getattr(l, "compute_dtype", None) for l in runner._model.layers
                    if getattr(l, "weights", None)}
    assert layer_dtypes == {want}
    x = np.random.default_rng(0).random((8, 784), dtype=np.float32)
    assert runner.run(x, x, np.zeros(8, np.int64), 2).shape == (8, 784)


def test_an_unknown_compute_dtype_is_refused_before_compute():
    with pytest.raises(ValueError, match="compute_dtype must be one of auto, float32, bfloat16"):
        AttackConfig(method="pgd", epsilon=0.1, steps=1, step_size=0.1, compute_dtype="float16")


def test_cpu_model_adds_the_family_and_model_numbers_of_the_first_processor(tmp_path):
    block = ("processor\t: {i}\nvendor_id\t: AuthenticAMD\ncpu family\t: {f}\nmodel\t\t: {m}\n"
             "model name\t: AMD EPYC\n\n")
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text(block.format(i=0, f=26, m=2) + block.format(i=1, f=25, m=17))
    assert calibration.cpu_model(cpuinfo) == "AMD EPYC, family 26 model 2"
    cpuinfo.write_text("processor\t: 0\nmodel name\t: Some CPU\n")  # no family numbers
    assert calibration.cpu_model(cpuinfo) == "Some CPU"
