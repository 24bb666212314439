"""What the command-line tools share: argument types that refuse bad values up front, help
texts that show defaults, and quieter native libraries.
"""

from __future__ import annotations

import argparse
import math
import os
import shlex
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager


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


def positive(text: str) -> float:
    """An argparse type: a finite number above 0 (argparse's error names the option)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, not {text!r}") from None
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"must be a positive number, not {text}")
    return value


def command_line(module: str, argv: Sequence[str] | None = None) -> str:
    """The command that ran a tool, as a card records it: ``python -m <module>`` and its
    arguments (``argv``, else the process's own), each quoted as a shell needs.
    """
    return f"python -m {module} " + shlex.join(sys.argv[1:] if argv is None else list(argv))


def description(docstring: str | None) -> str:
    """A tool's ``--help`` description from its module docstring: the first paragraph (a whole
    sentence, where the first line may stop mid-way), without reStructuredText's double backticks.
    """
    first = (docstring or "").strip().split("\n\n")[0]
    return " ".join(first.split()).replace("``", "")


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Shows each option's default, except where there is none to show (a flag's False, None, an
    empty string or list) or its help already says it.
    """

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        default = action.default
        empty = isinstance(default, (str, list, tuple)) and not default
        if default is None or default is False or empty or "default" in text:
            return text
        return super()._get_help_string(action)


def argument_parser(prog: str, docstring: str | None) -> argparse.ArgumentParser:
    """The parser of ``python -m <prog>``: described by its module docstring, defaults shown.

    Sub-command parsers need ``formatter_class=HelpFormatter`` themselves: argparse does not pass
    it on.
    """
    return argparse.ArgumentParser(prog=prog, description=description(docstring), formatter_class=HelpFormatter)


def quiet_tensorflow() -> None:
    """Keeps TensorFlow's C++ INFO and WARNING lines out of a tool's output; its errors still show.

    Read when TensorFlow loads, so call it before the first model is loaded. A level the user set
    is kept. (TensorFlow's few lines from before its logging starts ignore it.)
    """
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


@contextmanager
def quiet_opencv() -> Iterator[None]:
    """OpenCV's own warnings kept off stderr while a tool runs (its errors still show): a
    warning such as FFmpeg's on a file it cannot read only repeats the tool's clearer message.
    """
    import cv2

    logging = cv2.utils.logging
    before = logging.getLogLevel()
    logging.setLogLevel(logging.LOG_LEVEL_ERROR)
    try:
        yield
    finally:
        logging.setLogLevel(before)
