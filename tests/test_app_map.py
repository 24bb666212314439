"""AppTest of the Map page (the selection itself is exercised in the browser test)."""

import json

import pytest
from app_support import (
    open_page,
    own_model_folder,
    record_downloads,
    shared_model_folder,
    synthetic_predictions,
    texts,
    use_app_env,
)

from fer.embedding import build_map, embedding_path, save_map
from fer_app.charts import selected_customdata


@pytest.fixture
def mapped_folder(tmp_path, tmp_path_factory):
    folder = own_model_folder(tmp_path, tmp_path_factory)
    (model,) = folder.glob("*.h5")
    save_map(build_map(model, iterations=5), embedding_path(model))
    return folder, model


def test_without_a_map_the_page_says_how_to_build_one(monkeypatch, tmp_path, tmp_path_factory):
    use_app_env(monkeypatch, tmp_path, shared_model_folder(tmp_path_factory))
    at = open_page("pages/map.py")
    assert any("has no map yet" in i and "python -m fer.embedding build --model" in i for i in texts(at.info))
    assert not at.get("plotly_chart")


def test_the_map_is_drawn_with_its_controls(monkeypatch, tmp_path, mapped_folder):
    folder, _ = mapped_folder
    use_app_env(monkeypatch, tmp_path, folder)
    at = open_page("pages/map.py")
    assert len(at.main.get("plotly_chart")) == 1
    assert any("3589 PrivateTest faces placed by t-SNE" in c for c in texts(at.caption))
    assert any("Select a region of the map" in i for i in texts(at.info))
    assert not at.warning, texts(at.warning)
    # Colour by has a row of its own: in a column beside Flip TTA, its last options lay under it at 1280 px.
    assert at.segmented_control(key="map_colour") in at.main.children.values()
    assert not any(w.key == "map_colour" for column in at.main.columns for w in column.get("segmented_control"))
    at.segmented_control(key="map_split").set_value("PublicTest").run()
    for colour in ("correct", "twin", "confidence", "pred"):
        at.segmented_control(key="map_colour").set_value(colour).run()
        assert not at.exception
    assert any("3589 PublicTest faces" in c for c in texts(at.caption))


def test_a_map_of_other_weights_is_flagged(monkeypatch, tmp_path, mapped_folder):
    folder, model = mapped_folder
    model.write_bytes(model.read_bytes() + b"\0")  # the weights changed since the map was built
    use_app_env(monkeypatch, tmp_path, folder)
    at = open_page("pages/map.py")
    assert any("built from other weights" in w for w in texts(at.warning))


def test_a_corrupt_map_is_reported(monkeypatch, tmp_path, mapped_folder):
    folder, model = mapped_folder
    embedding_path(model).write_bytes(b"not a map")
    use_app_env(monkeypatch, tmp_path, folder)
    at = open_page("pages/map.py")
    assert any("cannot be read" in e for e in texts(at.error))


def test_a_selection_shows_its_faces_and_a_face_s_nearest_neighbours(monkeypatch, tmp_path, mapped_folder):
    import pandas as pd

    from fer_app import charts

    folder, model = mapped_folder
    predictions = pd.read_csv(folder / "tiny.predictions.csv")
    chosen = predictions.loc[predictions["split"] == "PrivateTest", "row"].iloc[:30].tolist()
    # What a lasso over these faces would return (Plotly's selection cannot be made in AppTest).
    monkeypatch.setattr(charts, "selected_customdata", lambda points: chosen)
    use_app_env(monkeypatch, tmp_path, folder)
    at = open_page("pages/map.py")
    part = predictions.set_index("row").loc[chosen]
    right = (part["true"] == part["pred"]).mean()
    assert f"30 faces selected: {right:.0%} right" in texts(at.subheader)
    assert "Faces the model finds most alike" in texts(at.subheader)
    assert at.selectbox(key="map_anchor").value in set(chosen)
    assert any("of these 12 neighbours carry the chosen face's label" in c for c in texts(at.caption))
    at.selectbox(key="map_anchor").set_value(chosen[5]).run()
    assert not at.exception


class Lasso:
    """Stands in for the map's selection (Plotly's cannot be made in AppTest): ``rows`` is what the
    chart reports in the next run; [] is a chart without a selection of the user's.
    """

    def __init__(self, monkeypatch, rows):
        from fer_app import charts

        self.rows = list(rows)
        monkeypatch.setattr(charts, "selected_customdata", lambda points: list(self.rows))


def heading(at) -> str:
    return next((h for h in texts(at.subheader) if "faces selected" in h), "no selection")


def drawn_selection(at) -> list[list[int] | None]:
    """The ``selectedpoints`` of each trace of the map as the browser gets it."""
    spec = json.loads(at.main.get("plotly_chart")[0].proto.spec)
    return [trace.get("selectedpoints") for trace in spec["data"]]


@pytest.fixture
def private_rows(mapped_folder):
    import pandas as pd

    folder, _ = mapped_folder
    predictions = pd.read_csv(folder / "tiny.predictions.csv")
    return predictions.loc[predictions["split"] == "PrivateTest", "row"].tolist()


def test_a_selection_outlives_a_new_colouring_or_tta_until_the_user_clears_it(monkeypatch, tmp_path, mapped_folder,
                                                                               private_rows):
    folder, _ = mapped_folder
    synthetic_predictions(seed=3).to_csv(folder / "tiny.predictions_tta.csv", index=False)
    use_app_env(monkeypatch, tmp_path, folder)
    lasso = Lasso(monkeypatch, private_rows[:30])
    at = open_page("pages/map.py")
    assert heading(at).startswith("30 faces selected")
    assert drawn_selection(at) == [None] * 7  # the user's own selection: nothing drawn into the figure
    # Another colouring is another figure, whose Plotly selection starts empty.
    lasso.rows = []
    at.segmented_control(key="map_colour").set_value("pred").run()
    assert heading(at).startswith("30 faces selected"), texts(at.info)
    drawn = drawn_selection(at)  # the selection is drawn into the new figure: 30 points over its traces
    assert len(drawn) == 7 and sum(len(points) for points in drawn) == 30
    at.toggle(key="map_tta").set_value(True).run()
    assert heading(at).startswith("30 faces selected")
    at.selectbox(key="map_anchor").set_value(private_rows[3]).run()  # any other rerun keeps it too
    assert heading(at).startswith("30 faces selected")
    # A new region drawn on this figure replaces it; a double-click then clears it.
    lasso.rows = private_rows[40:52]
    at.run()
    assert heading(at).startswith("12 faces selected")
    lasso.rows = []
    at.run()
    assert heading(at) == "no selection"
    assert any("Select a region of the map" in i for i in texts(at.info))
    at.segmented_control(key="map_colour").set_value("correct").run()  # a cleared selection stays cleared
    assert heading(at) == "no selection" and drawn_selection(at) == [None, None]


def _selected_then_let_go(monkeypatch, tmp_path, mapped_folder, rows):
    """The Map page after a lasso of ``rows``, with the chart no longer reporting it (a redraw)."""
    folder, _ = mapped_folder
    use_app_env(monkeypatch, tmp_path, folder)
    lasso = Lasso(monkeypatch, rows)
    at = open_page("pages/map.py")
    lasso.rows = []
    return at


def test_clear_selection_forgets_a_kept_selection(monkeypatch, tmp_path, mapped_folder, private_rows):
    at = _selected_then_let_go(monkeypatch, tmp_path, mapped_folder, private_rows[:30])
    at.segmented_control(key="map_colour").set_value("confidence").run()
    assert heading(at).startswith("30 faces selected")
    assert len(drawn_selection(at)[0]) == 30
    at.button(key="map_clear").click().run()  # a double-click cannot reach a selection drawn into the figure
    assert heading(at) == "no selection" and drawn_selection(at) == [None]


def test_each_split_keeps_its_own_selection(monkeypatch, tmp_path, mapped_folder, private_rows):
    at = _selected_then_let_go(monkeypatch, tmp_path, mapped_folder, private_rows[:30])
    at.segmented_control(key="map_split").set_value("PublicTest").run()
    assert heading(at) == "no selection"  # PrivateTest's faces are not on the PublicTest map
    at.segmented_control(key="map_split").set_value("PrivateTest").run()
    assert heading(at).startswith("30 faces selected")


def test_selected_customdata_reads_plotly_points():
    points = [{"customdata": 5, "x": 0}, {"customdata": [7]}, {"x": 1}, {"customdata": 5}, {"customdata": []}]
    assert selected_customdata(points) == [5, 7]
    assert selected_customdata(None) == [] and selected_customdata([]) == []


def test_face_map_figure_colourings():
    import numpy as np
    import pandas as pd

    from fer_app.charts import MAP_COLOURINGS, face_map_figure

    rng = np.random.default_rng(0)
    table = pd.DataFrame({"row": np.arange(50), "x": rng.normal(size=50), "y": rng.normal(size=50),
                          "true": rng.integers(0, 7, 50), "pred": rng.integers(0, 7, 50),
                          "confidence": rng.random(50), "twin": rng.random(50) < 0.3})
    table["reference"] = table["true"]
    table["correct"] = table["reference"] == table["pred"]
    traces = {colour: face_map_figure(table, colour).data for colour in MAP_COLOURINGS}
    assert [len(traces[c]) for c in ("true", "pred", "correct", "twin", "confidence")] == [7, 7, 2, 2, 1]
    for data in traces.values():  # every face once, each carrying its row for the selection
        assert sorted(int(r) for trace in data for r in trace.customdata) == list(range(50))
    assert traces["twin"][1].name == f"copy in Training ({int(table['twin'].sum())})"
    # Faces without a reference label get a trace of their own where the colours read that label.
    table.loc[:4, "reference"] = -1
    table["correct"] = table["reference"] == table["pred"]
    for colour in ("true", "correct"):
        data = face_map_figure(table, colour, reference_name="FER+ majority").data
        assert data[-1].name == "no label (5)" and sorted(data[-1].customdata) == [0, 1, 2, 3, 4]
        assert sorted(int(r) for trace in data for r in trace.customdata) == list(range(50))
        assert data[-1].text[0].startswith("row 0 · FER+ majority: no label → ")
    assert len(face_map_figure(table, "pred").data) == 7  # the predictions have no such gap


def test_face_map_figure_draws_a_selection_and_keeps_legend_and_toolbar_apart():
    import numpy as np
    import pandas as pd

    from fer_app.charts import face_map_figure

    table = pd.DataFrame({"row": np.arange(10) + 100, "x": np.arange(10.0), "y": np.arange(10.0),
                          "true": [0, 1] * 5, "pred": [0] * 10, "confidence": np.linspace(0, 1, 10),
                          "twin": [False] * 10})
    table["reference"] = table["true"]
    table["correct"] = table["reference"] == table["pred"]
    figure = face_map_figure(table, "correct", selected=[101, 102, 999])
    assert [list(t.selectedpoints) for t in figure.data] == [[1], [0]]  # positions within each trace
    assert [[t.customdata[i] for i in t.selectedpoints] for t in figure.data] == [[102], [101]]
    assert all(t.selectedpoints is None for t in face_map_figure(table, "true").data)  # nothing dimmed
    assert list(face_map_figure(table, "confidence", selected=[105]).data[0].selectedpoints) == [5]
    # The legend and the colour bar lie under the map, away from the toolbar at its top right.
    layout = face_map_figure(table, "true").layout
    assert layout.legend.orientation == "h" and layout.legend.y < 0 and layout.legend.yanchor == "top"
    assert layout.margin.t >= 28
    colorbar = face_map_figure(table, "confidence").data[0].marker.colorbar
    assert colorbar.orientation == "h" and colorbar.y < 0


def close_up_image(at):
    """The close-up's images: the first caption is just the face's row."""
    import re

    return next((img for img in at.image if img.captions and re.fullmatch(r"row \d+", img.captions[0])), None)


def test_the_chosen_face_of_a_selection_is_shown_close_up(monkeypatch, tmp_path, mapped_folder, private_rows):
    folder, _ = mapped_folder
    use_app_env(monkeypatch, tmp_path, folder)
    Lasso(monkeypatch, private_rows[:30])
    at = open_page("pages/map.py")
    shown = [int(c.split(" ")[1]) for c in at.image[0].captions]  # the grid, in the page's order
    assert close_up_image(at).captions[0] == f"row {shown[0]}"
    # The Map shows calibrated probabilities (load_predictions' default), and the close-up says so.
    assert any(t.startswith(("Probabilities calibrated (temperature", "The network's own"))
               and "not calibrated" not in t for t in texts(at.caption))
    at.selectbox(key="map_annotate_row").set_value(shown[3]).run()
    assert not at.exception
    assert close_up_image(at).captions[0] == f"row {shown[3]}"
    at.toggle(key="map_close_up_maps").set_value(True).run()
    assert not at.exception and not at.error
    assert close_up_image(at).captions[-1].startswith("evidence for ")


def test_the_selected_faces_download_as_csv(monkeypatch, tmp_path, mapped_folder, private_rows):
    import io

    import numpy as np
    import pandas as pd

    from fer.annotations import AnnotationStore
    from fer.labels import EMOTIONS, PROB_COLUMNS

    folder, model = mapped_folder
    chosen = private_rows[:30]  # more than a page of faces: the file holds them all
    db = use_app_env(monkeypatch, tmp_path, folder)
    AnnotationStore(db).add(chosen[7], "relabel", "sad", annotator="ann")
    Lasso(monkeypatch, chosen)
    downloads = record_downloads(monkeypatch)
    at = open_page("pages/map.py")
    assert "These 30 selected faces as CSV" in [b.label for b in at.get("download_button")]
    content = downloads[f"{model.stem}_PrivateTest_map_selection.csv"]()
    table = pd.read_csv(io.BytesIO(content.encode() if isinstance(content, str) else content), keep_default_na=False)
    assert list(table.columns) == ["row", "split", "reference", "predicted", "confidence", *PROB_COLUMNS,
                                   "action", "annotated_label", "annotator", "note"]
    assert len(table) == 30 and sorted(table["row"]) == sorted(chosen)
    shown = [int(c.split(" ")[1]) for c in at.image[0].captions]
    assert table["row"].tolist()[:len(shown)] == shown  # in the page's order
    expected = pd.read_csv(folder / "tiny.predictions.csv").set_index("row").loc[table["row"]]
    assert (table["split"] == "PrivateTest").all()
    assert table["reference"].tolist() == [EMOTIONS[t] for t in expected["true"]]
    assert table["predicted"].tolist() == [EMOTIONS[p] for p in expected["pred"]]
    probabilities = table[list(PROB_COLUMNS)].to_numpy()
    assert np.allclose(probabilities.sum(axis=1), 1, atol=1e-4)
    assert np.allclose(table["confidence"], probabilities.max(axis=1))
    notes = table.set_index("row")
    assert tuple(notes.loc[chosen[7], ["action", "annotated_label", "annotator"]]) == ("relabel", "sad", "ann")
    assert (notes.drop(index=chosen[7])["action"] == "").all()


def _selection_csv(downloads, name: str):
    import io

    import pandas as pd

    content = downloads[name]()
    return pd.read_csv(io.BytesIO(content.encode() if isinstance(content, str) else content), keep_default_na=False)


def test_the_selection_is_judged_against_the_chosen_reference_labels(monkeypatch, tmp_path, mapped_folder,
                                                                     private_rows):
    import pandas as pd

    from fer.annotations import AnnotationStore
    from fer.labels import EMOTIONS

    folder, model = mapped_folder
    chosen = private_rows[:12]  # one page of faces
    part = pd.read_csv(folder / "tiny.predictions.csv").set_index("row").loc[chosen]
    wrong = part.index[part["true"] != part["pred"]].tolist()
    assert len(wrong) >= 2
    fixed, dropped = wrong[0], wrong[1]  # relabelled to the prediction: right; not a face: no label
    db = use_app_env(monkeypatch, tmp_path, folder)
    store = AnnotationStore(db)
    store.add(fixed, "relabel", EMOTIONS[part.loc[fixed, "pred"]], annotator="ann")
    store.add(dropped, "not_face", annotator="ann")
    Lasso(monkeypatch, chosen)
    downloads = record_downloads(monkeypatch)
    at = open_page("pages/map.py")
    assert at.segmented_control(key="map_reference").value == "fer2013"
    assert heading(at) == f"12 faces selected: {(part['true'] == part['pred']).mean():.0%} right"

    at.segmented_control(key="map_reference").set_value("annotated").run()
    assert not at.exception
    reference = part["true"].copy()
    reference[fixed] = part.loc[fixed, "pred"]
    judged = reference.drop(index=dropped)
    right = (judged == part["pred"].drop(index=dropped)).mean()
    assert heading(at) == f"12 faces selected: {right:.0%} right against FER2013 + our annotations, 1 excluded"
    assert any("1 excluded without a reference label" in c for c in texts(at.caption))
    # The captions and the CSV follow the annotations: the relabelled face is right, the one marked
    # not a face has no label and comes last.
    captions = {int(c.split(" ")[1]): c for c in at.image[0].captions}
    label = EMOTIONS[part.loc[fixed, "pred"]]
    assert captions[fixed].startswith(f"row {fixed} · {label} → {label} ")
    assert captions[dropped].startswith(f"row {dropped} · none → {EMOTIONS[part.loc[dropped, 'pred']]} ")
    assert list(captions)[-1] == dropped
    table = _selection_csv(downloads, f"{model.stem}_PrivateTest_annotated_map_selection.csv")
    assert table["row"].tolist() == list(captions)  # in the page's order
    assert table["row"].iloc[-1] == dropped and table["reference"].iloc[-1] == "none"
    expected = ["none" if r == dropped else EMOTIONS[reference[r]] for r in table["row"]]
    assert table["reference"].tolist() == expected
    outcome = [2 if r == dropped else int(reference[r] == part.loc[r, "pred"]) for r in table["row"]]
    assert outcome == sorted(outcome)  # wrong first, then right, then the excluded face
    wrong_now = [r for r, o in zip(table["row"], outcome, strict=True) if o == 0]
    confidence = table.set_index("row").loc[wrong_now, "confidence"].tolist()
    assert confidence == sorted(confidence, reverse=True)
    assert fixed not in wrong_now


def test_the_ferplus_reference_leaves_out_faces_without_a_majority(monkeypatch, tmp_path, mapped_folder,
                                                                   private_rows):
    import numpy as np
    import pandas as pd

    from fer.ferplus import load_ferplus_votes, majority_label

    folder, model = mapped_folder
    majority = majority_label(load_ferplus_votes().votes)
    rows = np.asarray(private_rows)
    without = rows[majority[rows] < 0][:3].tolist()
    chosen = without + [r for r in private_rows if r not in without][:27]
    assert len(without) == 3
    use_app_env(monkeypatch, tmp_path, folder)
    Lasso(monkeypatch, chosen)
    downloads = record_downloads(monkeypatch)
    at = open_page("pages/map.py")
    at.segmented_control(key="map_reference").set_value("ferplus").run()
    assert not at.exception
    part = pd.read_csv(folder / "tiny.predictions.csv").set_index("row").loc[chosen]
    labelled = majority[chosen] >= 0
    right = (majority[chosen][labelled] == part["pred"].to_numpy()[labelled]).mean()
    assert heading(at) == f"30 faces selected: {right:.0%} right against FER+ majority, 3 excluded"
    table = _selection_csv(downloads, f"{model.stem}_PrivateTest_ferplus_map_selection.csv")
    assert sorted(table["row"].iloc[-3:]) == sorted(without)
    assert (table["reference"].iloc[-3:] == "none").all() and (table["reference"].iloc[:-3] != "none").all()
    # The choice is kept, like the Errors page's.
    at.segmented_control(key="map_split").set_value("PublicTest").run()
    at.segmented_control(key="map_split").set_value("PrivateTest").run()
    assert at.segmented_control(key="map_reference").value == "ferplus"


def test_the_points_follow_the_chosen_reference_labels(monkeypatch, tmp_path, mapped_folder, private_rows):
    import pandas as pd

    from fer.annotations import AnnotationStore
    from fer.labels import EMOTIONS

    folder, _ = mapped_folder
    true = pd.read_csv(folder / "tiny.predictions.csv").set_index("row")["true"]
    relabelled, dropped = private_rows[0], private_rows[1]
    new_label = next(e for i, e in enumerate(EMOTIONS) if i != true[relabelled])
    db = use_app_env(monkeypatch, tmp_path, folder)
    store = AnnotationStore(db)
    store.add(relabelled, "relabel", new_label, annotator="ann")
    store.add(dropped, "not_face", annotator="ann")
    lasso = Lasso(monkeypatch, private_rows[:12])
    at = open_page("pages/map.py")
    lasso.rows = []  # the new figures below start without a selection of the user's

    def trace_of(row: int) -> tuple[str, str]:
        """The legend name (without its count) and hover text of ``row``'s point."""
        spec = json.loads(at.main.get("plotly_chart")[0].proto.spec)
        for trace in spec["data"]:
            rows = spec_rows(trace)
            if row in rows:
                return trace["name"].rsplit(" (", 1)[0], trace["text"][rows.index(row)]
        raise AssertionError(f"row {row} is not on the map")

    assert trace_of(relabelled)[0] == EMOTIONS[true[relabelled]]
    at.segmented_control(key="map_reference").set_value("annotated").run()
    assert not at.exception
    assert [trace_of(relabelled)[0], trace_of(dropped)[0]] == [new_label, "no label"]
    assert trace_of(relabelled)[1].startswith(f"row {relabelled} · FER2013 + our annotations: {new_label} → ")
    assert trace_of(dropped)[1].startswith(f"row {dropped} · FER2013 + our annotations: no label → ")
    # The selection outlives the new figure, and right or wrong reads the same labels.
    assert heading(at).startswith("12 faces selected") and sum(map(len, drawn_selection(at))) == 12
    at.segmented_control(key="map_colour").set_value("correct").run()
    assert trace_of(dropped)[0] == "no label"
    at.segmented_control(key="map_reference").set_value("fer2013").run()
    name, hover = trace_of(dropped)
    assert name in ("right", "wrong") and hover.startswith(f"row {dropped} · FER2013: {EMOTIONS[true[dropped]]} → ")


def spec_rows(trace: dict) -> list[int]:
    """A trace's ``customdata`` (FER2013 rows) from the chart's JSON spec: Plotly's typed array."""
    import base64

    import numpy as np

    data = trace["customdata"]
    return np.frombuffer(base64.b64decode(data["bdata"]), dtype=data["dtype"]).astype(int).tolist()


def test_a_save_that_recolours_the_map_keeps_the_selection(monkeypatch, tmp_path, mapped_folder, private_rows):
    at = _selected_then_let_go(monkeypatch, tmp_path, mapped_folder, private_rows[:30])
    at.segmented_control(key="map_reference").set_value("annotated").run()
    assert heading(at).startswith("30 faces selected")
    at.sidebar.text_input(key="app_annotator").input("ann").run()
    # Relabelled under "ours", the face changes colour: a new figure, which Plotly draws without
    # the selection; that is no clearing by the user, so the selection and the message stay.
    at.radio(key="map_annotate_choice").set_value("not a face")
    at.button(key="map_annotate_save").click().run()
    assert not at.exception
    assert heading(at).startswith("30 faces selected")
    assert any(t.startswith("Saved for row ") for t in texts(at.success))
