"""AppTest of the Your photos page: a ZIP of photos in emotion folders, scored and browsable."""

from __future__ import annotations

import io
import zipfile

import pytest
from app_support import PHOTOS_DIR, open_page, shared_model_folder, texts, use_app_env, zip_bytes

from fer.folder_labels import ZipPhoto, photos_in_zip
from fer.labels import EMOTIONS
from fer.photos import labelled_photos

needs_photos = pytest.mark.skipif(not PHOTOS_DIR.is_dir(), reason="needs ../shared/data/photos")


@pytest.fixture
def app_env(monkeypatch, tmp_path, tmp_path_factory):
    return use_app_env(monkeypatch, tmp_path, shared_model_folder(tmp_path_factory))


def labelled_archive() -> tuple[bytes, int]:
    """The labelled sample photos in emotion folders, plus a faceless, a broken and stray files."""
    entries = {f"set/{label}/{name}": (PHOTOS_DIR / name).read_bytes() for name, label, _ in labelled_photos()}
    dogs = (PHOTOS_DIR / "dlib_dogs.jpg").read_bytes()
    entries.update({
        "set/sad/dogs.jpg": dogs,  # labelled, no face
        "set/unsorted/dogs.jpg": dogs,  # no emotion folder
        "set/happy/broken.jpg": b"not a photo",  # labelled, unreadable
        "__MACOSX/set/happy/._x.jpg": b"resource fork",  # skipped
        "set/happy/notes.txt": b"skipped",
    })
    return zip_bytes(entries), len(labelled_photos())


def test_photos_in_zip_skips_what_is_not_a_photo_and_refuses_bad_archives():
    data = zip_bytes({"a/happy/x.jpg": b"1", "a/.hidden/y.jpg": b"2", "__MACOSX/a/._x.jpg": b"3", "a/readme.md": b"4",
                    "a/sad/": b""})
    assert photos_in_zip(data) == [ZipPhoto("a/happy/x.jpg", b"1")]
    from fer.folder_labels import ZipPhotosError

    with pytest.raises(ZipPhotosError, match="not a ZIP archive"):
        photos_in_zip(b"PK\x03\x04 cut short")
    many = zip_bytes({f"happy/{i}.jpg": b"x" for i in range(5)})
    with pytest.raises(ZipPhotosError, match="holds 5 photos; the limit is 4"):
        photos_in_zip(many, max_photos=4)
    # A bomb: 50 MB of zeros compresses to ~50 KB; its declared size is refused before reading.
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as zipped:
        zipped.writestr("happy/big.png", b"\0" * 50_000_000)
    assert len(buffer.getvalue()) < 200_000
    with pytest.raises(ZipPhotosError, match="50 MB decompressed; the limit is 10 MB"):
        photos_in_zip(buffer.getvalue(), max_bytes=10_000_000)


def test_page_asks_for_an_zip_bytes(app_env):
    at = open_page("pages/your_photos.py")
    assert at.title[0].value == "Score the model on your own photos"
    assert {t.lstrip(".") for t in at.file_uploader(key="yours_upload").allowed_type} == {"zip"}
    assert any("Upload a ZIP" in t for t in texts(at.info))


@needs_photos
def test_an_archive_is_scored_and_its_cells_browsed(app_env):
    data, labelled = labelled_archive()
    at = open_page("pages/your_photos.py")
    at.file_uploader(key="yours_upload").set_value([("my set.zip", data, "application/zip")])
    at.run()
    assert not at.exception
    summary = " ".join(texts(at.markdown))
    assert f"**{labelled + 2}** labelled photos: **{labelled}** with a face, **1** without" in summary
    assert "**1** unreadable" in summary
    assert "**1** outside any emotion folder" in summary
    analysed = at.session_state["yours_photos"]
    matrix = at.dataframe(key="yours_cell").value
    assert list(matrix.columns) == list(EMOTIONS) and int(matrix.to_numpy().sum()) == labelled
    happy_row = matrix.loc["happy"]
    predicted = EMOTIONS.index(happy_row.idxmax())
    at.session_state["yours_cell"] = {"selection": {"cells": [[EMOTIONS.index("happy"), EMOTIONS[predicted]]]}}
    at.run()
    assert not at.exception
    heading = f"Folder happy, predicted {EMOTIONS[predicted]}: {int(happy_row.max())} photos"
    assert heading in texts(at.subheader)
    captions = at.image[0].captions
    assert len(captions) == int(happy_row.max())
    assert all(c.startswith("set/happy/") and f"happy → {EMOTIONS[predicted]}" in c for c in captions)
    scores = [int(c.rsplit(" ", 1)[1].rstrip("%")) for c in captions]
    assert scores == sorted(scores, reverse=True)
    # The click reused the analysis kept in memory rather than analysing the archive again.
    assert at.session_state["yours_photos"] is analysed


def test_archives_without_photos_or_broken_get_a_message(app_env):
    at = open_page("pages/your_photos.py")
    notes = zip_bytes({"a/readme.txt": b"x"})
    at.file_uploader(key="yours_upload").set_value([("notes.zip", notes, "application/zip")])
    at.run()
    assert not at.exception
    assert any("notes.zip" in w and "holds no photos" in w for w in texts(at.warning))
    at.file_uploader(key="yours_upload").set_value([("cut.zip", zip_bytes({"happy/a.jpg": b"x" * 100})[:60],
                                                     "application/zip")])
    at.run()
    assert not at.exception
    assert any("cut.zip" in e and "not a ZIP archive" in e for e in texts(at.error))


@needs_photos
def test_unreadable_photos_are_counted_and_listed_apart_with_their_reasons(app_env):
    name, label, _ = labelled_photos()[0]
    photo = (PHOTOS_DIR / name).read_bytes()
    data = zip_bytes({f"{label}/empty.jpg": b"", f"{label}/text.jpg": b"hello", f"{label}/cut.jpg": photo[:5000],
                    f"{label}/crc.jpg": b"JPEG crc", f"{label}/ok.jpg": photo})
    data = data.replace(b"JPEG crc", b"JPEG CRC")  # stored uncompressed: its CRC-32 no longer matches
    at = open_page("pages/your_photos.py")
    at.file_uploader(key="yours_upload").set_value([("broken.zip", data, "application/zip")])
    at.run()
    assert not at.exception and not at.error, "one damaged entry does not refuse the archive"
    summary = " ".join(texts(at.markdown))
    assert "**5** labelled photos: **1** with a face, **0** without" in summary and "**4** unreadable" in summary
    photo_lists = [e for e in at.expander if "labelled photo" in e.label]  # not the sidebar's
    assert [e.label for e in photo_lists] == ["4 labelled photos that could not be read"]
    listed = dict(zip(*photo_lists[0].dataframe[0].value[["photo", "why"]].to_numpy().T, strict=True))
    assert listed[f"{label}/empty.jpg"].startswith("the file is empty")
    assert listed[f"{label}/cut.jpg"].startswith("the JPEG")
    assert listed[f"{label}/text.jpg"].startswith("the file is not an image")
    assert listed[f"{label}/crc.jpg"].startswith("cannot be read from the archive (Bad CRC-32")


def test_an_archive_without_a_face_has_no_accuracy(app_env):
    from PIL import Image

    blank = io.BytesIO()
    Image.new("RGB", (96, 96), (128, 128, 128)).save(blank, format="PNG")
    at = open_page("pages/your_photos.py")
    at.file_uploader(key="yours_upload").set_value([("faceless.zip", zip_bytes({"happy/blank.png": blank.getvalue(),
                                                                              "sad/empty.jpg": b""}),
                                                     "application/zip")])
    at.run()
    assert not at.exception
    assert at.metric[0].value == "—", "undefined, not 0.0%"
    summary = next(t for t in texts(at.markdown) if "labelled photos:" in t)
    assert "**2** labelled photos: **0** with a face, **1** without, **1** unreadable" in summary
    assert "%" not in summary
    assert any("faceless.zip" in w and "had a face" in w for w in texts(at.warning))
    with pytest.raises(KeyError):
        at.dataframe(key="yours_cell")  # no empty confusion matrix to click
    labels = [e.label for e in at.expander if "labelled photo" in e.label]
    assert labels == ["1 labelled photo without a face", "1 labelled photo that could not be read"]
