"""The SQLite re-annotation store: validation, current state, export/import, concurrency, crashes."""

from __future__ import annotations

import contextlib
import io
import multiprocessing as mp
import os
import signal
import sqlite3
import threading
import time

import numpy as np
import pandas as pd
import pytest

from fer import annotations
from fer.annotations import (
    EXPORT_COLUMNS,
    UI_CHOICES,
    AnnotationStore,
    ImportResult,
    annotate,
    choice_to_action,
    make_annotation,
)
from fer.ferplus import FER2013_ROWS
from fer.labels import EMOTIONS

ROWS = FER2013_ROWS


@pytest.fixture
def store(tmp_path):
    return AnnotationStore(tmp_path / "annotations.sqlite3")


@pytest.fixture
def arrays():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 7, ROWS)
    majority = rng.integers(-1, 7, ROWS)
    usage = np.array(["Training"] * 28709 + ["PublicTest"] * 3589 + ["PrivateTest"] * 3589)
    return labels, majority, usage


def _state(store: AnnotationStore):
    """The current annotations without the database ids, which differ between files."""
    return store.current().drop(columns="id").fillna("").to_dict("records")


def test_add_history_and_current(store):
    first = store.add(5, "relabel", "happy", annotator="ann")
    store.add(7, "not_face", annotator="bob")
    store.add(5, "confirm", "angry", note="second look", annotator="bob")
    assert first.id == 1 and first.created_at.endswith("+00:00")
    assert store.count() == 3
    assert store.history()["id"].tolist() == [1, 2, 3]
    assert store.history(5)["action"].tolist() == ["relabel", "confirm"]
    current = store.current()
    assert current["row"].tolist() == [5, 7]
    assert current["action"].tolist() == ["confirm", "not_face"]
    assert current.loc[0, "note"] == "second look"
    assert store.integrity_check() == "ok"
    with sqlite3.connect(store.path) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"row": -1, "action": "confirm", "label": "happy"}, "out of range"),
        ({"row": ROWS, "action": "confirm", "label": "happy"}, "out of range"),
        ({"row": "3", "action": "confirm", "label": "happy"}, "integer"),
        ({"row": 1, "action": "delete"}, "unknown action"),
        ({"row": 1, "action": "relabel", "label": "joy"}, "needs an emotion label"),
        ({"row": 1, "action": "confirm"}, "needs an emotion label"),
        ({"row": 1, "action": "ambiguous", "label": "sad"}, "takes no label"),
    ],
)
def test_bad_input_is_refused(store, kwargs, message):
    with pytest.raises(ValueError, match=message):
        store.add(**kwargs, annotator="ann")
    assert store.count() == 0


@pytest.mark.parametrize("annotator", ["", "   "])
def test_empty_annotator_is_refused(store, annotator):
    with pytest.raises(ValueError, match="annotator"):
        store.add(1, "confirm", "sad", annotator=annotator)


def test_schema_guards_writes_that_bypass_python(store):
    with sqlite3.connect(store.path) as conn, pytest.raises(sqlite3.IntegrityError):
        conn.execute(
            "INSERT INTO annotations (\"row\", action, label, note, annotator, created_at) "
            "VALUES (1, 'not_face', 'happy', '', 'x', '2024-01-01T00:00:00+00:00')"
        )


def test_default_path_comes_from_environment(tmp_path, monkeypatch):
    target = tmp_path / "nested" / "db.sqlite3"
    monkeypatch.setenv("FER_ANNOTATIONS_DB", str(target))
    assert AnnotationStore().path == target
    assert target.is_file()
    monkeypatch.delenv("FER_ANNOTATIONS_DB")
    assert annotations.default_db_path().parts[-2:] == ("data", "annotations.sqlite3")


@pytest.mark.parametrize(
    ("choice", "expected"),
    [
        ("confirm", ("confirm", "sad")),
        ("sad", ("confirm", "sad")),
        ("happy", ("relabel", "happy")),
        ("not a face", ("not_face", None)),
        ("ambiguous", ("ambiguous", None)),
    ],
)
def test_ui_choice_maps_to_action(choice, expected):
    assert choice in UI_CHOICES
    assert choice_to_action(choice, EMOTIONS.index("sad")) == expected


def test_action_to_choice_gives_back_the_form_that_stores_it():
    from fer.annotations import action_to_choice

    for choice in UI_CHOICES:
        action, label = choice_to_action(choice, "sad")
        assert choice_to_action(action_to_choice(action, label), "sad") == (action, label)
    with pytest.raises(ValueError, match="unknown annotation"):
        action_to_choice("relabel", "bored")


def test_add_if_new_stores_a_repeat_once_even_when_clicks_race(store):
    from concurrent.futures import ThreadPoolExecutor

    from fer.annotations import annotate, make_annotation

    again = make_annotation(5, "relabel", "sad", annotator="ann")
    with ThreadPoolExecutor(8) as pool:
        stored = list(pool.map(lambda _: store.add_if_new(again), range(16)))
    assert sum(a is not None for a in stored) == 1 and len(store.history(5)) == 1
    # Another annotator, a note or another label is new.
    assert store.add_if_new(make_annotation(5, "relabel", "sad", annotator="bob")) is not None
    assert store.add_if_new(make_annotation(5, "relabel", "sad", "why", annotator="bob")) is not None
    assert annotate(store, 5, "happy", "", "bob", "sad", only_if_new=True).label == "happy"
    assert annotate(store, 5, "happy", "", "bob", "sad", only_if_new=True) is None
    assert annotate(store, 6, "not a face", "", "bob", "sad", only_if_new=True).action == "not_face"
    assert annotate(store, 6, "not a face", "", "bob", "sad", only_if_new=True) is None  # NULL label matches
    assert len(store.history(5)) == 4
    # A double click sends the note twice: the second is no news either, nor an empty note after it.
    assert annotate(store, 7, "fear", "blurry", "bob", "sad", only_if_new=True) is not None
    assert annotate(store, 7, "fear", "blurry", "bob", "sad", only_if_new=True) is None
    assert annotate(store, 7, "fear", "", "bob", "sad", only_if_new=True) is None
    assert annotate(store, 7, "fear", "still blurry", "bob", "sad", only_if_new=True) is not None


def test_annotate_many_stores_one_choice_for_several_faces_in_one_go(store):
    from fer.annotations import annotate_many

    store.add(2, "relabel", "sad", annotator="ann")
    # "confirm" keeps each face's own label; row 2's annotation is replaced (its history keeps it).
    stored = annotate_many(store, {1: "fear", 2: 0, 3: "happy"}, "confirm", "checked", "ann")
    assert [(a.row, a.action, a.label, a.note) for a in stored] == [
        (1, "confirm", "fear", "checked"), (2, "confirm", "angry", "checked"), (3, "confirm", "happy", "checked")]
    # Saved again (a double click), nothing is new; a face whose annotation differs still is.
    store.add(3, "ambiguous", annotator="ann")
    again = annotate_many(store, {1: "fear", 2: 0, 3: "happy"}, "confirm", "", "ann")
    assert [a.row for a in again] == [3] and store.count() == 6
    # A relabel to a face's own label is a confirm, as in the one-face form.
    assert [(a.action, a.label) for a in annotate_many(store, {4: "sad", 5: "fear"}, "sad", "", "ann")] == [
        ("confirm", "sad"), ("relabel", "sad")]
    # One bad face stores none of them.
    with pytest.raises(ValueError, match="out of range"):
        annotate_many(store, {6: "sad", ROWS: "sad"}, "happy", "", "ann")
    with pytest.raises(ValueError, match="non-empty"):
        annotate_many(store, {6: "sad"}, "happy", "", " ")
    assert store.count() == 8 and store.history(6).empty


def test_add_many_if_new_races_store_each_face_once(store):
    from concurrent.futures import ThreadPoolExecutor

    batch = [make_annotation(r, "not_face", annotator="ann") for r in range(10, 20)]
    with ThreadPoolExecutor(8) as pool:
        stored = list(pool.map(lambda _: store.add_many_if_new(batch), range(8)))
    assert sorted(len(s) for s in stored) == [0] * 7 + [10] and store.count() == 10


def test_annotate_stores_the_choice(store):
    stored = annotate(store, 12, "surprise", "mouth open", "ann", original_label="fear")
    assert (stored.action, stored.label, stored.note) == ("relabel", "surprise", "mouth open")
    with pytest.raises(ValueError, match="unknown choice"):
        annotate(store, 12, "maybe", "", "ann", original_label=0)


def test_labels_with_annotations(store):
    original = np.array([0, 1, 2, 3, 4])
    store.add(1, "relabel", "neutral", annotator="a")
    store.add(2, "not_face", annotator="a")
    store.add(3, "ambiguous", annotator="a")
    store.add(4, "confirm", "sad", annotator="a")
    assert store.labels_with_annotations(original).tolist() == [0, 6, -1, -1, 4]
    # A subset (e.g. the test faces) maps entries to FER2013 rows.
    subset = store.labels_with_annotations(np.array([9, 1]), rows=np.array([1, 100]))
    assert subset.tolist() == [6, 1]


def test_export_all_rows_in_order(store, arrays):
    labels, majority, usage = arrays
    store.add(3, "relabel", "happy", note='a "quoted", note\nover two lines', annotator="ann")
    store.add(10, "not_face", annotator="bob")
    buffer = io.StringIO()
    assert store.export_csv(buffer, labels, majority, usage) == ROWS
    buffer.seek(0)
    import pandas as pd

    table = pd.read_csv(buffer, dtype=str, keep_default_na=False)
    assert tuple(table.columns) == EXPORT_COLUMNS
    assert table["row"].astype(int).tolist() == list(range(ROWS))
    assert table.loc[3, "current_label"] == "happy"
    assert table.loc[3, "original_label"] == EMOTIONS[labels[3]]
    assert table.loc[3, "note"] == 'a "quoted", note\nover two lines'
    assert table.loc[10, "current_label"] == "" and table.loc[10, "action"] == "not_face"
    assert table.loc[0, "action"] == "" and table.loc[0, "current_label"] == EMOTIONS[labels[0]]
    assert (table.loc[majority == -1, "ferplus_majority"] == "").all()


def test_export_import_round_trip(tmp_path, store, arrays):
    labels, majority, usage = arrays
    for row, (action, label) in enumerate([("confirm", "sad"), ("relabel", "fear"), ("ambiguous", None)]):
        store.add(row * 1000, action, label, note=f"n{row}", annotator="ann")
    store.add(0, "relabel", "disgust", annotator="bob")  # Only the latest action is exported.
    exported = tmp_path / "labels.csv"
    store.export_csv(exported, labels, majority, usage)

    fresh = AnnotationStore(tmp_path / "fresh.sqlite3")
    assert fresh.import_csv(exported) == ImportResult(appended=3)
    assert _state(fresh) == _state(store)
    assert fresh.import_csv(exported) == ImportResult(already_stored=3)  # Idempotent.
    assert store.import_csv(exported).appended == 0  # Re-import into the source adds nothing.
    assert store.count() == 4

    only = tmp_path / "only.csv"
    assert store.export_csv(only, labels, majority, usage, only_annotated=True) == 3
    other = AnnotationStore(tmp_path / "other.sqlite3")
    assert other.import_csv(only).appended == 3 and _state(other) == _state(store)


def test_import_appends_only_changes(tmp_path, store, arrays):
    labels, majority, usage = arrays
    store.add(1, "relabel", "happy", annotator="ann")
    store.add(2, "not_face", annotator="ann")
    path = tmp_path / "labels.csv"
    store.export_csv(path, labels, majority, usage, only_annotated=True)
    text = path.read_text().replace("not_face,,", "relabel,angry,")
    path.write_text(text + "5,Training,angry,,ambiguous,,,,,typed by hand\n")
    assert store.import_csv(path, default_annotator="carol") == ImportResult(appended=2, already_stored=1)
    current = store.current().set_index("row")
    assert current.loc[2, "label"] == "angry"
    assert current.loc[5, "annotator"] == "carol"
    # A row without a time is compared on the rest, so importing the file again adds nothing.
    assert store.import_csv(path, default_annotator="carol").appended == 0


def test_bad_import_changes_nothing(tmp_path, store):
    path = tmp_path / "bad.csv"
    path.write_text("row,action,annotated_label,annotator\n1,confirm,happy,ann\n2,relabel,joy,ann\n")
    with pytest.raises(ValueError, match="line 3: .*needs an emotion label"):
        store.import_csv(path)
    path.write_text("row,action,annotated_label,annotator\n1,confirm,happy,ann\n1,confirm,sad,ann\n")
    with pytest.raises(ValueError, match="annotated twice"):
        store.import_csv(path)
    path.write_text("row,action\n1,confirm\n")
    with pytest.raises(ValueError, match="annotated_label"):
        store.import_csv(path)
    assert store.count() == 0


def test_cli_export_and_import(tmp_path, monkeypatch, capsys):
    # The FER2013 labels come from the 300 MB CSV; the CLI test only needs their shape.
    monkeypatch.setattr(annotations, "original_labels", lambda: np.zeros(ROWS, dtype=np.int64))
    db, out = tmp_path / "a.sqlite3", tmp_path / "out.csv"
    AnnotationStore(db).add(42, "relabel", "fear", annotator="ann")
    assert annotations.main(["export", "--out", str(out), "--db", str(db)]) == 0
    assert annotations.main(["import", str(out), "--db", str(tmp_path / "b.sqlite3")]) == 0
    assert "Imported 1 new action." in capsys.readouterr().out
    assert annotations.main(["import", str(tmp_path / "missing.csv"), "--db", str(db)]) == 1


def test_cli_import_without_annotators_asks_for_one(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(annotations, "original_labels", lambda: np.zeros(ROWS, dtype=np.int64))
    db = tmp_path / "a.sqlite3"
    (tmp_path / "bare.csv").write_text("row,action,annotated_label\n5,relabel,happy\n")
    assert annotations.main(["import", str(tmp_path / "bare.csv"), "--db", str(db)]) == 2
    assert capsys.readouterr().err == ("error: bare.csv has no annotator column, so CSV line 2 names no one: "
                                       "pass --annotator NAME, recorded for the lines without one\n")
    (tmp_path / "some.csv").write_text("row,action,annotated_label,annotator\n5,relabel,happy,ann\n6,,,\n"
                                       "7,not_face,,\n")
    assert annotations.main(["import", str(tmp_path / "some.csv"), "--db", str(db)]) == 2
    assert "error: CSV line 4 of some.csv has no annotator: pass --annotator NAME" in capsys.readouterr().err
    assert not db.exists(), "a refused import makes no database"
    assert annotations.main(["import", str(tmp_path / "some.csv"), "--db", str(db), "--annotator", "carol"]) == 0
    assert AnnotationStore(db).current().set_index("row")["annotator"].to_dict() == {5: "ann", 7: "carol"}


def _export(store, arrays, **kwargs) -> str:
    buffer = io.StringIO()
    store.export_csv(buffer, *arrays, **kwargs)
    return buffer.getvalue()


def test_importing_an_old_export_never_undoes_newer_work(store, arrays):
    store.add(30000, "relabel", "sad", note="first look", annotator="alice")
    old = _export(store, arrays)
    store.add(30000, "relabel", "angry", annotator="bob")  # Newer work after the export.
    # Alice's record, already in the history, is not appended again nor made current again.
    assert store.import_csv(io.StringIO(old)) == ImportResult(already_stored=1)
    assert store.count() == 2
    assert store.current()[["label", "annotator"]].values.tolist() == [["angry", "bob"]]
    # Edited in the old file but still older than Bob's: left out and counted.
    edited = pd.read_csv(io.StringIO(old), dtype=str, keep_default_na=False)
    edited.loc[30000, "note"] = "second look"
    assert store.import_csv(io.StringIO(edited.to_csv(index=False))) == ImportResult(older=1)
    assert store.count() == 2
    # A time later than the current annotation's is newer work: appended once.
    edited.loc[30000, "time"] = "2999-01-01T00:00:00+01:00"
    newer = edited.to_csv(index=False)
    assert store.import_csv(io.StringIO(newer)) == ImportResult(appended=1)
    assert store.current().loc[0, "note"] == "second look"
    assert store.import_csv(io.StringIO(newer)) == ImportResult(already_stored=1)
    # Without a time, an action the row had before is not new work either.
    untimed = "row,action,annotated_label,annotator\n30000,relabel,angry,bob\n"
    store.add(30000, "not_face", annotator="carol")
    assert store.import_csv(io.StringIO(untimed)) == ImportResult(already_stored=1)
    assert store.current().loc[0, "action"] == "not_face"


def test_import_compares_times_as_instants():
    base = make_annotation(1, "not_face", annotator="ann", created_at="2024-05-01T12:00:00.000000+00:00")
    latest = make_annotation(1, "ambiguous", annotator="ann", created_at="2024-05-01T13:00:00+00:00")
    same_instant = make_annotation(1, "not_face", annotator="ann", created_at="2024-05-01T14:00:00+02:00")
    naive_later = make_annotation(1, "confirm", "sad", annotator="ann", created_at="2024-05-01T13:30:00")
    appended, already, older = annotations.plan_import([base, latest], [(same_instant, True), (naive_later, True)])
    assert (appended, already, older) == ([naive_later], 1, 0)


def test_label_edits_without_an_action_are_reported(store, arrays):
    labels = arrays[0]
    store.add(3, "relabel", "happy", annotator="ann")
    table = pd.read_csv(io.StringIO(_export(store, arrays)), dtype=str, keep_default_na=False)
    table.loc[7, "current_label"] = EMOTIONS[(labels[7] + 1) % 7]  # Edited, but no action.
    table.loc[8, "annotated_label"] = "fear"
    table.loc[9, "note"] = "a note alone changes no label"
    result = store.import_csv(io.StringIO(table.to_csv(index=False)))
    assert result == ImportResult(already_stored=1, unlabelled_edits=(9, 10))  # CSV lines of rows 7 and 8.
    assert store.count() == 1
    assert "2 CSV line(s) (9, 10)" in result.warning() and "action such as relabel" in result.warning()
    assert ImportResult(appended=1).warning() is None


def test_crlf_line_endings_in_notes_match_the_stored_note(store, arrays):
    store.add(30001, "ambiguous", note="line1\nline2", annotator="bob")
    crlf = _export(store, arrays, only_annotated=True).replace("\n", "\r\n")  # In the note too.
    assert '"line1\r\nline2"' in crlf
    assert store.import_csv(io.StringIO(crlf)) == ImportResult(already_stored=1)
    # Without a time only the current annotation is compared: still the same note.
    no_time = pd.read_csv(io.StringIO(crlf), dtype=str, keep_default_na=False).drop(columns="time")
    assert store.import_csv(io.StringIO(no_time.to_csv(index=False, lineterminator="\r\n"))).appended == 0
    assert store.add(30002, "not_face", note="a\r\nb\rc", annotator="bob").note == "a\nb\nc"


def test_import_stores_labels_as_the_annotation_page_does(store, arrays):
    labels = np.full(ROWS, -1)
    labels[[1, 2, 3]] = EMOTIONS.index("sad")
    csv = ("row,action,annotated_label,annotator\n"
           "1,relabel,sad,ann\n"  # Back to the face's own label: the page stores a confirm.
           "2,relabel,fear,ann\n"
           "4,confirm,happy,ann\n")  # Label unknown: nothing to check against.
    assert store.import_csv(io.StringIO(csv), fer_labels=labels).appended == 3
    current = store.current()
    assert current[["row", "action", "label"]].values.tolist() == [
        [1, "confirm", "sad"], [2, "relabel", "fear"], [4, "confirm", "happy"]]
    assert annotate(store, 1, "sad", "", "ann", original_label="sad").action == "confirm"
    with pytest.raises(ValueError, match=r"CSV line 2: row 3 is labelled sad in FER2013.*use relabel"):
        store.import_csv(io.StringIO("row,action,annotated_label,annotator\n3,confirm,angry,ann\n"), fer_labels=labels)
    with pytest.raises(ValueError, match="one entry per FER2013 row"):
        store.import_csv(io.StringIO(csv), fer_labels=labels[:10])
    assert store.count() == 4


@pytest.mark.parametrize("text", ["=1+1", "+1", "-x", "@SUM(A1)", "\tx", "'=quoted", "''-twice", "'plain", "plain", ""])
def test_formula_guard_is_exactly_undone(text):
    guarded = annotations.guard_formula(text)
    assert annotations.unguard_formula(guarded) == text
    assert guarded[:1] not in ("=", "+", "-", "@", "\t")


def test_export_guards_formulas_and_round_trips(tmp_path, store, arrays):
    store.add(1, "relabel", "fear", note='=HYPERLINK("https://evil.example","x")', annotator="@mallory")
    store.add(2, "not_face", note="-looks away", annotator="ann")
    store.add(3, "ambiguous", note="'=already quoted", annotator="ann")
    store.add(4, "ambiguous", note="'tis blurred", annotator="ann")
    exported = _export(store, arrays)
    table = pd.read_csv(io.StringIO(exported), dtype=str, keep_default_na=False).set_index("row")
    assert table.loc["1", "note"].startswith("'=HYPERLINK") and table.loc["1", "annotator"] == "'@mallory"
    assert table.loc["2", "note"] == "'-looks away"
    assert table.loc["3", "note"] == "''=already quoted" and table.loc["4", "note"] == "'tis blurred"
    fresh = AnnotationStore(tmp_path / "fresh.sqlite3")
    assert fresh.import_csv(io.StringIO(exported)).appended == 4
    assert _state(fresh) == _state(store)
    assert _export(fresh, arrays) == exported  # Byte-identical.
    assert fresh.import_csv(io.StringIO(exported)) == ImportResult(already_stored=4)


def test_cli_reports_what_an_import_left_out(tmp_path, monkeypatch, capsys):
    labels = np.zeros(ROWS, dtype=np.int64)
    monkeypatch.setattr(annotations, "original_labels", lambda: labels)
    db, old = tmp_path / "a.sqlite3", tmp_path / "old.csv"
    store = AnnotationStore(db)
    store.add(42, "relabel", "fear", annotator="ann")
    assert annotations.main(["export", "--out", str(old), "--db", str(db)]) == 0
    store.add(42, "relabel", "sad", annotator="bob")
    table = pd.read_csv(old, dtype=str, keep_default_na=False)
    table.loc[42, "note"] = "edited later"
    table.loc[43, "annotated_label"] = "happy"
    table.to_csv(old, index=False)
    capsys.readouterr()
    assert annotations.main(["import", str(old), "--db", str(db)]) == 0
    out, err = capsys.readouterr()
    assert out.strip() == (f"{db}: Imported 0 new actions; 1 older than the store's current annotation of their "
                           "face (kept as they were).")
    assert err.startswith("warning: 1 CSV line(s) (45)")
    (tmp_path / "bad.csv").write_text("row,action,annotated_label,annotator\n42,confirm,sad,ann\n")
    assert annotations.main(["import", str(tmp_path / "bad.csv"), "--db", str(db)]) == 1
    assert "row 42 is labelled angry in FER2013" in capsys.readouterr().err
    assert store.count() == 2


def test_threads_share_one_store(store):
    errors: list[BaseException] = []

    def write(worker: int) -> None:
        try:
            for i in range(50):
                store.add(worker * 50 + i, "confirm", "happy", annotator=f"t{worker}")
                store.current()
        except (sqlite3.Error, ValueError) as err:
            errors.append(err)

    threads = [threading.Thread(target=write, args=(w,)) for w in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert store.count() == 200 and len(store.current()) == 200


@contextlib.contextmanager
def _reaped(processes):
    """Start daemon processes and kill any still alive on exit.

    A worker stuck forever (e.g. at a barrier whose peer crashed) must fail its test, not hang
    pytest at exit, where multiprocessing joins every non-daemon child: that cost a CI run.
    """
    for p in processes:
        p.daemon = True
        p.start()
    try:
        yield processes
    finally:
        for p in processes:
            if p.is_alive():
                p.kill()
            p.join(timeout=10)


def _process_writer(path, worker, writes, barrier, results):
    errors = []
    try:
        barrier.wait(timeout=60)  # All eight open the new file at once: the race CI once lost.
        store = AnnotationStore(path)
    except (sqlite3.Error, threading.BrokenBarrierError) as err:
        results.put([repr(err)])
        return
    for i in range(writes):
        try:
            store.add(worker * writes + i, "relabel", EMOTIONS[i % 7], annotator=f"p{worker}")
        except (sqlite3.Error, ValueError) as err:
            errors.append(repr(err))
    results.put(errors)


def test_eight_processes_write_at_once(tmp_path):
    processes, writes = 8, 500
    path = str(tmp_path / "stress.sqlite3")
    ctx = mp.get_context("spawn")
    barrier, results = ctx.Barrier(processes), ctx.Queue()
    workers = [ctx.Process(target=_process_writer, args=(path, w, writes, barrier, results)) for w in range(processes)]
    with _reaped(workers):
        errors = [e for _ in workers for e in results.get(timeout=120)]
        for p in workers:
            p.join(timeout=30)
    assert errors == []
    assert [p.exitcode for p in workers] == [0] * processes
    store = AnnotationStore(path)
    assert store.count() == processes * writes
    assert len(store.current()) == processes * writes
    assert store.integrity_check() == "ok"


def _endless_writer(path):
    store = AnnotationStore(path)
    i = 0
    while True:  # Batches of 10 in one transaction: a kill must never leave a partial batch.
        store.add_many(make_annotation((i + k) % ROWS, "ambiguous", annotator="doomed") for k in range(10))
        i += 10


def test_sigkilled_writer_leaves_database_intact(tmp_path):
    path = tmp_path / "killed.sqlite3"
    store = AnnotationStore(path)
    writer = mp.get_context("spawn").Process(target=_endless_writer, args=(str(path),))
    with _reaped([writer]):
        deadline = time.monotonic() + 60
        while store.count() < 300 and time.monotonic() < deadline:
            time.sleep(0.02)
        os.kill(writer.pid, signal.SIGKILL)
        writer.join(timeout=30)
    assert writer.exitcode == -signal.SIGKILL
    assert store.integrity_check() == "ok"
    count = store.count()
    assert count >= 300 and count % 10 == 0
    assert store.history()["id"].tolist() == list(range(1, count + 1))
    store.add(0, "confirm", "happy", annotator="survivor")  # No stale lock.
    assert store.count() == count + 1


def test_cli_export_never_writes_over_its_database(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(annotations, "original_labels", lambda: np.zeros(ROWS, dtype=np.int64))
    db = tmp_path / "ann" / "x.sqlite3"
    AnnotationStore(db).add(42, "relabel", "fear", annotator="ann")
    before = db.read_bytes()
    for out in (db, tmp_path / "ann" / ".." / "ann" / "x.sqlite3", tmp_path / "ann" / "x.sqlite3-wal"):
        assert annotations.main(["export", "--db", str(db), "--out", str(out)]) == 2
        err = capsys.readouterr().err
        assert err.startswith(f"error: --out {out} is ") and str(db) in err
    assert db.read_bytes() == before and AnnotationStore(db).count() == 1
    link = tmp_path / "link.csv"
    link.symlink_to(db)
    assert annotations.main(["export", "--db", str(db), "--out", str(link)]) == 2, "the same file by another name"
    assert AnnotationStore(db).count() == 1


def test_cli_export_needs_an_existing_database_and_import_may_create_one(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(annotations, "original_labels", lambda: np.zeros(ROWS, dtype=np.int64))
    missing, out = tmp_path / "typo.sqlite3", tmp_path / "out.csv"
    assert annotations.main(["export", "--db", str(missing), "--out", str(out)]) == 2
    assert capsys.readouterr().err.startswith(f"error: no annotation database at {missing} (is --db mistyped?)")
    assert not missing.exists() and not out.exists(), "no empty database made, no CSV of 35,887 bare rows"
    monkeypatch.setenv("FER_ANNOTATIONS_DB", str(missing))
    assert annotations.main(["export", "--out", str(out)]) == 2
    assert "named by $FER_ANNOTATIONS_DB" in capsys.readouterr().err and not missing.exists()
    source = tmp_path / "a.sqlite3"
    AnnotationStore(source).add(7, "not_face", annotator="ann")
    assert annotations.main(["export", "--db", str(source), "--out", str(out), "--only-annotated"]) == 0
    assert annotations.main(["import", str(out), "--db", str(missing)]) == 0, "import creates its database"
    assert AnnotationStore(missing).count() == 1
