"""AppTest of the Video page: a real clip uploaded, analysed in memory, its timelines drawn."""

import numpy as np
import pytest
from app_support import PHOTOS_DIR, open_page, shared_model_folder, texts, use_app_env
from test_video import HAPPY, NEUTRAL, canvas, write_clip

needs_photos = pytest.mark.skipif(not (PHOTOS_DIR / HAPPY).is_file(), reason="sample photos not available")


@pytest.fixture
def app_env(monkeypatch, tmp_path, tmp_path_factory):
    return use_app_env(monkeypatch, tmp_path, shared_model_folder(tmp_path_factory))


def test_video_page_invites_an_upload(app_env):
    at = open_page("pages/video.py")
    assert any("Upload a clip" in i for i in texts(at.info))
    assert {".mp4", ".m4v", ".mov", ".webm", ".mkv", ".avi", ".gif"} <= set(at.file_uploader[0].allowed_type)


@needs_photos
def test_an_uploaded_clip_gets_a_timeline_per_face(app_env, tmp_path):
    both = np.maximum(canvas(HAPPY, left=0), canvas(NEUTRAL, left=320))
    clip = write_clip(tmp_path / "clip.mp4", [(canvas(HAPPY), 1.0), (both, 1.0)])
    at = open_page("pages/video.py")
    at.file_uploader[0].set_value(("clip.mp4", clip, "video/mp4")).run()
    assert not at.exception and not at.error, texts(at.error)
    assert "clip.mp4" in texts(at.subheader)
    assert any("640×480 px · 2.0 s at 10.0 fps · 4 frames analysed" in c for c in texts(at.caption))
    (summary,) = [d.value for d in at.dataframe if "dominant" in d.value.columns]
    # One face for 2 frames, then two side by side for 2: the tiny model's labels are arbitrary,
    # but the tracks are not (the first face moves from the middle to the left: a new track).
    assert summary["frames"].sum() == 6 and len(summary) >= 2
    assert len(at.main.get("plotly_chart")) == min(4, len(summary))
    assert len(at.get("download_button")) == 2
    # The frame browser: a rerun reuses the session's result (no second progress bar).
    (frame,) = [s for s in at.select_slider if s.label == "Frame"]
    frame.set_value(1.5).run()
    assert not at.exception and not at.get("progress")
    # A second clip starts from its own faces and frames, not the first clip's choices.
    other = write_clip(tmp_path / "other.mp4", [(canvas(NEUTRAL), 1.0)])
    at.file_uploader[0].set_value(("other.mp4", other, "video/mp4")).run()
    assert not at.exception and "other.mp4" in texts(at.subheader)
    (frame,) = [s for s in at.select_slider if s.label == "Frame"]
    assert frame.value == 0.0


@needs_photos
def test_blaze_face_alone_analyses_the_clip_too(app_env, tmp_path):
    clip = write_clip(tmp_path / "clip.mp4", [(canvas(HAPPY), 1.0)])
    at = open_page("pages/video.py")
    assert at.radio(key="video_detector").options == ["HOG + BlazeFace", "BlazeFace alone (faster)"]
    at.radio(key="video_detector").set_value("blaze")
    at.file_uploader[0].set_value(("clip.mp4", clip, "video/mp4")).run()
    assert not at.exception and not at.error, texts(at.error)
    assert any("detector BlazeFace alone (faster)" in c for c in texts(at.caption))
    (summary,) = [d.value for d in at.dataframe if "dominant" in d.value.columns]
    assert len(summary) == 1 and summary["frames"].sum() == 2


def test_a_file_that_is_not_a_video_gets_a_message(app_env):
    at = open_page("pages/video.py")
    at.file_uploader[0].set_value(("notes.mp4", b"these are notes, not a video" * 20, "video/mp4")).run()
    assert not at.exception
    assert any("notes.mp4** cannot be read: the file is not a video" in e for e in texts(at.error))


@needs_photos
def test_a_one_frame_clip_is_shown_without_a_frame_slider(app_env, tmp_path):
    clip = write_clip(tmp_path / "short.mp4", [(canvas(HAPPY), 0.3)])
    at = open_page("pages/video.py")
    at.file_uploader[0].set_value(("short.mp4", clip, "video/mp4")).run()
    assert not at.exception and not at.error, texts(at.error)
    assert any("· 1 frame analysed" in c for c in texts(at.caption))
    assert all(s.label != "Frame" for s in at.select_slider)


@needs_photos
def test_the_faces_picker_says_how_many_faces_are_not_shown(app_env, tmp_path):
    clip = write_clip(tmp_path / "group.mp4", [(canvas(HAPPY), 0.5), (canvas("pyfeat_multi_face.jpg"), 1.0)])
    at = open_page("pages/video.py")
    at.file_uploader[0].set_value(("group.mp4", clip, "video/mp4")).run()
    assert not at.exception and not at.error, texts(at.error)
    (summary,) = [d.value for d in at.dataframe if "dominant" in d.value.columns]
    tracks = len(summary)
    assert tracks > 4, summary  # the man, then the five of the group
    (faces,) = [m for m in at.multiselect if m.label == "Faces"]
    assert len(faces.value) == 4 and len(at.main.get("plotly_chart")) == 4
    assert f"Showing the timelines of 4 of {tracks} faces: pick the others in the list above." in texts(at.caption)
    faces.set_value(list(summary["track"])).run()
    assert not at.exception and len(at.main.get("plotly_chart")) == tracks
    assert not [c for c in texts(at.caption) if c.startswith("Showing the timelines")]


def test_a_slow_gif_is_said_to_be_analysed_frame_by_frame(app_env):
    import io

    from PIL import Image

    frames = [Image.new("RGB", (64, 48), (60 * i, 0, 0)) for i in range(2)]
    buffer = io.BytesIO()
    frames[0].save(buffer, "GIF", save_all=True, append_images=frames[1:], duration=2000, loop=0)
    at = open_page("pages/video.py")
    at.file_uploader[0].set_value(("slow.gif", buffer.getvalue(), "image/gif")).run()
    assert not at.exception
    assert any("2 frames analysed, every frame (about 2.00 s apart)" in c for c in texts(at.caption))
