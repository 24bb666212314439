"""AppTest of what every explorer grid shares: the several-faces annotation form and the pager's
page size (drawn here on the Label-issues page)."""

import pytest
from app_support import open_page, shared_model_folder, texts, use_app_env
from streamlit.testing.v1 import AppTest

from fer.annotations import AnnotationStore
from fer_app.explorer_view import FACES_PER_PAGE


@pytest.fixture
def app_env(monkeypatch, tmp_path, tmp_path_factory):
    return use_app_env(monkeypatch, tmp_path, shared_model_folder(tmp_path_factory))


def shown_rows(at: AppTest) -> list[int]:
    return [int(c.split("row ")[1].split(" ")[0]) for c in at.image[0].captions]


def test_several_faces_annotated_in_one_save(app_env):
    at = open_page("pages/label_issues.py")
    save = at.button(key="issues_annotate_many_save")
    assert save.disabled  # no annotator yet
    at.sidebar.text_input(key="app_annotator").input("ann").run()
    rows = shown_rows(at)
    assert at.multiselect(key="issues_annotate_many").options == [
        o for o in at.selectbox(key="issues_annotate_row").options]  # the page's faces, as the one-face chooser
    at.button(key="issues_annotate_many_save").click().run()
    assert "Not saved: choose faces, or tick all faces of this page." in texts(at.error)
    at.checkbox(key="issues_annotate_many_all").check()
    at.button(key="issues_annotate_many_save").click().run()
    assert "Not saved: choose a label." in texts(at.error)  # no label until one is chosen
    assert AnnotationStore(app_env).count() == 0
    assert at.checkbox(key="issues_annotate_many_all").value  # a refused save keeps what was chosen
    at.checkbox(key="issues_annotate_many_all").uncheck()

    at.multiselect(key="issues_annotate_many").set_value([rows[2], rows[5]])
    at.radio(key="issues_annotate_many_choice").set_value("not a face")
    at.text_input(key="issues_annotate_many_note").input("a drawing")
    at.button(key="issues_annotate_many_save").click().run()
    assert not at.exception
    assert "Saved for 2 of 2 faces: 2 not a face (by ann)." in texts(at.success)
    current = AnnotationStore(app_env).current()
    assert sorted(current[["row", "action", "note"]].values.tolist()) == sorted(
        [[rows[2], "not_face", "a drawing"], [rows[5], "not_face", "a drawing"]])
    assert "not a face" in at.image[0].captions[2] and "not a face" in at.image[0].captions[5]
    # The form empties after a save, its label too (it must not reach the next batch unseen).
    assert at.multiselect(key="issues_annotate_many").value == []
    assert at.radio(key="issues_annotate_many_choice").value is None

    # Every face of the page confirmed: each keeps its own label; a second save stores nothing.
    at.checkbox(key="issues_annotate_many_all").check()
    at.radio(key="issues_annotate_many_choice").set_value("confirm")
    at.button(key="issues_annotate_many_save").click().run()
    assert f"Saved for {FACES_PER_PAGE} of {FACES_PER_PAGE} faces" in texts(at.success)[0]
    current = AnnotationStore(app_env).current().set_index("row")
    assert sorted(current.index) == sorted(rows) and set(current["action"]) == {"confirm"}
    # The same save again (a double click sends two) keeps the first one's message.
    at.checkbox(key="issues_annotate_many_all").check()
    at.radio(key="issues_annotate_many_choice").set_value("confirm")
    at.button(key="issues_annotate_many_save").click().run()
    assert texts(at.success)[0].endswith("Saving the same again stored nothing more.")
    at.multiselect(key="issues_annotate_many").set_value(rows[:2])
    at.radio(key="issues_annotate_many_choice").set_value("confirm")
    at.button(key="issues_annotate_many_save").click().run()
    assert "The 2 chosen faces hold this annotation already; nothing new to save." in texts(at.info)
    assert AnnotationStore(app_env).count() == 2 + FACES_PER_PAGE
    # The one-face form starts from what the save stored.
    assert at.radio(key="issues_annotate_choice").value == "confirm"


def test_page_size_keeps_the_first_face_in_view(app_env):
    at = open_page("pages/label_issues.py")
    first_page = shown_rows(at)
    assert len(first_page) == FACES_PER_PAGE
    assert at.selectbox(key="issues_page_size").options == [str(FACES_PER_PAGE * f) for f in (1, 2, 4)]
    at.selectbox(key="issues_page_size").set_value(FACES_PER_PAGE * 2).run()
    assert not at.exception
    doubled = shown_rows(at)
    assert len(doubled) == 2 * FACES_PER_PAGE and doubled[:FACES_PER_PAGE] == first_page
    # On page 3 of 32 (faces 65-96), a page of 64 keeps face 65 in view: page 2 of 64 (faces 65-128).
    at.session_state["issues_page"] = 3
    at.run()
    third = shown_rows(at)
    at.selectbox(key="issues_page_size").set_value(FACES_PER_PAGE * 4).run()
    assert not at.exception and at.session_state["issues_page"] == 2
    assert shown_rows(at)[:2 * FACES_PER_PAGE] == third
    assert any(t.startswith(f"Faces {4 * FACES_PER_PAGE + 1}–") for t in texts(at.caption))


def test_several_faces_form_starts_empty_on_another_page_and_warns_before_replacing(app_env):
    at = open_page("pages/label_issues.py")
    at.sidebar.text_input(key="app_annotator").input("ann").run()
    first = shown_rows(at)
    AnnotationStore(app_env).add(first[0], "relabel", "happy", annotator="bob")
    # "confirm" would give the face its FER2013 label back: said before the save.
    at.multiselect(key="issues_annotate_many").set_value([first[0], first[1]])
    at.radio(key="issues_annotate_many_choice").set_value("confirm").run()
    assert any(t.startswith("1 of the 2 chosen faces hold another annotation, which this save replaces: "
                            f"row {first[0]} (relabelled happy by bob).") for t in texts(at.warning))
    at.radio(key="issues_annotate_many_choice").set_value("happy").run()
    assert not [t for t in texts(at.warning) if "hold another annotation" in t]
    # On another page, "all faces" and the label chosen for the last one are gone.
    at.checkbox(key="issues_annotate_many_all").check()
    at.session_state["issues_page"] = 2
    at.run()
    assert shown_rows(at) != first
    assert not at.checkbox(key="issues_annotate_many_all").value
    assert at.radio(key="issues_annotate_many_choice").value is None
    assert at.multiselect(key="issues_annotate_many").value == []
