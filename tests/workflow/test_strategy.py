"""--strategy / --devices / TF_CONFIG parsing (no devices are configured in this process)."""
import json

import pytest

from workflow.strategy import make_strategy, parse_devices, parse_tf_config

TWO_WORKERS = {"cluster": {"worker": ["10.0.0.1:12345", "10.0.0.2:12345"]},
               "task": {"type": "worker", "index": 1}}


@pytest.mark.parametrize("text,expected", [
    (None, None), ("2", 2), (" 3 ", 3), ("/gpu:0,/gpu:1", [("GPU", 0), ("GPU", 1)]),
    ("cpu:0, CPU:2", [("CPU", 0), ("CPU", 2)]), ("/device:GPU:1", [("GPU", 1)]),
])
def test_devices_are_a_count_or_a_list_of_cpu_and_gpu_devices(text, expected):
    assert parse_devices(text) == expected


@pytest.mark.parametrize("text,needle", [
    ("0", "count >= 1"), ("-1", "count >= 1"), ("gpu:0,gpu:0", "names a device twice"),
    ("tpu:0", "'tpu:0' is not a device"), ("gpu0", "'gpu0' is not a device"),
    ("gpu:0,", "'' is not a device"), ("", "'' is not a device"),
])
def test_bad_devices_are_one_line_errors_naming_the_flag(text, needle):
    with pytest.raises(ValueError, match="--devices") as err:
        parse_devices(text)
    assert needle in str(err.value) and "\n" not in str(err.value)


def test_a_two_worker_tf_config_names_its_task_and_the_chief():
    found = parse_tf_config(json.dumps(TWO_WORKERS))
    assert found["workers"] == 2 and found["task"] == {"type": "worker", "index": 1}
    assert found["chief"] is False
    assert parse_tf_config(json.dumps({**TWO_WORKERS, "task": {"type": "worker",
                                                               "index": 0}}))["chief"] is True
    with_chief = {"cluster": {"chief": ["a:1"], "worker": ["b:2"]},
                  "task": {"type": "worker", "index": 0}}
    assert parse_tf_config(json.dumps(with_chief))["chief"] is False


@pytest.mark.parametrize("config,needle", [
    (None, "needs TF_CONFIG"), ("", "needs TF_CONFIG"), ("{cluster", "not valid JSON"),
    ("[1]", "must be a JSON object"),
    ({"task": {"type": "worker", "index": 0}}, "no \"cluster\""),
    ({"cluster": {"ps": ["a:1"]}, "task": {"type": "ps", "index": 0}}, "job 'ps' is not one of"),
    ({"cluster": {"worker": []}, "task": {"type": "worker", "index": 0}}, "must list its"),
    ({"cluster": {"worker": ["a"]}, "task": {"type": "worker", "index": 0}}, "'a' is not host:port"),
    ({"cluster": {"worker": ["a:0"]}, "task": {"type": "worker", "index": 0}}, "is not host:port"),
    ({"cluster": {"worker": ["a:1", "a:1"]}, "task": {"type": "worker", "index": 0}}, "twice"),
    ({"cluster": {"chief": ["a:1", "b:1"]}, "task": {"type": "chief", "index": 0}}, "exactly one"),
    ({"cluster": {"worker": ["a:1"]}}, "no \"task\""),
    ({"cluster": {"worker": ["a:1"]}, "task": {"type": "chief", "index": 0}}, "not a job"),
    ({"cluster": {"worker": ["a:1"]}, "task": {"type": "worker", "index": 1}}, "in [0, 1)"),
    ({"cluster": {"worker": ["a:1"]}, "task": {"type": "worker", "index": "0"}}, "in [0, 1)"),
])
def test_a_missing_or_malformed_tf_config_is_a_one_line_error(config, needle):
    text = config if config is None or isinstance(config, str) else json.dumps(config)
    with pytest.raises(ValueError) as err:
        parse_tf_config(text)
    assert needle in str(err.value) and "\n" not in str(err.value)


def test_none_is_no_strategy_and_takes_no_devices():
    assert make_strategy("none") is None
    with pytest.raises(ValueError, match="--devices applies to --strategy=mirrored only"):
        make_strategy("none", "2")
    with pytest.raises(ValueError, match="--strategy must be one of"):
        make_strategy("ring")


def test_multi_worker_checks_tf_config_and_its_flags_before_any_tensorflow_work():
    with pytest.raises(ValueError, match="needs TF_CONFIG"):
        make_strategy("multi_worker", environ={})
    with pytest.raises(ValueError, match="--devices applies to --strategy=mirrored only"):
        make_strategy("multi_worker", "2", environ={"TF_CONFIG": json.dumps(TWO_WORKERS)})
    with pytest.raises(ValueError, match="--join_timeout must be > 0"):
        make_strategy("multi_worker", environ={"TF_CONFIG": json.dumps(TWO_WORKERS)},
                      join_timeout=0)
