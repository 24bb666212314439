"""AppTest of the Model page: the model card rendered."""

import pytest
from app_support import open_page, own_model_folder, shared_model_folder, texts, use_app_env


@pytest.fixture
def app_env(monkeypatch, tmp_path, tmp_path_factory):
    return use_app_env(monkeypatch, tmp_path, shared_model_folder(tmp_path_factory))


def test_model_card(app_env):
    at = open_page("pages/model.py")
    assert any("tiny" in m and "architecture **tiny**" in m for m in texts(at.markdown))
    metrics = {m.label: m.value for m in at.metric}
    # A warm-started model counts its whole chain: 2 + 3 epochs, 6.5 + 12.5 s.
    assert metrics["Training wall time"] == "0.3 min"
    assert metrics["Epochs"] == "5"
    assert any("Trained in 2 runs" in c and "2 + 3 epochs" in c for c in texts(at.caption))
    import keras

    # The card's "keras" field is Keras's version: the caption says so.
    machine = next(c for c in texts(at.caption) if c.startswith("Machine: test machine"))
    assert machine.endswith(f" · Keras {keras.__version__}")
    headers = texts(at.subheader)
    for header in ("Test metrics", "Test metrics with flip test-time augmentation",
                   "Against FER+ majority labels (faces with emotion votes)",
                   "Against FER+ majority labels, with flip test-time augmentation",
                   "Test faces not also in Training (no near-duplicate there; `fer.twins`)", "Notes", "Ablation",
                   "Accuracy by head pose", "Accuracy by face resolution",
                   "Training curves", "How to reproduce"):
        assert header in headers
    # A warm-started model: reproducing it takes the first run's command, then its own.
    assert any(c.startswith("python -m fer.train --arch tiny --out runs/tiny_first\n"
                            "python -m fer.train --arch tiny --out runs/tiny --init-from") for c in texts(at.code))
    assert any("Model: tiny_cnn" in c for c in texts(at.code))
    assert not any("learnt from these targets" in c for c in texts(at.caption))
    # The checked LiteRT copy that the pipeline runs, and the command that rebuilds it.
    captions = texts(at.caption)
    assert any(c.startswith("Inference copy `tiny.tflite`") and "0 different predictions" in c for c in captions)
    assert any("python -m fer.lite " in c for c in texts(at.code))
    tables = [d.value for d in at.dataframe]
    assert any(list(t.columns) == ["variant", "PrivateTest"] for t in tables)  # the ablation
    assert any(list(t.columns) == ["run", "final"] for t in tables)  # the landmark experiment
    assert any("accuracy" in t.columns and set(t.index) == {"PublicTest", "PrivateTest"} for t in tables)
    assert any("A note from the card." in m for m in texts(at.markdown))
    # Accuracy by head pose: a yaw and a pitch table, both splits, three columns each.
    pose_tables = [t for t in tables if t.index.name in ("|yaw|", "|pitch|")]
    assert [t.index.name for t in pose_tables] == ["|yaw|", "|pitch|"]
    assert list(pose_tables[0].index) == ["0-10°", "10-20°", "20-30°", "30°+"]
    assert pose_tables[0][("PublicTest", "at class mix")].tolist() == [0.74, 0.71, 0.66, 0.61]
    (resolution,) = [t for t in tables if t.index.name == "px a side"]
    assert list(resolution.index) == [48, 40, 32, 24, 16] and list(resolution.columns) == ["PublicTest", "PrivateTest"]
    assert resolution["PublicTest"].tolist() == [0.70, 0.67, 0.64, 0.55, 0.35]
    # 5 accuracy bars + 5 x 2 confusion matrices (plain, TTA, FER+, FER+ TTA, no twin) + 3 training curves.
    assert len(at.main.get("plotly_chart")) == 5 + 10 + 3
    # The selected model's accuracy, as HTML bars (no Plotly outside the Model page).
    assert len([t for t in texts(at.sidebar.markdown) if t.startswith("<div role='img' aria-label='accuracy:")]) == 1
    assert not at.sidebar.get("plotly_chart")


def test_model_card_of_a_soup(monkeypatch, tmp_path, tmp_path_factory):
    import json

    folder = own_model_folder(tmp_path, tmp_path_factory)
    (card_path,) = folder.glob("*.json")
    card = json.loads(card_path.read_text())
    # The soup's own step joins the chain with no epochs: 2 + 3 + 0, and is not called a run.
    card["warm_start"] = {k: card[k] for k in ("command", "epochs_completed", "train_wall_seconds", "warm_start")}
    card.update(command="python -m fer.soup --model a.h5 --model b.h5 --out runs/soup", epochs_completed=0,
                train_wall_seconds=60.0, soup={"members": [{"from": "a.h5"}, {"from": "b.h5"}], "bn_faces": 8000},
                distillation={"teachers": ["t1.h5", "t2.h5"], "temperature": 2.0, "weight": 0.5})
    card_path.write_text(json.dumps(card))
    use_app_env(monkeypatch, tmp_path, folder)
    at = open_page("pages/model.py")
    assert {m.label: m.value for m in at.metric}["Epochs"] == "5"
    captions = texts(at.caption)
    assert any("Trained in 2 runs" in c and "2 + 3 epochs" in c for c in captions)
    assert any("average of 2 snapshots (a.h5, b.h5)" in c and "8000 training faces" in c for c in captions)
    assert any("0.50 × the FER2013 label + 0.50 × the averaged flip-TTA probabilities of t1.h5, t2.h5 at "
               "temperature 2.0" in c for c in captions)
    (steps,) = [c for c in texts(at.code) if "fer.soup" in c]
    lines = steps.splitlines()
    assert lines[0].endswith("--out runs/tiny_first") and "--init-from" in lines[1]
    assert lines[2] == "python -m fer.soup --model a.h5 --model b.h5 --out runs/soup"


def test_model_page_without_a_model(monkeypatch, tmp_path):
    empty = tmp_path / "none"
    empty.mkdir()
    use_app_env(monkeypatch, tmp_path, empty)
    at = open_page("pages/model.py")
    assert any("No model found" in w for w in texts(at.warning))


def test_model_card_shows_calibration(monkeypatch, tmp_path, tmp_path_factory):

    from fer.calibration import main as calibrate

    folder = own_model_folder(tmp_path, tmp_path_factory)
    (model,) = folder.glob("*.h5")
    assert calibrate(["--model", str(model), "--update-card"]) == 0
    use_app_env(monkeypatch, tmp_path, folder)
    at = open_page("pages/model.py")
    assert "Calibration" in texts(at.subheader)
    assert any(m.startswith("**Temperature ") and "python -m fer.calibration --model" in m for m in texts(at.markdown))
    (table,) = [d.value for d in at.dataframe if "ECE before" in d.value.columns]
    assert set(table.index) == {"PublicTest", "PrivateTest"} and (table["faces"] == 3589).all()
    # The usual 18 charts plus one reliability diagram per split.
    assert len(at.main.get("plotly_chart")) == 5 + 10 + 3 + 2
