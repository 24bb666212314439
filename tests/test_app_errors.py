"""AppTest of the Errors page: the confusion matrix, cell selection, paging, references, annotation."""

import io
import re

import numpy as np
import pandas as pd
import pytest
from app_support import open_page, record_downloads, shared_model_folder, texts, two_model_folder, use_app_env
from streamlit.testing.v1 import AppTest

from fer.annotations import AnnotationStore
from fer.explorer import LOSS_FLOOR, PAPER_ACCURACY, cell_members, split_view, validate_predictions
from fer.ferplus import emotion_distribution, load_ferplus_votes, majority_label
from fer.labels import EMOTIONS
from fer_app.explorer_view import FACES_PER_PAGE


@pytest.fixture
def models(tmp_path_factory):
    return shared_model_folder(tmp_path_factory)


@pytest.fixture
def app_env(monkeypatch, tmp_path, models):
    return use_app_env(monkeypatch, tmp_path, models)


@pytest.fixture
def predictions(models):
    return validate_predictions(pd.read_csv(models / "tiny.predictions.csv"))


def open_errors() -> AppTest:
    return open_page("pages/errors.py")


def evaluated_caption(at: AppTest) -> str:
    """The caption under the accuracy metric: how many faces, against which labels, which faces."""
    return next(t for t in texts(at.caption) if "faces evaluated" in t)


def select_cell(at: AppTest, true: str, pred: str) -> None:
    at.session_state["errors_cell"] = {"selection": {"cells": [[EMOTIONS.index(true), pred]]}}
    at.run()
    assert not at.exception


def test_matrix_and_headline(app_env, predictions):
    at = open_errors()
    assert at.segmented_control(key="errors_split").value == "PrivateTest"
    part = predictions[predictions["split"] == "PrivateTest"]
    matrix = at.dataframe(key="errors_cell").value
    assert list(matrix.columns) == list(EMOTIONS)
    expected = pd.crosstab(part["true"], part["pred"]).reindex(index=range(7), columns=range(7), fill_value=0)
    assert np.array_equal(matrix.to_numpy(), expected.to_numpy())
    accuracy = (part["true"] == part["pred"]).mean()
    assert at.metric[0].value == f"{accuracy:.1%}"
    assert at.metric[0].label == "PrivateTest accuracy"
    assert at.metric[0].delta == f"{100 * (accuracy - PAPER_ACCURACY):+.1f} pts vs the paper's {PAPER_ACCURACY:.1%}"
    assert evaluated_caption(at) == f"{len(part)} faces evaluated against FER2013 labels"
    tables = [d.value for d in at.dataframe]
    assert any(list(t.columns) == ["precision", "recall", "f1", "support"] for t in tables)
    assert any("Click a cell" in t for t in texts(at.info))


def test_row_normalised(app_env):
    at = open_errors()
    at.toggle(key="errors_normalise").set_value(True).run()
    assert not at.exception
    sums = at.dataframe(key="errors_cell").value.sum(axis=1).to_numpy()
    assert np.allclose(sums[sums > 0], 1.0)


def test_cell_click_shows_its_faces_most_confident_first(app_env, predictions, monkeypatch):
    downloads = record_downloads(monkeypatch)
    at = open_errors()
    select_cell(at, "happy", "sad")
    view = split_view(predictions, "PrivateTest")
    members = cell_members(view, EMOTIONS.index("happy"), EMOTIONS.index("sad"))
    assert f"True happy, predicted sad: {len(members)} faces" in texts(at.subheader)
    grid = at.image[0]
    shown = min(FACES_PER_PAGE, len(members))
    assert len(grid.captions) == shown
    assert grid.captions[0].startswith(f"row {view.rows[members[0]]} · happy → sad")
    confidences = [int(c.split("→ sad ")[1].split("%")[0]) for c in grid.captions]
    assert confidences == sorted(confidences, reverse=True)
    assert all("FER+" in c for c in grid.captions)
    assert f"This cell's {len(members)} faces as CSV" in [b.label for b in at.get("download_button")]
    table = pd.read_csv(io.StringIO(downloads["PrivateTest_happy_as_sad.csv"]()), keep_default_na=False)
    assert table["row"].tolist() == view.rows[members].tolist()
    assert list(table.columns[-4:]) == ["action", "annotated_label", "annotator", "note"]


def test_cell_faces_in_another_order(app_env, predictions):
    at = open_errors()
    select_cell(at, "happy", "sad")
    view = split_view(predictions, "PrivateTest")
    members = cell_members(view, EMOTIONS.index("happy"), EMOTIONS.index("sad"))
    order = at.segmented_control(key="errors_order")
    assert set(order.options) >= {"most confident", "least confident"}, order.options
    order.set_value("unsure").run()
    assert not at.exception
    assert any(t.startswith("Faces 1–") and t.endswith("least confident first.") for t in texts(at.caption))
    confidences = [int(c.split("→ sad ")[1].split("%")[0]) for c in at.image[0].captions]
    assert confidences == sorted(confidences) and confidences[0] < confidences[-1]
    assert at.image[0].captions[0].startswith(f"row {view.rows[members[-1]]} · happy → sad")
    # The order outlives a run without a cell, where its control is not drawn.
    at.session_state["errors_cell"] = {"selection": {"cells": []}}
    at.run()
    select_cell(at, "happy", "sad")
    assert any(t.endswith("least confident first.") for t in texts(at.caption))
    if any("crowd" in option for option in order.options):
        at.segmented_control(key="errors_order").set_value("crowd").run()
        assert not at.exception
        # The first faces are those the largest share of the crowd also called sad.
        shares = emotion_distribution(load_ferplus_votes().votes)[view.rows[members], EMOTIONS.index("sad")]
        first = int(at.image[0].captions[0].split(" ")[1])
        assert shares[view.rows[members].tolist().index(first)] == shares.max()


def test_paging_through_a_big_cell(app_env, predictions):
    at = open_errors()
    select_cell(at, "happy", "happy")
    view = split_view(predictions, "PrivateTest")
    total = len(cell_members(view, 3, 3))
    n = FACES_PER_PAGE
    assert total > 2 * n
    assert f"Faces 1–{n} of {total}, most confident first." in texts(at.caption)
    at.get("pagination")[0].set_value(2)
    at.run()
    assert not at.exception
    assert f"Faces {n + 1}–{2 * n} of {total}, most confident first." in texts(at.caption)
    # A different cell starts at page 1 again.
    select_cell(at, "happy", "sad")
    assert any(t.startswith("Faces 1–") for t in texts(at.caption))


def show_all_errors(at: AppTest) -> None:
    at.segmented_control(key="errors_show").set_value("errors").run()
    assert not at.exception


def errors_by_loss(predictions: pd.DataFrame, split: str = "PrivateTest") -> tuple[np.ndarray, np.ndarray]:
    """The split's misclassified rows, highest loss first (ties by row), and their losses,
    computed from the table itself."""
    wrong = predictions[(predictions["split"] == split) & (predictions["true"] != predictions["pred"])]
    p_true = wrong[[f"p_{e}" for e in EMOTIONS]].to_numpy()[np.arange(len(wrong)), wrong["true"].to_numpy()]
    losses = -np.log(np.clip(p_true, LOSS_FLOOR, 1.0))
    order = np.lexsort((wrong["row"].to_numpy(), -losses))
    return wrong["row"].to_numpy()[order], losses[order]


def loss_in(caption: str) -> float:
    return float(re.search(r" · loss (\d+\.\d\d)", caption).group(1))


def test_all_errors_highest_loss_first(app_env, predictions, monkeypatch):
    downloads = record_downloads(monkeypatch)
    at = open_errors()
    assert at.segmented_control(key="errors_show").value == "cell"  # the matrix's cells by default
    show_all_errors(at)
    rows, losses = errors_by_loss(predictions)
    n = len(rows)
    assert n > 2 * FACES_PER_PAGE
    assert f"All errors, highest loss first: {n} faces" in texts(at.subheader)
    assert f"Faces 1–{FACES_PER_PAGE} of {n}, highest loss first." in texts(at.caption)
    assert not any("Click a cell" in t for t in texts(at.info))
    captions = at.image[0].captions
    assert len(captions) == FACES_PER_PAGE
    assert captions[0].startswith(f"row {rows[0]} · ")  # the highest loss of the split
    assert loss_in(captions[0]) == pytest.approx(losses.max(), abs=0.005)
    shown = [loss_in(c) for c in captions]
    assert shown == sorted(shown, reverse=True)
    assert all(re.match(r"row \d+ · (\w+) → (?!\1 )\w+ \d+%", c) for c in captions)  # errors only
    # The annotation panel offers the faces shown, the first chosen.
    assert at.selectbox(key="errors_annotate_row").value == rows[0]
    assert f"These {n} errors as CSV" in [b.label for b in at.get("download_button")]
    table = pd.read_csv(io.StringIO(downloads["PrivateTest_errors_by_loss.csv"]()), keep_default_na=False)
    assert table["row"].tolist() == rows.tolist()
    assert table["loss"].is_monotonic_decreasing and np.allclose(table["loss"], losses, atol=1e-6)
    assert (table["reference"] != table["predicted"]).all()
    assert list(table.columns[-4:]) == ["action", "annotated_label", "annotator", "note"]
    # Occlusion maps for each face's own prediction: the page mixes classes.
    at.segmented_control(key="errors_explain").set_value("predicted").run()
    assert not at.exception and not at.error
    predicted = predictions.set_index("row")["pred"]
    assert {key[1:3] for key in at.session_state["explorer_occlusion_maps"]} == {
        (int(r), int(predicted[r])) for r in rows[:FACES_PER_PAGE]}
    assert any("Maps: evidence for each face's prediction (red)" in t for t in texts(at.caption))


def test_all_errors_pages_classes_and_a_click_on_the_matrix(app_env, predictions):
    at = open_errors()
    show_all_errors(at)
    rows, _ = errors_by_loss(predictions)
    n = len(rows)
    at.get("pagination")[0].set_value(2)
    at.run()
    assert f"Faces {FACES_PER_PAGE + 1}–{2 * FACES_PER_PAGE} of {n}, highest loss first." in texts(at.caption)
    assert at.image[0].captions[0].startswith(f"row {rows[FACES_PER_PAGE]} · ")
    # The view and its page outlive a visit to another page, as the cell's do.
    at.switch_page("pages/map.py").run()
    at.switch_page("pages/errors.py").run()
    assert not at.exception
    assert at.segmented_control(key="errors_show").value == "errors"
    assert f"Faces {FACES_PER_PAGE + 1}–{2 * FACES_PER_PAGE} of {n}, highest loss first." in texts(at.caption)
    # One true class: its errors only, from page 1.
    at.selectbox(key="errors_loss_true").set_value("sad").run()
    assert not at.exception
    sad = [r for r in rows if predictions.set_index("row").at[r, "true"] == EMOTIONS.index("sad")]
    assert f"Errors of true sad, highest loss first: {len(sad)} faces" in texts(at.subheader)
    assert any(t.startswith("Faces 1–") for t in texts(at.caption))
    assert [int(c.split(" ")[1]) for c in at.image[0].captions] == sad[:FACES_PER_PAGE]
    # Another split: its own errors, from page 1.
    at.selectbox(key="errors_loss_true").set_value("any").run()
    at.segmented_control(key="errors_split").set_value("PublicTest").run()
    public, _ = errors_by_loss(predictions, "PublicTest")
    assert f"All errors, highest loss first: {len(public)} faces" in texts(at.subheader)
    assert at.image[0].captions[0].startswith(f"row {public[0]} · ")
    # A click on a cell of the matrix (drawn over all errors with no cell chosen) asks for that
    # cell's faces, even the cell chosen last, which a click on the cell's own matrix would unchoose.
    at.session_state["errors_cell"] = {"selection": {"cells": [[EMOTIONS.index("happy"), "sad"]]}}
    at.segmented_control(key="errors_show").set_value("cell").run()
    assert any(t.startswith("True happy, predicted sad: ") for t in texts(at.subheader))
    show_all_errors(at)
    assert not [d for d in at.dataframe if d.key == "errors_cell"] and at.dataframe(key="errors_cell_pick")
    at.session_state["errors_cell_pick"] = {"selection": {"cells": [[EMOTIONS.index("happy"), "sad"]]}}
    at.run()
    assert not at.exception and at.segmented_control(key="errors_show").value == "cell"
    assert any(t.startswith("True happy, predicted sad: ") for t in texts(at.subheader))
    assert " · loss " not in at.image[0].captions[0]


def test_ferplus_reference_excludes_faces_without_votes(app_env, predictions):
    at = open_errors()
    at.segmented_control(key="errors_reference").set_value("ferplus").run()
    assert not at.exception
    part = predictions[predictions["split"] == "PrivateTest"]
    majority = majority_label(load_ferplus_votes().votes)[part["row"].to_numpy()]
    excluded = int((majority < 0).sum())
    caption = evaluated_caption(at)
    assert caption.startswith(f"{len(part) - excluded} faces evaluated against FER+ majority labels")
    assert f"{excluded} excluded" in caption
    matrix = at.dataframe(key="errors_cell").value
    assert matrix.to_numpy().sum() == len(part) - excluded


@pytest.mark.parametrize("reference", ["ferplus", "annotated"])
def test_other_reference_labels_compare_with_fer2013_labels_not_the_paper(app_env, predictions, reference):
    # The paper's 61.7% is against FER2013's labels: another reference is compared with the same
    # model's accuracy on the same split against FER2013's labels.
    at = open_errors()
    at.segmented_control(key="errors_reference").set_value(reference).run()
    assert not at.exception
    part = predictions[predictions["split"] == "PrivateTest"]
    fer2013 = (part["true"] == part["pred"]).mean()
    shown = float(at.metric[0].value.rstrip("%")) / 100
    assert at.metric[0].label == "PrivateTest accuracy"
    assert at.metric[0].delta == f"{100 * (shown - fer2013):+.1f} pts vs FER2013 labels ({fer2013:.1%})"
    assert "paper" not in at.metric[0].delta
    # The split bars' marker says the paper's figure is a FER2013-label one.
    bars = next(m.value for m in at.markdown if "aria-label='accuracy:" in m.value)
    assert "paper, FER2013 labels 61.7%" in bars
    at.segmented_control(key="errors_split").set_value("PublicTest").run()
    public = predictions[predictions["split"] == "PublicTest"]
    assert f"vs FER2013 labels ({(public['true'] == public['pred']).mean():.1%})" in at.metric[0].delta


def test_annotate_from_the_errors_grid(app_env, predictions):
    at = open_errors()
    select_cell(at, "happy", "sad")
    assert at.button(key="errors_annotate_save").disabled  # no annotator yet
    at.sidebar.text_input(key="app_annotator").input("tester").run()
    row = at.selectbox(key="errors_annotate_row").options[0]
    at.radio(key="errors_annotate_choice").set_value("not a face")
    at.text_input(key="errors_annotate_note").input("a cartoon")
    at.button(key="errors_annotate_save").click().run()
    assert not at.exception
    assert any("not a face" in s for s in texts(at.success))
    current = AnnotationStore(app_env).current()
    assert current["action"].tolist() == ["not_face"] and current["note"].tolist() == ["a cartoon"]
    assert str(current["row"].iloc[0]) in row
    assert any("✎ not a face (tester)" in c for c in at.image[0].captions)
    # With our annotations as the reference, that face leaves the matrix.
    at.segmented_control(key="errors_reference").set_value("annotated").run()
    assert any("1 excluded" in t for t in texts(at.caption))


def test_a_face_that_leaves_the_cell_is_not_replaced_by_another_on_save(app_env, predictions):
    # With our annotations as the reference, relabelling a face moves it out of the cell: the
    # selector must not fall to another face, or a second click on Save would annotate it.
    at = open_errors()
    at.sidebar.text_input(key="app_annotator").input("tester").run()
    at.segmented_control(key="errors_reference").set_value("annotated").run()
    select_cell(at, "happy", "sad")
    options = at.selectbox(key="errors_annotate_row").options
    assert len(options) >= 2
    at.selectbox(key="errors_annotate_row").set_value(options[1]).run()
    at.radio(key="errors_annotate_choice").set_value("sad")
    at.button(key="errors_annotate_save").click().run()
    assert not at.exception
    assert at.selectbox(key="errors_annotate_row").value is None
    assert at.button(key="errors_annotate_save").disabled
    assert at.radio(key="errors_annotate_choice").value == "confirm"
    assert any("left this list" in t for t in texts(at.info))
    assert len(AnnotationStore(app_env).history()) == 1
    # Choosing a face makes Save available again.
    at.selectbox(key="errors_annotate_row").set_value(at.selectbox(key="errors_annotate_row").options[0]).run()
    assert not at.button(key="errors_annotate_save").disabled


def test_an_untouched_save_never_overwrites_a_stored_annotation(app_env, predictions):
    # The form starts from the chosen face's stored annotation: a Save nobody meant (or a second
    # click) stores nothing, where it used to confirm over an earlier relabel.
    at = open_errors()
    select_cell(at, "happy", "sad")
    first = at.selectbox(key="errors_annotate_row").value
    assert first is not None
    AnnotationStore(app_env).add(int(first), "relabel", "neutral", annotator="earlier")
    at.sidebar.text_input(key="app_annotator").input("earlier").run()
    at.selectbox(key="errors_annotate_row").set_value(at.selectbox(key="errors_annotate_row").options[1]).run()
    at.selectbox(key="errors_annotate_row").set_value(first).run()
    assert at.radio(key="errors_annotate_choice").value == "neutral"
    assert any(f"Row {first} is annotated: relabelled neutral" in t for t in texts(at.caption))
    at.button(key="errors_annotate_save").click().run()
    assert any("nothing new to save" in t for t in texts(at.info))
    assert len(AnnotationStore(app_env).history(int(first))) == 1
    # A real change is saved once; a second click on Save adds nothing.
    at.radio(key="errors_annotate_choice").set_value("angry")
    at.button(key="errors_annotate_save").click().run()
    assert any(f"Saved for row {first}: relabelled angry" in t for t in texts(at.success))
    assert at.radio(key="errors_annotate_choice").value == "angry"
    at.button(key="errors_annotate_save").click().run()
    history = AnnotationStore(app_env).history(int(first))
    assert history["label"].tolist() == ["neutral", "angry"]
    # After a visit to another page Streamlit has dropped the form's state: it starts again from
    # the stored annotation, not from "confirm".
    at.switch_page("pages/map.py").run()
    at.switch_page("pages/errors.py").run()
    select_cell(at, "happy", "sad")
    at.selectbox(key="errors_annotate_row").set_value(first).run()
    assert at.radio(key="errors_annotate_choice").value == "angry"


def test_previous_and_next_step_through_the_faces(app_env, predictions):
    at = open_errors()
    select_cell(at, "happy", "sad")
    rows = [int(re.search(r"row (\d+)", o).group(1)) for o in at.selectbox(key="errors_annotate_row").options]
    assert at.selectbox(key="errors_annotate_row").value == rows[0]
    assert at.button(key="errors_annotate_previous").disabled
    at.button(key="errors_annotate_next").click().run()
    assert at.selectbox(key="errors_annotate_row").value == rows[1]
    assert close_up_image(at).captions[0] == f"row {rows[1]}"
    at.button(key="errors_annotate_previous").click().run()
    assert at.selectbox(key="errors_annotate_row").value == rows[0]


def test_a_broken_annotation_database_leaves_the_matrix_and_faces(app_env, predictions):
    app_env.write_bytes(b"this is not an SQLite database" * 100)
    at = open_errors()
    assert any("annotation database cannot be used" in w for w in texts(at.warning))
    assert at.dataframe(key="errors_cell").value.to_numpy().sum() > 0 and at.metric
    select_cell(at, "happy", "sad")
    assert at.image and not at.error
    assert not [b for b in at.button if b.key == "errors_annotate_save"]  # nothing can be saved


def test_another_model_starts_the_cell_at_its_first_page(monkeypatch, tmp_path, tmp_path_factory):
    folder = two_model_folder(tmp_path, tmp_path_factory)
    use_app_env(monkeypatch, tmp_path, folder)
    at = open_errors()
    select_cell(at, "happy", "happy")
    at.session_state["errors_page"] = 2
    at.run()
    assert any(t.startswith(f"Faces {FACES_PER_PAGE + 1}–") for t in texts(at.caption))
    chooser = at.sidebar.selectbox(key="app_model")
    chooser.set_value(str(folder / ("tiny.h5" if chooser.value.endswith("other.h5") else "other.h5"))).run()
    assert not at.exception
    assert any(t.startswith("Faces 1–") for t in texts(at.caption))
    assert at.session_state["errors_page"] == 1  # set, not dropped: the browser's pager follows


def test_the_controls_keep_their_choices_across_a_visit_to_another_page(app_env, predictions):
    at = open_errors()
    at.segmented_control(key="errors_split").set_value("PublicTest").run()
    at.segmented_control(key="errors_twins").set_value("no_twin").run()
    at.toggle(key="errors_normalise").set_value(True).run()
    at.switch_page("pages/map.py").run()
    assert not at.exception
    at.switch_page("pages/errors.py").run()
    assert not at.exception and not at.warning
    assert at.segmented_control(key="errors_split").value == "PublicTest"
    assert at.segmented_control(key="errors_twins").value == "no_twin"
    assert at.toggle(key="errors_normalise").value is True


def test_faces_control_splits_off_the_near_duplicates_of_training(app_env, predictions):
    from fer.twins import TWIN_THRESHOLD, load_twins

    twins = load_twins().set_index("row")["similarity"]
    part = predictions[predictions["split"] == "PrivateTest"]
    has_twin = twins.loc[part["row"]].to_numpy() >= TWIN_THRESHOLD
    at = open_errors()
    assert at.segmented_control(key="errors_twins").value == "all"
    for subset, keep in (("no_twin", ~has_twin), ("twin", has_twin)):
        at.segmented_control(key="errors_twins").set_value(subset).run()
        assert not at.exception
        kept = part[keep]
        assert at.dataframe(key="errors_cell").value.to_numpy().sum() == len(kept)
        assert at.metric[0].value == f"{(kept['true'] == kept['pred']).mean():.1%}"
        assert "vs all faces" in at.metric[0].delta
    # Faces shown in the "also in Training" subset name their Training twin.
    select_cell(at, "happy", "happy")
    assert all(" · in Training: row " in c for c in at.image[0].captions)


def test_head_pose_control_keeps_frontal_or_turned_faces(app_env, predictions):
    from fer.pose import load_pose_table

    yaw = load_pose_table()["yaw"].abs()
    part = predictions[predictions["split"] == "PrivateTest"]
    at = open_errors()
    assert at.segmented_control(key="errors_pose").value == "any"
    for pose, keep in (("frontal", yaw.loc[part["row"]].to_numpy() < 10),
                       ("turned", yaw.loc[part["row"]].to_numpy() >= 20)):
        at.segmented_control(key="errors_pose").set_value(pose).run()
        assert not at.exception
        kept = part[keep]
        assert 300 < len(kept) < 2000
        assert at.dataframe(key="errors_cell").value.to_numpy().sum() == len(kept)
        assert at.metric[0].value == f"{(kept['true'] == kept['pred']).mean():.1%}"
        # A short metric title; the caption under it names the faces.
        assert at.metric[0].label == "PrivateTest accuracy, chosen faces"
        assert evaluated_caption(at).endswith(f"only faces head {pose}" + (" (|yaw| < 10°)" if pose == "frontal"
                                                                            else " (|yaw| ≥ 20°)"))
    # With the near-duplicates control too: both filters apply and both are named.
    at.segmented_control(key="errors_twins").set_value("no_twin").run()
    assert not at.exception and "only faces not in Training, head turned" in evaluated_caption(at)
    select_cell(at, "happy", "happy")
    yaws = [int(re.search(r" · yaw ([+-]\d+)°", c).group(1)) for c in at.image[0].captions]
    assert yaws and all(abs(y) >= 19 for y in yaws)  # captions round to whole degrees


def test_occlusion_maps_over_the_cell_faces(app_env, predictions):
    at = open_errors()
    select_cell(at, "happy", "sad")
    plain = at.image[0]
    assert at.segmented_control(key="errors_explain").value == "off"
    at.segmented_control(key="errors_explain").set_value("predicted").run()
    assert not at.exception and not at.error
    view = split_view(predictions, "PrivateTest")
    members = cell_members(view, EMOTIONS.index("happy"), EMOTIONS.index("sad"))
    shown = min(FACES_PER_PAGE, len(members))
    maps = at.session_state["explorer_occlusion_maps"]
    assert len(maps) == shown
    assert {key[2] for key in maps} == {EMOTIONS.index("sad")} and {key[3] for key in maps} == {False}
    assert {key[1] for key in maps} == set(view.rows[members[:shown]].tolist())
    assert all(m.shape == (48, 48) and m.dtype == np.float32 for m in maps.values())
    assert any("Maps: evidence for sad" in t for t in texts(at.caption))
    # One colour scale for the page: the largest change among its maps, said in the caption.
    scale = max(float(np.abs(m).max()) for m in maps.values())
    assert any(f"log-odds change of {max(scale, 0.5):.2f}; these maps share one colour scale" in t
               for t in texts(at.caption))
    assert at.image[0].captions == plain.captions  # the same faces, drawn with their maps
    at.segmented_control(key="errors_explain").set_value("reference").run()
    assert not at.exception
    assert len(at.session_state["explorer_occlusion_maps"]) == 2 * shown
    assert any("Maps: evidence for happy" in t for t in texts(at.caption))


def close_up_image(at: AppTest):
    """The close-up's images: the first caption is just the face's row."""
    return next(img for img in at.image if img.captions and re.fullmatch(r"row \d+", img.captions[0]))


def test_close_up_of_the_chosen_face(app_env, predictions):
    at = open_errors()
    select_cell(at, "happy", "sad")
    view = split_view(predictions, "PrivateTest")
    members = cell_members(view, EMOTIONS.index("happy"), EMOTIONS.index("sad"))
    first, second = (int(view.rows[m]) for m in members[:2])
    close = close_up_image(at)
    assert close.captions[0] == f"row {first}"
    # Which probabilities the bars show, since Label issues shows the uncalibrated ones.
    shown = ("Probabilities calibrated (temperature", "The network's own")
    assert any(t.startswith(shown) and "not calibrated" not in t for t in texts(at.caption))
    link = next(e for e in at.get("page_link") if e.proto.label == f"Row {first} on its own page")
    assert link.proto.page.endswith("dataset") and f"row={first}" in link.proto.query_string
    assert "explorer_occlusion_maps" not in at.session_state  # no maps unless asked: clicks stay cheap
    at.selectbox(key="errors_annotate_row").set_value(second).run()
    assert not at.exception
    close = close_up_image(at)
    assert close.captions[0] == f"row {second}"
    at.toggle(key="errors_close_up_maps").set_value(True).run()
    assert not at.exception and not at.error
    close = close_up_image(at)
    assert close.captions[-2:] == ["evidence for sad (red) and against (blue)",
                                   "evidence for happy (red) and against (blue)"]
    assert {key[1:3] for key in at.session_state["explorer_occlusion_maps"]} == {
        (second, EMOTIONS.index("sad")), (second, EMOTIONS.index("happy"))}


def test_flip_tta_predictions_when_the_model_has_them(monkeypatch, tmp_path, tmp_path_factory):
    from app_support import switched_to_tta

    at, _, tta = switched_to_tta(monkeypatch, tmp_path, tmp_path_factory, "pages/errors.py", "errors_tta")
    part = tta[tta["split"] == "PrivateTest"]
    assert at.metric[0].value == f"{(part['true'] == part['pred']).mean():.1%}"
    expected = pd.crosstab(part["true"], part["pred"]).reindex(index=range(7), columns=range(7), fill_value=0)
    assert np.array_equal(at.dataframe(key="errors_cell").value.to_numpy(), expected.to_numpy())
    select_cell(at, "happy", "happy")
    at.segmented_control(key="errors_explain").set_value("predicted").run()
    assert not at.exception
    assert {key[3] for key in at.session_state["explorer_occlusion_maps"]} == {True}  # maps made with TTA too


def _two_faces_panel():
    """A panel over the faces 30000 and 30001 that are not annotated yet (as Label issues does
    with annotated faces hidden)."""
    from fer_app import widgets

    done = set(widgets.current_annotations()["row"].tolist())
    widgets.annotate_panel([widgets.FaceRef(r, 3, f"row {r}") for r in (30000, 30001) if r not in done], "pair")


def test_the_face_left_alone_after_a_save_is_not_chosen_for_the_person(app_env):
    # Two faces, one saved and gone: the one left must not become the chosen face by itself, or a
    # second click on Save annotates a face nobody chose.
    at = AppTest.from_function(_two_faces_panel, default_timeout=60)
    at.session_state["app_annotator"] = "ann"
    at.run()
    at.selectbox(key="pair_row").set_value(30000).run()
    at.radio(key="pair_choice").set_value("sad")
    at.button(key="pair_save").click().run()
    assert not at.exception
    assert at.selectbox(key="pair_row").value is None and at.button(key="pair_save").disabled
    assert AnnotationStore(app_env).current()["row"].tolist() == [30000]
    at.button(key="pair_next").click().run()  # chosen by the person: the single face's panel
    assert at.session_state["pair_row"] == 30001 and "**Annotate this face**" in texts(at.markdown)
    assert not at.button(key="pair_save").disabled
