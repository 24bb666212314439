"""Model metadata: the JSON beside every ``.h5`` (labels, input shape, pre-processing, metrics).

The pipeline reads pre-processing from here, never from a second copy.
"""

from __future__ import annotations

import json
import os
import platform
import shlex
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fer.labels import EMOTIONS


def metadata_path(model_path: str | Path) -> Path:
    """Returns the metadata JSON path of a model file (same stem, ``.json``)."""
    return Path(model_path).with_suffix(".json")


@dataclass(frozen=True)
class ModelInfo:
    """What serving needs to know about a model, read from its metadata JSON."""

    path: Path
    name: str
    labels: tuple[str, ...] = EMOTIONS
    illumination: str = "none"
    landmarks: bool = False
    raw: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)

    @property
    def headline(self) -> dict[str, float]:
        """Accuracy per evaluated split, where the card has it."""
        return split_accuracies(self.raw, "metrics")


def split_accuracies(card: dict[str, Any], key: str) -> dict[str, float]:
    """Accuracy per split in a card's ``key`` metrics (``metrics``, ``metrics_ferplus``, ...)."""
    return {split: m["accuracy"] for split, m in (card.get(key) or {}).items() if "accuracy" in m}


def read_metadata(model_path: str | Path) -> dict[str, Any]:
    """Reads a model's metadata JSON.

    Raises:
        FileNotFoundError: with a message naming the missing file.
        ValueError: if the JSON is unreadable.
    """
    path = metadata_path(model_path)
    if not path.is_file():
        raise FileNotFoundError(f"model metadata not found: {path} (every model needs its JSON card)")
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise ValueError(f"model metadata {path} is not valid JSON: {err}") from None


def model_info(model_path: str | Path) -> ModelInfo:
    """Returns the serving-relevant metadata of a model file."""
    raw = read_metadata(model_path)
    pre = raw.get("preprocessing", {})
    labels = tuple(raw.get("labels", EMOTIONS))
    if labels != EMOTIONS:
        raise ValueError(f"{model_path}: labels {labels} differ from {EMOTIONS}")
    return ModelInfo(
        path=Path(model_path),
        name=raw.get("name", Path(model_path).stem),
        labels=labels,
        illumination=pre.get("illumination", "none"),
        landmarks=bool(pre.get("landmarks", False)),
        raw=raw,
    )


def weights_problem(model_path: str | Path, card: dict[str, Any]) -> str | None:
    """Why ``card`` does not describe the weights in ``model_path``, or None when it does.

    A release records the SHA-256 of the weights it evaluated (``model_sha256``) and moves the
    card into place last; weights that differ from it were replaced after the release, or the
    release stopped between its moves, so the card's figures, calibration and inference copy
    describe other weights. A card without the hash (a training run's) is taken as it is.
    """
    recorded = card.get("model_sha256")
    if not recorded:
        return None
    from fer.data import file_sha256

    if file_sha256(model_path) == recorded:
        return None
    name = Path(model_path).name
    return (f"{name} holds other weights than its card describes (its model_sha256 differs): the file was "
            f"replaced, or a release stopped half-way. Release it again (`python -m fer.release --run "
            f"{card.get('released_from', 'RUN')} --name {Path(model_path).stem} --replace`) or restore the file.")


def write_metadata(model_path: str | Path, data: dict[str, Any]) -> Path:
    """Writes (replaces) a model's metadata JSON atomically and returns its path."""
    path = metadata_path(model_path)
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=False) + "\n")
    tmp.replace(path)
    return path


def machine_description() -> str:
    """A short description of this machine for model cards."""
    import os

    return (
        f"{platform.machine()} {os.cpu_count()} CPU cores, {platform.system()} {platform.release()}, "
        f"Python {platform.python_version()}"
    )


@dataclass(frozen=True)
class TrainingCycle:
    """One ``python -m fer.train`` run in a model's history (a warm restart adds one)."""

    command: str | None
    epochs: int | None
    wall_seconds: float | None
    machine: str | None


def run_record(model_path: str | Path) -> dict[str, Any]:
    """What a model was trained by, for the card of a model made from it (a warm start's
    source, a soup's member): its path and its card's run keys and own ``warm_start``, so
    :func:`training_cycles` can trace the whole chain (all epochs and time).
    """
    record: dict[str, Any] = {"from": str(model_path)}
    if metadata_path(model_path).is_file():
        card = read_metadata(model_path)
        record.update({key: card.get(key) for key in ("command", "epochs_completed", "train_wall_seconds", "machine")})
        for key in ("warm_start", "distillation", "soup"):  # an average's members are its sources
            if card.get(key):
                record[key] = card[key]
    return record


def _lineage(card: dict[str, Any]) -> list[dict[str, Any]]:
    """Every run record behind a card, first to last, each once.

    A run's sources come before it: its ``warm_start`` chain, and where a record is an average,
    the chains of all its members, in member order (they may be side branches: two cycles
    started from the same weights), wherever the average sits in the chain. The card itself
    comes last. A member recorded without a command (a model without a card) adds nothing.
    """
    records: list[dict[str, Any]] = []
    seen: set[tuple[str, str | None]] = set()

    def visit_sources(record: dict[str, Any]) -> None:
        for source in (record.get("soup") or {}).get("members") or []:
            visit(source, member=True)
        if record.get("warm_start"):
            visit(record["warm_start"], member=False)

    def visit(record: dict[str, Any], member: bool) -> None:
        visit_sources(record)
        # The same run appears in several chains with the same model path and command.
        key = (os.path.normpath(record.get("from") or ""), record.get("command"))
        if key not in seen and (record.get("command") or not member):
            seen.add(key)
            records.append(record)

    visit_sources(card)
    return [*records, card]


def training_cycles(card: dict[str, Any]) -> list[TrainingCycle]:
    """The training runs behind a card, first to last (a warm start's source comes first).

    A model trained with ``--init-from`` records what it started from under ``warm_start``,
    possibly nested; an average records its members. Its epochs and wall time are the sum over
    all of these runs.
    """
    return [TrainingCycle(record.get("command"), record.get("epochs_completed"), record.get("train_wall_seconds"),
                          record.get("machine")) for record in _lineage(card)]


def training_runs(card: dict[str, Any]) -> list[TrainingCycle]:
    """The ``fer.train`` runs behind a card: :func:`training_cycles` without the averaging steps
    (``fer.soup`` records itself as a step of the chain, with no epochs; a later run may start
    from such an average).
    """
    cycles = training_cycles(card)
    if card.get("soup"):
        cycles = cycles[:-1]
    return [cycle for cycle in cycles if not (cycle.command or "").startswith("python -m fer.soup")]


def training_commands(card: dict[str, Any]) -> list[str]:
    """The training commands behind a card, first to last; reproducing a warm start needs them all.

    A distilled run's teacher targets (``fer.distill``) are made just before the run that reads them.
    """
    records = _lineage(card)
    commands = [record["command"] for record in records if record.get("command")]
    for record in reversed(records):  # each distilled run records its own targets
        distill = record.get("distillation") or {}
        targets = distill.get("targets")
        readers = [i for i, command in enumerate(commands) if _option_value(command, "--soft-targets") == targets]
        if distill.get("command") and targets and readers and distill["command"] not in commands:
            commands.insert(readers[0], distill["command"])
    return commands


def _option_value(command: str, option: str) -> str | None:
    """The value a command line gives ``option`` (``--opt value`` or ``--opt=value``), else None."""
    try:
        words = shlex.split(command)
    except ValueError:  # an unbalanced quote: not a command we wrote
        return None
    for i, word in enumerate(words):
        if word == option and i + 1 < len(words):
            return words[i + 1]
        if word.startswith(option + "="):
            return word[len(option) + 1:]
    return None
