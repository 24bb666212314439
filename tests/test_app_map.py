"""AppTest of the Map page (the selection itself is exercised in the browser test)."""


import pytest
from app_support import open_page, own_model_folder, shared_model_folder, texts, use_app_env

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
    table["correct"] = table["true"] == table["pred"]
    traces = {colour: face_map_figure(table, colour).data for colour in MAP_COLOURINGS}
    assert [len(traces[c]) for c in ("true", "pred", "correct", "twin", "confidence")] == [7, 7, 2, 2, 1]
    for data in traces.values():  # every face once, each carrying its row for the selection
        assert sorted(int(r) for trace in data for r in trace.customdata) == list(range(50))
    assert traces["twin"][1].name == f"copy in Training ({int(table['twin'].sum())})"
