"""The official MNIST Challenge secret model through the Table 2 and Table 3 protocols.

Usage (needs internet once): python -m experiments.secret_model [--num_examples=10000]

Downloads the challenge's released ``secret.zip`` (or --url), checks its sha256 against the
digest the challenge published before the release (or --sha256), extracts it refusing unsafe
zip members, then writes Table 2 and Table 3 for that model under --output_dir
(default results/secret). A second run reuses the zip and the extracted checkpoint.
"""
from absl import app, flags

from experiments import cli, common
from mnist_challenge_compat.model_download import OFFICIAL_MODELS, fetch_model
from workflow.cli import fail

common.define_flags()
flags.DEFINE_string("url", OFFICIAL_MODELS["secret"].url, "Where the model zip is.")
flags.DEFINE_string("sha256", OFFICIAL_MODELS["secret"].sha256,
                    "Expected sha256 of the zip (default: the challenge's published digest).")
flags.DEFINE_string("download_dir", "models/downloaded", "Where the zip is saved and extracted.")
flags.FLAGS.set_default("output_dir", "results/secret")
FLAGS = flags.FLAGS


def main(argv):
    if len(argv) > 1:
        fail("secret_model", f"unexpected arguments: {' '.join(argv[1:])}")

    def body():
        if FLAGS.dry_run:
            for name in ("table2", "table3"):
                cli.produce_or_plan(name)
            return
        fetched = fetch_model(FLAGS.url, FLAGS.download_dir, sha256=FLAGS.sha256)
        print(f"model zip {fetched.zip_path} sha256 {fetched.sha256} "
              f"({'verified' if fetched.verified else 'no digest to check against'}); "
              f"checkpoint in {fetched.model_dir}", flush=True)
        FLAGS.mnist_model_dir = str(fetched.model_dir)
        for name in ("table2", "table3"):
            cli.produce_or_plan(name)
    common.run_command("secret_model", body)


if __name__ == "__main__":
    app.run(main, flags_parser=cli.flags_parser("secret_model"))
