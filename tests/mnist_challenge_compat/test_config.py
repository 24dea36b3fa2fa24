"""The challenge's config.json: reading (duplicate _comment keys), flag mapping, errors, writing."""
import json
import os

import pytest

from mnist_challenge_compat.config import (
    CONFIG_TO_FLAGS,
    EVAL_CONFIG_TO_FLAGS,
    TRAIN_CONFIG_TO_FLAGS,
    config_to_flag_values,
    read_challenge_config,
    write_challenge_config,
)
from mnist_challenge_compat.errors import CompatError


@pytest.fixture(scope="module")
def official_path(shared_data):
    return shared_data / "mnist_challenge" / "config.json"


@pytest.fixture(scope="module")
def official(official_path):
    return read_challenge_config(official_path)


def _write(tmp_path, text, name="config.json"):
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_shipped_challenge_config_is_the_official_file_byte_for_byte(official_path):
    from tests.conftest import REPO_ROOT
    shipped = REPO_ROOT / "mnist_challenge_compat" / "data" / "challenge" / "config.json"
    assert shipped.read_bytes() == official_path.read_bytes()


def test_official_file_really_has_duplicate_comment_keys(official_path):
    pairs = json.loads(official_path.read_text(), object_pairs_hook=lambda p: p)
    assert [k for k, _ in pairs].count("_comment") == 4


def test_official_config_reads_despite_duplicate_comment_keys(official):
    assert official["epsilon"] == 0.3
    assert official["k"] == 40
    assert official["a"] == 0.01
    assert official["random_start"] is True
    assert official["loss_func"] == "xent"
    assert official["store_adv_path"] == "attack.npy"
    assert official["eval_batch_size"] == 200
    assert official["num_eval_examples"] == 10000
    assert official["model_dir"] == "models/a_very_robust_model"
    assert official["random_seed"] == 4557077
    assert official["training_batch_size"] == 50
    assert official["eval_on_cpu"] is True


def test_comment_keys_are_dropped(official):
    assert not [k for k in official if k.startswith("_comment")]
    assert len(official) == 16


def test_value_types_of_official_config(official):
    assert type(official["epsilon"]) is float and type(official["a"]) is float
    assert type(official["k"]) is int and type(official["max_num_training_steps"]) is int


def test_integer_epsilon_is_returned_as_float(tmp_path):
    config = read_challenge_config(_write(tmp_path, '{"epsilon": 1, "a": 0}'))
    assert config == {"epsilon": 1.0, "a": 0.0}
    assert type(config["epsilon"]) is float


def test_unknown_keys_pass_through(tmp_path):
    config = read_challenge_config(_write(tmp_path, '{"new_option": [1, 2], "k": 3}'))
    assert config == {"new_option": [1, 2], "k": 3}


def test_comment_variants_are_dropped(tmp_path):
    text = '{"_comment": "a", "_comment2": "b", "_comment": "c", "k": 1}'
    assert read_challenge_config(_write(tmp_path, text)) == {"k": 1}


def test_duplicate_real_key_is_an_error_naming_it(tmp_path):
    path = _write(tmp_path, '{"epsilon": 0.3, "epsilon": 0.1}')
    with pytest.raises(CompatError, match=r"'epsilon' appears more than once") as err:
        read_challenge_config(path)
    assert str(path) in str(err.value)


def test_eval_flags_from_official_config(official):
    assert config_to_flag_values(official, EVAL_CONFIG_TO_FLAGS) == {
        "epsilon": 0.3, "steps": 40, "step_size": 0.01, "random_start": True, "loss": "xent",
        "attack_path": "attack.npy", "model_dir": "models/a_very_robust_model",
        "batch_size": 200, "num_examples": 10000,
    }


def test_train_flags_have_the_config_key_names(official):
    values = config_to_flag_values(official, TRAIN_CONFIG_TO_FLAGS)
    assert values == {
        "random_seed": 4557077, "max_num_training_steps": 100000, "num_output_steps": 100,
        "num_summary_steps": 100, "num_checkpoint_steps": 300, "training_batch_size": 50,
        "epsilon": 0.3, "k": 40, "a": 0.01, "random_start": True, "loss_func": "xent",
        "model_dir": "models/a_very_robust_model",
    }


def test_flag_values_only_for_keys_present():
    assert config_to_flag_values({"k": 7, "other": 1}, EVAL_CONFIG_TO_FLAGS) == {"steps": 7}
    assert config_to_flag_values({}, TRAIN_CONFIG_TO_FLAGS) == {}


def test_config_to_flags_groups_both_scripts_read_only():
    assert CONFIG_TO_FLAGS["eval"] is EVAL_CONFIG_TO_FLAGS
    assert CONFIG_TO_FLAGS["train"] is TRAIN_CONFIG_TO_FLAGS
    with pytest.raises(TypeError):
        EVAL_CONFIG_TO_FLAGS["k"] = "k"  # type: ignore[index]


def test_missing_file_is_an_error_naming_it(tmp_path):
    path = tmp_path / "nope.json"
    with pytest.raises(CompatError, match="not found") as err:
        read_challenge_config(path)
    assert str(path) in str(err.value)


def test_invalid_json_is_an_error_naming_file_and_position(tmp_path):
    path = _write(tmp_path, '{"epsilon": 0.3,\n "k": }')
    with pytest.raises(CompatError, match=r"invalid JSON at line 2") as err:
        read_challenge_config(path)
    assert str(path) in str(err.value)
    assert "\n" not in str(err.value)


def test_top_level_must_be_an_object(tmp_path):
    with pytest.raises(CompatError, match="JSON object"):
        read_challenge_config(_write(tmp_path, "[1, 2]"))


def test_directory_is_an_error(tmp_path):
    with pytest.raises(CompatError, match="directory"):
        read_challenge_config(tmp_path)


@pytest.mark.parametrize("key, value", [
    ("k", '"40"'),
    ("k", "40.5"),
    ("k", "true"),
    ("epsilon", "true"),
    ("epsilon", '"0.3"'),
    ("epsilon", "-0.1"),
    ("epsilon", "NaN"),
    ("a", "Infinity"),
    ("random_start", '"yes"'),
    ("random_start", "1"),
    ("eval_batch_size", "0"),
    ("num_eval_examples", "null"),
    ("loss_func", "3"),
    ("store_adv_path", '""'),
    ("model_dir", "[]"),
])
def test_wrong_value_type_is_an_error_naming_file_and_key(tmp_path, key, value):
    path = _write(tmp_path, f'{{"_comment": "x", "{key}": {value}}}')
    with pytest.raises(CompatError) as err:
        read_challenge_config(path)
    message = str(err.value)
    assert str(path) in message and f"'{key}'" in message
    assert "\n" not in message


def test_write_round_trips_the_official_config(tmp_path, official):
    path = tmp_path / "config.json"
    write_challenge_config(path, official)
    assert read_challenge_config(path) == official
    assert json.loads(path.read_text()) == official  # plain JSON, no duplicate keys
    assert os.listdir(tmp_path) == ["config.json"]  # no temp file left behind


def test_write_replaces_existing_file_and_drops_comments(tmp_path):
    path = _write(tmp_path, '{"k": 1}')
    write_challenge_config(path, {"_comment": "hi", "k": 2, "epsilon": 0.1})
    assert read_challenge_config(path) == {"k": 2, "epsilon": 0.1}
    assert "_comment" not in path.read_text()


def test_write_rejects_invalid_value_and_keeps_old_file(tmp_path):
    path = _write(tmp_path, '{"k": 1}')
    with pytest.raises(CompatError, match="'k'"):
        write_challenge_config(path, {"k": "many"})
    assert path.read_text() == '{"k": 1}'
    assert os.listdir(tmp_path) == ["config.json"]


def test_write_into_missing_directory_is_an_error(tmp_path):
    with pytest.raises(CompatError, match="cannot write"):
        write_challenge_config(tmp_path / "missing" / "config.json", {"k": 1})


def test_cifar10_challenge_config_maps_num_steps_and_step_size_like_k_and_a(shared_data):
    path = shared_data / "cifar10_challenge" / "config.json"
    values = config_to_flag_values(read_challenge_config(path), EVAL_CONFIG_TO_FLAGS)
    assert values == {"epsilon": 8.0, "steps": 10, "step_size": 2.0, "random_start": True,
                      "loss": "xent", "attack_path": "attack.npy",
                      "model_dir": "models/a_very_robust_model", "batch_size": 100,
                      "num_examples": 10000}


def test_both_names_of_one_flag_with_different_values_are_refused(tmp_path):
    config = read_challenge_config(_write(tmp_path, '{"k": 40, "num_steps": 10}'))
    with pytest.raises(CompatError, match="'k' and 'num_steps' both set steps"):
        config_to_flag_values(config, EVAL_CONFIG_TO_FLAGS)
    same = read_challenge_config(_write(tmp_path, '{"a": 2.0, "step_size": 2}'))
    assert config_to_flag_values(same, EVAL_CONFIG_TO_FLAGS) == {"step_size": 2.0}
