"""The ensemble averages members' probabilities face by face."""

import numpy as np
import pandas as pd
import pytest

from fer.ensemble import average_predictions, main
from fer.labels import PROB_COLUMNS
from fer.paths import MODELS_DIR


def _frame(rows, probs):
    frame = pd.DataFrame({"row": rows, "split": "PublicTest", "true": [0] * len(rows)})
    frame["pred"] = np.asarray(probs).argmax(axis=1)
    for j, column in enumerate(PROB_COLUMNS):
        frame[column] = np.asarray(probs)[:, j]
    return frame


def test_average_is_per_face_mean_and_argmax():
    a = _frame([5, 9], [[0.6, 0.4, 0, 0, 0, 0, 0], [0, 0, 0, 1.0, 0, 0, 0]])
    b = _frame([5, 9], [[0.0, 0.9, 0.1, 0, 0, 0, 0], [0, 0, 0, 0.2, 0.8, 0, 0]])
    out = average_predictions([a, b])
    assert out["pred"].tolist() == [1, 3]  # 0.3 vs 0.65 on the first face; 0.6 vs 0.4 on the second
    assert np.allclose(out[list(PROB_COLUMNS)].to_numpy().sum(axis=1), 1.0)


def test_members_must_cover_the_same_faces():
    a = _frame([5, 9], np.eye(7)[:2])
    with pytest.raises(ValueError, match="different faces"):
        average_predictions([a, _frame([5, 10], np.eye(7)[:2])])
    with pytest.raises(ValueError, match="at least one"):
        average_predictions([])


def test_cli_ensemble_of_released_models(capsys):
    members = [str(MODELS_DIR / "paper_cnn.h5"), str(MODELS_DIR / "fer_best.h5")]
    assert main([*sum((["--model", m] for m in members), []), "--json"]) == 0
    import json

    metrics = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert metrics["PrivateTest"]["n"] == 3589 and 0.5 < metrics["PrivateTest"]["accuracy"] <= 1.0
    assert main(["--model", "models/missing.h5"]) == 2
    assert "model not found" in capsys.readouterr().err


def test_shifted_views_move_the_face_and_repeat_the_border():
    from fer.evaluate import TTA_SHIFTS, shifted

    x = np.arange(2 * 6 * 6, dtype=np.float32).reshape(2, 6, 6, 1)
    down = shifted(x, 2, 0)
    assert down.shape == x.shape
    assert np.array_equal(down[:, 2:], x[:, :-2]) and np.array_equal(down[:, 0], x[:, 0])
    right = shifted(x, 0, -2)
    assert np.array_equal(right[:, :, :-2], x[:, :, 2:])
    assert len(TTA_SHIFTS) == 4 and all(max(map(abs, s)) == 2 for s in TTA_SHIFTS)
