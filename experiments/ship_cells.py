"""Ships a run's finished cells into the tracked results/cells (the reverse of the seeding that
every experiment command does from there).

Usage: python -m experiments.ship_cells ARTIFACT [ARTIFACT ...] [--preset=quick|paper]
       [--output_dir=runs/experiments | --cache_dir=DIR] [--shipped_cells=results/cells]

Reads the cells the named artifacts read from the run's cell folder (--cache_dir, default
<output_dir>/cells: the folder the run wrote to) and copies into --shipped_cells each one that is
checked to be that cell (same settings, model and images), has no attack in progress, holds every
attack the named artifacts read from it, and holds more attacks than the shipped copy. Cells that
are still short of that stay where they are and are listed. Nothing is computed.

Re-render the shipped reports afterwards (the README's command with --stored_only) and commit
the cells with them: tests/experiments/test_shipped_results.py holds every shipped report equal
to a render of the shipped cells.
"""
from __future__ import annotations

from pathlib import Path

from absl import app, flags

from experiments import cli, common, plan
from experiments.artifacts import ARTIFACTS
from experiments.cells import CellSpec, ship_finished, stored_attacks
from mnist_challenge_compat import CompatError
from workflow.cli import fail

cli.define("ship_cells")
FLAGS = flags.FLAGS


def needed_attacks(names: list[str]) -> dict[CellSpec, int]:
    """Per cell of the named artifacts (under the flags' sizes), the most attacks any of them
    reads from it; cells an artifact reads only when stored (Table 3's baselines without
    --table3_baselines) are left out."""
    need: dict[CellSpec, int] = {}
    for name in names:
        for spec, attacks in plan.artifact_cells(name, cli.sizes_from_flags(name)):
            if attacks:
                need[spec] = max(need.get(spec, 0), attacks)
    return need


def ship(names: list[str], log=print) -> int:
    """Copies the named artifacts' finished cells (see the module doc); returns how many."""
    if not FLAGS.shipped_cells:
        raise ValueError("--shipped_cells is empty: name the folder to ship into")
    source, target = common.cache_dir(), Path(FLAGS.shipped_cells)
    if source.resolve() == target.resolve():
        raise ValueError(f"the run's cells ({source}) and --shipped_cells are the same folder")
    if not source.is_dir():
        raise ValueError(f"no cell folder {source} (pass the run's --output_dir or --cache_dir)")
    need = needed_attacks(names)
    keys = {}
    shipped, waiting = 0, []
    for spec, attacks in need.items():
        where = (spec.dataset, spec.num_examples)
        if where not in keys:
            keys[where] = common.target_digests(*where)
        digest, data_digest = keys[where]
        moved = ship_finished(spec, source, target, digest, data_digest, attacks)
        if moved is not None:
            shipped += 1
            log(f"shipped {spec.dataset} {spec.label} eps={spec.epsilon:g}: "
                f"{moved[0]} -> {moved[1]} attacks")
            continue
        have = stored_attacks(spec, source, digest, data_digest)
        if have < attacks:
            waiting.append(f"{spec.dataset} {spec.label} eps={spec.epsilon:g} ({have}/{attacks})")
    if waiting:
        log(f"not finished in {source}, not shipped: {', '.join(waiting)}")
    log(f"{shipped} cell(s) shipped into {target}")
    return shipped


def main(argv):
    names = argv[1:]
    unknown = [n for n in names if n not in ARTIFACTS]
    if not names or unknown:
        fail("ship_cells", f"name the artifacts whose cells to ship ({', '.join(ARTIFACTS)})"
             + (f"; unknown: {', '.join(unknown)}" if unknown else ""))
    try:
        ship(names)
    except (CompatError, ValueError, OSError, KeyError, ImportError) as err:
        fail("ship_cells", err)


if __name__ == "__main__":
    app.run(main, flags_parser=cli.flags_parser("ship_cells"))
