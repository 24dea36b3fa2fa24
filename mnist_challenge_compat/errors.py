"""The one exception type this package raises for problems a user can fix."""


class CompatError(Exception):
    """A user-facing error: one line naming the file (or directory) and the problem.

    Raised instead of TensorFlow's ``OpError`` family, ``OSError`` and friends so that callers
    (command-line tools, tests) can print ``str(err)`` without a stack trace. TensorFlow errors
    are wrapped with ``raise CompatError(...) from None`` where their text is noise.
    """
