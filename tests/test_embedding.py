"""The feature-space map of the test faces (fer.embedding)."""

import numpy as np
import pandas as pd
import pytest

from fer.data import file_sha256
from fer.embedding import (
    FaceMap,
    affinities,
    build_map,
    embedding_path,
    load_map,
    map_table,
    nearest,
    neighbour_agreement,
    neighbourhood_kept,
    principal_components,
    save_map,
    squared_distances,
    tsne,
)
from fer.labels import EMOTIONS, EVAL_SPLITS
from fer.paths import MODELS_DIR


def blobs(seed: int = 0, per: int = 60, dims: int = 10) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(3, dims)) * 6
    points = np.concatenate([c + rng.normal(size=(per, dims)) for c in centres]).astype(np.float32)
    return points, np.repeat(np.arange(3), per)


def test_each_point_reaches_the_perplexity():
    from fer.embedding import conditional_affinities

    points, _ = blobs()
    for perplexity in (5.0, 10.0, 30.0):
        _, p = conditional_affinities(squared_distances(points), perplexity)
        entropy = -(p * np.log(np.maximum(p, 1e-300))).sum(axis=1)
        np.testing.assert_allclose(np.exp(entropy), perplexity, rtol=1e-3)


def test_affinities_are_a_symmetric_distribution():
    points, _ = blobs()
    p = affinities(squared_distances(points), perplexity=10)
    assert p.shape == (180, 180)
    np.testing.assert_allclose(p, p.T, atol=1e-9)
    assert p.sum() == pytest.approx(1.0, abs=1e-4) and (p > 0).all()
    # Most of a point's affinity stays within its own blob.
    same = np.equal.outer(np.repeat(np.arange(3), 60), np.repeat(np.arange(3), 60))
    assert p[same].sum() > 0.99


def test_tsne_keeps_separate_groups_apart_and_is_deterministic():
    points, labels = blobs()
    layout = tsne(points, perplexity=10, iterations=600)
    assert layout.shape == (180, 2) and layout.dtype == np.float32
    assert neighbour_agreement(layout, labels, k=5).mean() > 0.98
    np.testing.assert_array_equal(layout, tsne(points, perplexity=10, iterations=600))
    # A random layout keeps about a third of the labels' neighbourhoods, not all of them.
    scrambled = np.random.default_rng(1).normal(size=layout.shape)
    assert neighbour_agreement(scrambled, labels, k=5).mean() < 0.6


def test_principal_components_order_and_sign():
    points, _ = blobs(dims=6)
    coords, share = principal_components(points, 3)
    assert coords.shape == (180, 3) and (np.diff(share) <= 0).all() and share.sum() <= 1.0
    again, _ = principal_components(points.copy(), 3)
    np.testing.assert_allclose(coords, again, atol=1e-5)
    assert np.var(coords[:, 0]) >= np.var(coords[:, 1])


def test_nearest_ranks_by_cosine_and_skips_the_query():
    features = np.array([[1, 0], [0.9, 0.1], [0, 1], [-1, 0], [1, 0.01]], dtype=np.float32)
    assert nearest(features, features[0], 2, exclude=0).tolist() == [4, 1]
    assert nearest(features, features[0], 10, exclude=0).tolist() == [4, 1, 2, 3]
    assert nearest(features, features[3], 1).tolist() == [3]


def test_neighbourhood_kept_is_one_for_the_identity_and_low_for_noise():
    points = np.random.default_rng(0).normal(size=(200, 2)).astype(np.float32)
    assert neighbourhood_kept(points, points, k=5) == 1.0
    assert neighbourhood_kept(points, np.random.default_rng(1).normal(size=(200, 2)), k=5) < 0.2


def _small_map() -> FaceMap:
    return FaceMap(rows=np.array([28709, 28710, 32298]), split=np.array(["PublicTest", "PublicTest", "PrivateTest"]),
                   xy=np.array([[0, 0], [1, 1], [2, 2]], np.float32), features=np.eye(3, 4, dtype=np.float16),
                   model_sha256="ab" * 32, neighbourhood_kept={"PublicTest": 0.5, "PrivateTest": 0.25})


def test_save_and_load_round_trip(tmp_path):
    face_map = _small_map()
    loaded = load_map(save_map(face_map, tmp_path / "m.embedding.npz"))
    for name in ("rows", "split", "xy", "features"):
        np.testing.assert_array_equal(getattr(loaded, name), getattr(face_map, name))
    assert loaded.model_sha256 == face_map.model_sha256 and loaded.neighbourhood_kept == face_map.neighbourhood_kept
    assert loaded.positions("PublicTest").tolist() == [0, 1]
    with pytest.raises(FileNotFoundError):
        load_map(tmp_path / "missing.npz")
    np.savez(tmp_path / "other.npz", a=np.zeros(2))
    with pytest.raises(ValueError, match="not a face map"):
        load_map(tmp_path / "other.npz")


def test_map_table_joins_the_predictions():
    predictions = pd.DataFrame({"row": [28709, 28710, 32298], "split": ["PublicTest", "PublicTest", "PrivateTest"],
                                "true": [0, 3, 6], "pred": [0, 4, 6]})
    for j, emotion in enumerate(EMOTIONS):
        predictions[f"p_{emotion}"] = [0.7 if j == p else 0.05 for p in predictions["pred"]]
    table = map_table(_small_map(), predictions, "PublicTest")
    assert table["row"].tolist() == [28709, 28710] and table["correct"].tolist() == [True, False]
    assert table["position"].tolist() == [0, 1] and table["confidence"].tolist() == pytest.approx([0.7, 0.7])
    assert table["reference"].tolist() == [0, 3]  # FER2013's labels unless told otherwise
    # Other reference labels (-1: none) decide right and wrong; FER2013's stay in "true".
    reference = pd.Series([-1, 4, 6], index=[28709, 28710, 32298])
    table = map_table(_small_map(), predictions, "PublicTest", reference)
    assert table["reference"].tolist() == [-1, 4] and table["true"].tolist() == [0, 3]
    assert table["correct"].tolist() == [False, True]


def test_build_map_of_a_real_model(tmp_path):
    from app_support import make_model_folder

    model = make_model_folder(tmp_path / "models")
    face_map = build_map(model, iterations=5)
    assert len(face_map.rows) == 7178 and set(face_map.split) == set(EVAL_SPLITS)
    assert face_map.features.shape == (7178, 4) and face_map.features.dtype == np.float16  # tiny: 4 features
    assert np.isfinite(face_map.xy).all() and face_map.model_sha256 == file_sha256(model)
    assert set(face_map.neighbourhood_kept) == set(EVAL_SPLITS)
    assert embedding_path(model).name == "tiny.embedding.npz"


MAPPED = sorted(MODELS_DIR.glob("*.embedding.npz"))


@pytest.mark.skipif(not MAPPED, reason="no map of a released model")
@pytest.mark.parametrize("map_path", MAPPED, ids=lambda p: p.name)
def test_released_maps_match_their_models_and_group_their_predictions(map_path):
    from fer.testset import load_test_faces

    model = map_path.with_name(map_path.name.replace(".embedding.npz", ".h5"))
    face_map = load_map(map_path)
    assert face_map.model_sha256 == file_sha256(model), f"rebuild: python -m fer.embedding build --model {model}"
    np.testing.assert_array_equal(face_map.rows, load_test_faces().rows)
    predictions = pd.read_csv(model.with_name(model.stem + ".predictions.csv"))
    for split in EVAL_SPLITS:
        table = map_table(face_map, predictions, split)
        assert len(table) == 3589
        # Faces the model calls alike sit together: most 2-D neighbours share the prediction
        # (83% for fer_best, 70% for the paper CNN on PrivateTest; a random layout gives ~20%).
        points = table[["x", "y"]].to_numpy()
        assert neighbour_agreement(points, table["pred"].to_numpy()).mean() > 0.65
        assert face_map.neighbourhood_kept[split] > 0.2


def test_map_report_counts_neighbours():
    from fer.embedding import map_report

    rng = np.random.default_rng(0)
    n = 40
    # Two tight groups far apart: one of faces predicted 0 with copies in Training, one predicted 1.
    xy = np.concatenate([rng.normal(size=(n // 2, 2)), rng.normal(size=(n // 2, 2)) + 100]).astype(np.float32)
    face_map = FaceMap(rows=np.arange(n), split=np.array(["PrivateTest"] * n), xy=xy,
                       features=np.zeros((n, 2), np.float16), model_sha256="", neighbourhood_kept={"PrivateTest": 0.5})
    predictions = pd.DataFrame({"row": np.arange(n), "split": "PrivateTest", "true": [0] * 30 + [1] * 10,
                                "pred": [0] * 20 + [1] * 20})
    for j, emotion in enumerate(EMOTIONS):
        predictions[f"p_{emotion}"] = (predictions["pred"] == j).astype(float)
    report = map_report(face_map, predictions, twin_rows=set(range(20)), k=5)
    entry = report["PrivateTest"]
    assert set(report) == {"PrivateTest"} and entry["faces"] == n
    assert entry["same_prediction"] == 1.0 and entry["copies"] == 0.5
    assert entry["copies_next_to_copies"] == 1.0 and entry["copies_next_to_others"] == 0.0
    assert 0.5 < entry["same_label"] < 1.0  # ten faces of the second group carry label 0


@pytest.mark.skipif(not MAPPED, reason="no map of a released model")
def test_report_cli_prints_each_split(capsys):
    from fer.embedding import main

    model = MAPPED[0].with_name(MAPPED[0].name.replace(".embedding.npz", ".h5"))
    assert main(["report", "--model", str(model)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert [line.split(" (")[0] for line in out] == list(EVAL_SPLITS)
    assert all("share its prediction" in line and "copy in Training" in line for line in out)


def test_cli_checks_iterations_and_makes_the_output_folder_first(tmp_path, monkeypatch, capsys):
    from fer import embedding

    (tmp_path / "m.h5").write_bytes(b"not read: build_map is replaced")
    for bad in ("0", "-3"):
        with pytest.raises(SystemExit) as stopped:
            embedding.main(["build", "--model", str(tmp_path / "m.h5"), "--iterations", bad])
        assert stopped.value.code == 2 and "--iterations: must be at least 1" in capsys.readouterr().err

    def build_map_in_new_folder(model_path, iterations):
        assert (tmp_path / "emb" / "deeper").is_dir(), "the folder must exist before the minute of t-SNE"
        return _small_map()

    monkeypatch.setattr(embedding, "build_map", build_map_in_new_folder)
    out = tmp_path / "emb" / "deeper" / "m.embedding.npz"
    assert embedding.main(["build", "--model", str(tmp_path / "m.h5"), "--out", str(out)]) == 0
    assert load_map(out).rows.tolist() == _small_map().rows.tolist()


def test_report_without_a_map_says_how_to_build_one(tmp_path, capsys):
    from fer.embedding import main

    model = tmp_path / "m.h5"
    model.write_bytes(b"not read: there is no map")
    assert main(["report", "--model", str(model)]) == 2
    assert capsys.readouterr().err == (f"error: no map at {tmp_path / 'm.embedding.npz'}: build it first with "
                                       f"`python -m fer.embedding build --model {model}` (several minutes)\n")
    elsewhere = tmp_path / "maps" / "m.npz"
    assert main(["report", "--model", str(model), "--out", str(elsewhere)]) == 2
    assert f"`python -m fer.embedding build --model {model} --out {elsewhere}`" in capsys.readouterr().err
