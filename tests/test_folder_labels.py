"""Folder-labelled photos scored end to end (``fer.folder_labels``, ``fer.predict --folder-labels``)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from fer.folder_labels import FOLDER_NAMES, folder_label, format_score, largest_face, score_photos, zip_label
from fer.labels import EMOTIONS
from fer.paths import PHOTOS_DIR
from fer.photos import labelled_photos
from fer.pipeline import default_model_path


def face(label: str, side: int) -> dict:
    return {"box": [0, 0, side, side], "label": label}


def test_the_nearest_emotion_folder_labels_a_photo(tmp_path):
    root = tmp_path / "dataset"
    assert folder_label(root / "happy" / "a.jpg", root) == EMOTIONS.index("happy")
    assert folder_label(root / "Sadness" / "s01" / "b.png", root) == EMOTIONS.index("sad")
    assert folder_label(root / "surprised" / "angry" / "c.jpg", root) == EMOTIONS.index("angry"), "nearest wins"
    assert folder_label(root / "contempt" / "d.jpg", root) is None
    assert folder_label(root / "e.jpg", root) is None
    assert folder_label(tmp_path / "fear" / "f.jpg", tmp_path / "fear") == EMOTIONS.index("fear"), "the root counts"
    assert all(0 <= code < len(EMOTIONS) for code in FOLDER_NAMES.values())
    assert zip_label("set/happy/a.jpg") == zip_label("set\\happy\\a.jpg") == EMOTIONS.index("happy")
    assert zip_label("a.jpg", "Surprised.zip") == EMOTIONS.index("surprise") and zip_label("a.jpg", "x.zip") is None


def test_score_uses_the_largest_face_and_counts_faceless_photos_apart(tmp_path):
    root = tmp_path
    assert largest_face([face("sad", 40), face("happy", 90)])["label"] == "happy"
    assert largest_face([]) is None
    photos = [
        (root / "happy" / "1.jpg", [face("sad", 40), face("happy", 90)]),  # right: the big face
        (root / "happy" / "2.jpg", [face("neutral", 80)]),  # wrong
        (root / "sad" / "3.jpg", [face("sad", 60)]),  # right
        (root / "sad" / "4.jpg", ()),  # no face
        (root / "misc" / "5.jpg", [face("fear", 60)]),  # unlabelled
    ]
    score = score_photos(photos, root)
    assert score.metrics.total == 3 and score.labelled == 4 and score.unlabelled == 1
    assert score.faceless == (str(root / "sad" / "4.jpg"),)
    assert score.metrics.accuracy == pytest.approx(2 / 3) and score.accuracy_counting_faceless == pytest.approx(0.5)
    happy, sad, neutral = (EMOTIONS.index(e) for e in ("happy", "sad", "neutral"))
    assert score.metrics.confusion[happy, neutral] == 1 and score.metrics.confusion[sad, sad] == 1
    text = format_score(score, root)
    assert "4 labelled photos, 3 with a face, 1 without, 1 unlabelled" in text
    assert "accuracy 66.7% (2/3)" in text and "50.0% counting photos without a face as wrong" in text
    assert "happy 1/2" in text and "no face: " in text
    empty = score_photos([(root / "x.jpg", [face("sad", 10)])], root)
    assert "no photo is under a folder named after an emotion" in format_score(empty, root)
    assert np.array_equal(empty.metrics.confusion, np.zeros((7, 7)))


@pytest.mark.skipif(not PHOTOS_DIR.is_dir() or not default_model_path().is_file(),
                    reason="needs the sample photos and a released model")
def test_cli_scores_the_labelled_sample_photos_from_their_folders(tmp_path, capsys):
    from fer.predict import main

    root = tmp_path / "labelled"
    photos = labelled_photos(PHOTOS_DIR)
    for name, label, _ in photos:
        (root / label).mkdir(parents=True, exist_ok=True)
        (root / label / name).write_bytes((PHOTOS_DIR / name).read_bytes())
    (root / "unsorted").mkdir()
    (root / "unsorted" / "dogs.jpg").write_bytes((PHOTOS_DIR / "dlib_dogs.jpg").read_bytes())
    (root / "happy" / "broken.jpg").write_bytes(b"not a photo")
    code = main(["-r", "--folder-labels", "--tta", "--csv", str(tmp_path / "faces.csv"), str(root)])
    assert code == 1, "the broken file is reported"
    out = capsys.readouterr().out
    count = len(photos)
    assert f"{count + 1} labelled photos, {count} with a face, 1 without, 1 unlabelled" in out
    right, total = (int(v) for v in out.split("accuracy ")[1].split("(")[1].split(")")[0].split("/"))
    assert total == count and right >= count - 1, out  # `photo_labels.py --tta`: all right for fer_best
    assert f"no face: {Path(root / 'happy' / 'broken.jpg')}" in out



@pytest.mark.skipif(not PHOTOS_DIR.is_dir() or not default_model_path().is_file(),
                    reason="needs the sample photos and a released model")
def test_cli_scores_a_zip_archive_read_in_memory(tmp_path, capsys):
    import zipfile

    from fer.predict import main

    photos = labelled_photos(PHOTOS_DIR)
    archive = tmp_path / "labelled.zip"
    with zipfile.ZipFile(archive, "w") as zipped:
        for name, label, _ in photos:
            zipped.write(PHOTOS_DIR / name, f"set\\{label}\\{name}")  # as some Windows tools store them
        zipped.writestr("__MACOSX/set/._x.jpg", b"resource fork")
    out_dir = tmp_path / "out"
    assert main([str(archive), "--folder-labels", "--tta", "--annotate", str(out_dir)]) == 0
    captured = capsys.readouterr()
    count = len(photos)
    assert f"{count} labelled photos, {count} with a face, 0 without, 0 unlabelled" in captured.out
    assert (out_dir / "labelled_faces.csv").is_file() and str(out_dir / "labelled_faces.csv") in captured.err
    name, label, _ = photos[0]
    assert (out_dir / "set" / label / f"{Path(name).stem}_annotated.jpg").is_file(), "the archive's folders mirrored"
    (tmp_path / "cut.zip").write_bytes(archive.read_bytes()[:100])
    assert main([str(tmp_path / "cut.zip"), "--folder-labels"]) == 1
    assert "cannot read the archive: the file is not a ZIP archive" in capsys.readouterr().out
