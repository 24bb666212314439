"""Golden tests of the released models: their cards, recorded predictions and metrics."""

import json

import numpy as np
import pandas as pd
import pytest

from fer.data import file_sha256
from fer.labels import EMOTIONS
from fer.paths import MODELS_DIR, TEST_FACES_PATH

RELEASED = sorted(p for p in MODELS_DIR.glob("*.h5") if p.with_suffix(".json").is_file())


def test_paper_model_is_released():
    assert (MODELS_DIR / "paper_cnn.h5").is_file(), "models/paper_cnn.h5 must be committed"
    assert TEST_FACES_PATH.is_file() and TEST_FACES_PATH.stat().st_size <= 15 * 1024 * 1024


@pytest.mark.parametrize("model_path", RELEASED, ids=[p.stem for p in RELEASED])
def test_card_is_complete(model_path):
    card = json.loads(model_path.with_suffix(".json").read_text())
    assert card["labels"] == list(EMOTIONS) and card["input_shape"] == [48, 48, 1]
    assert card["preprocessing"]["illumination"] in ("none", "hist", "clahe")
    for key in ("architecture", "training", "data_sha256", "train_wall_seconds", "command", "machine"):
        assert card[key], key
    # The metrics describe these exact weights (fer.release records the checksum).
    assert card["model_sha256"] == file_sha256(model_path)
    for split in ("PublicTest", "PrivateTest"):
        metrics = card["metrics"][split]
        assert metrics["n"] == 3589 and len(metrics["confusion_matrix"]) == 7
        assert sum(map(sum, metrics["confusion_matrix"])) == 3589


def recorded_sample(model_path) -> tuple[np.ndarray, pd.DataFrame]:
    """The first 8 faces of PublicTest and of PrivateTest, and their rows of the recorded predictions."""
    from fer.evaluate import predictions_path
    from fer.testset import load_test_faces

    recorded = pd.read_csv(predictions_path(model_path))
    faces = load_test_faces()
    picks = np.r_[0:8, 3589:3597]
    return faces.images[picks], recorded.set_index("row").loc[faces.rows[picks]]


def assert_recorded(probs: np.ndarray, expected: pd.DataFrame) -> None:
    """The probabilities match the recorded ones (to 2e-4) and give the recorded predictions."""
    from fer.evaluate import PROB_COLUMNS

    assert np.allclose(probs, expected[list(PROB_COLUMNS)].to_numpy(), atol=2e-4)
    assert (probs.argmax(axis=1) == expected["pred"].to_numpy()).all()


@pytest.mark.parametrize("model_path", RELEASED, ids=[p.stem for p in RELEASED])
def test_released_model_gives_recorded_predictions(model_path):
    import keras

    from fer.evaluate import predict_probabilities
    from fer.metadata import model_info

    images, expected = recorded_sample(model_path)
    model = keras.models.load_model(model_path, compile=False)
    assert_recorded(predict_probabilities(model, images, model_info(model_path).illumination), expected)


def test_evaluate_cli_reproduces_paper_card_exactly(tmp_path, capsys):
    import shutil

    from fer.evaluate import PROB_COLUMNS, main

    source = MODELS_DIR / "paper_cnn.h5"
    model = tmp_path / "paper_cnn.h5"
    shutil.copyfile(source, model)
    shutil.copyfile(source.with_suffix(".json"), model.with_suffix(".json"))
    assert main(["--model", str(model), "--json"]) == 0
    printed = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    card = json.loads(source.with_suffix(".json").read_text())
    assert set(printed) == {"PublicTest", "PrivateTest", "metrics_ferplus", "metrics_no_twin"}
    for split in ("PublicTest", "PrivateTest"):
        assert printed[split]["confusion_matrix"] == card["metrics"][split]["confusion_matrix"]
        assert printed[split]["accuracy"] == card["metrics"][split]["accuracy"]
        assert printed[split]["macro_f1"] == card["metrics"][split]["macro_f1"]
        for key in ("metrics_ferplus", "metrics_no_twin"):  # the figures text mode prints, as the card has them
            assert printed[key][split]["accuracy"] == card[key][split]["accuracy"]
    written = pd.read_csv(tmp_path / "paper_cnn.predictions.csv")
    assert len(written) == 7178 and list(written.columns) == ["row", "split", "true", "pred", *PROB_COLUMNS]
    released = pd.read_csv(MODELS_DIR / "paper_cnn.predictions.csv")
    assert (written["pred"] == released["pred"]).all()



def test_evaluate_cli_can_leave_the_test_split_unread(tmp_path, capsys):
    from fer.evaluate import main

    model = MODELS_DIR / "paper_cnn.h5"
    assert main(["--model", str(model), "--json", "--no-save", "--split", "PublicTest"]) == 0
    printed = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    card = json.loads(model.with_suffix(".json").read_text())
    assert set(printed) == {"PublicTest", "metrics_ferplus", "metrics_no_twin"}
    assert printed["PublicTest"]["accuracy"] == card["metrics"]["PublicTest"]["accuracy"]
    assert set(printed["metrics_ferplus"]) == set(printed["metrics_no_twin"]) == {"PublicTest"}
    # A card or predictions table must cover both splits: a partial evaluation writes neither.
    for extra in (["--update-card", "--no-save"], []):
        with pytest.raises(SystemExit):
            main(["--model", str(model), "--split", "PublicTest", *extra])

def test_warm_restart_history_and_commands_chain(tmp_path):
    from fer.metadata import training_commands, write_metadata
    from fer.release import combined_history

    first, second = tmp_path / "first", tmp_path / "second"
    for run, epochs in ((first, 3), (second, 2)):
        run.mkdir()
        pd.DataFrame({"epoch": range(epochs), "val_accuracy": np.linspace(0.3, 0.5, epochs)}).to_csv(
            run / "history.csv", index=False)
    write_metadata(first / "model.h5", {"command": "python -m fer.train --out first"})
    write_metadata(second / "model.h5", {
        "command": "python -m fer.train --out second --init-from first/model.h5",
        "warm_start": {"from": str(first / "model.h5"), "command": "python -m fer.train --out first"},
    })
    history = combined_history(second)
    assert list(history["epoch"]) == [0, 1, 2, 3, 4] and list(history["cycle"]) == [1, 1, 1, 2, 2]
    assert combined_history(tmp_path / "missing") is None
    card = json.loads((second / "model.json").read_text())
    assert training_commands(card) == ["python -m fer.train --out first",
                                       "python -m fer.train --out second --init-from first/model.h5"]

    # A distilled run needs its teacher targets made first: that command goes just before it.
    distilled = {
        "command": "python -m fer.soup --model second/model.h5 --model third/model.h5 --out soup",
        "warm_start": {"command": "python -m fer.train --out third --soft-targets t.npz --init-from second/model.h5",
                       "warm_start": card["warm_start"] | {"warm_start": None}},
        "distillation": {"targets": "t.npz", "command": "python -m fer.distill --teacher first/model.h5 --out t.npz"},
    }
    assert training_commands(distilled) == [
        "python -m fer.train --out first", "python -m fer.distill --teacher first/model.h5 --out t.npz",
        "python -m fer.train --out third --soft-targets t.npz --init-from second/model.h5",
        distilled["command"],
    ]
    assert training_commands(distilled | {"distillation": {"targets": "other.npz", "command": "x"}})[1] != "x"
    # A run started from a distilled model keeps its step: the record travels with the chain.
    later = {"command": "python -m fer.train --out fourth", "warm_start": distilled["warm_start"]
             | {"distillation": distilled["distillation"]}}
    assert training_commands(later)[1].startswith("python -m fer.distill") and len(training_commands(later)) == 4
    reader = distilled["warm_start"]
    reader["command"] = reader["command"].replace("--soft-targets ", "--soft-targets=")
    assert training_commands(distilled)[1].startswith("python -m fer.distill")
    # A longer path that merely starts like the targets is another file.
    reader["command"] = "python -m fer.train --soft-targets t.npz.old"
    assert not any("fer.distill" in c for c in training_commands(distilled))


def test_training_cycles_walk_nested_warm_starts():
    from fer.metadata import TrainingCycle, training_cycles, training_runs

    card = {"command": "c3", "epochs_completed": 14, "train_wall_seconds": 30.0, "machine": "m",
            "warm_start": {"from": "b.h5", "command": "c2", "epochs_completed": 22, "train_wall_seconds": 20.0,
                           "warm_start": {"from": "a.h5", "command": "c1", "epochs_completed": 15}}}
    cycles = training_cycles(card)
    assert [c.command for c in cycles] == ["c1", "c2", "c3"]
    assert sum(c.epochs for c in cycles) == 51 and cycles[0].wall_seconds is None
    assert training_cycles({"command": "only"}) == [TrainingCycle("only", None, None, None)]

    # A run that started from an average: neither averaging step is a training run.
    soup = {"command": "python -m fer.soup --model c3 --model c4 --out s2", "epochs_completed": 0, "soup": {},
            "warm_start": {"command": "c4", "epochs_completed": 11,
                           "warm_start": {"command": "python -m fer.soup --model c2 --model c3 --out s1",
                                          "epochs_completed": 0, "warm_start": card}}}
    assert [c.command for c in training_runs(soup)] == ["c1", "c2", "c3", "c4"]
    assert len(training_cycles(soup)) == 6

    # An average of two side branches (c5 and c6 both started from c4): both count, each run once.
    branch = {"command": "c5", "epochs_completed": 6, "warm_start": soup["warm_start"]}
    other = {"command": "c6", "epochs_completed": 6, "warm_start": soup["warm_start"]}
    both = {"command": "python -m fer.soup --model c5 --model c6 --out s3", "epochs_completed": 0,
            "soup": {"members": [branch, other]}, "warm_start": other}
    assert [c.command for c in training_runs(both)] == ["c1", "c2", "c3", "c4", "c5", "c6"]
    assert sum(c.epochs for c in training_cycles(both)) == 51 + 11 + 12
    assert [c.command for c in training_runs(dict(both, soup={}))] == ["c1", "c2", "c3", "c4", "c6"]

    # A run started from that average (its warm-start record carries the members): c5 counts too.
    later = {"command": "c7", "epochs_completed": 6, "warm_start": dict(both, **{"from": "s3/model.h5"})}
    assert [c.command for c in training_runs(later)] == ["c1", "c2", "c3", "c4", "c5", "c6", "c7"]
    assert sum(c.epochs for c in training_cycles(later)) == 51 + 11 + 12 + 6


def test_best_model_card_carries_the_ablation():
    card = json.loads((MODELS_DIR / "fer_best.json").read_text())
    assert [row["run"] for row in card["ablation"]][:2] == ["abl0_paper", "abl1_bn"]
    assert {row["run"] for row in card["landmark_experiment"]} == {"lm0_paper", "lm1_landmarks"}


def tiny_run(folder):
    """A run folder (``model.h5``, its card, ``history.csv``) holding an untrained tiny model."""
    from test_pipeline import write_tiny_model

    folder.mkdir(parents=True, exist_ok=True)
    model = write_tiny_model(folder)
    model.rename(folder / "model.h5")
    model.with_suffix(".json").rename(folder / "model.json")
    pd.DataFrame({"epoch": [0, 1], "val_accuracy": [0.2, 0.3]}).to_csv(folder / "history.csv", index=False)
    return folder


def release_snapshot(models_dir):
    """Every file in ``models_dir`` (staging folders included) with its bytes."""
    return {p.relative_to(models_dir).as_posix(): p.read_bytes() for p in models_dir.rglob("*") if p.is_file()}


def test_release_is_all_or_nothing_and_leaves_no_stale_files(tmp_path):
    from fer.lite import fresh_lite_path
    from fer.release import release

    run, models = tiny_run(tmp_path / "run"), tmp_path / "models"
    target = release(run, "tiny", models_dir=models)
    assert sorted(p.name for p in models.iterdir()) == [
        "tiny.h5", "tiny.history.csv", "tiny.json", "tiny.predictions.csv", "tiny.tflite"]
    card = json.loads((models / "tiny.json").read_text())
    assert card["model_sha256"] == file_sha256(target) and card["metrics"]["PublicTest"]["n"] == 3589
    # Built in a staging folder, recorded under the released name.
    assert fresh_lite_path(target) == models / "tiny.tflite" and "release-" not in card["lite"]["command"]
    assert card["lite"]["command"].endswith("tiny.h5")

    # A second release of that name is refused unless asked for.
    with pytest.raises(FileExistsError, match="--replace"):
        release(run, "tiny", models_dir=models)

    # A release that fails (here on its evaluation data) changes nothing and leaves no staging folder.
    (models / "tiny.embedding.npz").write_bytes(b"map of the old weights")
    before = release_snapshot(models)
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"\xff\xd8 not a CSV")
    with pytest.raises(ValueError):
        release(run, "tiny", models_dir=models, data=str(bad), replace=True)
    assert release_snapshot(models) == before

    # A successful one removes what it does not rebuild: files of the old weights would pass for its own.
    (models / "tiny.predictions_tta.csv").write_text("row,split,true,pred\n")
    release(run, "tiny", models_dir=models, replace=True, notes=["again"])
    assert sorted(p.name for p in models.iterdir()) == [
        "tiny.h5", "tiny.history.csv", "tiny.json", "tiny.predictions.csv", "tiny.tflite"]
    assert json.loads((models / "tiny.json").read_text())["notes"] == ["again"]


def test_release_cli_says_what_is_wrong_without_a_traceback(tmp_path, capsys):
    from fer.release import main

    models = tmp_path / "models"

    def fails(*argv):
        code = main([*argv, "--models-dir", str(models)])
        return code, capsys.readouterr().err

    code, err = fails("--run", str(tmp_path / "nonexistent"), "--name", "x")
    assert code == 2 and err.startswith("error: no model in") and "Traceback" not in err
    junk = tmp_path / "junk"
    junk.mkdir()
    (junk / "model.h5").write_text("not a model\n")
    (junk / "model.json").write_text("{}\n")
    code, err = fails("--run", str(junk), "--name", "x")
    assert code == 2 and "is not a saved Keras model" in err
    run = tiny_run(tmp_path / "run")
    for name in ("../x", "a/b", "x.h5", ""):
        code, err = fails("--run", str(run), "--name", name)
        assert code == 2 and "error: release name" in err, name
    assert not models.exists() or not any(models.iterdir())
    models.mkdir(exist_ok=True)
    (models / "tiny.h5").write_bytes(b"an earlier release")
    code, err = fails("--run", str(run), "--name", "tiny")
    assert code == 2 and "pass --replace" in err
    assert (models / "tiny.h5").read_bytes() == b"an earlier release"


def test_weights_that_differ_from_their_card_are_refused(tmp_path, monkeypatch):
    from app_support import open_page, texts

    from fer.models import load_saved_model
    from fer.pipeline import FerPipeline
    from fer.release import release
    from fer_app import resources

    models = tmp_path / "models"
    target = release(tiny_run(tmp_path / "run"), "tiny", models_dir=models)
    assert FerPipeline(target).info.name == "tiny"
    # A release that stopped between moving the weights and moving the card: new weights, old card.
    model = load_saved_model(target)
    model.set_weights([w + 0.01 for w in model.get_weights()])
    model.save(target)
    with pytest.raises(ValueError, match="tiny.h5 holds other weights than its card describes"):
        FerPipeline(target)
    monkeypatch.setenv("FER_MODELS_DIR", str(models))
    monkeypatch.setenv("FER_ANNOTATIONS_DB", str(tmp_path / "annotations.sqlite3"))
    [entry] = resources.list_models()
    assert entry.mismatch and entry.label() == "tiny (weights differ from its card)"
    assert f"--run {tmp_path / 'run'} --name tiny --replace" in entry.error
    at = open_page("pages/errors.py")
    assert any(t.startswith("`tiny.h5` cannot be used: tiny.h5 holds other weights") for t in texts(at.error))
