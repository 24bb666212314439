"""Unit tests of the explorer's pure functions (fer.explorer, fer.photo_report, fer_app.charts)."""

import csv
import io
import json
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from fer import explorer
from fer.explorer import (
    CELL_ORDERS,
    LOSS_FLOOR,
    PAPER_ACCURACY,
    browse_indices,
    cell_members,
    cell_table,
    confusion_frame,
    current_annotation_map,
    describe_annotation,
    error_members,
    face_losses,
    face_tile,
    label_name,
    mosaic,
    normalise_rows,
    paginate,
    per_class_table,
    reference_labels,
    row_positions,
    selected_cell,
    split_view,
    validate_predictions,
)
from fer.labels import EMOTIONS
from fer.photo_report import context_crop, enlarge, results_csv, results_json


def predictions_table(true, pred, probs=None, rows=None, split="PublicTest"):
    true, pred = np.asarray(true), np.asarray(pred)
    n = len(true)
    if probs is None:
        probs = np.full((n, 7), 0.05)
        probs[np.arange(n), pred] = 0.7
    table = pd.DataFrame({"row": np.arange(n) + 28709 if rows is None else rows, "split": split,
                          "true": true, "pred": pred})
    for j, e in enumerate(EMOTIONS):
        table[f"p_{e}"] = np.asarray(probs)[:, j]
    return table


def test_validate_predictions_names_missing_columns():
    with pytest.raises(ValueError, match="p_angry"):
        validate_predictions(pd.DataFrame({"row": [1], "split": ["PublicTest"], "true": [0], "pred": [0]}))


def test_validate_predictions_rejects_codes_out_of_range():
    table = predictions_table([0, 1], [0, 1])
    table.loc[1, "pred"] = 9
    with pytest.raises(ValueError, match="pred"):
        validate_predictions(table)


def test_reference_labels_sources():
    original = np.array([3, 4, 0])
    rows = np.array([10, 11, 12])
    majority = np.full(20, -1)
    majority[[10, 11, 12]] = [3, 6, -1]
    assert reference_labels("fer2013", original, rows).tolist() == [3, 4, 0]
    assert reference_labels("ferplus", original, rows, ferplus_majority=majority).tolist() == [3, 6, -1]
    current = pd.DataFrame({"row": [11, 12, 99], "action": ["relabel", "not_face", "confirm"],
                            "label": ["sad", None, "happy"], "note": "", "annotator": "a", "created_at": "t"})
    assert reference_labels("annotated", original, rows, annotations=current).tolist() == [3, 4, -1]
    with pytest.raises(ValueError, match="unknown reference"):
        reference_labels("crowd", original, rows)
    with pytest.raises(ValueError, match="FER\\+"):
        reference_labels("ferplus", original, rows)


def test_split_view_excludes_faces_without_reference():
    table = validate_predictions(predictions_table([0, 1, 1, 2], [0, 1, 2, 2]))
    view = split_view(table, "PublicTest", np.array([0, 1, -1, 2]))
    assert view.excluded == 1
    assert view.metrics.total == 3
    assert view.metrics.accuracy == 1.0
    with pytest.raises(ValueError, match="no predictions"):
        split_view(table, "PrivateTest")
    with pytest.raises(ValueError, match="reference has"):
        split_view(table, "PublicTest", np.array([0, 1]))


def test_normalise_rows_and_confusion_frame():
    cm = np.zeros((7, 7), dtype=int)
    cm[0, 0], cm[0, 1], cm[3, 3] = 3, 1, 5
    shares = normalise_rows(cm)
    assert shares[0, 0] == pytest.approx(0.75) and shares[3, 3] == 1.0 and shares[1].sum() == 0
    frame = confusion_frame(cm, normalise=True)
    assert list(frame.columns) == list(EMOTIONS) and list(frame.index) == list(EMOTIONS)
    assert frame.loc["angry", "disgust"] == pytest.approx(0.25)
    assert confusion_frame(cm).loc["happy", "happy"] == 5


def test_per_class_table():
    table = validate_predictions(predictions_table([0, 0, 3, 3], [0, 3, 3, 3]))
    frame = per_class_table(split_view(table, "PublicTest").metrics)
    assert frame.loc["angry", "recall"] == pytest.approx(0.5)
    assert frame.loc["happy", "precision"] == pytest.approx(2 / 3)
    assert frame.loc["happy", "support"] == 2
    # A class with no faces has no recall, and one never predicted no precision: not 0%.
    assert np.isnan(frame.loc["sad", "recall"]) and np.isnan(frame.loc["sad", "precision"])
    assert np.isnan(frame.loc["sad", "f1"]) and frame.loc["sad", "support"] == 0


def test_selected_cell():
    assert selected_cell([]) is None
    assert selected_cell([(3, "sad")]) == (3, 4)
    assert selected_cell([[0, "angry"]]) == (0, 0)
    assert selected_cell([(2, "not a column")]) is None
    assert selected_cell([(9, "sad")]) is None


def test_cell_members_most_confident_first_ties_by_row():
    probs = np.full((4, 7), 0.0)
    probs[:, 3] = [0.5, 0.9, 0.5, 0.7]
    table = validate_predictions(predictions_table([3, 3, 3, 0], [3, 3, 3, 3], probs, rows=[40, 30, 20, 10]))
    view = split_view(table, "PublicTest")
    members = cell_members(view, 3, 3)
    assert view.rows[members].tolist() == [30, 20, 40]
    assert cell_members(view, 0, 3).tolist() == [3]
    assert cell_members(view, 1, 1).size == 0


def test_cell_members_in_every_order():
    probs = np.full((5, 7), 0.0)
    probs[:, 4] = [0.5, 0.9, 0.6, 0.7, 0.8]
    table = validate_predictions(predictions_table([3] * 5, [4] * 5, probs, rows=[50, 40, 30, 20, 10]))
    view = split_view(table, "PublicTest")
    shares = np.full((60, 7), np.nan)
    shares[[50, 40, 30, 20], 4] = [0.6, 0.1, 0.6, 0.3]  # row 10 has no votes
    yaws = np.full(60, np.nan)
    yaws[[50, 40, 30, 10]] = [-40.0, 5.0, 12.0, 25.0]  # row 20 has no pose
    rows = {order: view.rows[cell_members(view, 3, 4, order, shares, yaws)].tolist() for order in CELL_ORDERS}
    assert rows["confident"] == [40, 10, 20, 30, 50]
    assert rows["unsure"] == [50, 30, 20, 10, 40]
    # Equal crowd shares go to the more confident face; no votes last.
    assert rows["crowd"] == [30, 50, 20, 40, 10]
    # Either way: -40 before +25; no pose last.
    assert rows["turned"] == [50, 10, 30, 40, 20]
    table = cell_table(view, cell_members(view, 3, 4, "crowd", shares, yaws), shares, yaws)
    assert table["row"].tolist() == rows["crowd"] and set(table["reference"]) == {"happy"}
    assert table["ferplus_share_predicted"].tolist()[:2] == [0.6, 0.6] and table["yaw"].tolist()[:2] == [12.0, -40.0]
    assert list(table.columns[:4]) == ["row", "reference", "predicted", "confidence"] and "p_sad" in table
    annotated = cell_table(view, cell_members(view, 3, 4, "crowd", shares, yaws), annotations={30: ("confirm", "happy",
                                                                                                   "ann", "")})
    assert annotated[["row", "action", "annotator"]].values.tolist()[:2] == [[30, "confirm", "ann"], [50, "", ""]]
    with pytest.raises(ValueError, match="needs its table"):
        cell_members(view, 3, 4, "crowd")
    with pytest.raises(ValueError, match="unknown order"):
        cell_members(view, 3, 4, "random")


def errors_view():
    """Seven faces: five errors with known losses, one right, one without a reference label."""
    rows = [50, 40, 30, 20, 10, 60, 70]
    true = [3, 3, 0, 4, 6, 2, 2]
    pred = [4, 3, 4, 3, 2, 2, 5]
    probs = np.full((7, 7), 0.0)
    probs[np.arange(7), pred] = [0.7, 0.9, 0.55, 0.6, 0.5, 0.8, 0.9]
    # p(reference) of each face: rows 50 and 20 tie; row 10's is 0 (as in a rounded table).
    probs[np.arange(7), true] = [0.3, 0.9, 0.05, 0.3, 0.0, 0.8, 0.2]
    table = validate_predictions(predictions_table(true, pred, probs, rows=rows))
    return split_view(table, "PublicTest", reference=[3, 3, 0, 4, 6, -1, 2])


def test_face_losses_are_the_reference_cross_entropy_and_finite():
    losses = face_losses(errors_view())
    assert losses[[0, 2, 3, 6]] == pytest.approx(-np.log([0.3, 0.05, 0.3, 0.2]))
    assert losses[1] == pytest.approx(-np.log(0.9))  # a right face has a (small) loss too
    assert losses[4] == pytest.approx(-np.log(LOSS_FLOOR)) and np.isfinite(losses[4])  # p = 0
    assert np.isnan(losses[5])  # no reference label


def test_error_members_highest_loss_first_ties_by_row():
    view = errors_view()
    members = error_members(view)
    # Neither the right face (row 40) nor the one without a reference (row 60); equal losses
    # (rows 50 and 20) by row, not by confidence (that order is 70, 50, 20, 30, 10).
    assert view.rows[members].tolist() == [10, 30, 70, 20, 50]
    assert view.rows[error_members(view, true=3)].tolist() == [50]
    assert view.rows[error_members(view, pred=4)].tolist() == [30, 50]
    assert view.rows[error_members(view, true=0, pred=4)].tolist() == [30]
    assert error_members(view, true=3, pred=3).size == 0  # the diagonal holds no error
    table = cell_table(view, members)
    assert list(table.columns[:5]) == ["row", "reference", "predicted", "confidence", "loss"]
    assert table["loss"].tolist() == pytest.approx(-np.log([LOSS_FLOOR, 0.05, 0.2, 0.3, 0.3]), abs=1e-6)


@pytest.mark.parametrize(("total", "page", "expected"), [
    (100, 1, (1, 3, 0, 48)), (100, 3, (3, 3, 96, 100)), (100, 9, (3, 3, 96, 100)),
    (100, 0, (1, 3, 0, 48)), (0, 1, (1, 1, 0, 0)), (48, 1, (1, 1, 0, 48)),
])
def test_paginate(total, page, expected):
    s = paginate(total, page, 48)
    assert (s.page, s.pages, s.start, s.stop) == expected
    assert s.total == total


def test_paginate_rejects_bad_sizes():
    with pytest.raises(ValueError):
        paginate(10, 1, 0)
    with pytest.raises(ValueError):
        paginate(-1, 1, 5)


def test_row_positions_and_browse_indices():
    index = row_positions(np.array([5, 2]), 7)
    assert index.tolist() == [-1, -1, 1, -1, -1, 0, -1]
    labels = np.array([3, 3, 0, 3])
    usage = np.array(["PublicTest", "PrivateTest", "PublicTest", "PublicTest"])
    assert browse_indices(labels, usage, "PublicTest").tolist() == [0, 2, 3]
    assert browse_indices(labels, usage, "PublicTest", 3).tolist() == [0, 3]


def test_face_tile_shapes_and_bars():
    face = np.arange(48 * 48, dtype=np.uint8).reshape(48, 48)
    tile = face_tile(face, np.eye(7)[3], np.full(7, 1 / 7), zoom=2, bar_height=18)
    assert tile.shape == (96 + 2 + 18 + 2 + 18, 96, 3) and tile.dtype == np.uint8
    assert np.array_equal(tile[:96:2, :96:2, 0], face)
    happy = tile[96 + 2:96 + 20]
    bar = 96 // 7
    happy_column = happy[:, (96 - 7 * bar) // 2 + 3 * bar + bar // 2]
    assert tuple(happy_column[5]) == explorer.EMOTION_COLORS["happy"]
    assert face_tile(face).shape == (96, 96, 3)
    with pytest.raises(ValueError):
        face_tile(np.zeros((48, 48, 3), np.uint8))


def test_mosaic_layout():
    tiles = [np.full((4, 3, 3), i, np.uint8) for i in range(5)]
    grid = mosaic(tiles, columns=2, gap=1)
    assert grid.shape == (3 * 4 + 2, 2 * 3 + 1, 3)
    assert grid[5, 4, 0] == 3 and grid[10, 0, 0] == 4


def test_labels_and_annotation_texts():
    assert label_name(3) == "happy" and label_name(-1) == "none"
    assert describe_annotation("relabel", "sad") == "relabelled sad"
    assert describe_annotation("confirm", "happy") == "confirmed happy"
    assert describe_annotation("not_face", None) == "not a face"
    assert describe_annotation(None, None) == ""
    current = pd.DataFrame({"row": [7], "action": ["ambiguous"], "label": [None], "note": ["?"],
                            "annotator": ["ann"], "created_at": ["t"]})
    assert current_annotation_map(current) == {7: ("ambiguous", None, "ann", "?")}
    assert current_annotation_map(current.iloc[:0]) == {}


def fake_result():
    face = SimpleNamespace(
        box=(10, 20, 30, 40), label="happy", score=0.9,
        probabilities={e: (0.9 if e == "happy" else 0.1 / 6) for e in EMOTIONS},
    )
    face.to_dict = lambda: {"box": [10, 20, 30, 40], "label": "happy", "score": 0.9,
                            "probabilities": face.probabilities}
    return SimpleNamespace(faces=(face,), original_size=(200, 100), detector="hog", display_illumination="none",
                           model_illumination="hist", tta=True, temperature=1.25, turn=0.0,
                           timings={"decode": 1.0, "total": 5.0})


def test_results_json_and_csv():
    named = [("a.jpg", fake_result())]
    records = json.loads(results_json(named, "paper"))
    assert records[0]["file"] == "a.jpg" and records[0]["model"] == "paper"
    assert records[0]["faces"][0]["label"] == "happy" and records[0]["size"] == [200, 100]
    assert records[0]["tta"] is True and records[0]["model_illumination"] == "hist"
    assert records[0]["temperature"] == 1.25 and records[0]["turn"] == 0
    rows = list(csv.DictReader(io.StringIO(results_csv(named))))
    assert rows[0]["file"] == "a.jpg" and rows[0]["face"] == "1" and rows[0]["w"] == "30"
    assert rows[0]["tta"] == "1" and rows[0]["temperature"] == "1.25" and rows[0]["turn"] == "0"
    assert float(rows[0]["happy"]) == pytest.approx(0.9)
    assert records[0]["error"] is None
    # Every photo gets a record: one without faces, and one unread (its reason in place of a result).
    faceless = SimpleNamespace(**{**vars(fake_result()), "faces": ()})
    named = [("a.jpg", fake_result()), ("b.png", faceless), ("c.jpg", "cannot be read: the file is empty (0 bytes)")]
    records = json.loads(results_json(named, "paper"))
    assert [(r["file"], len(r["faces"]), r["error"]) for r in records] == [
        ("a.jpg", 1, None), ("b.png", 0, None), ("c.jpg", 0, "cannot be read: the file is empty (0 bytes)")]
    assert [r["file"] for r in csv.DictReader(io.StringIO(results_csv(named)))] == ["a.jpg"]
    # An upload names its own file: a name a spreadsheet would run stays text.
    named = [("=HYPERLINK(\"http://x.example\").jpg", fake_result())]
    assert [r["file"] for r in csv.DictReader(io.StringIO(results_csv(named)))] == [
        "'=HYPERLINK(\"http://x.example\").jpg"]


def test_context_crop_clips_to_the_photo():
    image = np.zeros((100, 200, 3), np.uint8)
    crop = context_crop(image, (10, 20, 30, 40), scale=1.0, margin=0.5)
    assert crop.shape == (40 + 40, 10 + 30 + 15, 3)
    half = context_crop(image, (100, 50, 20, 20), scale=0.5, margin=0.0)
    assert half.shape == (10, 10, 3)
    assert context_crop(image, (500, 500, 10, 10)).shape[:2] == (1, 1)
    assert enlarge(np.ones((2, 2), np.uint8), 3).shape == (6, 6)


def test_charts_build():
    from fer_app import charts

    bars = charts.probability_bars_html({"happy": 0.8, "sad": 0.2})
    assert bars.count("width:80.0%") == 1 and bars.count("width:20.0%") == 1 and bars.count("width:0.0%") == 5
    assert "happy 80.0%, sad 20.0%" in bars
    assert "font-weight:700;'><span style='width:64px;text-align:right'>happy<" in bars  # the top label, bold
    assert bars.count("font-weight:700;") == 1 and "title='sad: 20.00%'" in bars
    split_bars = charts.accuracy_bars_html({"PublicTest": 0.6, "<b>": 0.625})
    assert "width:60.0%" in split_bars and "width:62.5%" in split_bars and "<b>" not in split_bars
    assert split_bars.count(f"left:{100 * PAPER_ACCURACY:.1f}%") == 2 and f"paper {PAPER_ACCURACY:.1%}" in split_bars
    acc = charts.accuracy_figure({"PublicTest": 0.6, "PrivateTest": 0.62})
    assert acc.layout.shapes[0].x0 == pytest.approx(100 * PAPER_ACCURACY)
    assert list(acc.data[0].x) == pytest.approx([60.0, 62.0]) and list(acc.data[0].y) == ["PublicTest", "PrivateTest"]
    cm = np.eye(7, dtype=int) * 3
    assert charts.confusion_figure(cm).data[0].z[0][0] == 1.0
    styles = charts.confusion_styles(confusion_frame(cm), normalise_rows(cm))
    assert "font-weight: bold" in styles.iloc[0, 0] and "bold" not in styles.iloc[0, 1]
    history = pd.DataFrame({"epoch": [0, 1], "accuracy": [0.3, 0.4], "val_accuracy": [0.3, 0.5],
                            "loss": [2, 1], "val_loss": [2, 1.5], "lr": [1e-3, 1e-4]})
    assert len(charts.history_figure(history, "accuracy").data) == 2
    assert len(charts.learning_rate_figure(history).data) == 1



def test_annotation_columns_as_the_store_exports_them():
    columns = explorer.annotation_columns(
        [5, 6, 7], {5: ("relabel", "sad", "=ann", "@note"), 7: ("not_face", None, "bob", None)})
    assert columns.to_dict("list") == {
        "action": ["relabel", "", "not_face"], "annotated_label": ["sad", "", ""],
        "annotator": ["'=ann", "", "bob"], "note": ["'@note", "", ""]}
