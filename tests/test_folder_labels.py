"""Folder-labelled photos scored end to end (``fer.folder_labels``, ``fer.predict --folder-labels``)."""

from __future__ import annotations

import zipfile
from pathlib import Path, PurePosixPath

import numpy as np
import pytest
from app_support import zip_bytes

from fer.folder_labels import (
    FOLDER_NAMES,
    ZipPhoto,
    ZipPhotosError,
    analyse_photos,
    folder_label,
    format_score,
    largest_face,
    member_path,
    photos_in_zip,
    score_labelled,
    score_photos,
    zip_label,
)
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
        (root / "happy" / "1.jpg", [face("sad", 40), face("happy", 90)], None),  # right: the big face
        (root / "happy" / "2.jpg", [face("neutral", 80)], None),  # wrong
        (root / "sad" / "3.jpg", [face("sad", 60)], None),  # right
        (root / "sad" / "4.jpg", (), None),  # no face
        (root / "misc" / "5.jpg", [face("fear", 60)], None),  # unlabelled
    ]
    score = score_photos(photos, root)
    assert score.metrics.total == 3 and score.labelled == 4 and score.unlabelled == 1
    assert score.faceless == (str(root / "sad" / "4.jpg"),)
    assert score.metrics.accuracy == pytest.approx(2 / 3) and score.accuracy_counting_faceless == pytest.approx(0.5)
    happy, sad, neutral = (EMOTIONS.index(e) for e in ("happy", "sad", "neutral"))
    assert score.metrics.confusion[happy, neutral] == 1 and score.metrics.confusion[sad, sad] == 1
    text = format_score(score, root)
    assert "4 labelled photos, 3 with a face, 1 without, 0 unreadable, 1 unlabelled" in text
    assert "accuracy 66.7% (2/3)" in text and "50.0% counting photos without a face as wrong" in text
    assert "happy 1/2" in text and "no face: " in text
    empty = score_photos([(root / "x.jpg", [face("sad", 10)], None)], root)
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
    assert f"{count + 1} labelled photos, {count} with a face, 0 without, 1 unreadable, 1 unlabelled" in out
    right, total = (int(v) for v in out.split("accuracy ")[1].split("(")[1].split(")")[0].split("/"))
    assert total == count and right >= count - 1, out  # `photo_labels.py --tta`: all right for fer_best
    assert f"unreadable: {Path(root / 'happy' / 'broken.jpg')} (the file is not an image" in out


@pytest.mark.skipif(not PHOTOS_DIR.is_dir() or not default_model_path().is_file(),
                    reason="needs the sample photos and a released model")
def test_cli_scores_a_zip_archive_read_in_memory(tmp_path, capsys):

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
    assert f"{count} labelled photos, {count} with a face, 0 without, 0 unreadable, 0 unlabelled" in captured.out
    assert (out_dir / "labelled_faces.csv").is_file() and str(out_dir / "labelled_faces.csv") in captured.err
    name, label, _ = photos[0]
    assert (out_dir / "set" / label / f"{Path(name).stem}_annotated.jpg").is_file(), "the archive's folders mirrored"
    (tmp_path / "cut.zip").write_bytes(archive.read_bytes()[:100])
    assert main([str(tmp_path / "cut.zip"), "--folder-labels"]) == 1
    assert "cannot read the archive: the file is not a ZIP archive" in capsys.readouterr().out


def with_header_field(data: bytes, name: str, local_at: int, central_at: int, value: int) -> bytes:
    """The archive with a 2-byte field of entry ``name`` set in its local and central headers."""
    raw, encoded = bytearray(data), name.encode()
    for signature, field_at, name_at in ((b"PK\x03\x04", local_at, 30), (b"PK\x01\x02", central_at, 46)):
        start = raw.find(signature)
        while raw[start + name_at:start + name_at + len(encoded)] != encoded:
            assert start >= 0, f"no header of {name}"
            start = raw.find(signature, start + 1)
        raw[start + field_at:start + field_at + 2] = value.to_bytes(2, "little")
    return bytes(raw)


def test_member_names_become_relative_paths_inside_the_archive():
    assert member_path("set\\happy\\a.jpg") == PurePosixPath("set/happy/a.jpg")
    assert member_path("/abs/sad/y.jpg") == PurePosixPath("abs/sad/y.jpg")
    assert member_path("C:\\temp\\angry\\z.jpg") == member_path("C:temp/angry/z.jpg") == PurePosixPath(
        "temp/angry/z.jpg")
    assert member_path("../../etc/happy/x.jpg") == PurePosixPath("etc/happy/x.jpg")
    assert member_path("a/./b/../happy//x.jpg") == PurePosixPath("a/happy/x.jpg"), "'..' undoes the folder before"
    assert member_path("/").parts == member_path("../..").parts == ()
    assert zip_label("/abs/sad/y.jpg") == EMOTIONS.index("sad")
    assert zip_label("C:\\temp\\angry\\z.jpg") == EMOTIONS.index("angry")


def test_photos_under_absolute_or_dotdot_names_are_kept_under_their_safe_names(tmp_path):
    from fer.predict import expand_inputs

    data = zip_bytes({"../../etc/happy/x.jpg": b"1", "/abs/sad/y.jpg": b"2", "C:\\temp\\angry\\z.jpg": b"3",
                   "a/.hidden/w.jpg": b"4", "../": b""})
    expected = [("abs/sad/y.jpg", b"2"), ("etc/happy/x.jpg", b"1"), ("temp/angry/z.jpg", b"3")]
    assert [(p.name, p.data) for p in photos_in_zip(data)] == expected
    archive = tmp_path / "set.zip"
    archive.write_bytes(data)
    inputs = list(expand_inputs([archive]))
    assert [(i.path.relative_to(archive).as_posix(), i.data) for i in inputs] == expected, "all under the archive"
    assert [folder_label(i.path, archive) for i in inputs] == [EMOTIONS.index(e) for e in ("sad", "happy", "angry")]


def test_a_damaged_entry_costs_only_its_own_photo(tmp_path):
    from fer.predict import expand_inputs

    data = zip_bytes({"happy/crc.jpg": b"JPEG crc", "happy/method.jpg": b"JPEG method", "sad/ok.jpg": b"JPEG ok"})
    data = data.replace(b"JPEG crc", b"JPEG CRC")  # the stored CRC-32 no longer matches
    data = with_header_field(data, "happy/method.jpg", 8, 10, 98)  # PPMd: a method zipfile lacks
    crc, method, ok = photos = photos_in_zip(data)
    assert crc.name == "happy/crc.jpg" and crc.data == b""
    assert crc.error.startswith("cannot be read from the archive (Bad CRC-32")
    assert method.name == "happy/method.jpg" and "cannot be read from the archive (" in method.error
    assert ok == ZipPhoto("sad/ok.jpg", b"JPEG ok")
    # The app keeps each reason (without running the pipeline on nothing); scored, they are unreadable.
    analysed = analyse_photos(None, photos[:2], "set.zip")
    assert [(a.name, a.label, a.error) for a in analysed] == [(p.name, EMOTIONS.index("happy"), p.error)
                                                               for p in photos[:2]]
    score = score_labelled([(a.name, a.label, a.faces, a.error) for a in analysed])
    assert score.unreadable == ((crc.name, crc.error), (method.name, method.error))
    # The CLI gets them as inputs of the archive that carry their reason.
    archive = tmp_path / "set.zip"
    archive.write_bytes(data)
    inputs = list(expand_inputs([archive]))
    assert [(i.path, i.folder, i.error) for i in inputs] == [(archive / p.name, archive, p.error) for p in photos]
    # The guards on the whole archive stay: an encrypted entry still refuses it.
    with pytest.raises(ZipPhotosError, match="happy/crc.jpg is encrypted"):
        photos_in_zip(with_header_field(data, "happy/crc.jpg", 6, 8, 0x1))


def test_unreadable_photos_are_counted_apart_and_accuracy_needs_a_face(tmp_path):
    happy, sad = EMOTIONS.index("happy"), EMOTIONS.index("sad")
    empty = "the file is empty (0 bytes)"
    score = score_labelled([
        ("happy/a.jpg", happy, [face("happy", 50)], None),
        ("happy/b.jpg", happy, [face("happy", 50)], "cannot write the annotated image: disk full"),  # faces found
        ("happy/c.jpg", happy, (), None),
        ("sad/d.jpg", sad, (), empty),
        ("misc/e.jpg", None, (), empty),
    ])
    assert score.metrics.total == 2 and score.faceless == ("happy/c.jpg",) and score.unlabelled == 1
    assert score.unreadable == (("sad/d.jpg", empty),) and score.labelled == 4
    # A broken file says nothing of the model: it is in neither accuracy.
    assert score.accuracy == 1.0 and score.accuracy_counting_faceless == pytest.approx(2 / 3)
    text = format_score(score, tmp_path)
    assert "4 labelled photos, 2 with a face, 1 without, 1 unreadable, 1 unlabelled" in text
    assert "no face: happy/c.jpg" in text and f"unreadable: sad/d.jpg ({empty})" in text
    assert "no face: sad/d.jpg" not in text
    faceless = score_labelled([("happy/c.jpg", happy, (), None), ("sad/d.jpg", sad, (), empty)])
    assert faceless.accuracy is None and faceless.accuracy_counting_faceless is None
    text = format_score(faceless, tmp_path)
    assert "accuracy — (no photo had a face)" in text and "0/0" not in text and "0.0%" not in text
    assert "2 labelled photos, 0 with a face, 1 without, 1 unreadable" in text


@pytest.mark.skipif(not PHOTOS_DIR.is_dir() or not default_model_path().is_file(),
                    reason="needs the sample photos and a released model")
def test_cli_scores_and_annotates_an_archive_with_unsafe_and_damaged_names(tmp_path, capsys):
    from fer.predict import main

    name, label, _ = labelled_photos(PHOTOS_DIR)[0]
    photo = (PHOTOS_DIR / name).read_bytes()
    data = zip_bytes({f"../../etc/{label}/x.jpg": photo, f"/abs/{label}/y.jpg": photo,
                   f"C:\\temp\\{label}\\z.jpg": photo, f"{label}/crc.jpg": b"JPEG crc",
                   f"{label}/empty.jpg": b""})
    archive = tmp_path / "set.zip"
    archive.write_bytes(data.replace(b"JPEG crc", b"JPEG CRC"))
    out_dir = tmp_path / "out"
    assert main([str(archive), "--folder-labels", "--annotate", str(out_dir)]) == 1, "two photos are unreadable"
    out = capsys.readouterr().out
    assert "5 labelled photos, 3 with a face, 0 without, 2 unreadable, 0 unlabelled" in out
    assert f"unreadable: {archive / label / 'crc.jpg'} (cannot be read from the archive (Bad CRC-32" in out
    assert f"unreadable: {archive / label / 'empty.jpg'} (the file is empty" in out
    for folder, stem in (("etc", "x"), ("abs", "y"), ("temp", "z")):
        assert (out_dir / folder / label / f"{stem}_annotated.jpg").is_file()


def test_cli_says_once_why_an_archive_gave_nothing(tmp_path, capsys):
    from fer.predict import main

    archive = tmp_path / "notzip.zip"
    archive.write_bytes(b"not a ZIP archive")
    if not default_model_path().is_file():
        pytest.skip("needs a released model (an unreadable archive is still an input to analyse)")
    assert main([str(archive), "--folder-labels"]) == 1, "an unreadable archive is an unreadable input"
    captured = capsys.readouterr()
    assert "cannot read the archive: the file is not a ZIP archive" in captured.out
    assert "no photos" not in captured.err, "the archive's error says it all"
    empty = tmp_path / "empty.zip"
    empty.write_bytes(zip_bytes({"notes.txt": b"no photo here"}))
    assert main([str(empty), "--model", str(tmp_path / "never_loaded.h5")]) == 2, "nothing to analyse"
    assert f"{empty}: no photos (expected" in capsys.readouterr().err


def test_photo_table_keeps_formula_like_names_as_text():
    from fer.folder_labels import AnalysedPhoto, photo_table

    table = photo_table([AnalysedPhoto("=cmd.jpg", 3, (), None, 0.0, None, "=cmd.jpg cannot be read"),
                         AnalysedPhoto("happy/a.jpg", 3, (), None, 0.0, None, None)])
    assert table["photo"].tolist() == ["'=cmd.jpg", "happy/a.jpg"]
    assert table["error"].tolist() == ["'=cmd.jpg cannot be read", ""]

