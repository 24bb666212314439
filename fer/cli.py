"""What the command-line tools share: argument types that refuse bad values up front."""

from __future__ import annotations

import argparse
import shlex
import sys
from collections.abc import Callable, Sequence


def at_least(minimum: int) -> Callable[[str], int]:
    """An argparse type: a whole number of at least ``minimum`` (a bad one gets argparse's usage
    error, not a traceback halfway through a run).
    """
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a whole number, not {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be at least {minimum}, not {value}")
        return value

    return parse


def command_line(module: str, argv: Sequence[str] | None = None) -> str:
    """The command that ran a tool, as a card records it: ``python -m <module>`` and its
    arguments (``argv``, else the process's own), each quoted as a shell needs.
    """
    return f"python -m {module} " + shlex.join(sys.argv[1:] if argv is None else list(argv))
