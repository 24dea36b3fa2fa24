"""The scripts' shared command-line behaviour: which arguments ask for absl's help."""
import pytest

from workflow.cli import asks_for_help


@pytest.mark.parametrize("argv,expected", [
    (["prog", "--help"], True),
    (["prog", "--steps=3", "-helpfull"], True),
    (["prog", "--helpshort"], True),
    (["prog", "-?"], True),
    (["prog", "--helpxml"], True),
    (["prog"], False),
    (["prog", "--steps=3", "table2"], False),
    (["prog", "--", "--help"], False),        # after "--" it is an argument, not a flag
    (["prog", "help"], False),                # a positional word
    (["prog", "--helper=1"], False),          # another flag that starts with "help"
    (["--help"], False),                      # argv[0] is the program itself
])
def test_asks_for_help_recognises_absls_help_flags_only(argv, expected):
    assert asks_for_help(argv) is expected
