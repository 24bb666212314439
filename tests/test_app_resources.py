"""Tests of the app's resource layer: model discovery, cached loaders, the Keras-session guard."""

import json
import shutil
import sys
from types import SimpleNamespace

from app_support import APP, TIMEOUT, own_model_folder, shared_model_folder, texts, use_app_env
from streamlit.testing.v1 import AppTest

from fer_app import resources


def test_models_dir_follows_the_environment(monkeypatch, tmp_path):
    from fer.paths import MODELS_DIR

    monkeypatch.delenv("FER_MODELS_DIR", raising=False)
    assert resources.models_dir() == MODELS_DIR
    monkeypatch.setenv("FER_MODELS_DIR", str(tmp_path))
    assert resources.models_dir() == tmp_path


def test_list_models_needs_a_card_and_reports_bad_ones(monkeypatch, tmp_path, tmp_path_factory):
    source = shared_model_folder(tmp_path_factory)
    folder = tmp_path / "models"
    folder.mkdir()
    shutil.copy(source / "tiny.h5", folder / "paper_cnn.h5")
    shutil.copy(source / "tiny.json", folder / "paper_cnn.json")
    shutil.copy(source / "tiny.h5", folder / "checkpoint.h5")  # no card: not listed
    shutil.copy(source / "tiny.h5", folder / "broken.h5")
    (folder / "broken.json").write_text("{not json")
    monkeypatch.setenv("FER_MODELS_DIR", str(folder))
    models = resources.list_models()
    assert [m.path.name for m in models] == ["paper_cnn.h5", "broken.h5"]
    good, bad = models
    assert good.name == "tiny" and not good.has_predictions and good.history is None
    ferplus = {s: m["accuracy"] for s, m in good.card["metrics_ferplus"].items()}
    assert good.label() == (f"tiny · {good.accuracy['PublicTest']:.1%} / {good.accuracy['PrivateTest']:.1%}"
                            f" · FER+ {ferplus['PublicTest']:.1%} / {ferplus['PrivateTest']:.1%}")
    assert bad.error and bad.label() == "broken (unreadable card)"
    # A new file shows up without a restart (the cache key includes the folder's state).
    card = json.loads((folder / "paper_cnn.json").read_text())
    card.pop("metrics")  # FER+ figures alone do not make a model evaluated
    shutil.copy(source / "tiny.h5", folder / "fer_best.h5")
    (folder / "fer_best.json").write_text(json.dumps(card))
    models = resources.list_models()
    assert models[0].path.name == "fer_best.h5" and models[0].label() == "tiny · not evaluated"


def test_pages_say_what_is_missing_without_predictions(monkeypatch, tmp_path, tmp_path_factory):
    source = shared_model_folder(tmp_path_factory)
    folder = tmp_path / "models"
    folder.mkdir()
    for suffix in (".h5", ".json"):
        shutil.copy(source / f"tiny{suffix}", folder / f"tiny{suffix}")
    use_app_env(monkeypatch, tmp_path, folder)
    for page in ("errors", "label_issues"):
        at = AppTest.from_file(APP, default_timeout=TIMEOUT)
        at.switch_page(f"pages/{page}.py").run()
        assert not at.exception
        assert any("python -m fer.evaluate --model" in w for w in texts(at.warning)), page
    at = AppTest.from_file(APP, default_timeout=TIMEOUT)
    at.switch_page("pages/model.py").run()
    assert not at.exception
    assert any("No training history" in i for i in texts(at.info))


def test_keep_keras_session(monkeypatch):
    from streamlit.runtime.scriptrunner import script_runner

    calls = []
    fake_keras = SimpleNamespace(backend=SimpleNamespace(clear_session=lambda: calls.append("cleared")))
    monkeypatch.setitem(sys.modules, "keras", fake_keras)
    current = script_runner._clean_problem_modules
    monkeypatch.setattr(script_runner, "_clean_problem_modules", getattr(current, "_original", current))
    script_runner._clean_problem_modules()
    assert calls == ["cleared"]  # Streamlit's own behaviour
    resources.keep_keras_session()
    resources.keep_keras_session()  # idempotent
    script_runner._clean_problem_modules()
    assert calls == ["cleared"]


def test_test_faces_warm_in_the_background_once(monkeypatch):
    """The page run only starts the decompression; a second start is a no-op; the faces arrive."""
    from fer.testset import load_test_faces

    load_test_faces.cache_clear()
    monkeypatch.setattr(resources, "_warming", None)
    resources.warm_test_faces()
    thread = resources._warming
    assert thread is not None and thread.daemon
    resources.warm_test_faces()
    assert resources._warming is thread
    thread.join(timeout=60)
    assert not thread.is_alive()
    assert resources.test_faces() is load_test_faces()
    assert load_test_faces.cache_info().misses == 1  # decompressed once, by the warm-up, kept for the pages


def test_warm_up_start_never_waits_for_a_load_in_progress(monkeypatch):
    """With the faces being loaded (their lock held), starting the warm-up returns at once.

    The warm-up thread itself waits for the lock, then finds the faces loaded.
    """
    import threading

    monkeypatch.setattr(resources, "_warming", None)
    with resources._faces_lock:  # a page's decompression in progress
        caller = threading.Thread(target=resources.warm_test_faces)
        caller.start()
        caller.join(timeout=5)
        assert not caller.is_alive()
        warming = resources._warming
        assert warming is not None and warming.is_alive()  # blocked on the lock, not the caller
    warming.join(timeout=60)
    assert not warming.is_alive()


def test_device_line_says_what_runs(monkeypatch, tmp_path, tmp_path_factory):
    """LiteRT for a fresh copy; Keras once the copy changes, or when the loaded pipeline fell back."""
    from fer.lite import KERAS, LITERT, lite_path

    folder = own_model_folder(tmp_path, tmp_path_factory)
    monkeypatch.setenv("FER_MODELS_DIR", str(folder))
    monkeypatch.setattr(resources, "_runtimes", {})
    model = resources.list_models()[0]
    copy = lite_path(model.path)
    assert LITERT in resources.device_description(model)
    # The loaded pipeline's own runtime wins (a copy can be fresh and still fail to open).
    resources._runtimes[str(model.path)] = (resources._lite_signature(model.path), KERAS)
    assert resources.device_description(model).endswith(f", {KERAS}")
    resources._runtimes.clear()
    # An altered copy is not run, and the line says so at once (the copy is part of the cache key).
    copy.write_bytes(copy.read_bytes() + b"\0")
    line = resources.device_description(model)
    assert LITERT not in line and line.endswith(f", {KERAS}")


def test_loaded_pipeline_records_its_runtime_and_a_changed_copy_reloads(monkeypatch, tmp_path, tmp_path_factory):
    from fer.lite import lite_path

    folder = own_model_folder(tmp_path, tmp_path_factory)
    monkeypatch.setenv("FER_MODELS_DIR", str(folder))
    monkeypatch.setattr(resources, "_runtimes", {})
    monkeypatch.setattr(resources, "_painted", True)  # no start-up pause outside a server
    model = resources.list_models()[0]
    import gc

    gc.unfreeze()
    pipeline = resources.get_pipeline(model, "haar")
    assert resources._runtimes[str(model.path)] == (resources._lite_signature(model.path), pipeline.runtime)
    # The load's long-lived objects are frozen: full collections no longer walk them on clicks.
    assert gc.get_freeze_count() > 10_000
    assert resources.get_pipeline(model, "haar") is pipeline
    key = resources.pipeline_key(model, "haar")
    assert resources.pipeline_key(model, "haar") == key
    copy = lite_path(model.path)
    copy.write_bytes(copy.read_bytes() + b"\0")  # the copy changes: a new load, which runs Keras
    reloaded = resources.get_pipeline(model, "haar")
    assert reloaded is not pipeline and reloaded.runtime != pipeline.runtime
    assert resources._runtimes[str(model.path)][1] == reloaded.runtime
    # Results remembered under the old key (occlusion maps) are not those of the new load.
    assert resources.pipeline_key(model, "haar") != key


def test_predictions_are_calibrated_like_the_predict_page(monkeypatch, tmp_path, tmp_path_factory):
    import numpy as np

    from fer.calibration import apply_temperature
    from fer.calibration import main as calibrate
    from fer.labels import PROB_COLUMNS

    folder = own_model_folder(tmp_path, tmp_path_factory)
    monkeypatch.setenv("FER_MODELS_DIR", str(folder))
    (model,) = resources.list_models()
    raw = resources.load_predictions(model)
    assert calibrate(["--model", str(model.path), "--update-card"]) == 0
    (model,) = resources.list_models()  # the changed card is read again
    temperature = model.card["calibration"]["temperature"]
    assert temperature != 1.0
    calibrated = resources.load_predictions(model)
    assert (calibrated["pred"] == raw["pred"]).all() and (calibrated["row"] == raw["row"]).all()
    expected = apply_temperature(raw[list(PROB_COLUMNS)].to_numpy(), temperature)
    np.testing.assert_allclose(calibrated[list(PROB_COLUMNS)].to_numpy(), expected, atol=2e-6)
