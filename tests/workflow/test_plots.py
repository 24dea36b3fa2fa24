"""Pictures of an evaluation: examples.png and restarts.png, from arrays and from eval runs."""
import json
import re
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from mnist_challenge_compat import load_dataset, load_model
from workflow import plots
from workflow.plots import (example_records, examples_figure, image_shape_of, restarts_figure,
                            select_examples, write_figure)

pytest.importorskip("matplotlib")

REPO = Path(__file__).resolve().parents[2]
TITLE = re.compile(r"true (\d+), clean (\d+)\nadv (\d+) \(([\d.]+)%\)\nL\u221e (\S+)")


def png_size(path) -> tuple[int, int]:
    """(width, height) from the PNG's IHDR chunk."""
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR"
    return struct.unpack(">II", data[16:24])


def image_axes(fig):
    return [ax for ax in fig.axes if ax.images and ax.get_label() != "<colorbar>"]


def shown_titles(fig) -> list[tuple[int, int, int, float, float]]:
    """(label, clean, adv, confidence %, linf) parsed from the titled panels, left to right."""
    titled = [ax for ax in image_axes(fig) if ax.get_title()]
    return [tuple(f(v) for f, v in zip((int, int, int, float, float), TITLE.fullmatch(
        ax.get_title()).groups())) for ax in titled]


def assert_titles_show(fig, records):
    shown = shown_titles(fig)
    assert len(shown) == len(records)
    for (label, clean, adv, conf, linf), r in zip(shown, records):
        assert (label, clean, adv) == (r["label"], r["clean_pred"], r["adv_pred"])
        assert conf == pytest.approx(100 * r["adv_confidence"], abs=0.05)
        assert linf == pytest.approx(r["linf"], rel=5e-3)


@pytest.fixture(scope="module")
def rgb_255(mnist_dir):
    """Real digits as 32x32x3 images on the 0..255 scale, and an eps-8 perturbation of them."""
    x, y = load_dataset("mnist", "test", mnist_dir)
    grey = np.pad(x[:5].reshape(5, 28, 28), ((0, 0), (2, 2), (2, 2))) * 255.0
    rgb = np.stack([grey, 255.0 - grey, grey * 0.5], axis=-1).astype(np.float32)
    signs = np.random.default_rng(0).choice([-8.0, 8.0], size=rgb.shape)
    adv = np.clip(rgb + signs, 0, 255).astype(np.float32)
    return rgb, adv, y[:5]


def test_fooled_examples_come_first_then_the_rest_in_data_order():
    y = np.array([0, 1, 2, 3, 4, 5, 6])
    clean = np.array([0, 9, 2, 3, 4, 5, 6])  # example 1 was already wrong
    adv = np.array([0, 8, 7, 3, 1, 5, 6])    # 2 and 4 fooled; 1 stays wrong (not fooled)
    np.testing.assert_array_equal(select_examples(y, clean, adv, 4), [2, 4, 0, 1])
    np.testing.assert_array_equal(select_examples(y, clean, adv, 100), [2, 4, 0, 1, 3, 5, 6])
    with pytest.raises(ValueError, match=">= 0"):
        select_examples(y, clean, adv, -1)


def test_records_hold_the_largest_pixel_change(rgb_255):
    x, x_adv, y = rgb_255
    records = example_records([3, 1], x[[3, 1]], x_adv[[3, 1]], y[[3, 1]], [5, 6], [7, 8],
                              [0.5, 0.25])
    assert [r["index"] for r in records] == [3, 1]
    for r, i in zip(records, [3, 1]):
        assert r["label"] == y[i] and isinstance(r["label"], int)
        assert r["linf"] == np.abs(x_adv[i].astype(np.float64) - x[i]).max() == 8.0
    assert json.loads(json.dumps(records)) == records


@pytest.mark.parametrize("flat,expected", [((784,), (28, 28)), ((3072,), (32, 32, 3)),
                                           ((32, 32, 1), (32, 32)), ((32, 32, 3), (32, 32, 3)),
                                           ((28, 28), (28, 28))])
def test_image_shape_of_flat_grey_and_rgb_batches(flat, expected):
    assert image_shape_of(np.zeros((2, *flat))) == expected


def test_image_shape_of_an_unknown_layout_asks_for_image_shape():
    with pytest.raises(ValueError, match="image_shape"):
        image_shape_of(np.zeros((2, 785)))


def test_rgb_0_255_figure_has_three_rows_of_k_panels_its_titles_and_its_pixel_size(rgb_255, tmp_path):
    x, x_adv, y = rgb_255
    records = example_records(range(5), x, x_adv, y, y, (y + 1) % 10, np.linspace(0.3, 0.9, 5))
    fig = examples_figure(x, x_adv, records, bounds=(0, 255), epsilon=8)
    panels = image_axes(fig)
    assert len(panels) == 3 * 5 and len(fig.axes) == 3 * 5 + 1  # + the colour bar
    assert_titles_show(fig, records)
    clean_shown = panels[0].images[0].get_array()
    np.testing.assert_allclose(clean_shown, x[0] / 255.0, atol=1e-6)
    delta = panels[10].images[0]
    assert delta.get_clim() == (-8, 8)
    change = x_adv[0].astype(np.float64) - x[0]
    most_changed = np.take_along_axis(change, np.abs(change).argmax(-1)[..., None], -1)[..., 0]
    np.testing.assert_allclose(delta.get_array(), most_changed, atol=1e-4)
    path = write_figure(fig, tmp_path / "examples.png")
    assert png_size(path) == (5 * 125 + 125, 475)


def test_flat_grey_images_on_0_255_are_shown_28x28_on_that_scale(rgb_255):
    x, x_adv, y = rgb_255
    flat = x[..., 0][:, 2:30, 2:30].reshape(5, 784)
    flat_adv = x_adv[..., 0][:, 2:30, 2:30].reshape(5, 784)
    records = example_records(range(3), flat[:3], flat_adv[:3], y[:3], y[:3], y[:3], [1, 1, 1])
    fig = examples_figure(flat[:3], flat_adv[:3], records, bounds=(0, 255))
    panels = image_axes(fig)
    assert len(panels) == 9
    assert panels[3].images[0].get_array().shape == (28, 28)
    assert panels[3].images[0].get_clim() == (0, 255)
    scale = np.abs(flat_adv[:3] - flat[:3]).max()
    assert panels[6].images[0].get_clim() == (-scale, scale)


def test_restarts_figure_draws_each_run_and_the_worst_and_average(tmp_path):
    merged = [[0.9, 0.85, 0.84], [0.92, 0.86, 0.83]]
    fig = restarts_figure(merged, [[0.9, 0.88, 0.9], [0.92, 0.9, 0.88]])
    lines = {line.get_label(): line for line in fig.axes[0].lines}
    np.testing.assert_allclose(lines["worst of runs"].get_ydata(), [90, 85, 83])
    np.testing.assert_allclose(lines["average of runs"].get_ydata(), [91, 85.5, 83.5])
    np.testing.assert_array_equal(lines["worst of runs"].get_xdata(), [1, 2, 3])
    assert len(fig.axes[0].lines) == 2 + 2
    assert png_size(write_figure(fig, tmp_path / "restarts.png")) == (600, 400)


def test_restarts_figure_of_one_run_shows_each_restart_alone():
    fig = restarts_figure([[0.5, 0.4]], [[0.5, 0.45]])
    lines = {line.get_label(): line for line in fig.axes[0].lines}
    np.testing.assert_allclose(lines["restarts merged"].get_ydata(), [50, 40])
    np.testing.assert_allclose(lines["each restart alone (whole set)"].get_ydata(), [50, 45])


# ---------------------------------------------------------------------------------------------
# Through a real evaluation of the shipped MNIST model
# ---------------------------------------------------------------------------------------------

def _evaluate(out, log=None, **kw):
    from workflow import EvalSettings, run_evaluation
    settings = dict(num_examples=30, steps=5, output_dir=str(out))
    settings.update(kw)
    return run_evaluation(EvalSettings(**settings), log=log.append if log is not None else print)


@pytest.fixture(scope="module")
def mnist_run(tmp_path_factory, mnist_dir):
    out = tmp_path_factory.mktemp("eval")
    _evaluate(out, restarts=2, runs=2, steps=10, step_size=0.05, data_dir=str(mnist_dir))
    return out


def test_eval_writes_both_pictures_of_the_expected_size(mnist_run):
    assert png_size(mnist_run / "examples.png") == (8 * 125 + 125, 475)
    assert png_size(mnist_run / "restarts.png") == (600, 400)


def test_recorded_examples_are_the_first_fooled_ones_with_their_true_numbers(mnist_run, mnist_dir):
    from attacks import predict
    from workflow import default_model_dir
    results = json.loads((mnist_run / "results.json").read_text())
    x, y = load_dataset("mnist", "test", mnist_dir)
    x, y = x[:30], y[:30]
    x_adv = np.load(mnist_run / "attack.npy")
    adv_pred = np.load(mnist_run / "pred.npy")
    clean_pred = predict(load_model(default_model_dir("mnist")), x)
    fooled = np.flatnonzero((clean_pred == y) & (adv_pred != y))
    records = results["examples"]
    index = [r["index"] for r in records]
    assert len(records) == 8 and len(fooled) >= 1
    assert index[:min(8, len(fooled))] == list(fooled[:8])
    for r in records:
        i = r["index"]
        assert (r["label"], r["clean_pred"], r["adv_pred"]) == (y[i], clean_pred[i], adv_pred[i])
        assert r["linf"] == pytest.approx(np.abs(x_adv[i].astype(np.float64) - x[i]).max())
        assert 0.1 <= r["adv_confidence"] <= 1  # the argmax of 10 softmax probabilities
    fig = examples_figure(x[index], x_adv[index], records,
                          epsilon=results["attack_config"]["epsilon"])
    assert len(image_axes(fig)) == 3 * 8
    assert_titles_show(fig, records)


def test_merged_accuracies_fall_with_restarts_and_end_at_each_runs_accuracy(mnist_run):
    results = json.loads((mnist_run / "results.json").read_text())
    merged = results["merged_accuracies"]
    assert [len(m) for m in merged] == [2, 2]
    for run, alone, accuracy in zip(merged, results["restart_accuracies"], results["run_accuracies"]):
        assert run[0] == alone[0] and run[-1] == accuracy
        assert run[1] <= min(run[0], alone[1])


def test_pictures_are_redrawn_from_the_folder_alone(mnist_run, tmp_path):
    copy = tmp_path / "run"
    copy.mkdir()
    for name in ("results.json", "attack.npy"):
        (copy / name).write_bytes((mnist_run / name).read_bytes())
    written = plots.write_plots(copy, log=pytest.fail)
    assert sorted(p.name for p in written) == ["examples.png", "restarts.png"]
    for name in ("examples.png", "restarts.png"):
        assert (copy / name).read_bytes() == (mnist_run / name).read_bytes()


def test_results_without_recorded_examples_say_so_in_one_line(mnist_run, tmp_path):
    results = json.loads((mnist_run / "results.json").read_text())
    del results["examples"]
    (tmp_path / "results.json").write_text(json.dumps(results))
    (tmp_path / "attack.npy").write_bytes((mnist_run / "attack.npy").read_bytes())
    notes = []
    written = plots.write_plots(tmp_path, log=notes.append)
    assert [p.name for p in written] == ["restarts.png"] and not (tmp_path / "examples.png").exists()
    assert len(notes) == 1 and "examples.png not written" in notes[0] and "predates" in notes[0]


@pytest.mark.parametrize("setup,needle", [
    (lambda d: None, "no such folder"),
    (lambda d: d.mkdir(), "no results.json"),
    (lambda d: (d.mkdir(), (d / "results.json").write_text("{not json")), "not a readable JSON"),
    (lambda d: (d.mkdir(), (d / "results.json").write_text("{}")), "not an eval.py results file"),
])
def test_plots_command_on_a_bad_folder_is_one_line_and_exit_1(setup, needle, tmp_path):
    folder = tmp_path / "out"
    setup(folder)
    proc = subprocess.run([sys.executable, "-m", "workflow.plots", str(folder)], capture_output=True,
                          text=True, timeout=300, cwd=REPO)
    lines = [line for line in proc.stderr.splitlines() if line.startswith("python -m workflow.plots")]
    assert proc.returncode == 1 and len(lines) == 1 and needle in lines[0], proc.stderr[-1000:]
    assert "Traceback" not in proc.stderr


def test_eval_without_matplotlib_writes_every_other_output_and_says_why(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    log = []
    _evaluate(tmp_path, log=log, num_examples=10, steps=2, restarts=2)
    for name in ("attack.npy", "pred.npy", "results.json", "leaderboard.md", "state.npz"):
        assert (tmp_path / name).is_file()
    assert not list(tmp_path.glob("*.png"))
    notes = [line for line in log if "not written" in line]
    assert len(notes) == 1 and "examples.png and restarts.png" in notes[0]
    assert "matplotlib" in notes[0] and "pip install" in notes[0]
    assert len(json.loads((tmp_path / "results.json").read_text())["examples"]) == 8


def test_eval_with_plots_off_writes_no_picture_and_no_note(tmp_path):
    log = []
    _evaluate(tmp_path, log=log, num_examples=10, steps=2, plots=False, plot_examples=3)
    assert not list(tmp_path.glob("*.png")) and not [line for line in log if "not written" in line]
    assert len(json.loads((tmp_path / "results.json").read_text())["examples"]) == 3
