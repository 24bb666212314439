"""The command-line tools' shared parts: help texts that show defaults and describe every option."""

from __future__ import annotations

import argparse
import importlib
import os
import subprocess
import sys
from pathlib import Path

import pytest

from fer.cli import HelpFormatter, description

TOOLS = ("fer.train", "fer.video", "fer.compare", "fer.release", "fer.resolution", "fer.pack",
         "fer.landmark_features", "fer.annotations", "fer.embedding", "fer.pose", "fer.evaluate")


class _Caught(Exception):
    """Carries the parser a tool built out of its ``main``."""


def parser_of(module: str, monkeypatch) -> argparse.ArgumentParser:
    """The argument parser a tool's ``main`` builds, caught as it starts parsing."""
    def catch(self, args=None, namespace=None):
        raise _Caught(self)

    monkeypatch.setattr(argparse.ArgumentParser, "parse_args", catch)
    with pytest.raises(_Caught) as caught:
        importlib.import_module(module).main([])
    return caught.value.args[0]


def with_subcommands(parser: argparse.ArgumentParser) -> list[argparse.ArgumentParser]:
    """The parser and the parsers of its sub-commands."""
    subparsers = [action for action in parser._actions if isinstance(action, argparse._SubParsersAction)]
    return [parser, *(sub for action in subparsers for sub in action.choices.values())]


def test_description_is_the_first_paragraph_without_double_backticks():
    doc = """Two models on the same faces: where one is right and the other wrong,
    and whether it is chance: ``python -m fer.compare``.

    More detail that --help leaves out.
    """
    assert description(doc) == ("Two models on the same faces: where one is right and the other wrong, "
                                "and whether it is chance: python -m fer.compare.")
    assert description(None) == ""


def test_defaults_are_shown_where_there_is_one_to_show():
    parser = argparse.ArgumentParser(prog="tool", formatter_class=HelpFormatter)
    parser.add_argument("--epochs", type=int, default=0, help="training epochs")
    parser.add_argument("--lr", type=float, default=1e-3, help="learning rate")
    parser.add_argument("--tta", action="store_true", help="flip views")
    parser.add_argument("--note", action="append", default=[], help="a note")
    parser.add_argument("--model", default=None, help="a model")
    parser.add_argument("--out", default="here", help="where (default: beside the model)")
    text = parser.format_help()
    assert "training epochs (default: 0)" in text and "learning rate (default: 0.001)" in text
    for flat in ("flip views (default", "a note (default", "a model (default", "model) (default"):
        assert flat not in " ".join(text.split())


@pytest.mark.parametrize("module", TOOLS)
def test_every_option_has_help_and_every_parser_shows_defaults(module, monkeypatch):
    parser = parser_of(module, monkeypatch)
    assert parser.description and "``" not in parser.description
    for each in with_subcommands(parser):
        assert each.formatter_class is HelpFormatter, each.prog
        bare = [action.dest for action in each._actions  # sub-commands: their own help lines say them
                if not action.help and not isinstance(action, argparse._SubParsersAction)]
        assert not bare, f"{each.prog}: no help for {bare}"


@pytest.mark.parametrize("module, shown", [
    ("fer.train", ["(default: paper)", "(default: 10)", "(default: 512)", "(default: 0.001)", "(default: adam)",
                   "(default: constant)", "(default: none)", "(default: 0)"]),
    ("fer.video", ["(default: 0.5)", "(default: 240)"]),
    ("fer.compare", ["(default: PrivateTest)", "more than chance."]),
    ("fer.pack", ["(default: 90)"]),
])
def test_help_shows_the_defaults(module, shown, capsys):
    with pytest.raises(SystemExit) as stopped:
        importlib.import_module(module).main(["--help"])
    assert stopped.value.code == 0
    text = " ".join(capsys.readouterr().out.split())
    for part in shown:
        assert part in text, part
    assert "``" not in text


def test_train_help_does_not_import_tensorflow():
    code = ("import sys\nfrom fer.train import main\ntry:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
            "print(sorted({'keras', 'tensorflow'} & set(sys.modules)))")
    root = Path(__file__).resolve().parents[1]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(root), os.environ.get("PYTHONPATH")]))}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=root,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == "[]"
    assert "absl" not in done.stderr and "I0000" not in done.stderr


def test_train_knows_every_registered_architecture():
    pytest.importorskip("keras")
    from fer.models import ARCHITECTURES
    from fer.train import ARCHITECTURE_NAMES

    assert sorted(ARCHITECTURE_NAMES) == sorted(ARCHITECTURES)


def test_quiet_tensorflow_keeps_a_level_the_user_set(monkeypatch):
    from fer.cli import quiet_tensorflow

    monkeypatch.setenv("TF_CPP_MIN_LOG_LEVEL", "0")
    quiet_tensorflow()
    assert os.environ["TF_CPP_MIN_LOG_LEVEL"] == "0"
    monkeypatch.delenv("TF_CPP_MIN_LOG_LEVEL")
    quiet_tensorflow()
    assert os.environ["TF_CPP_MIN_LOG_LEVEL"] == "2", "warnings and info off, errors still shown"
