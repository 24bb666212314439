"""The LiteRT copies (``fer.lite``): same outputs as Keras, used only while fresh, thread-safe."""

import json
import shutil
import threading

import numpy as np
import pytest
from test_pipeline import write_tiny_model
from test_release import RELEASED, assert_recorded, recorded_sample

from fer.data import file_sha256
from fer.lite import (
    KERAS,
    LITERT,
    MAX_ABS_DIFFERENCE,
    LiteModel,
    convert,
    fresh_lite_path,
    lite_path,
    load_classifier,
    main,
)
from fer.metadata import model_info, read_metadata
from fer.paths import MODELS_DIR
from fer.preprocess import to_model_input
from fer.testset import load_test_faces


@pytest.mark.parametrize("model_path", RELEASED, ids=[p.stem for p in RELEASED])
def test_every_released_model_has_a_fresh_checked_copy(model_path):
    assert fresh_lite_path(model_path) == lite_path(model_path), "run `python -m fer.lite models/*.h5`"
    record = read_metadata(model_path)["lite"]
    assert record["checked_faces"] == 2 * 3589
    assert record["argmax_disagreements"] == 0 and record["max_abs_difference"] <= MAX_ABS_DIFFERENCE


@pytest.mark.parametrize("model_path", RELEASED, ids=[p.stem for p in RELEASED])
def test_copy_reproduces_the_recorded_keras_predictions(model_path):
    images, expected = recorded_sample(model_path)
    x = to_model_input(images, model_info(model_path).illumination)
    lite = LiteModel(lite_path(model_path))
    one_by_one = np.concatenate([lite.predict_on_batch(x[i: i + 1]) for i in range(len(x))])
    for probs in (lite.predict_on_batch(x), one_by_one):  # the batch size changes in between
        assert_recorded(probs, expected)


def test_pipeline_runs_the_released_copy():
    from fer.pipeline import FerPipeline

    pipeline = FerPipeline(MODELS_DIR / "fer_best.h5")
    assert pipeline.runtime == LITERT and isinstance(pipeline.model, LiteModel)
    face = load_test_faces().images[:3]
    assert pipeline.classify(face).shape == (3, 7)


@pytest.fixture()
def copied_release(tmp_path):
    for suffix in (".h5", ".json", ".tflite"):
        shutil.copyfile(MODELS_DIR / f"paper_cnn{suffix}", tmp_path / f"paper_cnn{suffix}")
    return tmp_path / "paper_cnn.h5"


def test_a_stale_or_altered_copy_is_not_used(copied_release):
    assert load_classifier(copied_release)[1] == LITERT
    copy = lite_path(copied_release)
    copy.write_bytes(copy.read_bytes() + b"\0")  # not the file the card checked
    assert fresh_lite_path(copied_release) is None
    assert load_classifier(copied_release)[1] == KERAS
    copy.unlink()
    assert load_classifier(copied_release)[1] == KERAS


def test_retrained_weights_make_the_copy_stale(copied_release):
    card = json.loads(copied_release.with_suffix(".json").read_text())
    card["lite"]["source_sha256"] = "0" * 64  # as if the .h5 had been replaced after conversion
    copied_release.with_suffix(".json").write_text(json.dumps(card))
    assert fresh_lite_path(copied_release) is None


def test_cli_builds_checks_and_records_a_copy(tmp_path, capsys):
    model = write_tiny_model(tmp_path)
    assert fresh_lite_path(model) is None
    assert main([str(model)]) == 0
    assert "7178 faces" in capsys.readouterr().out
    record = read_metadata(model)["lite"]
    assert record["sha256"] == file_sha256(lite_path(model)) and record["source_sha256"] == file_sha256(model)
    assert fresh_lite_path(model) == lite_path(model)


def test_cli_refuses_landmark_models_and_missing_files(tmp_path, capsys):
    landmark_model = write_tiny_model(tmp_path, landmarks=True)
    assert main([str(landmark_model), str(tmp_path / "missing.h5")]) == 2
    err = capsys.readouterr().err
    assert "single-input" in err and "missing.h5: model or its metadata JSON not found" in err
    assert not lite_path(landmark_model).exists()
    assert load_classifier(landmark_model)[1] == KERAS


def test_concurrent_calls_get_their_own_results(tmp_path):
    import keras

    model = keras.models.load_model(write_tiny_model(tmp_path), compile=False)
    path = tmp_path / "tiny.tflite"
    path.write_bytes(convert(model))
    lite = LiteModel(path, threads=1)
    faces = load_test_faces().images[:24].astype(np.float32)[..., None]
    batches = [faces[i: i + size] for i, size in zip((0, 3, 8, 9, 12, 20), (3, 5, 1, 3, 8, 4), strict=True)]
    expected = [np.asarray(model.predict_on_batch(b)) for b in batches]
    results: dict[int, list[np.ndarray]] = {}

    def work(index: int) -> None:
        results[index] = [lite.predict_on_batch(batches[index]) for _ in range(20)]

    threads = [threading.Thread(target=work, args=(i,)) for i in range(len(batches))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for index, want in enumerate(expected):
        assert all(np.allclose(got, want, atol=1e-5) for got in results[index])


def test_a_failed_build_keeps_the_previous_copy_and_card(tmp_path, monkeypatch, capsys):
    import fer.lite
    from fer.lite import Agreement, build_lite

    model = write_tiny_model(tmp_path)
    build_lite(model)
    card = model.with_suffix(".json").read_bytes()
    lite_path(model).write_bytes(b"the previous copy")  # stands for a copy that must survive

    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"\xff\xd8 not a CSV")
    code = main([str(model), "--data", str(bad)])
    assert lite_path(model).read_bytes() == b"the previous copy"  # the data is read before anything is written
    assert code == 2 and "bad.jpg: not an ASCII CSV" in capsys.readouterr().err
    # A copy that disagrees with Keras is not kept, and does not cost the previous one either.
    monkeypatch.setattr(fer.lite, "compare", lambda *args: Agreement(7178, 0.5, 9))
    with pytest.raises(ValueError, match="not kept"):
        build_lite(model)
    assert lite_path(model).read_bytes() == b"the previous copy"
    assert model.with_suffix(".json").read_bytes() == card
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.jpg", "tiny.h5", "tiny.json", "tiny.tflite"]


def test_cli_reports_a_bad_model_and_goes_on(tmp_path, capsys):
    good = write_tiny_model(tmp_path)
    garbage = tmp_path / "garbage.h5"
    garbage.write_text("not a model\n")
    shutil.copyfile(good.with_suffix(".json"), garbage.with_suffix(".json"))
    assert main([str(garbage), str(good)]) == 2
    captured = capsys.readouterr()
    assert "error: " in captured.err and "garbage.h5 is not a saved Keras model" in captured.err
    assert "Traceback" not in captured.err and f"wrote {lite_path(good)}" in captured.out
    assert fresh_lite_path(good) == lite_path(good) and not lite_path(garbage).exists()
