"""train.py --strategy=multi_worker: worker processes on 127.0.0.1, each with its own TF_CONFIG.

Every worker is a subprocess bounded in time and killed in a ``finally``. Two workers (one
replica each, a shard of 25 of every batch of 50) must write, on the chief only, the
checkpoint of one process up to float summation order (``assert_same_up_to_summation_order``:
the shards' gradients are summed across the workers); a worker killed mid-run must leave
the chief's checkpoint, from which both resume; bad clusters and workers that differ are
refused in one line before anything is written.
"""
import subprocess
import sys
import time

import pytest

from mnist_challenge_compat import latest_checkpoint
from mnist_challenge_compat.checkpoint import read_global_step
from tests.test_train import assert_same_up_to_summation_order, run_train, train_args
from tests.worker_processes import (ENV, LIMIT_S, REPO, free_ports, kill_second_worker_after,
                                    run_workers, tf_config)


def _one_process(mnist_dir, model_dir, steps: int) -> str:
    result = run_train(train_args(mnist_dir, model_dir, max_num_training_steps=steps))
    assert result.returncode == 0, result.stderr[-2000:]
    return latest_checkpoint(model_dir)


@pytest.mark.slow
def test_two_workers_train_the_one_process_checkpoint_and_only_the_chief_writes(tmp_path,
                                                                               mnist_dir):
    args = ["--join_timeout=120"]
    chief_dir, other_dir = tmp_path / "chief", tmp_path / "w1"
    codes, workers = run_workers(
        tmp_path / "logs", [train_args(mnist_dir, chief_dir, max_num_training_steps=4) + args,
                            train_args(mnist_dir, other_dir, max_num_training_steps=4) + args],
        script="train.py")
    assert codes == [0, 0], (workers.stderr_lines(0), workers.stderr_lines(1))
    assert "MultiWorkerMirroredStrategy, 2 replica(s) on 2 worker(s); this is worker 0 " \
           "(chief)" in workers.stdout(0)
    assert "worker 1 of 2: trained to step 4; the chief writes the checkpoints" \
        in workers.stdout(1)
    assert not other_dir.exists()  # another worker writes nothing, not even a folder
    ours = latest_checkpoint(chief_dir)
    assert read_global_step(ours) == 4
    assert_same_up_to_summation_order(ours, _one_process(mnist_dir, tmp_path / "one", 4))


@pytest.mark.slow
def test_a_worker_killed_mid_run_stops_the_chief_and_both_resume_from_its_checkpoint(
        tmp_path, mnist_dir):
    run = tmp_path / "run"
    args = train_args(mnist_dir, run, max_num_training_steps=8, num_checkpoint_steps=2,
                      num_output_steps=1) + ["--join_timeout=20"]
    chief, line = kill_second_worker_after(tmp_path / "logs", [args, args], "step 3/8",
                                           script="train.py")
    if chief == 0:  # the chief had finished its last exchange before the kill
        pytest.skip("the run ended before the worker was killed; nothing to resume")
    assert chief == 1 and "lost contact with another worker" in line, line
    assert "rerun the same command on every worker to resume from the chief's" in line
    saved = read_global_step(latest_checkpoint(run))
    assert 2 <= saved < 8
    codes, again = run_workers(tmp_path / "logs2", [args, args], script="train.py")
    assert codes == [0, 0], (again.stderr_lines(0), again.stderr_lines(1))
    assert f"checkpoint-{saved} at step {saved}" in again.stdout(0)
    assert f"resuming from the chief's checkpoint at step {saved}" in again.stdout(1)
    ours = latest_checkpoint(run)
    assert read_global_step(ours) == 8
    # 8 steps: the coordinates whose Adam step flipped have moved further apart (measured:
    # the first conv kernel 1.7e-5 of its change in norm), so the bound is rel 1e-4 here.
    assert_same_up_to_summation_order(ours, _one_process(mnist_dir, tmp_path / "one", 8),
                                      rtol=1e-4)


def _lone_worker_line(model_dir, environ: dict, *flags: str) -> str:
    """Runs train.py --strategy=multi_worker alone with ``environ``; asserts exit 1 and
    returns its one train.py error line."""
    res = subprocess.run([sys.executable, "train.py", "--strategy=multi_worker", *flags,
                          f"--model_dir={model_dir}"], cwd=REPO, env={**ENV, **environ},
                         capture_output=True, text=True, timeout=LIMIT_S)
    assert res.returncode == 1, res.stderr[-2000:]
    [line] = [l for l in res.stderr.splitlines() if l.startswith("train.py")]
    return line


def test_a_worker_that_never_joins_times_out_in_one_line_and_writes_nothing(tmp_path,
                                                                            mnist_dir):
    model_dir = tmp_path / "run"
    started = time.monotonic()
    line = _lone_worker_line(model_dir, {"TF_CONFIG": tf_config(free_ports(2), 0)},
                             f"--data_dir={mnist_dir}", "--join_timeout=3")
    assert line == ("train.py: --strategy=multi_worker: the cluster of 2 task(s) did not "
                    "complete within --join_timeout=3 s (this task: worker 0); start the same "
                    "command with its own TF_CONFIG on every host of TF_CONFIG's cluster")
    assert time.monotonic() - started < 120
    assert not model_dir.exists()


@pytest.mark.parametrize("config, flags, needle", [
    (None, [], "--strategy=multi_worker needs TF_CONFIG, e.g. TF_CONFIG="),
    ("{cluster", [], "TF_CONFIG is not valid JSON"),
    ("two workers", ["--training_batch_size=1", "--num_train_examples=10"],
     "TF_CONFIG has 2 workers (at least one replica each) but a batch has 1 example(s)"),
])
def test_a_bad_cluster_is_refused_in_one_line_before_joining(tmp_path, mnist_dir, config,
                                                             flags, needle):
    if config == "two workers":
        config = tf_config(free_ports(2), 0)
    environ = {} if config is None else {"TF_CONFIG": config}
    line = _lone_worker_line(tmp_path / "run", environ, f"--data_dir={mnist_dir}",
                             "--join_timeout=60", *flags)
    assert line.startswith("train.py: ") and needle in line, line
    assert not (tmp_path / "run").exists()


@pytest.mark.slow
def test_workers_started_with_other_flags_are_refused_before_anything_is_written(tmp_path,
                                                                                 mnist_dir):
    model_dir = tmp_path / "run"
    base = ["--join_timeout=120"]
    codes, workers = run_workers(
        tmp_path / "logs", [train_args(mnist_dir, model_dir, max_num_training_steps=2) + base,
                            train_args(mnist_dir, model_dir, max_num_training_steps=2, k=3)
                            + base], script="train.py")
    assert codes == [1, 1]
    for i in (0, 1):
        [line] = workers.stderr_lines(i)
        assert line == ("train.py: --strategy=multi_worker: worker 1 was started with other "
                        "settings than the chief (k: 3 there, 2 here); run the same command "
                        "on every worker")
    assert not model_dir.exists()


def test_a_worker_that_fails_before_the_job_check_stops_the_chief_at_once(tmp_path, mnist_dir):
    # Worker 1 has too few training images for a batch: it fails after joining, before its
    # fingerprint. The chief must stop with its line, not after --join_timeout (300 s).
    model_dir = tmp_path / "run"
    base = train_args(mnist_dir, model_dir, max_num_training_steps=2) + ["--join_timeout=300"]
    started = time.monotonic()
    codes, workers = run_workers(tmp_path / "logs", [base, base + ["--num_train_examples=10"]],
                                 script="train.py", timeout=150)
    assert codes == [1, 1]
    assert time.monotonic() - started < 150
    [own] = workers.stderr_lines(1)
    assert own == "train.py: mnist/train: 10 examples, fewer than one batch of 50"
    [chief] = workers.stderr_lines(0)
    assert chief == ("train.py: --strategy=multi_worker: worker 1 stopped before the job started "
                     "(mnist/train: 10 examples, fewer than one batch of 50); fix it and run "
                     "the same command on every worker")
    assert not model_dir.exists()
