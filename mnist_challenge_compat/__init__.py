"""File formats of the MNIST Adversarial Examples Challenge: TF1 checkpoints and IDX data.

No attack math lives here; Keras layer definitions live in ``models``. The checkpoint names
load TensorFlow on first use (not at import), so that a program such as the verifier can check
an untrusted file, and set TensorFlow's logging, before TensorFlow starts.
"""
import importlib

from mnist_challenge_compat.errors import CompatError
from mnist_challenge_compat.data import dataset_source
from mnist_challenge_compat.data import load_dataset

__all__ = [
    "CompatError",
    "load_model",
    "save_checkpoint",
    "restore_optimizer",
    "latest_checkpoint",
    "checkpoint_sha256",
    "tf1_variable_map",
    "load_dataset",
    "dataset_source",
]

# Challenge config.json and submissions (run_attack is a program: not imported here).
from mnist_challenge_compat.config import CONFIG_TO_FLAGS
from mnist_challenge_compat.config import config_to_flag_values
from mnist_challenge_compat.config import read_challenge_config
from mnist_challenge_compat.config import write_challenge_config
from mnist_challenge_compat.submission import SubmissionError
from mnist_challenge_compat.submission import check_submission
from mnist_challenge_compat.submission import leaderboard_row
from mnist_challenge_compat.submission import load_submission
from mnist_challenge_compat.submission import save_array_atomic
from mnist_challenge_compat.submission import write_leaderboard

__all__ += [
    "CONFIG_TO_FLAGS",
    "config_to_flag_values",
    "read_challenge_config",
    "write_challenge_config",
    "SubmissionError",
    "check_submission",
    "leaderboard_row",
    "load_submission",
    "save_array_atomic",
    "write_leaderboard",
]

from mnist_challenge_compat.run_state import load_state
from mnist_challenge_compat.run_state import save_state

__all__ += ["load_state", "save_state"]

_CHECKPOINT_NAMES = ("checkpoint_sha256", "latest_checkpoint", "load_model", "restore_optimizer",
                     "save_checkpoint", "tf1_variable_map")


def __getattr__(name):
    if name in _CHECKPOINT_NAMES:
        return getattr(importlib.import_module("mnist_challenge_compat.checkpoint"), name)
    raise AttributeError(f"module 'mnist_challenge_compat' has no attribute {name!r}")
