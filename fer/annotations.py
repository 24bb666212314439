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
adds nothing the second time.

CLI::

    python -m fer.annotations export --out FILE [--db PATH] [--only-annotated]
    python -m fer.annotations import FILE [--db PATH] [--annotator NAME]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sqlite3
import sys
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import IO

import numpy as np
import pandas as pd

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

    def state(self) -> tuple[str, str | None, str, str, str]:
        """Return what an import compares: everything but the id."""
        return self.action, self.label, self.note, self.annotator, self.created_at


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
            return _frame(conn.execute(query + " ORDER BY id", params).fetchall())

    def current(self) -> pd.DataFrame:
        """Return the latest action of each annotated row, ordered by row, with :data:`HISTORY_COLUMNS`."""
        with self._connect() as conn:
            return _frame(conn.execute(_CURRENT).fetchall())

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

    def import_csv(self, path_or_buffer: str | Path | IO[str], default_annotator: str | None = None) -> int:
        """Append the actions that make the current annotations equal to a CSV's.

        Rows with an empty ``action`` are skipped. For the others, an action is appended unless
        the row's current annotation already has the same action, label, note, annotator and
        time (a missing ``time`` cell means "now" and is then not compared). The whole file is
        validated first and applied in one transaction, so a bad file changes nothing.

        Args:
            path_or_buffer: a CSV with at least ``row``, ``action`` and ``annotated_label``
                columns (an :meth:`export_csv` file qualifies).
            default_annotator: annotator for rows whose ``annotator`` cell is empty or missing.

        Returns:
            The number of actions appended.

        Raises:
            ValueError: naming the first bad CSV line (bad row, action, label, annotator or
                time, or a row annotated twice).
        """
        wanted = read_annotations_csv(path_or_buffer, default_annotator)
        with self._connect() as conn, _transaction(conn):
            # Diffing inside the write transaction keeps two concurrent imports idempotent too.
            current = {a.row: a for a in _rows_to_annotations(conn.execute(_CURRENT).fetchall())}
            appended = 0
            for annotation, time_given in wanted:
                existing = current.get(annotation.row)
                if existing is not None and _same_state(existing, annotation, time_given):
                    continue
                _insert(conn, annotation)
                appended += 1
            return appended


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


def _insert(conn: sqlite3.Connection, a: Annotation) -> Annotation:
    cursor = conn.execute(_INSERT, (a.row, a.action, a.label, a.note, a.annotator, a.created_at))
    return Annotation(a.row, a.action, a.label, a.note, a.annotator, a.created_at, id=int(cursor.lastrowid))


def _quoted(columns: Sequence[str]) -> list[str]:
    return [f'"{c}"' for c in columns]


def _frame(records: list[tuple]) -> pd.DataFrame:
    frame = pd.DataFrame.from_records(records, columns=list(HISTORY_COLUMNS))
    return frame.astype({"id": "int64", "row": "int64"})


def _rows_to_annotations(records: list[tuple]) -> list[Annotation]:
    return [Annotation(row, action, label, note, annotator, created_at, id=i)
            for i, row, action, label, note, annotator, created_at in records]


def _same_state(existing: Annotation, wanted: Annotation, compare_time: bool) -> bool:
    if compare_time:
        return existing.state() == wanted.state()
    return existing.state()[:4] == wanted.state()[:4]


def _name_or_empty(code: int) -> str:
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
    original = [_name_or_empty(int(c)) for c in fer_labels]
    table = pd.DataFrame(
        {
            "row": np.arange(FER2013_ROWS, dtype=np.int64),
            "usage": np.asarray(usage).astype(str),
            "original_label": original,
            "ferplus_majority": [_name_or_empty(int(c)) for c in ferplus_majority],
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
        table.loc[rows, "annotator"] = current["annotator"].to_numpy()
        table.loc[rows, "time"] = current["created_at"].to_numpy()
        table.loc[rows, "note"] = current["note"].to_numpy()
    if only_annotated:
        table = table[table["action"] != ""].reset_index(drop=True)
    return table


def read_annotations_csv(
    path_or_buffer: str | Path | IO[str], default_annotator: str | None = None
) -> list[tuple[Annotation, bool]]:
    """Read and validates the annotated rows of an export-style CSV.

    Returns:
        ``(annotation, time_given)`` per row with an action, in file order.

    Raises:
        ValueError: naming the first bad line, or for missing columns or a row annotated twice.
    """
    table = pd.read_csv(path_or_buffer, dtype=str, keep_default_na=False)
    missing = {"row", "action", "annotated_label"} - set(table.columns)
    if missing:
        raise ValueError(f"annotation CSV lacks column(s) {', '.join(sorted(missing))}")
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
        annotator = record.get("annotator", "").strip() or (default_annotator or "")
        time = record.get("time", "").strip()
        try:
            annotation = make_annotation(
                row, action, record["annotated_label"].strip() or None, record.get("note", ""),
                annotator=annotator, created_at=time or None,
            )
        except ValueError as err:
            raise ValueError(f"CSV line {line}: {err}") from None
        result.append((annotation, bool(time)))
    return result


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
    store: AnnotationStore, row: int, choice: str, note: str, annotator: str, original_label: int | str
) -> Annotation:
    """Store an annotation page's choice for one face; the one call the page makes.

    Args:
        store: the annotation store.
        row: FER2013 row index of the face.
        choice: one of :data:`UI_CHOICES` (see :func:`choice_to_action`).
        note: free text.
        annotator: who annotates.
        original_label: the face's FER2013 label (code or name).

    Returns:
        The stored annotation.

    Raises:
        ValueError: for an unknown choice, a bad row or an empty annotator.
    """
    action, label = choice_to_action(choice, original_label)
    return store.add(row, action, label, note, annotator=annotator)



def main(argv: Sequence[str] | None = None) -> int:
    """Command line for export and import; returns the exit code (0 ok, 1 error)."""
    parser = argparse.ArgumentParser(prog="python -m fer.annotations", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    export = commands.add_parser("export", help="write the current labels as CSV in FER2013 row order")
    export.add_argument("--out", type=Path, required=True, help="output CSV")
    export.add_argument("--only-annotated", action="store_true", help="write only annotated rows")
    importer = commands.add_parser("import", help="append the actions needed to match a CSV")
    importer.add_argument("file", type=Path, help="CSV written by export (or with the same columns)")
    importer.add_argument("--annotator", help="annotator for rows without one")
    for sub in (export, importer):
        sub.add_argument("--db", type=Path, default=None, help="database (default: $FER_ANNOTATIONS_DB or data/)")
    args = parser.parse_args(argv)
    try:
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
            appended = store.import_csv(args.file, default_annotator=args.annotator)
            print(f"appended {appended} actions to {store.path}")
    except (OSError, ValueError, sqlite3.Error) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
