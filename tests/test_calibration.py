import hashlib
import json
import shutil

import numpy as np
import pytest

from fer.calibration import (
    apply_temperature,
    brier_score,
    calibration_summary,
    card_temperature,
    fit_temperature,
    main,
    negative_log_likelihood,
    reliability,
)
from fer.evaluate import predictions_path
from fer.labels import NUM_CLASSES
from fer.metadata import metadata_path
from fer.paths import MODELS_DIR

RELEASED = MODELS_DIR / "fer_best.h5"


def _softmax(logits):
    e = np.exp(logits - logits.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def _overconfident(n=20000, power=2.5, seed=0):
    """Labels drawn from calibrated probabilities, then the probabilities sharpened by ``power``."""
    rng = np.random.default_rng(seed)
    calibrated = _softmax(rng.normal(0.0, 1.5, size=(n, NUM_CLASSES)))
    labels = np.minimum((rng.random((n, 1)) > calibrated.cumsum(axis=1)).sum(axis=1), NUM_CLASSES - 1)
    sharp = calibrated**power
    return calibrated, sharp / sharp.sum(axis=1, keepdims=True), labels


def _digest(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_apply_temperature_keeps_argmax_and_sums():
    rng = np.random.default_rng(1)
    p = _softmax(rng.normal(0.0, 2.0, size=(50, NUM_CLASSES)))
    np.testing.assert_allclose(apply_temperature(p, 1.0), p, atol=1e-9)
    for t in (0.3, 2.0, 7.0):
        out = apply_temperature(p, t)
        np.testing.assert_allclose(out.sum(axis=1), 1.0)
        np.testing.assert_array_equal(out.argmax(axis=1), p.argmax(axis=1))
    assert apply_temperature(p, 3.0).max(axis=1).mean() < p.max(axis=1).mean()
    # Zeros (rounded CSV values) are clipped, not turned into NaN.
    assert np.isfinite(apply_temperature(np.array([[1.0, 0, 0, 0, 0, 0, 0]]), 2.0)).all()
    for bad in (0.0, -1.0, float("nan")):
        with pytest.raises(ValueError, match="positive"):
            apply_temperature(p, bad)


def test_nll_and_brier_by_hand():
    p = np.array([[0.5, 0.5], [0.9, 0.1]])
    assert negative_log_likelihood(p, np.array([0, 1])) == pytest.approx((np.log(2) + np.log(10)) / 2)
    # (0.25 + 0.25 + 0.81 + 0.81) / 2
    assert brier_score(p, np.array([0, 1])) == pytest.approx(1.06)


def test_fit_recovers_the_sharpening_power_and_lowers_ece():
    calibrated, sharp, labels = _overconfident(power=2.5)
    t = fit_temperature(sharp, labels)
    assert 2.3 < t < 2.7
    # The search's answer is the NLL minimum to well under 1e-4 relative.
    nll = negative_log_likelihood(apply_temperature(sharp, t), labels)
    for nearby in (t * (1 - 1e-4), t * (1 + 1e-4)):
        assert negative_log_likelihood(apply_temperature(sharp, nearby), labels) > nll
    assert reliability(apply_temperature(sharp, t), labels).ece < reliability(sharp, labels).ece / 3
    # Already calibrated probabilities need no temperature.
    assert fit_temperature(calibrated, labels) == pytest.approx(1.0, abs=0.06)
    with pytest.raises(ValueError, match="bounds"):
        fit_temperature(sharp, labels, bounds=(2.0, 1.0))


def test_reliability_by_hand():
    p = np.array([[0.4, 0.35, 0.25], [0.8, 0.1, 0.1], [0.6, 0.3, 0.1]])
    diagram = reliability(p, np.array([0, 0, 1]), bins=2)
    np.testing.assert_array_equal(diagram.counts, [1, 2])
    np.testing.assert_allclose(diagram.confidence, [0.4, 0.7])
    np.testing.assert_allclose(diagram.accuracy, [1.0, 0.5])
    # (1 * |1 - 0.4| + 2 * |0.5 - 0.7|) / 3
    assert diagram.ece == pytest.approx(1 / 3)
    assert diagram.mce == pytest.approx(0.6)
    as_dict = reliability(p, np.array([0, 0, 1]), bins=4).as_dict()
    assert as_dict["counts"] == [0, 1, 1, 1] and as_dict["accuracy"][0] is None
    json.dumps(as_dict)
    # A bin holds [low, high): a top probability on an edge goes up; 1.0 stays in the last bin.
    on_edges = reliability(np.array([[0.5, 0.5, 0.0], [1.0, 0.0, 0.0]]), np.array([0, 0]), bins=2)
    np.testing.assert_array_equal(on_edges.counts, [0, 2])


def test_reliability_is_zero_when_calibrated():
    # Five faces at 0.8 with four right, five at 0.6 with three right.
    p = np.array([[0.8, 0.2]] * 5 + [[0.6, 0.4]] * 5)
    labels = np.array([0, 0, 0, 0, 1, 0, 0, 0, 1, 1])
    diagram = reliability(p, labels, bins=10)
    assert diagram.counts.sum() == len(labels)
    assert diagram.ece == pytest.approx(0.0, abs=1e-12) and diagram.mce == pytest.approx(0.0, abs=1e-12)
    _, sharp, synthetic = _overconfident(n=1000)
    assert reliability(sharp, synthetic, bins=7).counts.sum() == 1000


def test_negative_labels_are_ignored():
    _, sharp, labels = _overconfident(n=3000, seed=2)
    noise = _softmax(np.random.default_rng(3).normal(0.0, 3.0, size=(500, NUM_CLASSES)))
    p = np.concatenate([sharp, noise])
    masked = np.concatenate([labels, np.full(500, -1)])
    assert negative_log_likelihood(p, masked) == pytest.approx(negative_log_likelihood(sharp, labels))
    assert brier_score(p, masked) == pytest.approx(brier_score(sharp, labels))
    assert fit_temperature(p, masked) == pytest.approx(fit_temperature(sharp, labels))
    assert reliability(p, masked).as_dict() == reliability(sharp, labels).as_dict()
    summary = calibration_summary(p, masked, 2.0)
    assert summary["n"] == 3000 and summary == calibration_summary(sharp, labels, 2.0)
    assert summary["after"]["ece"] < summary["before"]["ece"]


def test_card_temperature():
    assert card_temperature({}, tta=False) == 1.0
    card = {"calibration": {"temperature": 1.4}, "calibration_tta": {"temperature": 1.25}}
    assert card_temperature(card, tta=False) == 1.4 and card_temperature(card, tta=True) == 1.25
    assert card_temperature({"calibration": {"temperature": 1.4}}, tta=True) == 1.0


def test_cli_updates_a_copy_of_the_released_card(tmp_path, capsys):
    sources = [metadata_path(RELEASED), predictions_path(RELEASED), predictions_path(RELEASED, tta=True)]
    before = {path: _digest(path) for path in sources}
    for path in sources:
        shutil.copy(path, tmp_path / path.name)
    model = tmp_path / RELEASED.name  # no weights: the CLI reads only the card and the predictions
    original = json.loads(metadata_path(model).read_text())

    assert main(["--model", str(model), "--update-card", "--bins", "10"]) == 0
    assert "PrivateTest" in capsys.readouterr().out
    card = json.loads(metadata_path(model).read_text())
    entry = card["calibration"]
    assert entry["temperature"] > 0 and entry["fitted_on"] == "PublicTest" and entry["bins"] == 10
    assert entry["command"].startswith("python -m fer.calibration --model ") and "--bins 10" in entry["command"]
    public = entry["splits"]["PublicTest"]
    assert public["n"] == 3589 and public["after"]["nll"] <= public["before"]["nll"]
    assert len(public["reliability_after"]["counts"]) == 10
    assert {k: v for k, v in card.items() if k != "calibration"} == {k: v for k, v in original.items()
                                                                     if k != "calibration"}
    assert card_temperature(card, tta=False) == entry["temperature"]
    assert card_temperature(card, tta=True) == original.get("calibration_tta", {}).get("temperature", 1.0)

    assert main(["--model", str(model), "--tta", "--update-card", "--json"]) == 0
    printed = json.loads(capsys.readouterr().out)
    card = json.loads(metadata_path(model).read_text())
    assert card["calibration_tta"] == printed and card["calibration"] == entry
    assert " --tta " in printed["command"]
    assert {path: _digest(path) for path in sources} == before


def test_cli_missing_files_exit_2(tmp_path, capsys):
    assert main(["--model", str(tmp_path / "nothing.h5")]) == 2
    assert "predictions not found" in capsys.readouterr().err
    shutil.copy(predictions_path(RELEASED), tmp_path / "nocard.predictions.csv")
    assert main(["--model", str(tmp_path / "nocard.h5"), "--update-card"]) == 2
    err = capsys.readouterr().err
    assert "metadata not found" in err and len(err.strip().splitlines()) == 1


def test_calibrate_table_softens_probabilities_and_keeps_predictions():
    import pandas as pd

    from fer.calibration import calibrate_table
    from fer.labels import PROB_COLUMNS

    table = pd.DataFrame({"row": [1, 2], "split": "PublicTest", "true": [0, 3], "pred": [0, 4]})
    probs = np.array([[0.7, 0.05, 0.05, 0.05, 0.05, 0.05, 0.05], [0.01, 0.01, 0.01, 0.3, 0.6, 0.05, 0.02]])
    table[list(PROB_COLUMNS)] = probs
    assert calibrate_table(table, 1.0) is table
    soft = calibrate_table(table, 2.0)
    np.testing.assert_allclose(soft[list(PROB_COLUMNS)].to_numpy(), apply_temperature(probs, 2.0), atol=1e-6)
    assert soft["pred"].tolist() == [0, 4] and table[list(PROB_COLUMNS)].to_numpy()[0, 0] == 0.7  # a copy
