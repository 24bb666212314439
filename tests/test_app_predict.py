"""AppTest of the Predict page (the app's default page) and of the sidebar."""

import io
from pathlib import Path

import numpy as np
import pytest
from app_support import APP, PHOTOS_DIR, TIMEOUT, shared_model_folder, texts, use_app_env
from PIL import Image
from streamlit.testing.v1 import AppTest

from fer.labels import EMOTIONS

PHOTO = PHOTOS_DIR / "deepface_img24.jpg"
TEST_DATA = Path(__file__).resolve().parent / "data"


@pytest.fixture
def app_env(monkeypatch, tmp_path, tmp_path_factory):
    return use_app_env(monkeypatch, tmp_path, shared_model_folder(tmp_path_factory))


def png_bytes(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG")
    return buffer.getvalue()


def start() -> AppTest:
    at = AppTest.from_file(APP, default_timeout=TIMEOUT)
    at.run()
    assert not at.exception
    return at


def with_my_photo() -> AppTest:
    """The page after uploading the sample photo as ``me.jpg`` (the test skips without it)."""
    if not PHOTO.is_file():
        pytest.skip(f"sample photo missing: {PHOTO}")
    at = start()
    at.file_uploader(key="predict_uploads").set_value([("me.jpg", PHOTO.read_bytes(), "image/jpeg")])
    at.run()
    return at


def test_predict_page_and_sidebar(app_env):
    at = start()
    assert at.title[0].value == "Predict expressions in photos"
    assert at.file_uploader(key="predict_uploads").accept_multiple_files
    assert {"jpg", "png", "webp", "heic", "avif"} <= {
        t.lstrip(".") for t in at.file_uploader(key="predict_uploads").allowed_type
    }
    assert at.radio(key="predict_detector").options == [
        "HOG (dlib)", "Haar cascade (OpenCV)", "CNN (dlib, slow)", "BlazeFace (MediaPipe)"]
    assert any("Upload one or more photos" in t for t in texts(at.info))
    # The sidebar: a model selector with the card's accuracies, the model and device lines.
    selector = at.sidebar.selectbox(key="app_model")
    assert len(selector.options) == 1 and selector.options[0].startswith("tiny · ") and "%" in selector.options[0]
    captions = " ".join(texts(at.sidebar.caption))
    assert "tiny" in captions and ("CPU" in captions or "GPU" in captions)
    assert "CPU, LiteRT (XNNPACK)" in captions  # the tiny model has a checked copy: no TensorFlow asked


def test_upload_shows_a_face_card(app_env):
    at = with_my_photo()
    assert not at.exception
    cards = [t for t in texts(at.markdown) if t.startswith("#### Face 1:")]
    assert len(cards) == 1
    label = cards[0].split("**")[1]
    assert label in ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")
    assert "me.jpg" in texts(at.subheader)
    bars = [t for t in texts(at.markdown) if t.startswith("<div role='img' aria-label='probabilities:")]
    # The bold bar is the card's label.
    assert len(bars) == 1 and f"font-weight:700;'><span style='width:64px;text-align:right'>{label}<" in bars[0]
    stage_images = [img for img in at.image if "aligned 48×48" in img.captions]
    assert len(stage_images) == 1 and len(stage_images[0].captions) == 4
    assert [b.label for b in at.get("download_button")] == ["Results as JSON (one record per photo)",
                                                           "Results as CSV (one row per face)"]
    assert not at.error and not at.warning
    # Flip TTA is on by default; switched off, the same face is classified from one view.
    assert at.toggle(key="predict_tta").value is True
    at.toggle(key="predict_tta").set_value(False).run()
    assert not at.exception and len([t for t in texts(at.markdown) if t.startswith("#### Face 1:")]) == 1
    without_tta = [t for t in texts(at.markdown) if t.startswith("<div role='img' aria-label='probabilities:")]
    assert len(without_tta) == 1 and without_tta != bars


def test_sideways_upload_is_found_turned_and_says_so(app_env):
    if not PHOTO.is_file():
        pytest.skip(f"sample photo missing: {PHOTO}")
    at = start()
    sideways = np.rot90(np.asarray(Image.open(PHOTO).convert("RGB")))  # anticlockwise, no EXIF tag
    at.file_uploader(key="predict_uploads").set_value([("side.png", png_bytes(sideways), "image/png")])
    at.run()
    assert not at.exception and not at.warning
    assert len([t for t in texts(at.markdown) if t.startswith("#### Face 1:")]) == 1
    assert any("turned 90° clockwise" in t and "No face was found upright" in t for t in texts(at.info))


def test_several_uploads_and_friendly_errors(app_env):
    at = start()
    jpeg = PHOTO.read_bytes() if PHOTO.is_file() else png_bytes(np.zeros((8, 8, 3), np.uint8))
    at.file_uploader(key="predict_uploads").set_value([
        ("empty.jpg", b"", "image/jpeg"),
        ("notes.jpg", b"this is text, not a photo\n" * 10, "image/jpeg"),
        ("cut.jpg", jpeg[: len(jpeg) // 3], "image/jpeg"),
        ("noise.png", np.random.default_rng(0).bytes(5000), "image/png"),
        ("blank.png", png_bytes(np.full((120, 160, 3), 128, np.uint8)), "image/png"),
        ("card.heic", (TEST_DATA / "card_orientation6.heic").read_bytes(), "image/heic"),
        ("cut.heic", (TEST_DATA / "card_orientation6.heic").read_bytes()[:600], "image/heic"),
    ])
    at.run()
    assert not at.exception
    errors = texts(at.error)
    assert any("empty.jpg" in e and "empty" in e for e in errors)
    assert any("notes.jpg" in e and "not an image" in e for e in errors)
    assert any("noise.png" in e for e in errors)
    # A truncated JPEG either fails to decode (error) or decodes partly with no face (warning).
    assert any("cut.jpg" in m for m in errors + texts(at.warning))
    assert any("blank.png" in w and "no face found, upright or turned" in w for w in texts(at.warning))
    # An iPhone's HEIC decodes (the card has no face); a cut one says what it is.
    assert any("card.heic" in w and "no face found" in w for w in texts(at.warning))
    assert any("cut.heic" in e and "HEIC" in e for e in errors)
    assert not any("Traceback" in m for m in errors)


def test_several_photos_get_a_summary_table(app_env):
    at = start()
    if not PHOTO.is_file():
        pytest.skip("no sample photos in this checkout")
    group = PHOTOS_DIR / "fr_two_people.jpg"
    at.file_uploader(key="predict_uploads").set_value([
        ("me.jpg", PHOTO.read_bytes(), "image/jpeg"), ("us.jpg", group.read_bytes(), "image/jpeg"),
    ])
    at.run()
    assert not at.exception
    assert "All 2 photos: 3 faces" in texts(at.subheader)
    (table,) = [d.value for d in at.dataframe if "photo" in d.value.columns]
    assert table["photo"].tolist() == ["me.jpg", "us.jpg", "us.jpg"] and table["face"].tolist() == [1, 1, 2]
    assert set(table["label"]) <= set(EMOTIONS) and table["score"].between(0, 1).all()


def test_summary_counts_every_upload(app_env):
    # Photos without faces and unreadable ones are counted in the summary (and recorded in the
    # JSON download: fer.photo_report.results_records).
    if not PHOTO.is_file():
        pytest.skip(f"sample photo missing: {PHOTO}")
    at = start()
    at.file_uploader(key="predict_uploads").set_value([
        ("me.jpg", PHOTO.read_bytes(), "image/jpeg"),
        ("blank.png", png_bytes(np.full((120, 160, 3), 128, np.uint8)), "image/png"),
        ("notes.jpg", b"this is text, not a photo\n" * 10, "image/jpeg"),
    ])
    at.run()
    assert not at.exception
    assert "1 of 3 photos with faces: 1 faces" in texts(at.subheader)
    assert [b.label for b in at.get("download_button")][0] == "Results as JSON (one record per photo)"


def test_a_click_that_changes_no_result_does_not_analyse_again(app_env):
    at = with_my_photo()
    first = [c for c in texts(at.caption) if "analysed in" in c]
    at.sidebar.text_input(key="app_annotator").input("someone").run()
    assert not at.exception
    assert [c for c in texts(at.caption) if "analysed in" in c] == first  # the same result, not a new one
    assert len(at.session_state["predict_results"]) == 1
    at.toggle(key="predict_tta").set_value(False).run()  # a setting the result depends on
    assert len(at.session_state["predict_results"]) == 2
    at.file_uploader(key="predict_uploads").set_value([]).run()  # the photo removed: its results go too
    assert not at.exception and not at.session_state["predict_results"]


def test_each_face_is_shown_in_context_without_its_neighbours_labels():
    from fer.photo_report import context_crop, face_in_context

    photo = np.zeros((100, 200, 3), np.uint8)
    crop = face_in_context(photo, (50, 20, 40, 40), color=(255, 0, 0))
    assert crop.shape == context_crop(photo, (50, 20, 40, 40)).shape == (80, 80, 3)
    assert crop[20, 40, 0] > 200 and crop[20, 40, 1:].max() < 80  # the box's top edge, in its colour
    assert not crop[40, 40].any() and not crop[5, 5].any()  # nothing inside it or outside
    assert not photo.any()  # the photo itself is untouched


def test_sample_photo(app_env):
    at = start()
    if not at.pills:
        pytest.skip("no sample photos in this checkout")
    at.pills(key="predict_sample").set_value("deepface_img24.jpg")
    at.run()
    assert not at.exception
    assert any(t.startswith("#### Face 1:") for t in texts(at.markdown))


def test_face_found_by_the_second_look_says_so(app_env):
    group = PHOTOS_DIR / "pyfeat_multi_face.jpg"
    if not group.is_file():
        pytest.skip(f"sample photo missing: {group}")
    at = start()
    at.file_uploader(key="predict_uploads").set_value([("group.jpg", group.read_bytes(), "image/jpeg")])
    at.run()
    assert not at.exception
    assert sum(t.startswith("#### Face ") for t in texts(at.markdown)) == 5
    notes = [t for t in texts(at.caption) if t.startswith("Found by BlazeFace's second look")]
    assert len(notes) == 1 and "the HOG (dlib) detector missed this face" in notes[0]
    assert any("5 faces" in t and "detector hog (1 by BlazeFace's second look)" in t for t in texts(at.caption))
    at.radio(key="predict_detector").set_value("blaze")  # BlazeFace on its own: no second look to mention
    at.run()
    assert not at.exception
    assert not any(t.startswith("Found by BlazeFace") for t in texts(at.caption))
    assert any("detector blaze" in t for t in texts(at.caption))


def test_a_crowd_gets_a_face_table_and_its_first_cards(app_env):
    if not (PHOTOS_DIR / "pyfeat_multi_face.jpg").is_file():
        pytest.skip("no sample photos in this checkout")
    from fer.photos import crowd
    from fer_app.predict_view import FACE_CARDS_SHOWN

    image, faces = crowd("pyfeat_multi_face.jpg", 240, 2)  # 20 small faces, most found by the tiles
    at = start()
    at.file_uploader(key="predict_uploads").set_value([("crowd.png", png_bytes(image), "image/png")])
    at.run()
    assert not at.exception
    (table,) = [d.value for d in at.dataframe if "box (x, y, w, h)" in d.value.columns]
    assert table["face"].tolist() == list(range(1, faces + 1))
    assert set(table["label"]) <= set(EMOTIONS) and table["score"].between(0, 1).all()
    assert (table["detector"] == "blaze").sum() >= 5
    assert sum(t.startswith("#### Face ") for t in texts(at.markdown)) == FACE_CARDS_SHOWN
    assert any(f"{faces - FACE_CARDS_SHOWN} more face cards" in t for t in texts(at.caption))
    # Faces of 23-38 px: each card quotes the card's accuracy at the size at or under its own
    # (24 px: 55%, 32 px: 64%, against 70%).
    assert table["px"].between(16, 45).all() and table["px"].median() < 32
    small = [t for t in texts(at.warning) if t.startswith("Small face (")]
    assert len(small) == FACE_CARDS_SHOWN
    assert all(any(f"reduced to {px} px" in t for px in (16, 24, 32)) and "against 70%" in t for t in small)
    at.toggle(key="predict_all_cards_0").set_value(True).run()
    assert not at.exception
    assert sum(t.startswith("#### Face ") for t in texts(at.markdown)) == faces


def test_a_dark_photo_says_it_was_equalised(app_env):
    if not PHOTO.is_file():
        pytest.skip(f"sample photo missing: {PHOTO}")
    rgb = np.asarray(Image.open(PHOTO).convert("RGB"))
    dark = np.clip((rgb / 255.0) ** 2.5 * 0.2 * 255 + 0.5, 0, 255).astype(np.uint8)
    at = start()
    at.file_uploader(key="predict_uploads").set_value([("dark.png", png_bytes(dark), "image/png")])
    at.run()
    assert not at.exception
    assert sum(t.startswith("#### Face ") for t in texts(at.markdown)) == 1
    assert any("1 face" in t and "equalised before faces were looked for" in t for t in texts(at.caption))


def test_each_face_shows_its_head_pose_and_turned_faces_a_caution(app_env):
    couple = PHOTOS_DIR / "deepface_couple.jpg"
    if not couple.is_file():
        pytest.skip(f"sample photo missing: {couple}")
    at = start()
    at.file_uploader(key="predict_uploads").set_value([
        ("frontal.jpg", PHOTO.read_bytes(), "image/jpeg"), ("couple.jpg", couple.read_bytes(), "image/jpeg")])
    at.run()
    assert not at.exception
    poses = [t for t in texts(at.caption) if t.startswith("Head pose: turned")]
    assert len(poses) == 3 and all("estimated from the landmarks" in t for t in poses)
    # Both of the couple look towards the image's right, 20-30 degrees: the tiny card's table has
    # that bin 8 points under the frontal one. The frontal portrait gets no caution.
    cautions = [w for w in texts(at.warning) if w.startswith("Turned ")]
    assert len(cautions) == 2
    assert all("this model is right 66% of the time, against 74% within 10°" in w for w in cautions)
    assert sum("turned" in t and "right" in t for t in poses[1:]) == 2


def test_no_model_message(monkeypatch, tmp_path):
    empty = tmp_path / "no_models"
    empty.mkdir()
    use_app_env(monkeypatch, tmp_path, empty)
    at = start()
    assert any("No model found" in w for w in texts(at.warning))
    assert not at.file_uploader


def test_camera_shot_and_the_haar_detector(app_env):
    if not PHOTO.is_file():
        pytest.skip(f"sample photo missing: {PHOTO}")
    at = start()
    at.toggle(key="predict_camera_on").set_value(True).run()
    at.camera_input(key="predict_camera").upload("shot.jpg", PHOTO.read_bytes())
    at.radio(key="predict_detector").set_value("haar")
    at.run()
    assert not at.exception
    assert "camera.jpg" in texts(at.subheader)
    assert any(t.startswith("#### Face 1:") for t in texts(at.markdown))
    assert any("detector haar" in t and "model run by LiteRT (XNNPACK)" in t for t in texts(at.caption))


def test_explain_adds_an_occlusion_map_per_face_and_remembers_it(app_env):
    if not PHOTO.is_file():
        pytest.skip(f"sample photo missing: {PHOTO}")
    at = start()
    at.file_uploader(key="predict_uploads").set_value([("me.jpg", PHOTO.read_bytes(), "image/jpeg")])
    at.toggle(key="predict_explain").set_value(True)
    at.run()
    assert not at.exception and not at.error
    stages = next(img for img in at.image if "aligned 48×48" in img.captions)
    assert len(stages.captions) == 5 and stages.captions[4].startswith("evidence for ")
    memo = at.session_state["predict_explanations"]
    assert len(memo) == 1
    (overlay,) = memo.values()
    assert overlay.shape == (144, 144, 3)
    assert (overlay[..., 0] != overlay[..., 2]).any()  # coloured, not the plain grey face
    # A rerun reuses the remembered map (a marked stand-in survives it); switching TTA off makes
    # a new one (another classifier).
    (key,) = memo
    marked = np.full((144, 144, 3), 7, np.uint8)
    at.session_state["predict_explanations"] = {key: marked}
    at.run()
    assert not at.exception
    assert at.session_state["predict_explanations"][key] is marked
    at.toggle(key="predict_tta").set_value(False).run()
    assert not at.exception and len(at.session_state["predict_explanations"]) == 2
    at.toggle(key="predict_explain").set_value(False).run()
    stages = next(img for img in at.image if "aligned 48×48" in img.captions)
    assert len(stages.captions) == 4
