"""Shared behaviour of the absl scripts: one-line errors and exit codes."""
from __future__ import annotations

import sys
from typing import Callable, NoReturn, Sequence

from absl import flags

EXIT_ERROR = 1
EXIT_INTERRUPTED = 130


def fail(program: str, message: str) -> NoReturn:
    """Prints ``program: message`` as ONE line on stderr and exits with status 1."""
    text = " ".join(str(message).split()) or "error"
    print(f"{program}: {text}", file=sys.stderr, flush=True)
    sys.exit(EXIT_ERROR)


def one_line_flags_parser(program: str) -> Callable[[Sequence[str]], list[str]]:
    """An ``app.run(..., flags_parser=...)`` that reports a bad flag as one line, exit 1."""
    def parse(argv: Sequence[str]) -> list[str]:
        try:
            return flags.FLAGS(list(argv))
        except flags.Error as err:
            fail(program, str(err))
    return parse
