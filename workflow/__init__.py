"""Wiring shared by the command-line scripts: resumable evaluation runs and their outputs.

Connects ``mnist_challenge_compat`` (files) with ``attacks`` (math); the absl scripts
(``eval.py``, ``experiments/``) only parse flags and call in here.
"""
from workflow.evaluate import EvalSettings, default_model_dir, run_evaluation
from workflow.progress import ProgressPrinter

__all__ = ["EvalSettings", "ProgressPrinter", "default_model_dir", "run_evaluation"]
