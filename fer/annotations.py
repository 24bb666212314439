"""Re-annotation of FER2013 faces, stored in SQLite as an append-only history.

Every action (confirm the label, relabel, mark as not a face, mark as ambiguous) is one row of
the ``annotations`` table; nothing is updated or deleted, so who changed what, when, stays
visible. A face's current annotation is its latest action (highest ``id``).

Concurrency: the Streamlit app serves sessions from threads, and annotators may run the CLI at
the same time, so each operation opens its own connection (sqlite3 connections must not be
shared across threads) and writes in one short ``BEGIN IMMEDIATE`` ... ``COMMIT`` transaction.
The database runs in WAL mode (readers never block the writer) with ``synchronous=NORMAL``: a
committed write survives a killed process; only an OS crash or power loss may drop the last
commits, never corrupt the file. ``busy_timeout`` makes a writer wait its turn instead of
failing.

The CSV export holds all 35,887 FER2013 rows in row order by default (the current label of
every face, ready for re-evaluation), or only the annotated rows with ``only_annotated=True``.
Importing a CSV appends, for each row the CSV annotates, the action that makes the store's
current annotation equal to the CSV's; rows without an action in the CSV are left as they are,
since the history is append-only and an import never erases work. Importing the same file twice
adds nothing the second time, and an action older than its face's current annotation is left
out, so importing an old export again never undoes the work done since. Notes and annotator
names that a spreadsheet would run as a formula (see :func:`guard_formula`) are exported behind
a ``'``, which the import removes.

CLI::

    python -m fer.annotations export --out FILE [--db PATH] [--only-annotated]
    python -m fer.annotations import FILE [--db PATH] [--annotator NAME]

``export`` reads an existing database only (a mistyped ``--db`` is an error, not a new empty
store) and never writes over it; ``import`` creates the database when there is none. Exit codes:
0 done, 1 the export or import failed, 2 a usage error (no such database, ``--out`` naming the
database).
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import os
import re
import sqlite3
import sys
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import IO

import numpy as np
import pandas as pd

from fer.cli import HelpFormatter, argument_parser
from fer.ferplus import FER2013_ROWS
from fer.labels import EMOTIONS
from fer.paths import PROJECT_DIR

ACTIONS: tuple[str, ...] = ("confirm", "relabel", "not_face", "ambiguous")
LABELLED_ACTIONS: frozenset[str] = frozenset({"confirm", "relabel"})
# What an annotation page offers: keep the given label, pick an emotion, or reject the face.
NOT_A_FACE_CHOICE: str = "not a face"
AMBIGUOUS_CHOICE: str = "ambiguous"
UI_CHOICES: tuple[str, ...] = ("confirm", *EMOTIONS, NOT_A_FACE_CHOICE, AMBIGUOUS_CHOICE)

HISTORY_COLUMNS: tuple[str, ...] = ("id", "row", "action", "label", "note", "annotator", "created_at")
EXPORT_COLUMNS: tuple[str, ...] = (
    "row", "usage", "original_label", "ferplus_majority", "action", "annotated_label", "current_label",
    "annotator", "time", "note",
)
BUSY_TIMEOUT_MS: int = 10_000
SCHEMA_VERSION: int = 1
# Cells a spreadsheet runs as a formula start with one of these (OWASP's CSV injection list); any
# leading quotes are counted in, so that guarding stays exactly invertible.
_FORMULA_LIKE = re.compile(r"'*[=+\-@\t\r]")
_GUARDED = re.compile(r"'+[=+\-@\t\r]")


def _sql_values(values: Sequence[str]) -> str:
    # Only module constants go through here, never user input.
    return ", ".join(f"'{v}'" for v in values)


_SCHEMA = f"""
CREATE TABLE IF NOT EXISTS annotations (
    id INTEGER PRIMARY KEY,
    "row" INTEGER NOT NULL CHECK ("row" BETWEEN 0 AND {FER2013_ROWS - 1}),
    action TEXT NOT NULL CHECK (action IN ({_sql_values(ACTIONS)})),
    label TEXT CHECK (label IS NULL OR label IN ({_sql_values(EMOTIONS)})),
    note TEXT NOT NULL DEFAULT '',
    annotator TEXT NOT NULL CHECK (length(trim(annotator)) > 0),
    created_at TEXT NOT NULL,
    CHECK ((action IN ('confirm', 'relabel')) = (label IS NOT NULL))
);
CREATE INDEX IF NOT EXISTS annotations_row_id ON annotations ("row", id);
"""
_INSERT = 'INSERT INTO annotations ("row", action, label, note, annotator, created_at) VALUES (?, ?, ?, ?, ?, ?)'
_CURRENT = """
SELECT a.id, a."row", a.action, a.label, a.note, a.annotator, a.created_at
FROM annotations AS a
JOIN (SELECT "row", MAX(id) AS id FROM annotations GROUP BY "row") AS latest ON a.id = latest.id
ORDER BY a."row"
"""


@dataclass(frozen=True)
class Annotation:
    """One action on one FER2013 face.

    Attributes:
        row: FER2013 row index, 0..35886.
        action: one of :data:`ACTIONS`.
        label: emotion name for ``confirm``/``relabel``; ``None`` otherwise.
        note: free text, possibly empty.
        annotator: who made it (non-empty).
        created_at: UTC ISO-8601 time with microseconds.
        id: the database id (``None`` before it is stored).
    """

    row: int
    action: str
    label: str | None
    note: str
    annotator: str
    created_at: str
    id: int | None = None


@dataclass(frozen=True)
class ImportResult:
    """What :meth:`AnnotationStore.import_csv` did with a CSV.

    Attributes:
        appended: actions appended to the history.
        already_stored: CSV actions the history holds already (for a CSV row without a time: an
            action of that row with the same action, label, note and annotator).
        older: CSV actions older than the current annotation of their face, left out so that an
            old file never undoes newer work.
        unlabelled_edits: CSV lines (1-based, header first) that change a label but have no
            action, so they were not imported.
    """

    appended: int = 0
    already_stored: int = 0
    older: int = 0
    unlabelled_edits: tuple[int, ...] = ()

    def summary(self) -> str:
        """Return one sentence with the counts, e.g. ``"Imported 2 new actions; 1 already stored."``."""
        parts = [f"Imported {self.appended} new action{'' if self.appended == 1 else 's'}"]
        if self.already_stored:
            parts.append(f"{self.already_stored} already stored")
        if self.older:
            parts.append(f"{self.older} older than the store's current annotation of their face (kept as they were)")
        return "; ".join(parts) + "."

    def warning(self) -> str | None:
        """Return what to say about label edits without an action, or ``None`` when there are none."""
        if not self.unlabelled_edits:
            return None
        shown = ", ".join(str(line) for line in self.unlabelled_edits[:5])
        more = ", ..." if len(self.unlabelled_edits) > 5 else ""
        return (f"{len(self.unlabelled_edits)} CSV line(s) ({shown}{more}) change a label but have an empty action "
                "column, so they were not imported: an edited label needs an action such as relabel.")


def utc_now() -> str:
    """Return the current UTC time as ISO-8601 with microseconds, e.g. ``2024-05-01T12:00:00.000001+00:00``."""
    return datetime.now(UTC).isoformat(timespec="microseconds")


def default_db_path() -> Path:
    """Return ``$FER_ANNOTATIONS_DB`` or ``<project>/data/annotations.sqlite3`` (a git-ignored folder)."""
    env = os.environ.get("FER_ANNOTATIONS_DB")
    return Path(env) if env else PROJECT_DIR / "data" / "annotations.sqlite3"


def make_annotation(
    row: int, action: str, label: str | None = None, note: str = "", *, annotator: str, created_at: str | None = None
) -> Annotation:
    """Validate one action and returns it as an :class:`Annotation`.

    Raises:
        ValueError: for a row outside 0..35886, an unknown action, a missing, superfluous or
            unknown label, an empty annotator or a time that is not ISO-8601.
    """
    if isinstance(row, bool) or not isinstance(row, int | np.integer):
        raise ValueError(f"row must be an integer FER2013 row index; got {row!r}")
    if not 0 <= int(row) < FER2013_ROWS:
        raise ValueError(f"row {row} out of range; FER2013 rows are 0..{FER2013_ROWS - 1}")
    if action not in ACTIONS:
        raise ValueError(f"unknown action {action!r}; expected one of {', '.join(ACTIONS)}")
    if action in LABELLED_ACTIONS:
        if label not in EMOTIONS:
            raise ValueError(
                f"action {action!r} needs an emotion label; got {label!r}, expected one of {', '.join(EMOTIONS)}"
            )
    elif label is not None:
        raise ValueError(f"action {action!r} takes no label; got {label!r}")
    if not isinstance(annotator, str) or not annotator.strip():
        raise ValueError("annotator must be a non-empty name")
    if not isinstance(note, str):
        raise ValueError(f"note must be text; got {type(note).__name__}")
    # One line ending, so a note typed on Windows or a CSV saved with CRLF matches the same note.
    note = _one_line_ending(note)
    if created_at is None:
        created_at = utc_now()
    else:
        try:
            datetime.fromisoformat(created_at)
        except (TypeError, ValueError):
            raise ValueError(f"created_at must be an ISO-8601 time; got {created_at!r}") from None
    return Annotation(int(row), action, label, note, annotator.strip(), created_at)


def _label_name(label: int | str) -> str:
    if isinstance(label, str):
        if label not in EMOTIONS:
            raise ValueError(f"unknown emotion {label!r}; expected one of {', '.join(EMOTIONS)}")
        return label
    if not 0 <= int(label) < len(EMOTIONS):
        raise ValueError(f"label code {label} out of range 0..{len(EMOTIONS) - 1}")
    return EMOTIONS[int(label)]


def choice_to_action(choice: str, original_label: int | str) -> tuple[str, str | None]:
    """Map an annotation page's choice to ``(action, label)``.

    Args:
        choice: one of :data:`UI_CHOICES`: ``"confirm"`` (keep the given label), an emotion name,
            ``"not a face"`` or ``"ambiguous"``.
        original_label: the face's FER2013 label (code or name).

    Returns:
        ``("confirm", original)`` for ``"confirm"`` or the original emotion, ``("relabel", emotion)``
        for another emotion, ``("not_face", None)`` or ``("ambiguous", None)``.

    Raises:
        ValueError: for an unknown choice or original label.
    """
    original = _label_name(original_label)
    if choice == "confirm" or choice == original:
        return "confirm", original
    if choice in EMOTIONS:
        return "relabel", choice
    if choice in (NOT_A_FACE_CHOICE, "not_face"):
        return "not_face", None
    if choice == AMBIGUOUS_CHOICE:
        return "ambiguous", None
    raise ValueError(f"unknown choice {choice!r}; expected one of {', '.join(UI_CHOICES)}")


def action_to_choice(action: str, label: str | None) -> str:
    """The annotation page's choice that stores ``(action, label)``: the inverse of
    :func:`choice_to_action`, to start the form from a face's current annotation.

    Raises:
        ValueError: for an unknown action.
    """
    if action == "confirm":
        return "confirm"
    if action == "relabel" and label in EMOTIONS:
        return str(label)
    if action == "not_face":
        return NOT_A_FACE_CHOICE
    if action == "ambiguous":
        return AMBIGUOUS_CHOICE
    raise ValueError(f"unknown annotation {action!r} {label!r}")


def apply_annotations(original_labels: np.ndarray, current: pd.DataFrame, rows: np.ndarray | None = None) -> np.ndarray:
    """Return reference labels with the current annotations applied.

    Args:
        original_labels: int array (N,) of FER2013 codes.
        current: the table of :meth:`AnnotationStore.current`.
        rows: FER2013 row of each entry of ``original_labels``; by default entry ``i`` is row
            ``i`` (the whole dataset).

    Returns:
        int64 array (N,): the annotated label for confirmed or relabelled faces, -1 for faces
        marked not-a-face or ambiguous (to be excluded from evaluation), else the original.
        Annotations of rows not in ``rows`` are ignored.
    """
    labels = np.array(original_labels, dtype=np.int64, copy=True)
    rows = np.arange(labels.size) if rows is None else np.asarray(rows, dtype=np.int64)
    if rows.shape != labels.shape:
        raise ValueError(f"rows has shape {rows.shape}; original_labels has {labels.shape}")
    position = {int(r): i for i, r in enumerate(rows)}
    for row, action, label in current[["row", "action", "label"]].itertuples(index=False):
        i = position.get(int(row))
        if i is not None:
            labels[i] = EMOTIONS.index(label) if action in LABELLED_ACTIONS else -1
    return labels


class AnnotationStore:
    """The SQLite re-annotation store; safe to share between threads and processes.

    The object holds only the path: every method opens, uses and closes its own connection.
    """

    def __init__(self, path: str | Path | None = None) -> None:
        """Open (creating if needed) the database at ``path`` or :func:`default_db_path`.

        Raises:
            sqlite3.DatabaseError: if the file exists but is not an SQLite database.
        """
        self.path = Path(path) if path is not None else default_db_path()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self._connect() as conn:
            _enable_wal(conn)
            with _transaction(conn):
                for statement in _SCHEMA.split(";"):
                    if statement.strip():
                        conn.execute(statement)
                conn.execute(f"PRAGMA user_version={SCHEMA_VERSION}")

    def __repr__(self) -> str:
        return f"AnnotationStore({str(self.path)!r})"

    @contextlib.contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        # isolation_level=None: we issue BEGIN IMMEDIATE ourselves, so a write takes the write
        # lock up front instead of failing with SQLITE_BUSY on a read-to-write upgrade.
        conn = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None)
        try:
            conn.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
            conn.execute("PRAGMA synchronous=NORMAL")
            yield conn
        finally:
            conn.close()

    def add(self, row: int, action: str, label: str | None = None, note: str = "", *, annotator: str) -> Annotation:
        """Append one action.

        Args:
            row: FER2013 row index, 0..35886.
            action: one of :data:`ACTIONS`.
            label: emotion name, required for ``confirm``/``relabel``, absent otherwise.
            note: free text.
            annotator: who annotates (non-empty).

        Returns:
            The stored annotation, with its id.

        Raises:
            ValueError: for invalid input (see :func:`make_annotation`).
        """
        return self.add_many([make_annotation(row, action, label, note, annotator=annotator)])[0]

    def add_if_new(self, annotation: Annotation) -> Annotation | None:
        """Append ``annotation`` unless its face's latest action already says the same (action,
        label and annotator) with no other note: with no note, or the same one, as a double click
        sends twice. Checked and written in one write transaction, so two clicks on Save racing
        each other store it once.

        Returns:
            The stored annotation, with its id, or ``None`` when nothing was stored.
        """
        stored = self.add_many_if_new([annotation])
        return stored[0] if stored else None

    def add_many_if_new(self, annotations: Iterable[Annotation]) -> list[Annotation]:
        """Append each of ``annotations`` that :meth:`add_if_new` would store, all in one write
        transaction: all or none of them are stored, and a racing second save stores nothing.

        Returns:
            The stored annotations, with their ids (those already there are left out).
        """
        records = list(annotations)
        with self._connect() as conn, _transaction(conn):
            return [_insert(conn, a) for a in records if not _says_the_same(conn, a)]

    def add_many(self, annotations: Iterable[Annotation]) -> list[Annotation]:
        """Append validated annotations in one transaction: all or none are stored.

        Returns:
            The stored annotations, with their ids.
        """
        records = list(annotations)
        with self._connect() as conn, _transaction(conn):
            return [_insert(conn, a) for a in records]

    def history(self, row: int | None = None) -> pd.DataFrame:
        """Return every action (of one row, if given) in the order made, with :data:`HISTORY_COLUMNS`."""
        query = f"SELECT {', '.join(_quoted(HISTORY_COLUMNS))} FROM annotations"
        params: tuple[int, ...] = ()
        if row is not None:
            query += ' WHERE "row" = ?'
            params = (int(row),)
        with self._connect() as conn:
            return history_frame(conn.execute(query + " ORDER BY id", params).fetchall())

    def current(self) -> pd.DataFrame:
        """Return the latest action of each annotated row, ordered by row, with :data:`HISTORY_COLUMNS`."""
        with self._connect() as conn:
            return history_frame(conn.execute(_CURRENT).fetchall())

    def count(self) -> int:
        """Return the number of stored actions (history rows)."""
        with self._connect() as conn:
            return int(conn.execute("SELECT COUNT(*) FROM annotations").fetchone()[0])

    def integrity_check(self) -> str:
        """Return SQLite's ``PRAGMA integrity_check`` verdict (``"ok"`` when the file is sound)."""
        with self._connect() as conn:
            return "; ".join(str(r[0]) for r in conn.execute("PRAGMA integrity_check").fetchall())

    def labels_with_annotations(self, original_labels: np.ndarray, rows: np.ndarray | None = None) -> np.ndarray:
        """Return the effective reference labels; see :func:`apply_annotations`."""
        return apply_annotations(original_labels, self.current(), rows)

    def export_csv(
        self,
        path_or_buffer: str | Path | IO[str],
        fer_labels: np.ndarray,
        ferplus_majority: np.ndarray,
        usage: np.ndarray | None = None,
        *,
        only_annotated: bool = False,
    ) -> int:
        """Write the current labels as CSV in FER2013 row order, with :data:`EXPORT_COLUMNS`.

        Labels are emotion names; empty cells mean "none" (no annotation, no FER+ emotion vote,
        or ``current_label`` of a face marked not-a-face or ambiguous). ``current_label`` is the
        label to evaluate against; ``time`` is when the annotation was made (UTC).

        Args:
            path_or_buffer: output file path or text buffer.
            fer_labels: int array (35887,), original FER2013 codes (-1 where unknown).
            ferplus_majority: int array (35887,), FER+ majority codes (-1 where none).
            usage: split name per row; by default from the embedded FER+ table.
            only_annotated: write only rows that have an annotation instead of all rows.

        Returns:
            The number of data rows written.
        """
        table = export_table(self.current(), fer_labels, ferplus_majority, usage, only_annotated=only_annotated)
        table.to_csv(path_or_buffer, index=False, lineterminator="\n")
        return len(table)

    def import_csv(
        self,
        path_or_buffer: str | Path | IO[str],
        default_annotator: str | None = None,
        fer_labels: np.ndarray | None = None,
    ) -> ImportResult:
        """Append the actions that bring the current annotations up to a CSV's, never back.

        Rows with an empty ``action`` are skipped (those whose label was edited are counted in
        :attr:`ImportResult.unlabelled_edits`). For the others, an action is appended unless the
        history already holds the same record (row, action, label, note, annotator and time) or
        it is older than the row's current annotation. A row without a ``time`` cell means "now":
        it is appended unless the history holds an action of that row with the same action,
        label, note and annotator. The whole file is validated first and applied in one
        transaction, so a bad file changes nothing.

        Args:
            path_or_buffer: a CSV with at least ``row``, ``action`` and ``annotated_label``
                columns (an :meth:`export_csv` file qualifies).
            default_annotator: annotator for rows whose ``annotator`` cell is empty or missing.
            fer_labels: int array (35887,) of FER2013 codes (-1 where unknown); when given,
                labelled actions are checked as :func:`annotate` makes them (see
                :func:`csv_annotations`).

        Returns:
            What was appended and what was left out.

        Raises:
            ValueError: naming the first bad CSV line (bad row, action, label, annotator or
                time, a row annotated twice, or a confirm of a label that is not the face's).
        """
        table = read_csv_table(path_or_buffer)
        wanted = csv_annotations(table, default_annotator, fer_labels)
        query = f"SELECT {', '.join(_quoted(HISTORY_COLUMNS))} FROM annotations ORDER BY id"
        with self._connect() as conn, _transaction(conn):
            # Planning inside the write transaction keeps two concurrent imports idempotent too.
            new, already_stored, older = plan_import(_rows_to_annotations(conn.execute(query).fetchall()), wanted)
            for annotation in new:
                _insert(conn, annotation)
        return ImportResult(len(new), already_stored, older, edited_without_action(table))


def _enable_wal(conn: sqlite3.Connection, timeout_s: float = BUSY_TIMEOUT_MS / 1000) -> None:
    """Put the database file in WAL mode, waiting out other processes doing the same.

    Switching the journal mode needs an exclusive lock, and while other connections are switching
    or creating the same new file SQLite can answer SQLITE_BUSY without waiting out
    ``busy_timeout`` (seen in CI as "database is locked" with eight processes opening a new file
    together; about one run in five here), so we retry until ``timeout_s``.

    Raises:
        sqlite3.OperationalError: if the file stays locked for ``timeout_s`` or fails otherwise.
    """
    deadline = time.monotonic() + timeout_s
    delay = 0.002
    while True:
        try:
            if conn.execute("PRAGMA journal_mode").fetchone()[0] != "wal":
                conn.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as err:
            busy = (getattr(err, "sqlite_errorcode", 0) & 0xFF) in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED)
            if not busy or time.monotonic() >= deadline:
                raise
            time.sleep(delay)
            delay = min(2 * delay, 0.05)


@contextlib.contextmanager
def _transaction(conn: sqlite3.Connection) -> Iterator[None]:
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


def _says_the_same(conn: sqlite3.Connection, a: Annotation) -> bool:
    """Whether the face's latest action already says ``a``: the same action, label and annotator,
    and ``a`` brings no other note (none, or the same one).
    """
    latest = conn.execute('SELECT action, label, annotator, note FROM annotations WHERE "row" = ? '
                          "ORDER BY id DESC LIMIT 1", (a.row,)).fetchone()
    same = latest is not None and latest[:3] == (a.action, a.label, a.annotator)
    return same and a.note.strip() in ("", (latest[3] or "").strip())


def _insert(conn: sqlite3.Connection, a: Annotation) -> Annotation:
    cursor = conn.execute(_INSERT, (a.row, a.action, a.label, a.note, a.annotator, a.created_at))
    return Annotation(a.row, a.action, a.label, a.note, a.annotator, a.created_at, id=int(cursor.lastrowid))


def _quoted(columns: Sequence[str]) -> list[str]:
    return [f'"{c}"' for c in columns]


def history_frame(records: Sequence[tuple] = ()) -> pd.DataFrame:
    """Stored actions as a table with :data:`HISTORY_COLUMNS` (none: an empty one, typed alike)."""
    frame = pd.DataFrame.from_records(list(records), columns=list(HISTORY_COLUMNS))
    return frame.astype({"id": "int64", "row": "int64"})


def _rows_to_annotations(records: list[tuple]) -> list[Annotation]:
    return [Annotation(row, action, label, note, annotator, created_at, id=i)
            for i, row, action, label, note, annotator, created_at in records]


def _instant(created_at: str) -> datetime:
    """Parse a stored or imported time; one without a zone is UTC, as every time the store writes."""
    moment = datetime.fromisoformat(created_at)
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def _record_key(a: Annotation) -> tuple:
    # The same action whatever its id, its note's line endings or how its time zone is spelt.
    return a.row, a.action, a.label, _one_line_ending(a.note), a.annotator, _instant(a.created_at)


def _one_line_ending(text: str) -> str:
    return text.replace("\r\n", "\n").replace("\r", "\n")


def plan_import(
    history: Sequence[Annotation], wanted: Sequence[tuple[Annotation, bool]]
) -> tuple[list[Annotation], int, int]:
    """Decide which CSV actions an import appends.

    Args:
        history: every stored action in id order (the last of a row is its current annotation).
        wanted: ``(annotation, time_given)`` per CSV row with an action (see :func:`csv_annotations`).

    Returns:
        ``(to_append, already_stored, older)``: the actions to append, in CSV order, and how many
        were left out because the history holds them already (for an action without a time: the
        same action, label, note and annotator) or because they are older than their row's
        current annotation (appending them would make old work current again).
    """
    current = {a.row: a for a in history}
    stored = {_record_key(a) for a in history}
    stored_untimed = {key[:5] for key in stored}
    to_append: list[Annotation] = []
    already_stored = older = 0
    for annotation, time_given in wanted:
        latest = current.get(annotation.row)
        if time_given:
            if _record_key(annotation) in stored:
                already_stored += 1
                continue
            if latest is not None and _instant(annotation.created_at) < _instant(latest.created_at):
                older += 1
                continue
        elif _record_key(annotation)[:5] in stored_untimed:
            # No time means "now", but an action the history holds already is no new work: appending
            # it again would undo whatever the row got since.
            already_stored += 1
            continue
        to_append.append(annotation)
    return to_append, already_stored, older


def guard_formula(text: str) -> str:
    """Prefix ``'`` to a cell that a spreadsheet would run as a formula.

    Excel and LibreOffice run a cell starting with ``=``, ``+``, ``-``, ``@``, a tab or a carriage
    return; a leading ``'`` makes it text. A cell of quotes followed by such a character gets one
    more quote too, so that :func:`unguard_formula` restores every text exactly.
    """
    return "'" + text if _FORMULA_LIKE.match(text) else text


def unguard_formula(text: str) -> str:
    """Undo :func:`guard_formula`: drop the quote before a formula-like cell."""
    return text[1:] if _GUARDED.match(text) else text


def name_or_empty(code: int) -> str:
    """The emotion name of a class code; empty for a code outside them (FER+'s -1: no majority)."""
    return EMOTIONS[code] if 0 <= code < len(EMOTIONS) else ""


def export_table(
    current: pd.DataFrame,
    fer_labels: np.ndarray,
    ferplus_majority: np.ndarray,
    usage: np.ndarray | None = None,
    *,
    only_annotated: bool = False,
) -> pd.DataFrame:
    """Build the export table (see :meth:`AnnotationStore.export_csv`) from a current-state table.

    Raises:
        ValueError: if an input array does not have one entry per FER2013 row.
    """
    fer_labels = np.asarray(fer_labels, dtype=np.int64)
    ferplus_majority = np.asarray(ferplus_majority, dtype=np.int64)
    if usage is None:
        from fer.ferplus import load_ferplus_votes

        usage = load_ferplus_votes().usage
    for name, array in (("fer_labels", fer_labels), ("ferplus_majority", ferplus_majority), ("usage", usage)):
        if np.shape(array) != (FER2013_ROWS,):
            raise ValueError(f"{name} must have one entry per FER2013 row ({FER2013_ROWS}); got {np.shape(array)}")
    original = [name_or_empty(int(c)) for c in fer_labels]
    table = pd.DataFrame(
        {
            "row": np.arange(FER2013_ROWS, dtype=np.int64),
            "usage": np.asarray(usage).astype(str),
            "original_label": original,
            "ferplus_majority": [name_or_empty(int(c)) for c in ferplus_majority],
            "action": "",
            "annotated_label": "",
            "current_label": original,
            "annotator": "",
            "time": "",
            "note": "",
        },
        columns=list(EXPORT_COLUMNS),
    )
    if len(current):
        rows = current["row"].to_numpy(dtype=np.int64)
        labels = current["label"].fillna("").astype(str).to_numpy()
        relabelled = current["action"].isin(list(LABELLED_ACTIONS)).to_numpy()
        table.loc[rows, "action"] = current["action"].to_numpy()
        table.loc[rows, "annotated_label"] = labels
        table.loc[rows, "current_label"] = np.where(relabelled, labels, "")
        table.loc[rows, "annotator"] = current["annotator"].map(guard_formula).to_numpy()
        table.loc[rows, "time"] = current["created_at"].to_numpy()
        table.loc[rows, "note"] = current["note"].map(guard_formula).to_numpy()
    if only_annotated:
        table = table[table["action"] != ""].reset_index(drop=True)
    return table


def read_csv_table(path_or_buffer: str | Path | IO[str]) -> pd.DataFrame:
    """Read an export-style CSV as text cells (empty cells as ``""``).

    Raises:
        ValueError: if a ``row``, ``action`` or ``annotated_label`` column is missing.
    """
    table = pd.read_csv(path_or_buffer, dtype=str, keep_default_na=False)
    missing = {"row", "action", "annotated_label"} - set(table.columns)
    if missing:
        raise ValueError(f"annotation CSV lacks column(s) {', '.join(sorted(missing))}")
    return table


def csv_annotations(
    table: pd.DataFrame, default_annotator: str | None = None, fer_labels: np.ndarray | None = None
) -> list[tuple[Annotation, bool]]:
    """Validate the annotated rows of a :func:`read_csv_table` table.

    With ``fer_labels``, a labelled action becomes what :func:`annotate` stores for that
    label (a ``relabel`` to the face's own label is a ``confirm``), and a ``confirm`` of another
    label than the face's is refused: it could mean either action. Faces of unknown label
    (code -1) are not checked.

    Args:
        table: the CSV's cells.
        default_annotator: annotator for rows whose ``annotator`` cell is empty or missing.
        fer_labels: int array (35887,) of FER2013 codes (-1 where unknown), or ``None``.

    Returns:
        ``(annotation, time_given)`` per row with an action, in file order.

    Raises:
        ValueError: naming the first bad line, or for a row annotated twice.
    """
    if fer_labels is not None and np.shape(fer_labels) != (FER2013_ROWS,):
        raise ValueError(f"fer_labels must have one entry per FER2013 row; got {np.shape(fer_labels)}")
    result: list[tuple[Annotation, bool]] = []
    seen: set[int] = set()
    for position, record in enumerate(table.to_dict("records")):
        action = record["action"].strip()
        if not action:
            continue
        line = position + 2  # 1-based, after the header.
        try:
            row = int(record["row"])
        except ValueError:
            raise ValueError(f"CSV line {line}: row {record['row']!r} is not an integer") from None
        if row in seen:
            raise ValueError(f"CSV line {line}: row {row} is annotated twice")
        seen.add(row)
        annotator = unguard_formula(record.get("annotator", "").strip()) or (default_annotator or "")
        time = record.get("time", "").strip()
        try:
            annotation = make_annotation(
                row, action, record["annotated_label"].strip() or None, unguard_formula(record.get("note", "")),
                annotator=annotator, created_at=time or None,
            )
            if fer_labels is not None:
                annotation = as_annotated(annotation, int(fer_labels[annotation.row]))
        except ValueError as err:
            raise ValueError(f"CSV line {line}: {err}") from None
        result.append((annotation, bool(time)))
    return result


def as_annotated(annotation: Annotation, original_code: int) -> Annotation:
    """Return ``annotation`` as the annotation page would store it for a face labelled ``original_code``.

    Raises:
        ValueError: for a ``confirm`` of a label that is not the face's.
    """
    if annotation.action not in LABELLED_ACTIONS or original_code < 0:
        return annotation
    original = _label_name(original_code)
    if annotation.action == "confirm" and annotation.label != original:
        raise ValueError(f"row {annotation.row} is labelled {original} in FER2013, and confirm keeps that label; "
                         f"to change it to {annotation.label}, use relabel")
    action, _ = choice_to_action(annotation.label, original)
    return dataclasses.replace(annotation, action=action)


def edited_without_action(table: pd.DataFrame) -> tuple[int, ...]:
    """Return the CSV lines (1-based, header first) that change a label but have an empty action.

    A label is changed when ``annotated_label`` is filled, or when ``current_label`` differs
    from ``original_label`` (where the CSV has both columns, as an export does).
    """
    edited = table["annotated_label"].str.strip() != ""
    if {"current_label", "original_label"} <= set(table.columns):
        edited |= table["current_label"].str.strip() != table["original_label"].str.strip()
    unlabelled = edited & (table["action"].str.strip() == "")
    return tuple(int(position) + 2 for position in np.flatnonzero(unlabelled.to_numpy()))


def original_labels() -> np.ndarray:
    """Return the FER2013 label of every row (-1 where unknown) for the CLI.

    The full FER2013 CSV gives all rows (its parse is cached after the first load); without it,
    the embedded test faces give the PublicTest and PrivateTest rows
    (:func:`fer.testset.load_eval_dataset` chooses).

    Raises:
        FileNotFoundError: if neither source is available.
    """
    from fer.testset import load_eval_dataset

    return labels_by_row(load_eval_dataset())


def labels_by_row(dataset) -> np.ndarray:
    """Return the FER2013 label of every row (-1 for rows ``dataset`` does not hold).

    Args:
        dataset: a :class:`fer.data.FerDataset` (the full CSV or the embedded test faces).
    """
    labels = np.full(FER2013_ROWS, -1, dtype=np.int64)
    labels[dataset.rows] = dataset.labels
    return labels


def annotate(
    store: AnnotationStore, row: int, choice: str, note: str, annotator: str, original_label: int | str,
    only_if_new: bool = False,
) -> Annotation | None:
    """Store an annotation page's choice for one face; the one call the page makes.

    Args:
        store: the annotation store.
        row: FER2013 row index of the face.
        choice: one of :data:`UI_CHOICES` (see :func:`choice_to_action`).
        note: free text.
        annotator: who annotates.
        original_label: the face's FER2013 label (code or name).
        only_if_new: store nothing when the face's current annotation already says the same
            (:meth:`AnnotationStore.add_if_new`).

    Returns:
        The stored annotation; ``None`` when ``only_if_new`` found it already there.

    Raises:
        ValueError: for an unknown choice, a bad row or an empty annotator.
    """
    action, label = choice_to_action(choice, original_label)
    if only_if_new:
        return store.add_if_new(make_annotation(row, action, label, note, annotator=annotator))
    return store.add(row, action, label, note, annotator=annotator)


def annotate_many(
    store: AnnotationStore, originals: Mapping[int, int | str], choice: str, note: str, annotator: str,
) -> list[Annotation]:
    """Store one annotation page's choice for several faces at once (e.g. "confirm" for a page
    of faces), in one transaction, leaving out each face whose current annotation already says
    the same (:meth:`AnnotationStore.add_many_if_new`).

    Args:
        store: the annotation store.
        originals: each face's FER2013 row -> its FER2013 label (code or name); "confirm" keeps
            each face's own label.
        choice: one of :data:`UI_CHOICES` (see :func:`choice_to_action`).
        note: free text, the same for every face.
        annotator: who annotates.

    Returns:
        The annotations stored, in the order of ``originals``.

    Raises:
        ValueError: for an unknown choice, a bad row or an empty annotator; nothing is stored.
    """
    made = [make_annotation(int(row), *choice_to_action(choice, original), note, annotator=annotator)
            for row, original in originals.items()]
    return store.add_many_if_new(made)


def _same_file(a: Path, b: Path) -> bool:
    """Whether two paths name one file (through links, case-insensitive file systems, ``..``)."""
    try:
        return a.samefile(b)
    except OSError:  # one of them does not exist (yet)
        return a.resolve() == b.resolve()


def _usage_error(args: argparse.Namespace) -> str | None:
    """Why the command must not run (the database it would read is missing, or the export would
    write over it), or ``None``.
    """
    if args.command != "export":
        return None  # import creates the database it is given
    db = args.db if args.db is not None else default_db_path()
    if not db.is_file():
        if args.db is not None:
            named = "is --db mistyped?"
        elif os.environ.get("FER_ANNOTATIONS_DB"):
            named = "named by $FER_ANNOTATIONS_DB"
        else:
            named = "the default; give --db PATH"
        return f"no annotation database at {db} ({named}); export reads an existing one"
    if _same_file(args.out, db):
        return f"--out {args.out} is the database {db} itself; give another file for the CSV"
    for suffix in ("-wal", "-shm", "-journal"):  # SQLite's own files beside it: a CSV there corrupts it
        if _same_file(args.out, db.with_name(db.name + suffix)):
            return f"--out {args.out} is a file of the database {db} ({suffix[1:]}); give another file for the CSV"
    return None


def _missing_annotator(table: pd.DataFrame, source: Path) -> str | None:
    """Why an import without ``--annotator`` cannot name who made an action of this CSV, or ``None``."""
    annotators = table["annotator"] if "annotator" in table else pd.Series("", index=table.index)
    for position, (action, annotator) in enumerate(zip(table["action"], annotators, strict=True)):
        if action.strip() and not unguard_formula(annotator.strip()):
            line = position + 2  # 1-based, after the header, as the import's own errors count
            where = (f"CSV line {line} of {source.name} has no annotator" if "annotator" in table
                     else f"{source.name} has no annotator column, so CSV line {line} names no one")
            return f"{where}: pass --annotator NAME, recorded for the lines without one"
    return None


def main(argv: Sequence[str] | None = None) -> int:
    """Command line for export and import; returns the exit code (0 ok, 1 error, 2 usage error)."""
    parser = argument_parser("python -m fer.annotations", __doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    export = commands.add_parser("export", help="write the current labels as CSV in FER2013 row order",
                                 formatter_class=HelpFormatter)
    export.add_argument("--out", type=Path, required=True, help="output CSV (never the database itself)")
    export.add_argument("--only-annotated", action="store_true", help="write only annotated rows")
    importer = commands.add_parser("import", help="append the actions needed to match a CSV",
                                   formatter_class=HelpFormatter)
    importer.add_argument("file", type=Path, help="CSV written by export (or with the same columns)")
    importer.add_argument("--annotator", help="annotator for rows without one")
    for sub, role in ((export, "database to read, which must exist"), (importer, "database, created if missing")):
        sub.add_argument("--db", type=Path, default=None,
                         help=f"{role} (default: $FER_ANNOTATIONS_DB or data/annotations.sqlite3)")
    args = parser.parse_args(argv)
    problem = _usage_error(args)
    if problem is not None:
        print(f"error: {problem}", file=sys.stderr)
        return 2
    try:
        # Before the store, so that a refused import leaves no new database behind.
        if args.command == "import" and not args.annotator:
            missing = _missing_annotator(read_csv_table(args.file), args.file)
            if missing:
                print(f"error: {missing}", file=sys.stderr)
                return 2
        store = AnnotationStore(args.db)
        if args.command == "export":
            from fer.ferplus import load_ferplus_votes, majority_label

            ferplus = load_ferplus_votes()
            written = store.export_csv(
                args.out, original_labels(), majority_label(ferplus.votes), ferplus.usage,
                only_annotated=args.only_annotated,
            )
            print(f"wrote {written} rows to {args.out}")
        else:
            result = store.import_csv(args.file, default_annotator=args.annotator, fer_labels=original_labels())
            print(f"{store.path}: {result.summary()}")
            if result.warning():
                print(f"warning: {result.warning()}", file=sys.stderr)
    except (OSError, ValueError, sqlite3.Error) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
