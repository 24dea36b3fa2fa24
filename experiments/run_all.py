"""Every table and figure (quick preset: 77 min measured on a 2-core CPU).

Usage: python -m experiments.run_all [ARTIFACT ...] [--preset=quick|paper] [--dry_run]
       [--output_dir=runs/experiments] [--num_examples=N] [--runs=R] [--restarts=K]
       (or qg-experiments ..., installed); e.g. qg-experiments table2 figure4, or
       --only=table2,figure4

Runs the artifacts in an order that computes shared cells once: the MNIST tables, then the
figures that reuse their cells, then Fashion-MNIST. --runs/--restarts, when given, apply to
every artifact; otherwise each uses its preset's (Tables 3 and 5: 1 run x 5 or 10 restarts).
--dry_run prints the cells each artifact would read and computes nothing. figure4b (Fashion-MNIST
accuracy vs steps) runs by default only with --preset=paper, where it reads Table 4's attacks.
Finished cells are copied from the shipped results/cells (--shipped_cells; empty to compute
anew), so the default command re-renders the shipped artifacts into runs/experiments in
seconds; --output_dir=results refreshes the shipped ones.
CIFAR-10's Table 6 and Figure 5 are not part of it: they need the released CIFAR-10 model and
test set (neither ships) and a GPU; run python -m experiments.table6 / figure5.
"""
from absl import app, flags

from experiments import cli, common
from workflow.cli import fail

ORDER = ("table2", "table3", "figure4", "sweep_b", "figure2", "table4", "table5", "figure3",
         "figure4b")
# Run by default only under --preset=paper, where they read cells the preset computes anyway
# (Figure 4b: Table 4's attacks); under quick they need cells of their own: name them to run.
PAPER_PRESET_ONLY = ("figure4b",)

common.define_flags()
flags.DEFINE_list("only", None, f"Subset of artifacts to produce: {', '.join(ORDER)}.")
flags.register_validator("only", lambda names: names is None or set(names) <= set(ORDER),
                         message=f"--only takes names from: {', '.join(ORDER)}")
FLAGS = flags.FLAGS


def main(argv):
    chosen = argv[1:]
    unknown = [n for n in chosen if n not in ORDER]
    if unknown:
        fail("run_all", f"unknown artifact(s) {', '.join(unknown)}; known: {', '.join(ORDER)}")
    if chosen and FLAGS.only is not None:
        fail("run_all", "name the artifacts either as arguments or with --only, not both")
    wanted = chosen or FLAGS.only
    if wanted is None:
        names = [n for n in ORDER if n not in PAPER_PRESET_ONLY or FLAGS.preset == "paper"]
    else:
        names = [n for n in ORDER if n in wanted]

    def body():
        for name in names:
            cli.produce_or_plan(name)
    common.run_command("run_all", body)


def run() -> None:
    """``python -m experiments.run_all`` and the ``qg-experiments`` console script."""
    app.run(main, flags_parser=cli.flags_parser("run_all"))


if __name__ == "__main__":
    run()
