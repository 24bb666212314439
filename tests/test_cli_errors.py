"""The evaluation and training CLIs on data they cannot use: one ``error:`` line and exit 2
before any model runs or any folder is made, and no FER2013-keyed output from a CSV whose row
numbers are not FER2013's."""

from __future__ import annotations

import json

import numpy as np
import pytest

keras = pytest.importorskip("keras")

from fer.labels import EMOTIONS  # noqa: E402


def _fer_csv(path, usages: list[str]):
    """A small FER2013-format CSV with one face per entry of ``usages`` (random pixels)."""
    rng = np.random.default_rng(0)
    rows = [f"{i % len(EMOTIONS)},{' '.join(map(str, rng.integers(0, 256, 2304)))},{usage}"
            for i, usage in enumerate(usages)]
    path.write_text("emotion,pixels,Usage\n" + "\n".join(rows) + "\n")
    return path


@pytest.fixture
def tiny_model(tmp_path, monkeypatch):
    """A 7-class model with a bare card (the card's defaults), in its own folder."""
    monkeypatch.setenv("FER_CACHE_DIR", str(tmp_path / "cache"))
    folder = tmp_path / "models"
    folder.mkdir()
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((48, 48, 1)), keras.layers.Rescaling(1 / 255),
                              keras.layers.GlobalAveragePooling2D(),
                              keras.layers.Dense(len(EMOTIONS), activation="softmax")])
    model.save(folder / "tiny.h5")
    (folder / "tiny.json").write_text("{}")
    return folder / "tiny.h5"


def test_evaluate_and_ensemble_refuse_data_without_the_split(tmp_path, tiny_model, capsys):
    from fer.ensemble import main as ensemble
    from fer.evaluate import main as evaluate

    train_only = _fer_csv(tmp_path / "train.csv", ["Training"] * 6)
    assert evaluate(["--model", str(tiny_model), "--data", str(train_only), "--no-save"]) == 2
    assert "error: no PublicTest faces in" in capsys.readouterr().err
    assert evaluate(["--model", str(tiny_model), "--data", str(train_only), "--no-save",
                     "--split", "PrivateTest"]) == 2
    assert "error: no PrivateTest faces in" in capsys.readouterr().err
    assert ensemble(["--model", str(tiny_model), "--model", str(tiny_model), "--data", str(train_only)]) == 2
    assert "error: no PublicTest faces in" in capsys.readouterr().err
    assert evaluate(["--model", str(tmp_path / "nope.h5"), "--data", str(train_only)]) == 2
    assert "error: model not found" in capsys.readouterr().err


def test_a_subset_csv_gets_no_fer2013_keyed_metrics_or_predictions(tmp_path, tiny_model, capsys):
    from fer.ensemble import main as ensemble
    from fer.evaluate import main as evaluate
    from fer.evaluate import predictions_path

    subset = _fer_csv(tmp_path / "subset.csv", ["Training"] * 4 + ["PublicTest"] * 5 + ["PrivateTest"] * 3)
    assert evaluate(["--model", str(tiny_model), "--data", str(subset)]) == 0
    captured = capsys.readouterr()
    # Its row numbers 4-11 are Training faces of FER2013: no FER+ votes or twins of them.
    assert "note: subset.csv has 12 faces, not the 35,887 of the full FER2013 CSV" in captured.err
    assert "predictions not saved" in captured.err
    assert "Against FER+" not in captured.out and "near-duplicate" not in captured.out
    assert not predictions_path(tiny_model).exists()
    assert ensemble(["--model", str(tiny_model), "--model", str(tiny_model), "--data", str(subset)]) == 0
    captured = capsys.readouterr()
    assert "note: subset.csv has 12 faces" in captured.err and "Against FER+" not in captured.out

    # FER+ votes are looked up by FER2013 row: not for these faces.
    assert evaluate(["--model", str(tiny_model), "--data", str(subset), "--no-save", "--reference", "ferplus"]) == 2
    assert "error: --reference ferplus looks the FER+ votes up by FER2013 row, and subset.csv has 12 faces" in (
        capsys.readouterr().err)

    # A split named twice is evaluated once.
    assert evaluate(["--model", str(tiny_model), "--data", str(subset), "--no-save", "--json",
                     "--split", "PublicTest", "--split", "PublicTest"]) == 0
    assert {split: m["n"] for split, m in json.loads(capsys.readouterr().out).items()} == {"PublicTest": 5}


@pytest.mark.parametrize("option, value", [("--batch-size", "0"), ("--epochs", "-1"), ("--limit", "-5"),
                                           ("--steps-per-execution", "0"), ("--time-budget", "-1")])
def test_train_refuses_bad_numbers_before_making_the_run_folder(tmp_path, option, value, capsys):
    from fer.train import main

    data = _fer_csv(tmp_path / "data.csv", ["Training"] * 4 + ["PublicTest"] * 2)
    with pytest.raises(SystemExit) as stopped:
        main(["--data", str(data), "--out", str(tmp_path / "run"), option, value])
    assert stopped.value.code == 2 and option in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


def test_train_refuses_data_it_cannot_train_or_validate_on(tmp_path, monkeypatch, capsys):
    from fer.train import main

    monkeypatch.setenv("FER_CACHE_DIR", str(tmp_path / "cache"))
    out = tmp_path / "run"
    cases = {
        _fer_csv(tmp_path / "train.csv", ["Training"] * 4): "error: no PublicTest faces in",
        _fer_csv(tmp_path / "test.csv", ["PublicTest"] * 4): "error: no Training faces in",
    }
    (tmp_path / "bad.jpg").write_bytes(b"\xff\xd8\xff not a CSV")
    cases[tmp_path / "bad.jpg"] = "error: " + str(tmp_path / "bad.jpg")
    for data, message in cases.items():
        assert main(["--data", str(data), "--out", str(out), "--epochs", "1"]) == 2
        assert message in capsys.readouterr().err
        assert not out.exists()


def test_a_subset_csv_neither_updates_a_card_nor_makes_a_release(tmp_path, tiny_model, capsys):
    from fer.evaluate import main as evaluate
    from fer.release import release

    subset = _fer_csv(tmp_path / "subset.csv", ["Training", "PublicTest", "PrivateTest"] * 3)
    assert evaluate(["--model", str(tiny_model), "--data", str(subset), "--update-card"]) == 2
    assert "error: --update-card records the FER2013 test splits" in capsys.readouterr().err
    assert json.loads((tiny_model.with_suffix(".json")).read_text()) == {}
    run = tmp_path / "run"
    run.mkdir()
    (run / "model.h5").write_bytes(tiny_model.read_bytes())
    (run / "model.json").write_text("{}")
    released = tmp_path / "released"
    released.mkdir()
    with pytest.raises(ValueError, match="a release is evaluated on the FER2013 CSV"):
        release(run, "tiny", models_dir=released, data=subset)
    assert not any(released.iterdir())
