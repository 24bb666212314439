"""Accuracy by face resolution (fer.resolution): the reduction, a face's pixels, the caution."""

import numpy as np
import pytest

from fer.align import FER2013_TEMPLATE
from fer.resolution import RESOLUTIONS, face_resolution, reduce_resolution, resolution_caution

REPORT = {
    "tta": True,
    "PublicTest": [{"size": 48, "accuracy": 0.70}, {"size": 40, "accuracy": 0.67}, {"size": 32, "accuracy": 0.64},
                   {"size": 24, "accuracy": 0.55}],
}


def test_reduce_resolution_keeps_the_size_and_loses_detail():
    rng = np.random.default_rng(0)
    faces = rng.integers(0, 256, (3, 48, 48), dtype=np.uint8)
    assert reduce_resolution(faces, 48) is faces
    for size in RESOLUTIONS[1:]:
        reduced = reduce_resolution(faces, size)
        assert reduced.shape == faces.shape and reduced.dtype == np.uint8
    # Fewer pixels, less detail: the noise's spread falls as the size does.
    spreads = [reduce_resolution(faces, size).std() for size in (40, 24, 16)]
    assert spreads == sorted(spreads, reverse=True)
    flat = np.full((1, 48, 48), 77, np.uint8)
    assert (reduce_resolution(flat, 20) == 77).all()  # a flat face stays flat


@pytest.mark.parametrize("factor", [0.5, 1.0, 2.0, 7.5])
def test_face_resolution_is_the_faces_own_pixels(factor):
    # A face whose landmarks are the template's scaled by k spans 48 k pixels.
    landmarks = FER2013_TEMPLATE * factor + np.array([100.0, 40.0])
    assert face_resolution(landmarks) == pytest.approx(48 * factor, rel=1e-6)


def test_resolution_caution_quotes_the_size_at_or_under_the_face():
    assert resolution_caution(48, REPORT) is None
    assert resolution_caution(41, REPORT) is None  # 40 px: 3 points down, under the 5-point bar
    text = resolution_caution(30, REPORT)  # read at 24 px, never kinder than the face's own
    assert text.startswith("Small face (30 px across, enlarged to 48)")
    assert "reduced to 24 px" in text and "with flip TTA 55%" in text and "against 70%" in text
    assert "reduced to 24 px" in resolution_caution(10, REPORT)  # below the table: its smallest size
    assert resolution_caution(10, None) is None and resolution_caution(10, {"tta": False}) is None
    crowd = resolution_caution(30, {**REPORT, "reference": "ferplus", "tta": False})
    assert "this model is right 55% of the time by the FER+ crowd's labels, against 70%" in crowd


def test_cli_says_what_is_wrong_instead_of_a_traceback(tmp_path, monkeypatch, capsys):
    from fer.resolution import main

    monkeypatch.setenv("FER_CACHE_DIR", str(tmp_path / "cache"))
    with pytest.raises(SystemExit):
        main(["--help"])
    assert capsys.readouterr().out.startswith("usage: python -m fer.resolution")
    assert main(["--model", str(tmp_path / "nope.h5")]) == 2
    assert "error: model not found" in capsys.readouterr().err
    (tmp_path / "junk.h5").write_text("junk\n")
    assert main(["--model", str(tmp_path / "junk.h5")]) == 2
    assert "junk.h5 is not a saved Keras model" in capsys.readouterr().err

    import keras

    model = keras.Sequential([keras.Input((48, 48, 1)), keras.layers.GlobalAveragePooling2D(),
                              keras.layers.Dense(7, activation="softmax")])
    model.save(tmp_path / "tiny.h5")
    (tmp_path / "tiny.json").write_text("{}")
    (tmp_path / "bad.jpg").write_text("not an image\n")
    assert main(["--model", str(tmp_path / "tiny.h5"), "--data", str(tmp_path / "bad.jpg")]) == 2
    assert "error: " in capsys.readouterr().err
    pixels = " ".join(["128"] * 2304)
    (tmp_path / "subset.csv").write_text("emotion,pixels,Usage\n" + "".join(
        f"3,{pixels},{usage}\n" for usage in ("Training", "PublicTest", "PrivateTest")))
    # A subset's row numbers are its own: the FER+ votes of those rows belong to other faces.
    assert main(["--model", str(tmp_path / "tiny.h5"), "--data", str(tmp_path / "subset.csv"),
                 "--reference", "ferplus"]) == 2
    assert "not the 35,887 of the full FER2013 CSV" in capsys.readouterr().err
    # Nor is its table the card's, which the Predict page's cautions quote.
    assert main(["--model", str(tmp_path / "tiny.h5"), "--data", str(tmp_path / "subset.csv"),
                 "--update-card"]) == 2
    assert "--update-card records the FER2013 test splits' table" in capsys.readouterr().err
    assert (tmp_path / "tiny.json").read_text() == "{}"
    (tmp_path / "public.csv").write_text(f"emotion,pixels,Usage\n3,{pixels},PublicTest\n")
    assert main(["--model", str(tmp_path / "tiny.h5"), "--data", str(tmp_path / "public.csv")]) == 2
    assert "error: no PrivateTest faces in" in capsys.readouterr().err
