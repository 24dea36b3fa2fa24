"""Wiring shared by the command-line scripts: resumable evaluation runs and their outputs.

Connects ``mnist_challenge_compat`` (files) with ``attacks`` (math); the absl scripts
(``eval.py``, ``train.py``, ``experiments/``) only parse flags and call in here.
Importing the package is cheap (``workflow.cli`` needs no TensorFlow); the names below load
their modules on first use.
"""
import importlib

_LAZY = {"EvalSettings": "workflow.evaluate", "default_model_dir": "workflow.evaluate",
         "run_evaluation": "workflow.evaluate", "ProgressPrinter": "workflow.progress"}

__all__ = sorted(_LAZY)


def __getattr__(name):
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'workflow' has no attribute {name!r}")
