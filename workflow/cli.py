"""Shared behaviour of the absl scripts: one-line errors, exit codes, ``--help``, quiet TensorFlow start-up."""
from __future__ import annotations

import contextlib
import os
import sys
from typing import Callable, NoReturn, Sequence

from absl import flags

EXIT_ERROR = 1
EXIT_INTERRUPTED = 130
# Set to 1 to see TensorFlow's start-up log (CUDA probing, oneDNN, absl::InitializeLog lines).
VERBOSE_TF_ENV = "QG_TF_LOG"

# absl's help flags: each prints the usage and exits with status 1 from inside the parser.
HELP_FLAGS = ("help", "helpshort", "helpfull", "helpxml", "?")


def fail(program: str, message: str) -> NoReturn:
    """Prints ``program: message`` as ONE line on stderr and exits with status 1."""
    _one_line(program, message)
    sys.exit(EXIT_ERROR)


def interrupted(program: str, message: str) -> NoReturn:
    """Prints ``program: message`` as ONE line on stderr and exits with status 130."""
    _one_line(program, message)
    sys.exit(EXIT_INTERRUPTED)


def _one_line(program: str, message: object) -> None:
    text = " ".join(str(message).split()) or "error"
    print(f"{program}: {text}", file=sys.stderr, flush=True)


def asks_for_help(argv: Sequence[str]) -> bool:
    """Whether a command line (``argv[0]`` is the program) holds one of absl's help flags
    before any ``--``."""
    for arg in argv[1:]:
        if arg == "--":
            return False
        name = arg.lstrip("-").split("=", 1)[0]
        if arg.startswith("-") and name in HELP_FLAGS:
            return True
    return False


def list_key_flags_in_help(modules: Sequence[str]) -> None:
    """Makes ``--help`` list the flags defined in ``modules`` (module names).

    absl's ``--help`` lists only the key flags of the main module, which it names by
    ``sys.argv[0]``; flags defined in another module (shared flags, or every flag when the
    command runs as an installed console script) are otherwise only shown by ``--helpfull``.
    """
    main = sys.argv[0]
    for module in modules:
        for flag in flags.FLAGS.get_key_flags_for_module(module):
            flags.FLAGS.register_key_flag_for_module(main, flag)


def one_line_flags_parser(program: str, modules: Sequence[str] = (), usage: str | None = None
                          ) -> Callable[[Sequence[str]], list[str]]:
    """An ``app.run(..., flags_parser=...)``: a bad flag is one line and exit 1; ``--help``
    and ``--helpfull`` print the usage and exit 0.

    Args:
      program: the prefix of error lines.
      modules: names of the modules whose flags ``--help`` lists besides the main module's.
      usage: the text ``--help`` starts with when ``__main__`` has no docstring (an
        installed console script's wrapper); absl prints ``__main__.__doc__``.
    """
    def parse(argv: Sequence[str]) -> list[str]:
        list_key_flags_in_help(modules)
        main = sys.modules.get("__main__")
        if usage and main is not None and not main.__doc__:
            main.__doc__ = usage
        try:
            return flags.FLAGS(list(argv))
        except flags.Error as err:
            fail(program, str(err))
        except SystemExit as stop:
            if stop.code == EXIT_ERROR and asks_for_help(argv):
                sys.exit(0)  # absl exits 1 after printing the help it was asked for
            raise
    return parse


def quiet_tensorflow() -> None:
    """Imports TensorFlow without its start-up noise; call it before anything imports it.

    TensorFlow's C++ side writes lines such as ``WARNING: All log messages before
    absl::InitializeLog() is called are written to STDERR``, ``oneDNN custom operations are
    on`` and ``Could not find cuda drivers`` while it is imported, before any log level
    applies, so the import runs with file descriptor 2 pointed at ``/dev/null``; later
    messages (e.g. ``failed call to cuInit``) obey ``TF_CPP_MIN_LOG_LEVEL``, set to 3 here
    unless the environment sets it. ``QG_TF_LOG=1`` leaves everything as TensorFlow does it.
    A Python exception from the import still reaches the caller (it is raised, not printed).
    """
    if os.environ.get(VERBOSE_TF_ENV, "") not in ("", "0"):
        return
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    if "tensorflow" in sys.modules:
        return
    with _stderr_fd_discarded():
        import tensorflow  # noqa: F401


@contextlib.contextmanager
def _stderr_fd_discarded():
    """Points file descriptor 2 (what C++ code writes to) at /dev/null within the block."""
    sys.stderr.flush()
    try:
        saved = os.dup(2)
    except OSError:  # no stderr at all: nothing to hide
        yield
        return
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)
