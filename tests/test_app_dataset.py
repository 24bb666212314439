"""AppTest of the Dataset page: browse a split by label, with FER+ votes, page by page."""

import pytest
from app_support import APP, TIMEOUT, open_page, shared_model_folder, texts, use_app_env
from streamlit.testing.v1 import AppTest

from fer.paths import FER2013_CSV
from fer.testset import load_test_faces


@pytest.fixture
def app_env(monkeypatch, tmp_path, tmp_path_factory):
    return use_app_env(monkeypatch, tmp_path, shared_model_folder(tmp_path_factory))


def open_dataset() -> AppTest:
    return open_page("pages/dataset.py")


def test_browse_public_test_by_label(app_env):
    faces = load_test_faces()
    at = open_dataset()
    split = at.segmented_control(key="dataset_split")
    assert split.value == "PublicTest"
    assert ("Training" in split.options) == FER2013_CSV.is_file()
    public = int((faces.usage == "PublicTest").sum())
    assert f"PublicTest, all: {public} faces" in texts(at.subheader)
    grid = at.image[0]
    assert len(grid.captions) == 48
    assert grid.captions[0].startswith(f"row {faces.rows[faces.usage == 'PublicTest'][0]} · ")
    assert all("FER+" in c for c in grid.captions)

    at.segmented_control(key="dataset_label").set_value("disgust").run()
    assert not at.exception
    disgust = int(((faces.usage == "PublicTest") & (faces.labels == 1)).sum())
    assert f"PublicTest, disgust: {disgust} faces" in texts(at.subheader)
    assert all(" · disgust · " in c for c in at.image[0].captions)


def test_paging_and_private_test(app_env):
    at = open_dataset()
    at.segmented_control(key="dataset_split").set_value("PrivateTest").run()
    at.get("pagination")[0].set_value(3)
    at.run()
    assert not at.exception
    assert any(t.startswith("Faces 97–144 of ") for t in texts(at.caption))


def test_training_split_when_the_csv_is_there(app_env):
    if not FER2013_CSV.is_file():
        pytest.skip("the full FER2013 CSV is not beside the project")
    at = open_dataset()
    at.segmented_control(key="dataset_split").set_value("Training").run()
    assert not at.exception
    assert any(t.startswith("Training, all: 28709 faces") for t in texts(at.subheader))


def test_faces_also_in_training_beside_their_copy(app_env):
    from fer.twins import TWIN_THRESHOLD, load_twins

    twins = load_twins()
    public = twins[(twins["split"] == "PublicTest") & (twins["similarity"] >= TWIN_THRESHOLD)]
    differ = int((public["label"] != public["twin_label"]).sum())
    at = open_dataset()
    at.toggle(key="dataset_twins").set_value(True).run()
    assert not at.exception
    assert f"PublicTest, all: {len(public)} faces also in Training ({differ} with another label there)" in texts(
        at.subheader)
    captions = at.image[0].captions
    assert len(captions) == 24
    assert all(" | Training row " in c for c in captions)
    assert all(c.endswith(" · labels differ") for c in captions[:min(differ, 24)])
    first = public[public["label"] != public["twin_label"]].iloc[0]
    assert captions[0].startswith(f"row {first['row']} · ")
    assert f"Training row {first['twin_row']} · " in captions[0]
    if FER2013_CSV.is_file():
        assert any(t.startswith("Pairs 1–24 of ") for t in texts(at.caption))
    at.segmented_control(key="dataset_split").set_value("PrivateTest").run()
    assert not at.exception and any("PrivateTest, all: " in t and "also in Training" in t for t in texts(at.subheader))


def test_go_to_a_test_row_with_its_close_up_and_annotation(app_env):
    from fer.annotations import AnnotationStore
    from fer.labels import EMOTIONS

    faces = load_test_faces()
    position = int(len(faces.rows) - 1)  # a PrivateTest face
    row, label = int(faces.rows[position]), EMOTIONS[int(faces.labels[position])]
    at = open_dataset()
    at.number_input(key="dataset_row").set_value(row).run()
    assert not at.exception
    assert f"Row {row}: PrivateTest, labelled {label}" in texts(at.subheader)
    assert at.query_params["row"] == str(row)
    assert not [c for c in at.get("segmented_control") if c.key == "dataset_split"]  # one face, no grid
    assert not [b for b in at.button if b.key in ("dataset_annotate_previous", "dataset_annotate_next")]
    assert "**Annotate this face**" in texts(at.markdown)
    close = next(img for img in at.image if img.captions and img.captions[0] == f"row {row}")
    assert close.captions[0] == f"row {row}"
    assert any(" predicts **" in m and "flip TTA" not in m for m in texts(at.caption))
    assert not [t for t in at.toggle if t.key == "dataset_tta"]  # the test model has no flip-TTA table
    at.sidebar.text_input(key="app_annotator").input("finder").run()
    at.radio(key="dataset_annotate_choice").set_value("ambiguous")
    at.button(key="dataset_annotate_save").click().run()
    assert AnnotationStore(app_env).current()[["row", "action"]].values.tolist() == [[row, "ambiguous"]]
    assert any(t.startswith(f"Row {row} is annotated: ambiguous (by finder)") for t in texts(at.caption))
    # Emptying the box browses again, and the address forgets the row.
    at.number_input(key="dataset_row").set_value(None).run()
    assert "row" not in at.query_params
    assert at.segmented_control(key="dataset_split").value == "PublicTest"


def test_a_row_in_the_address_opens_that_face(app_env):
    faces = load_test_faces()
    row = int(faces.rows[0])
    at = AppTest.from_file(APP, default_timeout=TIMEOUT)
    at.query_params["row"] = str(row)
    at.switch_page("pages/dataset.py").run()
    assert not at.exception
    assert at.number_input(key="dataset_row").value == row
    assert any(t.startswith(f"Row {row}: ") for t in texts(at.subheader))
    # The page, run alone by Streamlit's pages/ emulation, went through the entrypoint instead
    # (widgets.run_page): its navigation, not one made of the file names.
    from streamlit.runtime.pages_manager import PagesManager

    assert PagesManager.uses_pages_directory is False
    for junk in ("99999", "²", "-1", "1e9", "abc"):  # "²".isdigit() is True, and int() refuses it
        bad = AppTest.from_file(APP, default_timeout=TIMEOUT)
        bad.query_params["row"] = junk
        bad.switch_page("pages/dataset.py").run()
        assert not bad.exception and not bad.error, junk
        assert any("FER2013 rows are 0 to 35886" in w for w in texts(bad.warning)), junk


def test_a_training_row_without_the_csv_says_why(app_env, monkeypatch):
    from fer_app import resources

    faces = load_test_faces()
    training_row = next(r for r in range(35887) if r not in set(faces.rows.tolist()))
    monkeypatch.setattr(resources, "full_dataset_available", lambda: False)
    at = open_dataset()
    at.number_input(key="dataset_row").set_value(training_row).run()
    assert not at.exception
    assert any(f"Row {training_row} is a Training face" in t for t in texts(at.info))


def test_a_face_with_flip_tta_predictions(monkeypatch, tmp_path, tmp_path_factory):
    from app_support import own_model_folder, synthetic_predictions

    from fer.labels import EMOTIONS, PROB_COLUMNS

    folder = own_model_folder(tmp_path, tmp_path_factory)
    use_app_env(monkeypatch, tmp_path, folder)
    tta = synthetic_predictions(seed=3)
    tta.to_csv(folder / "tiny.predictions_tta.csv", index=False)
    row = int(tta["row"].iloc[0])
    at = open_dataset()
    at.number_input(key="dataset_row").set_value(row).run()
    assert at.toggle(key="dataset_tta").value is False  # off by default, as on Errors and Map
    at.toggle(key="dataset_tta").set_value(True).run()
    assert not at.exception
    predicted = EMOTIONS[int(tta.set_index("row").loc[row, list(PROB_COLUMNS)].to_numpy(float).argmax())]
    assert any(m.startswith("`tiny` predicts **" + predicted + "**") and m.endswith(" with flip TTA.")
               for m in texts(at.caption))


def test_a_face_view_reads_its_annotation_once_and_shows_it_once(app_env, monkeypatch):
    from fer.annotations import AnnotationStore

    row = int(load_test_faces().rows[0])
    AnnotationStore(app_env).add(row, "relabel", "sad", annotator="finder")
    reads = []
    for name in ("current", "history"):
        original = getattr(AnnotationStore, name)
        monkeypatch.setattr(AnnotationStore, name,
                            lambda self, *args, _name=name, _original=original: reads.append(_name)
                            or _original(self, *args))
    at = open_dataset()
    at.number_input(key="dataset_row").set_value(row).run()
    reads.clear()
    at.run()
    assert not at.exception and not at.error
    # The annotation panel reads this face's own history; nothing reads every face's to caption it.
    assert reads == ["history"]
    said = [t for t in texts(at.caption) + texts(at.markdown) if "relabelled sad" in t]
    assert len(said) == 1 and said[0].startswith(f"Row {row} is annotated: relabelled sad (by finder)")


def test_a_face_view_with_a_broken_annotation_database_still_shows_the_face(app_env):
    app_env.write_bytes(b"this is not an SQLite database" * 100)
    row = int(load_test_faces().rows[0])
    at = open_dataset()
    at.number_input(key="dataset_row").set_value(row).run()
    assert not at.exception and not at.error
    assert any("annotation database cannot be used" in w for w in texts(at.warning))
    assert any(img.captions and img.captions[0] == f"row {row}" for img in at.image)  # the face, close up
    assert not [b for b in at.button if b.key == "dataset_annotate_save"]  # nothing can be saved
    # A database mended since (here: a new one) brings the panel back, though no read of it said so yet.
    app_env.unlink()
    at.run()
    assert not at.warning and [b for b in at.button if b.key == "dataset_annotate_save"]
