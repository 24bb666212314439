"""fer.evaluate's report: the JSON and the text tables, from a released model's stored predictions."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from fer.evaluate import main, print_evaluation, summarise
from fer.paths import MODELS_DIR

PAPER = MODELS_DIR / "paper_cnn.h5"
needs_paper = pytest.mark.skipif(not PAPER.with_suffix(".json").is_file(), reason="no released paper model")


@pytest.fixture(scope="module")
def paper_evaluation():
    return summarise(pd.read_csv(MODELS_DIR / "paper_cnn.predictions.csv"))


@needs_paper
def test_json_holds_the_ferplus_and_no_twin_metrics_of_the_card(paper_evaluation, capsys):
    print_evaluation(paper_evaluation, as_json=True)
    printed = json.loads(capsys.readouterr().out)
    card = json.loads(PAPER.with_suffix(".json").read_text())
    assert list(printed) == ["PublicTest", "PrivateTest", "metrics_ferplus", "metrics_no_twin"]
    for key in ("metrics_ferplus", "metrics_no_twin"):
        for split in ("PublicTest", "PrivateTest"):
            assert printed[key][split]["accuracy"] == card[key][split]["accuracy"]
            assert printed[key][split]["n"] == card[key][split]["n"]
    assert printed["metrics_ferplus"]["PrivateTest"]["per_class_accuracy"].keys() == {
        "angry", "disgust", "fear", "happy", "sad", "surprise", "neutral"}


@needs_paper
def test_json_of_faces_that_are_not_fer2013s_has_the_splits_only(paper_evaluation, capsys):
    print_evaluation(summarise(paper_evaluation.predictions, rows_problem="an image folder"), as_json=True)
    assert list(json.loads(capsys.readouterr().out)) == ["PublicTest", "PrivateTest"]


@needs_paper
def test_reference_ferplus_prints_the_tables_against_the_crowd(paper_evaluation, capsys):
    print_evaluation(paper_evaluation, reference="ferplus")
    out = capsys.readouterr().out
    ferplus = paper_evaluation.metrics_ferplus["PublicTest"]
    assert out.startswith("Against FER+ majority labels (faces with a vote for an emotion):\n"
                          f"== PublicTest (n={ferplus['n']}) accuracy {ferplus['accuracy']:.4f}")
    plain = paper_evaluation.metrics["PrivateTest"]
    assert "Against FER2013 labels: PublicTest" in out and f"PrivateTest {plain['accuracy']:.4f} (n=3589)" in out
    assert "Without a near-duplicate in Training" in out
    print_evaluation(paper_evaluation)
    assert capsys.readouterr().out.startswith("== PublicTest (n=3589) accuracy")


def test_reference_ferplus_is_for_the_text_tables(capsys):
    with pytest.raises(SystemExit) as stopped:
        main(["--model", str(PAPER), "--json", "--reference", "ferplus"])
    assert stopped.value.code == 2 and "--json holds the FER+ metrics already" in capsys.readouterr().err
