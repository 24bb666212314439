"""Label-issue ranking: confident-learning thresholds, planted errors, FER+ disagreement."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from fer.label_issues import (
    ISSUE_COLUMNS,
    ferplus_disagreement,
    filter_issues,
    per_class_thresholds,
    rank_label_issues,
)
from fer.labels import EMOTIONS, FERPLUS_COLUMNS, FERPLUS_TO_EMOTION


def _softmax(logits: np.ndarray) -> np.ndarray:
    exp = np.exp(logits - logits.max(axis=1, keepdims=True))
    return exp / exp.sum(axis=1, keepdims=True)


def _planted(n: int, classes: int, flip: float, strength: float, seed: int):
    """True labels, noisy given labels (a fraction flipped), out-of-sample-like probabilities."""
    rng = np.random.default_rng(seed)
    truth = rng.integers(0, classes, n)
    given = truth.copy()
    flipped = rng.choice(n, size=int(flip * n), replace=False)
    given[flipped] = (truth[flipped] + rng.integers(1, classes, flipped.size)) % classes
    logits = rng.normal(0.0, 1.0, (n, classes))
    logits[np.arange(n), truth] += strength
    return truth, given, _softmax(logits), flipped


def _precision_at(ranked: pd.DataFrame, planted: np.ndarray, k: int) -> float:
    return float(np.isin(ranked["index"].to_numpy()[:k], planted).mean())


def test_planted_errors_lead_the_ranking():
    _, given, probs, flipped = _planted(1000, 3, 0.05, strength=3.0, seed=0)
    ranked = rank_label_issues(given, probs)
    assert list(ranked.columns) == list(ISSUE_COLUMNS)
    assert len(ranked) == 1000
    assert ranked["score"].is_monotonic_decreasing
    assert _precision_at(ranked, flipped, 25) == 1.0
    assert _precision_at(ranked, flipped, 50) >= 0.85
    # The confident-learning flag is conservative: what it flags is nearly all planted, and it
    # still finds more than half of them.
    flagged = ranked.loc[ranked["is_issue"], "index"].to_numpy()
    assert np.isin(flagged, flipped).mean() >= 0.9
    assert np.isin(flipped, flagged).mean() >= 0.5
    # The suggestion for a flipped label is usually the true class.
    truth, *_ = _planted(1000, 3, 0.05, strength=3.0, seed=0)
    top = ranked.head(40)
    assert (top["suggested"].to_numpy() == truth[top["index"].to_numpy()]).mean() >= 0.9


def test_ferplus_votes_sharpen_a_weak_model():
    truth, given, probs, flipped = _planted(2000, len(EMOTIONS), 0.05, strength=1.0, seed=1)
    rng = np.random.default_rng(2)
    to_ferplus = {emotion: column for column, emotion in FERPLUS_TO_EMOTION.items()}
    columns = [FERPLUS_COLUMNS.index(to_ferplus[e]) for e in EMOTIONS]
    votes = np.zeros((truth.size, 10), dtype=np.uint8)
    for i, label in enumerate(truth):  # A crowd that mostly sees the true emotion.
        picks = np.where(rng.random(10) < 0.7, label, rng.integers(0, len(EMOTIONS), 10))
        np.add.at(votes[i], [columns[p] for p in picks], 1)
    alone = _precision_at(rank_label_issues(given, probs), flipped, 100)
    with_crowd = _precision_at(rank_label_issues(given, probs, votes, weight_ferplus=0.5), flipped, 100)
    assert with_crowd > alone
    assert with_crowd >= 0.9


def test_thresholds_are_mean_self_confidence_per_class():
    labels = np.array([0, 0, 1, 1])
    probs = np.array([[0.9, 0.1, 0.0], [0.7, 0.3, 0.0], [0.4, 0.6, 0.0], [0.2, 0.8, 0.0]])
    np.testing.assert_allclose(per_class_thresholds(labels, probs), [0.8, 0.7, np.inf])


def test_score_formula_on_one_hand_made_case():
    labels = np.array([0, 0, 1, 1])
    probs = np.array([[0.9, 0.1], [0.2, 0.8], [0.3, 0.7], [0.1, 0.9]])
    ranked = rank_label_issues(labels, probs).set_index("index")
    # Sample 1: given 0 with p=0.2 < t0=0.55, class 1 has 0.8 >= t1=0.8: flagged, suggest 1.
    assert ranked.loc[1, "is_issue"]
    assert ranked.loc[1, "suggested"] == 1
    # Thresholds t0 = (0.9 + 0.2) / 2 = 0.55, t1 = (0.7 + 0.9) / 2 = 0.8.
    assert ranked.loc[1, "score"] == pytest.approx((2 + (0.8 - 0.8) - (0.2 - 0.55)) / 4)
    assert not ranked.loc[[0, 2, 3], "is_issue"].any()
    assert rank_label_issues(labels, probs)["index"].iloc[0] == 1


def test_ferplus_disagreement_and_fallback():
    votes = np.zeros((3, 10), dtype=np.uint8)
    votes[0, FERPLUS_COLUMNS.index("happiness")] = 10
    votes[1, FERPLUS_COLUMNS.index("happiness")] = 6
    votes[1, FERPLUS_COLUMNS.index("sadness")] = 2
    votes[1, FERPLUS_COLUMNS.index("contempt")] = 2  # Not an emotion vote: ignored.
    votes[2, FERPLUS_COLUMNS.index("NF")] = 10
    labels = np.full(3, EMOTIONS.index("happy"))
    disagreement = ferplus_disagreement(labels, votes)
    assert disagreement[:2].tolist() == pytest.approx([0.0, 0.25])
    assert np.isnan(disagreement[2])
    probs = np.full((3, 7), 1 / 7)
    ranked = rank_label_issues(labels, probs, votes, weight_ferplus=1.0).set_index("index")
    margin = (2 + (1 / 7 - 1.0) - 0.0) / 4  # other classes were never given: threshold 1.0
    assert ranked.loc[2, "score"] == pytest.approx(margin)  # No emotion vote: model term only.
    assert ranked.loc[1, "score"] == pytest.approx(0.25)
    assert ranked.loc[1, "ferplus_majority"] == EMOTIONS.index("happy")
    assert ranked.loc[2, "ferplus_majority"] == -1


def test_filters_by_class_split_and_flag():
    _, given, probs, _ = _planted(300, 7, 0.1, strength=2.0, seed=3)
    usage = np.array(["PublicTest", "PrivateTest"] * 150)
    ranked = rank_label_issues(given, probs, rows=np.arange(300) + 28709, usage=usage)
    sad = filter_issues(ranked, given="sad", split="PrivateTest", only_flagged=True)
    assert len(sad) > 0
    assert (sad["given"] == EMOTIONS.index("sad")).all()
    assert (sad["split"] == "PrivateTest").all() and sad["is_issue"].all()
    assert sad["score"].is_monotonic_decreasing
    assert (sad["row"] - sad["index"] == 28709).all()
    assert len(filter_issues(ranked, given=[0, "happy"], top=5)) == 5
    with pytest.raises(ValueError, match="unknown split"):
        filter_issues(ranked, split="Validation")
    with pytest.raises(ValueError, match="unknown emotion"):
        filter_issues(ranked, given="joy")


@pytest.mark.parametrize(
    ("labels", "probs", "kwargs", "message"),
    [
        (np.array([0, 3]), np.full((2, 3), 1 / 3), {}, "labels must lie"),
        (np.array([0]), np.full((2, 3), 1 / 3), {}, "labels must have shape"),
        (np.array([0, 1]), np.array([[0.5, np.nan], [0.5, 0.5]]), {}, "finite"),
        (np.array([0, 1]), np.full((2, 3), 1 / 3), {"ferplus_votes": np.zeros((2, 10))}, "7 FER2013 classes"),
        (np.array([0, 1]), np.full((2, 3), 1 / 3), {"weight_ferplus": 1.5}, "weight_ferplus"),
    ],
)
def test_bad_input_is_refused(labels, probs, kwargs, message):
    with pytest.raises(ValueError, match=message):
        rank_label_issues(labels, probs, **kwargs)


def test_hard_class_is_not_mistaken_for_label_errors():
    # Class 2 is hard (the model gives it ~0.45 on its own faces); class 0 and 1 are easy. Planted
    # errors: 20 class-0 faces labelled 1. Against per-class thresholds, the planted errors
    # must outrank the merely-hard class-2 faces.
    rng = np.random.default_rng(3)
    n = 600
    truth = rng.integers(0, 3, n)
    probs = np.empty((n, 3))
    for i, t in enumerate(truth):
        strength = 0.45 if t == 2 else 0.85
        rest = (1 - strength) / 2
        probs[i] = rest
        probs[i, t] = strength
    probs = np.clip(probs + rng.normal(0, 0.03, probs.shape), 0.01, None)
    probs /= probs.sum(axis=1, keepdims=True)
    labels = truth.copy()
    planted = np.flatnonzero(truth == 0)[:20]
    labels[planted] = 1
    top = rank_label_issues(labels, probs)["index"].to_numpy()[:20]
    assert len(set(top) & set(planted)) >= 18


def test_cli_ranks_a_models_test_faces(tmp_path, capsys):
    from fer.label_issues import main
    from fer.paths import MODELS_DIR

    model = MODELS_DIR / "fer_best.h5"
    if not model.with_name("fer_best.predictions_tta.csv").is_file():
        pytest.skip("no released predictions")
    out = tmp_path / "issues.csv"
    assert main(["--model", str(model), "--tta", "--top", "3", "--split", "PrivateTest", "--csv", str(out)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("3589 faces, ") and len(lines) == 4
    assert all(line.startswith("  row ") and "(PrivateTest): labelled " in line for line in lines[1:])
    ranked = pd.read_csv(out)
    assert len(ranked) == 3589 and ranked["score"].is_monotonic_decreasing
    assert main(["--model", str(tmp_path / "none.h5")]) == 2
    assert "error: no predictions for none.h5" in capsys.readouterr().err


def test_issues_table_for_export():
    from fer.label_issues import issues_table

    ranked = rank_label_issues(np.array([0, 1, 2]), np.array([[0.1, 0.8, 0.1], [0.1, 0.8, 0.1], [0.2, 0.2, 0.6]]),
                               rows=np.array([30000, 30001, 30002]), usage=np.array(["PublicTest"] * 3))
    notes = {30000: ("relabel", "happy", "=ann", "+1 blurred"), 5: ("not_face", None, "x", "")}
    twins = {30001: (12, 3, 0.987654)}
    table = issues_table(ranked, np.array([1, 1, 2]), notes, twins)
    assert table["rank"].tolist() == [1, 2, 3]
    assert table["row"].tolist() == ranked["row"].tolist()
    first = table.set_index("row").loc[30000]
    assert (first["given"], first["suggested"], first["predicted"]) == ("angry", "disgust", "disgust")
    assert first[["action", "annotated_label", "annotator", "note"]].tolist() == ["relabel", "happy", "'=ann",
                                                                                  "'+1 blurred"]
    assert table.set_index("row").loc[30002, ["action", "annotator", "note"]].tolist() == ["", "", ""]
    assert set(table["ferplus_majority"]) == {""}  # no FER+ votes: no majority
    assert table["twin_row"].tolist() == [12 if r == 30001 else pd.NA for r in table["row"]]
    assert table.set_index("row").loc[30001, ["twin_label", "twin_similarity"]].tolist() == ["happy", 0.9877]
    assert "twin_row" not in issues_table(ranked, np.array([1, 1, 2]), {}).columns
    with pytest.raises(ValueError, match="predicted"):
        issues_table(ranked, np.array([1, 1]), {})
