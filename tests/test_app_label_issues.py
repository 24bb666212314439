"""AppTest of the Label-issues page: ranking, filters, relabelling, export and import."""

import io

import numpy as np
import pandas as pd
import pytest
from app_support import open_page, record_downloads, shared_model_folder, texts, use_app_env
from streamlit.testing.v1 import AppTest

from fer.annotations import AnnotationStore
from fer.labels import EMOTIONS
from fer.paths import FER2013_CSV
from fer_app.explorer_view import FACES_PER_PAGE


@pytest.fixture
def app_env(monkeypatch, tmp_path, tmp_path_factory):
    return use_app_env(monkeypatch, tmp_path, shared_model_folder(tmp_path_factory))


def open_issues() -> AppTest:
    return open_page("pages/label_issues.py")


def scores(at: AppTest) -> list[float]:
    return [float(c.split("score ")[1].split(" ")[0]) for c in at.image[0].captions]


def test_ranked_most_suspicious_first_and_filters(app_env):
    at = open_issues()
    assert any(t.startswith("7178 faces (") for t in texts(at.subheader))
    first = scores(at)
    assert len(first) == FACES_PER_PAGE and first == sorted(first, reverse=True)
    at.multiselect(key="issues_classes").set_value(["fear"])
    at.multiselect(key="issues_splits").set_value(["PublicTest"])
    at.toggle(key="issues_flagged").set_value(True)
    at.run()
    assert not at.exception
    captions = at.image[0].captions
    assert captions and all(" · fear → " in c and "flagged" in c for c in captions)


def test_flip_tta_ranks_from_the_tta_predictions(monkeypatch, tmp_path, tmp_path_factory):
    from app_support import switched_to_tta

    from fer.explorer import PROB_COLUMNS
    from fer.label_issues import rank_label_issues
    from fer_app import resources

    at, plain, tta = switched_to_tta(monkeypatch, tmp_path, tmp_path_factory, "pages/label_issues.py", "issues_tta")
    assert any("flip-TTA probabilities" in c for c in texts(at.caption))
    assert at.image[0].captions != plain and scores(at) == sorted(scores(at), reverse=True)
    # The order is the ranking of the TTA table itself (the FER+ crowd mixed in at the default 0.5).
    votes = resources.ferplus()
    rows = tta["row"].to_numpy()
    ranked = rank_label_issues(tta["true"].to_numpy(), tta[list(PROB_COLUMNS)].to_numpy(np.float64),
                               None if votes is None else votes.votes[rows], 0.5, rows=rows,
                               usage=tta["split"].to_numpy(str))
    shown = [int(c.split("row ")[1].split(" ")[0]) for c in at.image[0].captions]
    assert shown == ranked["row"].head(len(shown)).tolist()


def test_relabel_a_face(app_env):
    at = open_issues()
    at.sidebar.text_input(key="app_annotator").input("ann").run()
    options = at.selectbox(key="issues_annotate_row").options
    assert options[0].startswith("#1 · row ")
    row = int(options[1].split("row ")[1].split(" ")[0])
    at.selectbox(key="issues_annotate_row").set_value(row)
    at.radio(key="issues_annotate_choice").set_value("surprise")
    at.button(key="issues_annotate_save").click().run()
    assert not at.exception
    assert f"Saved for row {row}: relabelled surprise (by ann)." in texts(at.success)
    current = AnnotationStore(app_env).current()
    assert current[["row", "action", "label", "annotator"]].values.tolist() == [[row, "relabel", "surprise", "ann"]]
    assert "✎ relabelled surprise (ann)" in at.image[0].captions[1]
    # The close-up's bars are the ranking's uncalibrated probabilities, and say so.
    assert any(t.endswith("probabilities, not calibrated.") for t in texts(at.caption))


def test_export_and_import(app_env):
    at = open_issues()
    assert any(b.label.startswith("Download current labels") for b in at.get("download_button"))
    csv = "row,action,annotated_label,annotator,note\n30000,ambiguous,,imp,blurred\n"
    at.file_uploader(key="issues_import_file").set_value(("labels.csv", csv.encode(), "text/csv"))
    at.run()
    at.button(key="issues_import").click().run()
    assert not at.exception
    assert "Imported 1 new action." in texts(at.success)
    current = AnnotationStore(app_env).current()
    assert current[["row", "action", "annotator"]].values.tolist() == [[30000, "ambiguous", "imp"]]
    # A bad file is refused with the reason, and changes nothing.
    at.file_uploader(key="issues_import_file").set_value(("bad.csv", b"row,action\n1,relabel\n", "text/csv"))
    at.run()
    at.button(key="issues_import").click().run()
    assert not at.exception
    assert any(e.startswith("Nothing imported:") for e in texts(at.error))
    assert len(AnnotationStore(app_env).history()) == 1


def test_export_content(app_env):
    store = AnnotationStore(app_env)
    store.add(28709, "relabel", "sad", annotator="x")
    at = open_issues()
    button = next(b for b in at.get("download_button") if b.label.startswith("Download current labels"))
    assert button is not None
    from fer_app.explorer_view import annotations_export

    table = pd.read_csv(io.StringIO(annotations_export(store)), keep_default_na=False)
    assert len(table) == 35887 and table.loc[28709, "current_label"] == "sad"


def test_faces_whose_training_copy_is_labelled_otherwise(app_env):
    from fer.twins import conflicting_rows, load_twins

    twins = load_twins()
    expected = conflicting_rows(twins)
    assert 0 < len(expected) < 400
    at = open_issues()
    at.toggle(key="issues_twin_conflict").set_value(True).run()
    assert not at.exception
    assert any(t.startswith(f"{len(expected)} faces (") for t in texts(at.subheader))
    captions = at.image[0].captions
    rows = [int(c.split(" row ")[1].split(" ")[0]) for c in captions]
    assert set(rows) <= set(expected.tolist())
    labels = twins.set_index("row")
    for caption, row in zip(captions, rows, strict=True):
        given = caption.split(" · ")[1].split(" → ")[0]
        copy = caption.split(" · in Training: row ")[1]
        assert int(copy.split(" ")[0]) == labels.loc[row, "twin_row"]
        assert not copy.split("(")[1].startswith(given + ",")  # the copy's label differs
    assert scores(at) == sorted(scores(at), reverse=True)  # still the ranking's order
    # The chosen face's close-up shows its Training copy, with the copy's label.
    close = next(img for img in at.image if img.captions and img.captions[0] == f"row {rows[0]}")
    if FER2013_CSV.is_file():
        copy = labels.loc[rows[0]]
        assert close.captions[1] == f"its Training copy, row {copy['twin_row']}: {EMOTIONS[copy['twin_label']]}"


def transfer_label(at: AppTest) -> str:
    return next(e.label for e in at.expander if e.label.startswith("Export or import annotations"))


def import_file(at: AppTest, csv: str) -> AppTest:
    at.file_uploader(key="issues_import_file").set_value(("labels.csv", csv.encode(), "text/csv"))
    at.run()
    at.button(key="issues_import").click().run()
    assert not at.exception
    return at


def test_import_counts_and_reports_what_it_left_out(app_env):
    at = open_issues()
    assert transfer_label(at).endswith("(0 actions stored)")
    csv = "row,action,annotated_label,annotator,time,note\n30000,ambiguous,,imp,2024-01-01T00:00:00+00:00,blurred\n"
    import_file(at, csv)
    assert "Imported 1 new action." in texts(at.success)
    assert transfer_label(at).endswith("(1 action stored)")  # The count includes the import just made.
    # The file stays in the uploader: importing it again, after newer work, changes nothing.
    AnnotationStore(app_env).add(30001, "not_face", annotator="bob")
    at.button(key="issues_import").click().run()
    assert "Imported 0 new actions; 1 already stored." in texts(at.success)
    AnnotationStore(app_env).add(30000, "not_face", annotator="bob")
    import_file(at, csv.replace("blurred", "edited since"))
    assert texts(at.success) == ["Imported 0 new actions; 1 older than the store's current annotation of their face "
                                 "(kept as they were)."]
    assert AnnotationStore(app_env).current()["action"].tolist() == ["not_face", "not_face"]
    import_file(at, "row,action,annotated_label,annotator\n30002,,fear,imp\n")
    assert any(w.startswith("1 CSV line(s) (2) change a label") and "relabel" in w for w in texts(at.warning))
    assert transfer_label(at).endswith("(3 actions stored)")


def test_import_messages_show_file_text_as_text(app_env):
    at = import_file(open_issues(), "row,action,annotated_label\n[x](https://evil.example),confirm,happy\n")
    [error] = texts(at.error)
    assert error.startswith("Nothing imported: CSV line 2") and "[x](" not in error
    assert r"\[x\]\(https\:\/\/evil\.example\)" in error


def test_import_refuses_a_confirm_of_another_label(app_env):
    from fer.testset import load_test_faces

    faces = load_test_faces()
    row, label = int(faces.rows[0]), EMOTIONS[int(faces.labels[0])]
    other = next(e for e in EMOTIONS if e != label)
    at = import_file(open_issues(), f"row,action,annotated_label,annotator\n{row},confirm,{other},imp\n")
    assert any(f"row {row} is labelled {label} in FER2013" in e for e in texts(at.error))
    at = import_file(at, f"row,action,annotated_label,annotator\n{row},relabel,{label},imp\n")
    assert AnnotationStore(app_env).current()[["action", "label"]].values.tolist() == [["confirm", label]]


def test_a_broken_annotation_database_leaves_the_ranking(app_env):
    app_env.write_bytes(b"this is not an SQLite database" * 100)
    at = open_issues()
    assert any("annotation database cannot be used" in w for w in texts(at.warning))
    assert not at.error and scores(at)
    assert not [e for e in at.expander if "Export or import" in e.label]


def test_a_database_error_during_import_is_a_message_not_a_blank_page(app_env, monkeypatch):
    import sqlite3

    def locked(*args, **kwargs):
        raise sqlite3.OperationalError("database is locked")

    monkeypatch.setattr(AnnotationStore, "import_csv", locked)
    at = open_issues()
    import_file(at, "row,action,annotated_label,annotator,time,note\n30000,ambiguous,,imp,,\n")
    assert any("Nothing imported: the annotation database cannot be used" in e for e in texts(at.error))
    assert scores(at)  # the ranking is still there


def shown_rows(at: AppTest) -> list[int]:
    return [int(c.split(" row ")[1].split(" ")[0]) for c in at.image[0].captions]


def test_hide_faces_already_annotated(app_env):
    at = open_issues()
    first, second = shown_rows(at)[:2]
    store = AnnotationStore(app_env)
    store.add(first, "relabel", "sad", annotator="x")
    store.add(0, "not_face", annotator="x")  # a Training face: not in the list, so not counted as hidden
    at.run()
    assert "✎ relabelled sad (x)" in at.image[0].captions[0]  # shown while the toggle is off
    at.toggle(key="issues_hide_annotated").set_value(True).run()
    assert not at.exception
    assert any(t.startswith("7177 faces (") and t.endswith(" · 1 annotated face hidden") for t in texts(at.subheader))
    assert first not in shown_rows(at)
    # The numbers count the list shown, as the pager and the annotation panel do, and say so.
    assert at.image[0].captions[0].startswith(f"#1 row {second} ")
    assert any("numbered without the annotated faces" in c for c in texts(at.caption))
    # A face annotated with the toggle on leaves the queue at once.
    at.sidebar.text_input(key="app_annotator").input("ann").run()
    at.selectbox(key="issues_annotate_row").set_value(second)
    at.radio(key="issues_annotate_choice").set_value("surprise")
    at.button(key="issues_annotate_save").click().run()
    assert not at.exception
    assert second not in shown_rows(at)
    assert any(t.startswith("7176 faces (") and t.endswith(" · 2 annotated faces hidden") for t in texts(at.subheader))
    # The selector empties (no face nobody chose), and Next goes to the face that took its place.
    assert at.selectbox(key="issues_annotate_row").value is None
    assert any("left this list with your annotation" in t for t in texts(at.info))
    at.button(key="issues_annotate_next").click().run()
    assert at.selectbox(key="issues_annotate_row").value == shown_rows(at)[0]
    assert not any("left this list" in t for t in texts(at.info))
    at.toggle(key="issues_hide_annotated").set_value(False).run()
    assert shown_rows(at)[:2] == [first, second]


def test_csv_of_the_filtered_faces(app_env, monkeypatch):
    downloads = record_downloads(monkeypatch)
    at = open_issues()
    at.multiselect(key="issues_classes").set_value(["fear"])
    at.multiselect(key="issues_splits").set_value(["PublicTest"])
    at.run()
    [count] = [int(t.split(" ")[0]) for t in texts(at.subheader) if " faces (" in t]
    assert count > FACES_PER_PAGE  # the CSV holds every face of the list, not only this page
    row = shown_rows(at)[1]
    AnnotationStore(app_env).add(row, "relabel", "sad", note="=HYPERLINK(\"http://evil.example\")",
                                 annotator="@ann")
    at.run()
    assert f"These {count} faces as CSV" in [b.label for b in at.get("download_button")]
    [name] = [n for n in downloads if n.endswith("_label_issues_fear_PublicTest_ferplus0.5.csv")]
    table = pd.read_csv(io.StringIO(downloads[name]()), keep_default_na=False)
    assert len(table) == count and table["rank"].tolist() == list(range(1, count + 1))
    assert table["row"].head(FACES_PER_PAGE).tolist() == shown_rows(at)
    assert set(table["given"]) == {"fear"} and set(table["split"]) == {"PublicTest"}
    for column in ("suggested", "predicted", "score", "ferplus_majority", "action", "annotated_label", "annotator"):
        assert column in table.columns
    assert table["score"].is_monotonic_decreasing
    annotated = table[table["action"] != ""]
    assert annotated["row"].tolist() == [row]
    # Free text cannot run as a spreadsheet formula: it is guarded as the annotation export guards it.
    assert annotated[["action", "annotated_label", "annotator", "note"]].values.tolist() == [
        ["relabel", "sad", "'@ann", "'=HYPERLINK(\"http://evil.example\")"]]
    # With the annotated faces hidden, the CSV is the list shown: one face fewer, named so.
    at.toggle(key="issues_hide_annotated").set_value(True).run()
    assert f"These {count - 1} faces as CSV" in [b.label for b in at.get("download_button")]
    table = pd.read_csv(io.StringIO(downloads[name.replace(".csv", "_unannotated.csv")]()), keep_default_na=False)
    assert len(table) == count - 1 and row not in table["row"].tolist() and set(table["action"]) == {""}


def test_close_up_reads_the_stored_prediction_as_the_csv_does(app_env, monkeypatch):
    from fer.labels import PROB_COLUMNS
    from fer_app import resources
    from fer_app.charts import map_caption

    downloads = record_downloads(monkeypatch)
    at = open_issues()
    row = shown_rows(at)[0]
    given = EMOTIONS.index(at.image[0].captions[0].split(" · ")[1].split(" → ")[0])
    stored = next(c for c in range(1, len(EMOTIONS)) if c != given)
    # A tie in the stored (rounded) probabilities: argmax takes the first class, the model's own
    # prediction is stored in "pred", and the close-up and the CSV must both show that one.
    original = resources.load_predictions

    def tied(model, tta=False, calibrated=True):
        table = original(model, tta, calibrated).copy()
        table.loc[table["row"] == row, list(PROB_COLUMNS)] = 1 / len(EMOTIONS)
        table.loc[table["row"] == row, "pred"] = stored
        return table

    monkeypatch.setattr(resources, "load_predictions", tied)
    at.selectbox(key="issues_annotate_row").set_value(row)
    at.toggle(key="issues_close_up_maps").set_value(True).run()
    assert not at.exception and not at.error
    close = next(img for img in at.image if img.captions and img.captions[0] == f"row {row}")
    assert close.captions[-2:] == [map_caption(EMOTIONS[stored]), map_caption(EMOTIONS[given])]
    [name] = [n for n in downloads if n.endswith("_label_issues_ferplus0.5.csv")]
    table = pd.read_csv(io.StringIO(downloads[name]()), keep_default_na=False)
    assert table.loc[table["row"] == row, "predicted"].tolist() == [EMOTIONS[stored]]
