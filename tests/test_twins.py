"""Near-duplicates across splits (fer.twins): matching on real faces, the table, the report."""

import cv2
import numpy as np
import pandas as pd
import pytest

from fer.data import FerDataset, load_fer2013
from fer.paths import FER2013_CSV
from fer.testset import load_test_faces
from fer.twins import (
    TWIN_COLUMNS,
    TWIN_THRESHOLD,
    accuracy_by_twin,
    candidates,
    conflicts_first,
    descriptors,
    find_twins,
    identical_matches,
    load_twins,
    main,
    patch_similarity,
    select_by_twin,
    twin_mask,
    write_twins,
)

needs_csv = pytest.mark.skipif(not FER2013_CSV.is_file(), reason=f"FER2013 CSV not at {FER2013_CSV}")


@pytest.fixture(scope="module")
def faces() -> np.ndarray:
    """60 real PublicTest faces with contrast (blank images are tested on their own)."""
    images = load_test_faces().split("PublicTest")[0]
    return images[images.std(axis=(1, 2)) > 30][:60]


def _recrop(face: np.ndarray, shift: int = 2, scale: float = 1.05) -> np.ndarray:
    """Another crop of the same photograph: rescaled, shifted, re-quantised."""
    big = cv2.resize(face, None, fx=scale, fy=scale, interpolation=cv2.INTER_LINEAR)
    return np.ascontiguousarray(big[shift:shift + 48, shift:shift + 48])


def test_descriptors_ignore_brightness_and_contrast(faces):
    base = descriptors(faces[:5])
    brighter = descriptors(np.clip(faces[:5].astype(np.float32) * 0.7 + 40, 0, 255).round().astype(np.uint8))
    assert base.shape == (5, 256)
    np.testing.assert_allclose(np.linalg.norm(base, axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(base.sum(axis=1), 0.0, atol=1e-3)
    assert (np.sum(base * brighter, axis=1) > 0.999).all()


def test_blank_faces_get_a_zero_descriptor_and_bad_shapes_fail():
    blank = np.full((2, 48, 48), 17, dtype=np.uint8)
    assert not descriptors(blank).any()
    with pytest.raises(ValueError, match="multiples of 16"):
        descriptors(np.zeros((1, 50, 50), dtype=np.uint8))


def test_candidates_find_recrops_and_mirror_images(faces):
    reference = descriptors(faces)
    queries = np.stack([_recrop(faces[7]), faces[21][:, ::-1], faces[40]])
    found = candidates(descriptors(queries), reference, k=3)
    assert found.index.shape == (3, 3)
    assert found.index[:, 0].tolist() == [7, 21, 40]
    assert found.mirrored[:, 0].tolist() == [False, True, False]
    assert found.similarity[2, 0] == pytest.approx(1.0, abs=1e-5)
    assert (np.diff(found.similarity, axis=1) <= 1e-6).all()  # most similar first


def test_patch_similarity_separates_recrops_from_other_faces(faces):
    same = np.array([patch_similarity(_recrop(f), f) for f in faces[:20]])
    others = np.array([patch_similarity(faces[i], faces[i + 20]) for i in range(20)])
    assert np.median(same) > 0.95 and (same >= TWIN_THRESHOLD).mean() >= 0.9
    assert others.max() < 0.8
    assert patch_similarity(np.ascontiguousarray(faces[0][:, 2:46]), faces[0]) == pytest.approx(1.0, abs=1e-4)
    assert patch_similarity(np.full((48, 48), 90, np.uint8), faces[0]) == 0.0


def test_identical_matches_include_mirror_images(faces):
    index, mirrored = identical_matches(np.stack([faces[3], faces[9][:, ::-1], _recrop(faces[5])]), faces)
    assert index.tolist() == [3, 9, -1]
    assert mirrored.tolist() == [False, True, False]


def _dataset(train: np.ndarray, test: np.ndarray, test_labels: list[int]) -> FerDataset:
    images = np.concatenate([train, test])
    n_train = len(train)
    return FerDataset(
        images=images,
        labels=np.array([i % 7 for i in range(n_train)] + test_labels, dtype=np.int64),
        usage=np.array(["Training"] * n_train + ["PublicTest"] * len(test)),
        rows=np.arange(len(images), dtype=np.int64) + 100,
        checksum="test",
        source="test",
    )


def test_find_twins_on_real_faces(faces):
    train = faces[:40]
    blank = np.zeros((1, 48, 48), dtype=np.uint8)
    test = np.stack([_recrop(train[5]), train[12][:, ::-1], train[30], faces[50], blank[0]])
    twins = find_twins(_dataset(np.concatenate([train, blank]), test, [5, 1, 2, 3, 4]), splits=("PublicTest",))
    assert list(twins.columns) == list(TWIN_COLUMNS)
    assert twins["row"].tolist() == [141, 142, 143, 144, 145]
    has_twin = twins["similarity"] >= TWIN_THRESHOLD
    assert has_twin.tolist() == [True, True, True, False, True]
    assert twins["twin_row"][has_twin].tolist() == [105, 112, 130, 140]
    assert twins["twin_label"][has_twin].tolist() == [5, 5, 2, 5]
    assert twins["mirrored"].tolist()[:3] == [False, True, False]
    assert twins["identical"].tolist() == [False, True, True, False, True]


def test_find_twins_needs_training_faces(faces):
    with pytest.raises(ValueError, match="no Training faces"):
        find_twins(_dataset(faces[:0], faces[:3], [0, 1, 2]), splits=("PublicTest",))


def _twins_table() -> pd.DataFrame:
    return pd.DataFrame({
        "row": [1, 2, 3, 4], "split": ["PublicTest"] * 2 + ["PrivateTest"] * 2, "label": [0, 1, 2, 3],
        "twin_row": [10, 20, 30, 40], "twin_label": [0, 2, 2, 3], "similarity": [0.99, 0.5, 0.95, 0.91],
        "mirrored": [False] * 4, "identical": [False] * 4,
    })


def test_accuracy_with_and_without_twins():
    predictions = pd.DataFrame({"row": [1, 2, 3, 4], "split": ["PublicTest"] * 2 + ["PrivateTest"] * 2,
                                "true": [0, 1, 2, 3], "pred": [0, 0, 2, 0]})
    parts = accuracy_by_twin(predictions, _twins_table())
    assert parts["PublicTest"]["all"]["accuracy"] == 0.5
    assert (parts["PublicTest"]["twin"]["n"], parts["PublicTest"]["twin"]["accuracy"]) == (1, 1.0)
    assert (parts["PublicTest"]["no_twin"]["n"], parts["PublicTest"]["no_twin"]["accuracy"]) == (1, 0.0)
    assert parts["PrivateTest"]["twin"]["n"] == 1  # 0.91 is under the threshold
    assert accuracy_by_twin(predictions, _twins_table(), threshold=0.9)["PrivateTest"]["twin"]["n"] == 2
    with pytest.raises(KeyError, match=r"\[7\]"):
        twin_mask(np.array([1, 7]), _twins_table())


def test_table_round_trip_and_validation(tmp_path):
    path = write_twins(_twins_table(), tmp_path / "twins.csv")
    assert load_twins(path).equals(_twins_table())
    with pytest.raises(FileNotFoundError, match="fer.twins build"):
        load_twins(tmp_path / "missing.csv")
    _twins_table().drop(columns="twin_row").to_csv(tmp_path / "bad.csv", index=False)
    with pytest.raises(ValueError, match="twin_row"):
        load_twins(tmp_path / "bad.csv")
    pd.concat([_twins_table()] * 2).to_csv(tmp_path / "twice.csv", index=False)
    with pytest.raises(ValueError, match="twice"):
        load_twins(tmp_path / "twice.csv")


def test_embedded_table_covers_the_test_faces():
    twins = load_twins()
    faces = load_test_faces()
    assert sorted(twins["row"]) == sorted(faces.rows.tolist())
    assert twins.set_index("row").loc[faces.rows, "label"].tolist() == faces.labels.tolist()


@needs_csv
def test_embedded_table_matches_a_fresh_search():
    """A sample of test faces, searched again against all of Training, gives the committed rows."""
    dataset = load_fer2013(FER2013_CSV)
    committed = load_twins().set_index("row")
    test_positions = np.flatnonzero(dataset.usage != "Training")
    sample = np.random.default_rng(0).choice(test_positions, 150, replace=False)
    keep = np.concatenate([np.flatnonzero(dataset.usage == "Training"), np.sort(sample)])
    subset = FerDataset(dataset.images[keep], dataset.labels[keep], dataset.usage[keep], dataset.rows[keep],
                        dataset.checksum, dataset.source)
    fresh = find_twins(subset).set_index("row")
    expected = committed.loc[fresh.index]
    np.testing.assert_allclose(fresh["similarity"], expected["similarity"], atol=2e-3)
    confident = (fresh["similarity"] - TWIN_THRESHOLD).abs() > 0.01
    assert (fresh["twin_row"][confident] == expected["twin_row"][confident]).mean() > 0.98


def test_report_cli_reads_the_table_and_scores_each_predictions_file(tmp_path, capsys):
    models = tmp_path / "models"
    models.mkdir()
    pd.DataFrame({"row": [1, 2], "split": "PublicTest", "true": [0, 1], "pred": [0, 0]}).to_csv(
        models / "m.predictions.csv", index=False)
    path = write_twins(_twins_table(), tmp_path / "twins.csv")
    assert main(["report", "--out", str(path), "--models", str(models)]) == 0
    out = capsys.readouterr().out
    assert "PublicTest: 1 of 2 faces (50.0%) have a Training twin" in out
    assert "m.predictions.csv" in out and "50.00% 100.00%    0.00%" in out
    assert main(["report", "--out", str(tmp_path / "none.csv")]) == 2


def test_evaluate_reports_accuracy_without_twins(capsys):
    from fer.evaluate import print_evaluation, summarise
    from fer.paths import MODELS_DIR

    predictions = pd.read_csv(MODELS_DIR / "paper_cnn.predictions.csv")
    evaluation = summarise(predictions)
    twins = load_twins()
    for split, metrics in evaluation.metrics_no_twin.items():
        part = predictions[predictions["split"] == split].merge(twins, on="row")
        clean = part[part["similarity"] < TWIN_THRESHOLD]
        assert metrics["n"] == len(clean) < len(part)
        assert metrics["accuracy"] == pytest.approx((clean["true"] == clean["pred"]).mean(), abs=1e-6)
    print_evaluation(evaluation)
    line = next(t for t in capsys.readouterr().out.splitlines() if t.startswith("Without a near-duplicate"))
    assert f"PrivateTest {evaluation.metrics_no_twin['PrivateTest']['accuracy']:.4f}" in line
    assert summarise(predictions, rows_problem="an image folder").metrics_no_twin is None


def test_select_by_twin_keeps_the_chosen_faces():
    table = pd.DataFrame({"row": [4, 1, 2, 3], "value": ["d", "a", "b", "c"]})
    assert select_by_twin(table, _twins_table(), "all") is table
    assert select_by_twin(table, _twins_table(), "twin")["value"].tolist() == ["a", "c"]
    assert select_by_twin(table, _twins_table(), "no_twin")["value"].tolist() == ["d", "b"]
    with pytest.raises(ValueError, match="unknown subset"):
        select_by_twin(table, _twins_table(), "some")


def test_update_cards_records_metrics_without_twins(tmp_path, capsys):
    import json
    import shutil

    from fer.evaluate import no_twin_metrics
    from fer.paths import MODELS_DIR

    (tmp_path / "paper.h5").write_bytes(b"not read")
    shutil.copyfile(MODELS_DIR / "paper_cnn.json", tmp_path / "paper.json")
    shutil.copyfile(MODELS_DIR / "paper_cnn.predictions.csv", tmp_path / "paper.predictions.csv")
    (tmp_path / "bare.h5").write_bytes(b"no card, no predictions: left alone")
    assert main(["report", "--models", str(tmp_path), "--update-cards"]) == 0
    assert f"updated {tmp_path / 'paper.json'}" in capsys.readouterr().out
    card = json.loads((tmp_path / "paper.json").read_text())
    expected = no_twin_metrics(pd.read_csv(tmp_path / "paper.predictions.csv"))
    assert card["metrics_no_twin"] == json.loads(json.dumps(expected))
    assert "metrics_no_twin_tta" not in card
    assert card["metrics"] == json.loads((MODELS_DIR / "paper_cnn.json").read_text())["metrics"]
    assert main(["report", "--models", str(tmp_path), "--update-cards", "--threshold", "0.9"]) == 2


def test_conflicts_first_keeps_the_order_within_each_group():
    order = conflicts_first(np.array([0, 1, 2, 3, 4]), np.array([0, 2, 2, 1, 4]))
    assert order.tolist() == [1, 3, 0, 2, 4]
    assert conflicts_first(np.array([], np.int64), np.array([], np.int64)).tolist() == []


def test_evaluate_survives_a_malformed_twins_table(tmp_path):
    from fer.evaluate import no_twin_metrics
    from fer.paths import MODELS_DIR

    predictions = pd.read_csv(MODELS_DIR / "paper_cnn.predictions.csv")
    bad = tmp_path / "twins.csv"
    bad.write_text("row,split\n1,PublicTest\n")
    assert no_twin_metrics(predictions, bad) is None  # malformed: the evaluation goes on without it
    assert no_twin_metrics(predictions, tmp_path / "missing.csv") is None
    partial = tmp_path / "partial.csv"
    write_twins(_twins_table(), partial)
    assert no_twin_metrics(predictions, partial) is None  # rows it does not cover
    assert no_twin_metrics(predictions)["PrivateTest"]["n"] < 3589


def test_find_twins_against_another_reference_split(faces):
    # Training: faces 0-9; PublicTest: faces 20-24; PrivateTest: a recrop of face 22 (in PublicTest
    # only), a recrop of face 7 (in Training only) and face 40 (in neither).
    images = np.concatenate([faces[:10], faces[20:25], np.stack([_recrop(faces[22]), _recrop(faces[7]), faces[40]])])
    usage = np.array(["Training"] * 10 + ["PublicTest"] * 5 + ["PrivateTest"] * 3)
    dataset = FerDataset(images, np.arange(18) % 7, usage, np.arange(18, dtype=np.int64), "test", "test")
    across = find_twins(dataset, ("PrivateTest",), reference="PublicTest")
    assert (across["similarity"] >= TWIN_THRESHOLD).tolist() == [True, False, False]
    assert across["twin_row"][0] == 12 and across["twin_label"][0] == 12 % 7
    found = find_twins(dataset, ("PrivateTest",), reference="Training")
    assert (found["similarity"] >= TWIN_THRESHOLD).tolist() == [False, True, False]
    assert found["twin_row"][1] == 7
    with pytest.raises(ValueError, match="no PublicTest faces"):
        find_twins(FerDataset(images[:10], np.zeros(10), usage[:10], np.arange(10), "t", "t"), ("Training",),
                   reference="PublicTest")


def test_build_refuses_a_csv_without_fer2013_row_numbers(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("FER_CACHE_DIR", str(tmp_path / "cache"))
    pixels = " ".join(["128"] * 2304)
    subset = tmp_path / "small.csv"
    subset.write_text("emotion,pixels,Usage\n" + "".join(
        f"3,{pixels},{usage}\n" for usage in ("Training", "PublicTest", "PrivateTest")))
    out = tmp_path / "tw" / "t.csv"
    assert main(["build", "--data", str(subset), "--out", str(out), "--models", str(tmp_path)]) == 2
    assert "build it from the full FER2013 CSV" in capsys.readouterr().err
    assert not out.exists()


def test_report_skips_a_predictions_file_it_cannot_score(tmp_path, capsys):
    models = tmp_path / "models"
    models.mkdir()
    pd.DataFrame({"row": [1, 2], "split": "PublicTest", "true": [0, 1], "pred": [0, 0]}).to_csv(
        models / "m.predictions.csv", index=False)
    (models / "empty.predictions.csv").write_text("")
    pd.DataFrame({"row": [99], "split": "PublicTest", "true": [0], "pred": [0]}).to_csv(
        models / "other.predictions.csv", index=False)
    path = write_twins(_twins_table(), tmp_path / "twins.csv")
    assert main(["report", "--out", str(path), "--models", str(models)]) == 0
    out = capsys.readouterr().out
    assert "empty.predictions.csv" in out and "skipped: empty.predictions.csv is empty" in out
    assert "skipped: the twins table does not cover FER2013 rows [99]" in out
    assert "50.00% 100.00%    0.00%" in out  # the good file is still scored
    assert main(["report", "--out", str(path), "--models", str(tmp_path / "nonexistent")]) == 2
    assert "error: no model folder at" in capsys.readouterr().err
