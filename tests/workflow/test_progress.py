"""Progress lines: restart labels, throughput and ETA."""
import io

from workflow.progress import ProgressPrinter, format_duration


def test_format_duration():
    assert format_duration(3725.2) == "1:02:05"
    assert format_duration(0) == "0:00:00"


def test_restart_line_has_label_rate_and_eta():
    now = [0.0]
    out = io.StringIO()
    p = ProgressPrinter(4000, runs=1, restarts=4, steps=10, out=out, clock=lambda: now[0])
    now[0] = 2.0
    p.restart_finished(0, 0, 0.9, 0.9, 1000)
    line = out.getvalue().strip()
    assert "run 1/1 restart 1/4 done" in line
    assert "500 example-steps/s" in line and "50.0 examples/s" in line
    assert line.endswith("ETA 0:00:06")


def test_within_restart_lines_are_rate_limited():
    now = [0.0]
    out = io.StringIO()
    p = ProgressPrinter(1000, runs=2, restarts=1, steps=5, out=out, interval=10, clock=lambda: now[0])
    for t, done in [(1, 100), (5, 200), (11, 300), (12, 400)]:
        now[0] = t
        p.within_restart(1, 0, done)
    lines = out.getvalue().splitlines()
    assert len(lines) == 1 and "run 2/2 restart 1/1 in progress: 30.0%" in lines[0]


def test_format_duration_counts_hours_past_a_day():
    assert format_duration(86399) == "23:59:59"
    assert format_duration(90000) == "25:00:00"
    assert format_duration(3 * 86400 + 61) == "72:01:01"
    assert format_duration(-5) == "0:00:00"


def test_a_restart_on_the_unbroken_subset_says_how_many_it_attacked():
    out = io.StringIO()
    p = ProgressPrinter(4000, runs=1, restarts=3, steps=10, out=out, clock=lambda: 1.0)
    p.restart_finished(0, 0, 0.9, 0.9, 1000, attacked=1000, total=1000)
    p.restart_finished(0, 1, 0.95, 0.855, 1000, attacked=900, total=1000)
    p.restart_finished(0, 2, None, 0.0, 1000, attacked=0, total=1000)
    first, second, third = out.getvalue().splitlines()
    assert "done: accuracy 90.00%, merged 90.00%" in first
    assert "done: accuracy 95.00% of the 900 unbroken attacked, merged 85.50%" in second
    assert "done: nothing left to attack, merged 0.00%" in third
