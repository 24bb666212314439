"""The Compare page and fer.compare: paired outcomes, McNemar's exact test, the face groups."""


import numpy as np
import pandas as pd
import pytest
from app_support import (
    open_page,
    shared_model_folder,
    synthetic_predictions,
    texts,
    two_model_folder,
    use_app_env,
)

from fer.compare import GROUPS, compare, holm, main, mcnemar_exact, per_class
from fer.labels import EMOTIONS
from fer_app.explorer_view import FACES_PER_PAGE, p_text, points_text


def test_mcnemar_exact_matches_hand_computed_binomial_tails():
    assert mcnemar_exact(0, 0) == 1.0
    assert mcnemar_exact(5, 5) == 1.0
    # 1 vs 9 of 10 discordant faces: 2 * (C(10,0) + C(10,1)) / 2**10 = 22 / 1024.
    assert mcnemar_exact(1, 9) == pytest.approx(22 / 1024)
    assert mcnemar_exact(9, 1) == mcnemar_exact(1, 9)
    assert mcnemar_exact(0, 20) == pytest.approx(2 / 2**20)
    assert 0.5 < mcnemar_exact(48, 52) <= 1.0
    with pytest.raises(ValueError):
        mcnemar_exact(-1, 3)


def _table(true, pred, rows=None, split="PrivateTest"):
    rows = list(range(len(true))) if rows is None else rows
    table = pd.DataFrame({"row": rows, "split": split, "true": true, "pred": pred})
    for j, e in enumerate(EMOTIONS):
        table[f"p_{e}"] = (np.asarray(pred) == j).astype(float)
    return table


def test_compare_counts_paired_outcomes():
    a = _table([0, 1, 2, 3, 4], [0, 1, 0, 0, 4])
    b = _table([0, 1, 2, 3, 4], [0, 0, 2, 3, 0])
    comparison = compare(a, b.iloc[::-1], "PrivateTest")  # row order does not matter
    counts = {g: comparison.count(g) for g in GROUPS}
    assert counts == {"only_b": 2, "only_a": 2, "both_wrong": 0, "both_right": 1}
    assert comparison.accuracy_a == comparison.accuracy_b == 0.6
    assert comparison.p_value == 1.0
    assert comparison.faces.set_index("row").loc[2, "group"] == "only_b"
    assert "McNemar exact p = 1" in comparison.summary()
    classes = per_class(comparison)
    assert classes.loc["fear", "B - A"] == 1.0 and classes.loc["fear", "faces"] == 1
    assert np.isnan(classes.loc["neutral", "A"]) and np.isnan(classes.loc["neutral", "p (Holm)"])  # no face
    assert (classes["p (Holm)"].dropna() >= classes["p"].dropna()).all()
    with pytest.raises(ValueError, match="different"):
        compare(a, b.iloc[:3], "PrivateTest")
    with pytest.raises(ValueError, match="labels"):
        compare(a, _table([1, 1, 2, 3, 4], [0, 0, 2, 3, 0]), "PrivateTest")
    with pytest.raises(ValueError, match="no PublicTest"):
        compare(a, b, "PublicTest")
    with pytest.raises(ValueError, match="p_angry"):
        compare(a.drop(columns="p_angry"), b, "PrivateTest")


def test_holm_adjusts_step_down_and_keeps_nan():
    adjusted = holm(np.array([0.01, 0.04, np.nan, 0.03, 0.5]))
    # Sorted 0.01, 0.03, 0.04, 0.5 with m = 4: 0.04, max(0.04, 0.09), max(0.09, 0.08), max(0.09, 0.5).
    np.testing.assert_allclose(adjusted[[0, 3, 1, 4]], [0.04, 0.09, 0.09, 0.5])
    assert np.isnan(adjusted[2])


def test_interval_and_order_of_the_faces():
    true = [0] * 6
    a = _table(true, [0, 0, 1, 1, 1, 0])
    b = _table(true, [1, 0, 0, 0, 1, 0])
    a.loc[2, ["p_angry", "p_disgust"]] = [0.4, 0.6]  # A nearly right on face 2, far off on face 3
    comparison = compare(a, b, "PrivateTest")
    low, high = comparison.difference_interval()
    assert low < (comparison.accuracy_b - comparison.accuracy_a) < high
    # Two faces only B gets right: face 3 (true-label probability 0 -> 1) before face 2 (0.4 -> 1).
    assert comparison.ordered("only_b")["row"].tolist() == [3, 2]
    assert comparison.ordered("both_wrong")["row"].tolist() == [4]
    with pytest.raises(ValueError, match="unknown group"):
        comparison.ordered("some")


def test_cli_on_the_released_predictions(capsys):
    from fer.paths import MODELS_DIR

    a, b = MODELS_DIR / "paper_cnn.predictions.csv", MODELS_DIR / "fer_best.predictions_tta.csv"
    assert main([str(a), str(b)]) == 0
    out = capsys.readouterr().out
    expected = compare(pd.read_csv(a), pd.read_csv(b), "PrivateTest")
    assert expected.summary() in out and "disgust" in out
    assert main([str(a), str(b), "--faces", "no_twin", "--split", "PublicTest"]) == 0
    assert "n=2743" in capsys.readouterr().out
    assert main([str(a), str(a.with_name("missing.csv"))]) == 2


def test_p_values_and_differences_share_one_text_format():
    assert [p_text(p) for p in (0.0203, 0.00172, 9.7e-7, 2.91e-6, 1.1e-45, 1.0, np.nan)] == [
        "0.02", "0.0017", "9.7e-7", "2.9e-6", "1.1e-45", "1", "–"]
    assert [points_text(d) for d in (0.0152, -0.163, 0.0, np.nan)] == ["+1.5 pts", "-16.3 pts", "+0.0 pts", "–"]


def displayed(frame) -> pd.DataFrame:
    """The text a Styler-formatted ``st.dataframe`` shows in its cells."""
    from streamlit.dataframe_util import convert_arrow_bytes_to_pandas_df

    return convert_arrow_bytes_to_pandas_df(frame.proto.arrow_data.styler.display_values)


@pytest.fixture
def two_models(monkeypatch, tmp_path, tmp_path_factory):
    folder = two_model_folder(tmp_path, tmp_path_factory)
    use_app_env(monkeypatch, tmp_path, folder)
    return folder


def test_compare_page(two_models):
    at = open_page("pages/compare.py")
    assert at.title[0].value == "Compare two models"
    (name_b,) = at.selectbox(key="compare_b").options  # B: the model not chosen in the sidebar
    name_a = {"tiny": "other", "other": "tiny"}[name_b]
    a = pd.read_csv(two_models / f"{name_a}.predictions.csv")
    b = pd.read_csv(two_models / f"{name_b}.predictions.csv")
    expected = compare(a, b, "PrivateTest")
    assert expected.count("only_a") and expected.count("only_b")  # the two tables really differ
    metrics = {m.label: m.value for m in at.metric}
    assert metrics[f"A: {name_a}"] == f"{expected.accuracy_a:.1%}"
    assert metrics[f"B: {name_b}"] == f"{expected.accuracy_b:.1%}"
    assert metrics["McNemar exact p"] == p_text(expected.p_value)
    assert at.dataframe[0].value.shape == (7, 6)
    # The per-class table shows the p-values as the metric does, and B - A in points.
    shown = displayed(at.dataframe[0])
    table = per_class(expected)
    for column in ("p", "p (Holm)"):
        assert shown[column].tolist() == [p_text(v) for v in table[column]]
    assert shown["B - A"].tolist() == [points_text(v) for v in table["B - A"]]
    assert all(t.endswith(" pts") for t in shown["B - A"])
    assert at.dataframe[0].value["p"].tolist() == table["p"].tolist()  # still numbers: the grid sorts by them
    only_b = expected.count("only_b")
    assert f"B right, A wrong: {only_b} faces" in texts(at.subheader)
    captions = at.image[0].captions
    assert len(captions) == min(FACES_PER_PAGE, only_b)
    rows = [int(c.split(" ")[1]) for c in captions]
    assert rows == expected.ordered("only_b")["row"].tolist()[:FACES_PER_PAGE]

    at.segmented_control(key="compare_group").set_value("both_wrong").run()
    assert not at.exception
    assert f"both wrong: {expected.count('both_wrong')} faces" in texts(at.subheader)
    at.segmented_control(key="compare_twins").set_value("no_twin").run()
    assert not at.exception
    from fer.twins import load_twins, select_by_twin

    twins = load_twins()
    clean = compare(select_by_twin(a, twins, "no_twin"), select_by_twin(b, twins, "no_twin"), "PrivateTest")
    assert f"both wrong: {clean.count('both_wrong')} faces" in texts(at.subheader)
    assert {m.label: m.value for m in at.metric}[f"A: {name_a}"] == f"{clean.accuracy_a:.1%}"
    # Turned heads only, on top of that: both models' faces are cut down alike.
    from fer.pose import load_pose_table, select_by_yaw

    at.segmented_control(key="compare_pose").set_value("turned").run()
    assert not at.exception
    poses = load_pose_table()
    turned_a = select_by_yaw(select_by_twin(a, twins, "no_twin"), poses, "turned")
    turned = compare(turned_a, b[b["row"].isin(turned_a["row"])], "PrivateTest")
    assert f"both wrong: {turned.count('both_wrong')} faces" in texts(at.subheader)
    assert {m.label: m.value for m in at.metric}[f"B: {name_b}"] == f"{turned.accuracy_b:.1%}"
    assert all(" · yaw " in c for c in at.image[0].captions)


def test_compare_captions_show_a_face_s_annotation(monkeypatch, tmp_path, tmp_path_factory):
    from fer.annotations import AnnotationStore

    db = use_app_env(monkeypatch, tmp_path, two_model_folder(tmp_path, tmp_path_factory))
    at = open_page("pages/compare.py")
    assert not any("✎" in c for c in at.image[0].captions)
    row = int(at.image[0].captions[1].split(" ")[1])
    AnnotationStore(db).add(row, "relabel", "sad", annotator="ann")
    at.run()  # annotations are read afresh on every run
    assert not at.exception
    captions = {int(c.split(" ")[1]): c for c in at.image[0].captions}
    assert captions[row].endswith(" · ✎ relabelled sad (ann)")
    assert not any("✎" in c for r, c in captions.items() if r != row)


def test_compare_page_with_one_model(monkeypatch, tmp_path, tmp_path_factory):
    use_app_env(monkeypatch, tmp_path, shared_model_folder(tmp_path_factory))
    at = open_page("pages/compare.py")
    assert any("Only `tiny.h5` has per-image predictions" in t for t in texts(at.info))


def test_compare_page_flip_tta_needs_both_tables(two_models):
    at = open_page("pages/compare.py")
    assert at.toggle(key="compare_tta").disabled
    synthetic_predictions(seed=4).to_csv(two_models / "tiny.predictions_tta.csv", index=False)
    synthetic_predictions(seed=5).to_csv(two_models / "other.predictions_tta.csv", index=False)
    at = open_page("pages/compare.py")
    assert not at.toggle(key="compare_tta").disabled
    at.toggle(key="compare_tta").set_value(True).run()
    assert not at.exception
    (name_b,) = at.selectbox(key="compare_b").options
    name_a = {"tiny": "other", "other": "tiny"}[name_b]
    expected = compare(pd.read_csv(two_models / f"{name_a}.predictions_tta.csv"),
                       pd.read_csv(two_models / f"{name_b}.predictions_tta.csv"), "PrivateTest")
    assert {m.label: m.value for m in at.metric}["McNemar exact p"] == p_text(expected.p_value)
    assert f"B right, A wrong: {expected.count('only_b')} faces" in texts(at.subheader)
    # B loses its flip-TTA table: the switch turns off with its reason, not a dead end of errors.
    (two_models / f"{name_b}.predictions_tta.csv").unlink()
    at.run()
    assert not at.exception and not at.error
    assert at.toggle(key="compare_tta").disabled and not at.toggle(key="compare_tta").value
    assert at.metric
