"""Writing the artifacts: markdown tables, JSON numbers and PNG figures, each atomically."""
from __future__ import annotations

import io
import json
import os
from pathlib import Path
from typing import Sequence

from attacks import cpu_model
from mnist_challenge_compat.atomic import write_file_atomic
from workflow.plots import pyplot


def machine(cpuinfo: str | Path = "/proc/cpuinfo", meminfo: str | Path = "/proc/meminfo") -> str:
    """``"AMD EPYC, family 26 model 2 (2 cores, 24 GiB)"``: the CPU (see
    :func:`attacks.cpu_model`), the cores this process may use and the memory
    (where ``meminfo`` tells it)."""
    memory = ""
    try:
        for line in Path(meminfo).read_text().splitlines():
            if line.startswith("MemTotal:"):
                memory = f", {round(int(line.split()[1]) / 2 ** 20)} GiB"
                break
    except (OSError, ValueError, IndexError):
        pass
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return f"{cpu_model(cpuinfo)} ({cores} cores{memory})"


def display_path(path: str | Path) -> str:
    """``path`` relative to the working directory when it lies below it, else absolute."""
    resolved = Path(path).resolve()
    try:
        return str(resolved.relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(resolved)


def pct(value: float) -> str:
    """``0.8733`` -> ``"87.33"``."""
    return f"{100 * value:.2f}"


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "| " + " | ".join("---" for _ in header) + " |"]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def write_text(path: str | Path, text: str) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_file_atomic(path, lambda f: f.write(text.encode()))
    return path


def write_json(path: str | Path, data) -> Path:
    return write_text(path, json.dumps(data, indent=2, sort_keys=True) + "\n")


def save_figure(fig, path: str | Path) -> Path:
    """Saves a matplotlib figure as PNG atomically and closes it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    buffer = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buffer, format="png", dpi=120, bbox_inches="tight")
    pyplot().close(fig)
    write_file_atomic(path, lambda f: f.write(buffer.getvalue()))
    return path
