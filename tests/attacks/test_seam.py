"""The public seam: the README's composed attack runs as printed, and agrees with perturb."""
import ast
import contextlib
import io
import os
import re

import numpy as np
import pytest

import attacks
from tests.conftest import REPO_ROOT


def _readme_example() -> str:
    text = (REPO_ROOT / "README.md").read_text()
    section = text.split("## Compose your own attack", 1)[1]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


@pytest.mark.slow
def test_the_readme_composed_attack_is_at_most_15_lines_and_runs(monkeypatch):
    code = _readme_example()
    assert len([line for line in code.splitlines() if line.strip()]) <= 15
    monkeypatch.chdir(REPO_ROOT)
    namespace, printed = {}, io.StringIO()
    with contextlib.redirect_stdout(printed):
        exec(compile(code, "README.md", "exec"), namespace)
    model, x, y, x_adv = (namespace[k] for k in ("model", "x", "y", "x_adv"))
    assert x_adv.shape == x.shape and x_adv.dtype == np.float32
    assert np.abs(x_adv - x).max() <= 0.3 + 1e-6 and x_adv.min() >= 0 and x_adv.max() <= 1
    adversarial = np.mean(attacks.predict(model, x_adv) == y)
    assert adversarial < np.mean(attacks.predict(model, x) == y)
    assert f"{adversarial}" in printed.getvalue()
    # The same composition through the high-level API, from the same start: the same images.
    start = namespace["rule"].random_perturb(x, np.random.default_rng(0))
    same = attacks.perturb(model, x, y, method="pqgd", b=100, epsilon=0.3, steps=40,
                           step_size=0.01, loss=namespace["margin"], x_start=start)
    np.testing.assert_array_equal(same, x_adv)


def test_every_seam_name_is_exported():
    for name in ("LinfStep", "L2Step", "sign_unit", "quantized_unit", "raw_unit",
                 "gradient_direction", "blob_direction_fn", "make_loss", "Loss", "StepRunner",
                 "BestIterate", "make_runner", "attack_model"):
        assert name in attacks.__all__ and getattr(attacks, name) is not None


def test_scripts_use_only_the_public_attack_seam():
    """train.py, eval.py, workflow/ and experiments/ import from ``attacks`` itself, never
    from its submodules."""
    paths = [REPO_ROOT / "train.py", REPO_ROOT / "eval.py",
             *sorted((REPO_ROOT / "workflow").glob("*.py")),
             *sorted((REPO_ROOT / "experiments").glob("*.py"))]
    private = []
    for path in paths:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("attacks."):
                private.append(f"{path.name}: from {node.module}")
            if isinstance(node, ast.Import):
                private += [f"{path.name}: import {a.name}" for a in node.names
                            if a.name.startswith("attacks.")]
    assert private == []
