"""Videos (fer.video): decoding from memory, sampling, face tracks, the CLI."""

import io
import json
from functools import partial

import numpy as np
import pytest
from app_support import PHOTOS_DIR
from PIL import Image

from fer.paths import MODELS_DIR
from fer.video import (
    VideoDecodeError,
    VideoInfo,
    VideoResult,
    analyze_video,
    main,
    match_boxes,
    open_video,
    sample_frames,
    sampling_step,
)

HAPPY, NEUTRAL = "deepface_img24.jpg", "deepface_img30.jpg"  # hand labels in photos/manifest.csv
needs_photos = pytest.mark.skipif(not (PHOTOS_DIR / HAPPY).is_file(), reason="sample photos not available")
needs_released_model = pytest.mark.skipif(not (MODELS_DIR / "fer_best.h5").is_file(), reason="no released model")


def canvas(name: str | None, size=(640, 480), left: int | None = None) -> np.ndarray:
    """A frame: the photo scaled to fit a dark canvas, or half of it (or the canvas alone)."""
    frame = Image.new("RGB", size, (40, 40, 40))
    if name:
        photo = Image.open(PHOTOS_DIR / name).convert("RGB")
        width = size[0] // 2 if left is not None else size[0]
        ratio = min(width / photo.width, size[1] / photo.height)
        photo = photo.resize((round(photo.width * ratio), round(photo.height * ratio)))
        x = (size[0] - photo.width) // 2 if left is None else left
        frame.paste(photo, (x, (size[1] - photo.height) // 2))
    return np.asarray(frame)


def write_clip(path, segments, fps: int = 10, size=(640, 480)) -> bytes:
    """Writes an MP4 of (frame, seconds) segments with OpenCV; returns its bytes."""
    import cv2

    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, size)
    assert writer.isOpened()
    for frame, seconds in segments:
        bgr = cv2.cvtColor(frame, cv2.COLOR_RGB2BGR)
        for _ in range(round(seconds * fps)):
            writer.write(bgr)
    writer.release()
    return path.read_bytes()


def test_match_boxes_follows_boxes_each_track_once():
    assert match_boxes({}, [(0, 0, 10, 10)]) == [None]
    # The faces swap reading order and move a little: each keeps its track.
    last = {1: (0, 0, 10, 10), 2: (100, 0, 10, 10)}
    assert match_boxes(last, [(102, 1, 10, 10), (1, 1, 10, 10)]) == [2, 1]
    # A far face continues nothing; two faces on one track: the closer one gets it.
    assert match_boxes(last, [(1, 1, 10, 10), (300, 300, 10, 10)]) == [1, None]
    assert match_boxes({1: (0, 0, 10, 10)}, [(3, 0, 10, 10), (1, 0, 10, 10)]) == [None, 1]
    # Touching is not continuing: below the overlap threshold.
    assert match_boxes({1: (0, 0, 10, 10)}, [(8, 0, 10, 10)], min_iou=0.3) == [None]


@needs_photos
def test_cuts_are_new_shots_not_motion_or_light():
    from fer.video import frame_signature, is_cut

    photo = np.asarray(Image.open(PHOTOS_DIR / "pyfeat_multi_face.jpg").convert("RGB"))
    other = np.asarray(Image.open(PHOTOS_DIR / HAPPY).convert("RGB"))
    same = frame_signature(photo)
    assert not is_cut(same, frame_signature(np.roll(photo, 100, axis=1))), "a pan"
    assert not is_cut(same, frame_signature((photo * 0.7).astype(np.uint8))), "the light dims"
    assert is_cut(same, frame_signature(other))
    assert is_cut(frame_signature(canvas(HAPPY)), frame_signature(canvas(NEUTRAL)))
    # The same within letterbox bars, which stay put while the picture pans or its light changes.
    boxed = np.asarray(Image.fromarray(photo).resize((640, 360)))
    in_bars = partial(np.pad, pad_width=((60, 60), (0, 0), (0, 0)))
    assert not is_cut(frame_signature(in_bars(boxed)), frame_signature(in_bars(np.roll(boxed, 64, axis=1)))), "a pan"
    assert not is_cut(frame_signature(in_bars(boxed)), frame_signature(in_bars((boxed * 0.6).astype(np.uint8))))


@needs_photos
def test_picture_box_leaves_out_dark_bars_only():
    from fer.video import picture_box

    photo = Image.open(PHOTOS_DIR / HAPPY)
    width = round(photo.width * 480 / photo.height)  # a portrait, pillarboxed on the dark canvas
    top, bottom, left, right = picture_box(canvas(HAPPY)[..., 1])
    assert (top, bottom) == (0, 480) and abs(left - (640 - width) // 2) <= 4 and abs(right - left - width) <= 8
    assert picture_box(np.full((480, 640), 40, np.uint8)) == (0, 480, 0, 640), "nothing but canvas: the whole frame"
    assert picture_box(np.full((480, 640), 200, np.uint8)) == (0, 480, 0, 640), "a bright frame has no bars"


@needs_photos
def test_cuts_between_stills_on_one_canvas_are_all_found(tmp_path):
    """Photos shown one after another on one dark canvas: the shared canvas kept their grey-level
    histograms alike, and only one of these three changes of picture counted as a cut."""
    from fer.video import frame_signature, is_cut

    stills = [HAPPY, NEUTRAL, "pyfeat_multi_face.jpg", "dlib_dogs.jpg"]
    data = write_clip(tmp_path / "stills.mp4", [(canvas(name), 2.0) for name in stills])
    cuts, previous = [], None
    for moment, rgb, _ in sample_frames(data, every_s=0.5):
        signature = frame_signature(rgb)
        if previous is not None and is_cut(previous, signature):
            cuts.append(round(moment, 1))
        previous = signature
    assert cuts == [2.0, 4.0, 6.0]


class PersonIdentifier:
    """Descriptors that encode who a synthetic face is (its ``person``), to test the tracker's logic
    apart from dlib's network (the clip test runs the real one)."""

    def __init__(self):
        self.calls = 0

    def describe(self, rgb, landmarks):
        self.calls += 1
        descriptor = np.zeros(128, np.float32)
        descriptor[int(landmarks[0, 0])] = 1.0  # distance 1.41 between people, 0 within one
        return descriptor


def person(who: int, expression: int = 0):
    """A face of person ``who``: its aligned pixels are a fixed pattern per person (plus a little
    per expression), and its landmarks carry the person's number for PersonIdentifier."""
    from types import SimpleNamespace

    rng = np.random.default_rng(who)
    face = rng.integers(0, 255, (48, 48)).astype(np.float32)
    face[:8] += expression * 5
    return SimpleNamespace(gray_face=np.clip(face, 0, 255).astype(np.uint8),
                           landmarks=np.full((68, 2), who, np.float32))


def test_tracker_links_by_boxes_and_checks_identity_only_when_needed():
    from fer.video import FaceTracker

    identifier = PersonIdentifier()
    tracker = FaceTracker(identifier)
    frame = np.zeros((10, 10, 3), np.uint8)
    left, right = (0, 0, 100, 100), (300, 0, 100, 100)
    assert tracker.update(frame, [person(1), person(2)], [left, right]) == [1, 2]
    assert identifier.calls == 2  # new tracks get a descriptor
    for expression in (1, 2, 3):  # same people, same places, small expression changes: boxes suffice
        assert tracker.update(frame, [person(2, expression), person(1, expression)], [right, left]) == [2, 1]
    assert identifier.calls == 2
    # Someone else where person 1 was: the aligned face changed, the descriptor says who it is.
    assert tracker.update(frame, [person(3), person(2)], [left, right]) == [3, 2]
    # Nobody for 5 frames, then person 1 comes back elsewhere: their own track again.
    for _ in range(5):
        assert tracker.update(frame, [], []) == []
    assert tracker.update(frame, [person(1)], [(600, 0, 100, 100)]) == [1]
    # A new shot checks every face, even where nothing seems to have changed.
    calls = identifier.calls
    assert tracker.update(frame, [person(1)], [(600, 0, 100, 100)], new_shot=True) == [1]
    assert identifier.calls == calls + 1
    # Person 2 appears where person 1 just was: the box says track 1, the descriptor says track 2.
    assert tracker.update(frame, [person(2)], [(600, 0, 100, 100)]) == [2]


def test_tracker_box_links_last_up_to_the_gap():
    from fer.video import TRACK_GAP, FaceTracker

    identifier = PersonIdentifier()
    tracker = FaceTracker(identifier)
    frame, box = np.zeros((10, 10, 3), np.uint8), (0, 0, 100, 100)
    assert tracker.update(frame, [person(1)], [box]) == [1]
    for _ in range(TRACK_GAP):
        tracker.update(frame, [], [])
    calls = identifier.calls
    assert tracker.update(frame, [person(1, 1)], [box]) == [1]
    assert identifier.calls == calls, "missing for TRACK_GAP frames: still linked by its box, no descriptor"
    for _ in range(TRACK_GAP + 1):
        tracker.update(frame, [], [])
    assert tracker.update(frame, [person(1, 2)], [box]) == [1]
    assert identifier.calls == calls + 1, "missing longer: found again by its descriptor"


def test_sampling_step_is_widened_for_long_videos():
    assert sampling_step(VideoInfo(25.0, 250, 640, 480), 0.5) == 0.5
    assert sampling_step(VideoInfo(25.0, 25 * 600, 640, 480), 0.5, max_samples=240) == pytest.approx(2.5)
    with pytest.raises(ValueError):
        sampling_step(VideoInfo(25.0, 250, 640, 480), 0)


class FlakyCapture:
    """A 30 fps stream of 240 frames whose frames 30-119 cannot be decoded."""

    def __init__(self):
        self.index = -1

    def grab(self):
        self.index += 1
        return self.index < 240

    def get(self, prop):
        return self.index * 1000 / 30

    def retrieve(self):
        if 30 <= self.index < 120:
            return False, None
        return True, np.zeros((48, 64, 3), np.uint8)


def test_sampling_stays_on_the_step_grid_after_undecodable_frames(monkeypatch):
    from contextlib import contextmanager

    import fer.video

    @contextmanager
    def fake_open(data):
        yield FlakyCapture(), VideoInfo(30.0, 240, 64, 48)

    monkeypatch.setattr(fer.video, "open_video", fake_open)
    times = [round(t, 2) for t, _, _ in sample_frames(b"x", every_s=0.5)]
    # 0.0 and 0.5 decode; 1.0-3.5 fall in the broken run; sampling resumes at 4.0, on the grid.
    assert times == [0.0, 0.5, 4.0, 4.5, 5.0, 5.5, 6.0, 6.5, 7.0, 7.5]


@needs_photos
@needs_released_model
def test_big_frames_are_reduced_and_boxes_come_back_in_video_pixels(tmp_path):
    from fer.pipeline import FerPipeline

    pipeline = FerPipeline()
    boxes = {}
    for size in ((1920, 1080), (3840, 2160)):  # 4K frames are analysed reduced to ~4 MP
        clip = write_clip(tmp_path / f"{size[0]}.mp4", [(canvas(HAPPY, size=size), 1.0)], fps=2, size=size)
        (point, *_), = [analyze_video(pipeline, clip, every_s=1.0).points]
        boxes[size[0]] = np.array(point.box)
    np.testing.assert_allclose(boxes[3840], 2 * boxes[1920], rtol=0.06, atol=8)


class LongCapture:
    """A 10 fps stream of ``frames`` decodable frames."""

    def __init__(self, frames):
        self.index, self.frames = -1, frames

    def grab(self):
        self.index += 1
        return self.index < self.frames

    def get(self, prop):
        return self.index * 100.0

    def retrieve(self):
        return True, np.zeros((48, 64, 3), np.uint8)


@pytest.mark.parametrize(("frames", "claimed", "truncated"), [
    (600, 100, True),  # the container claims 10 s of a 60 s stream: the budget ends early
    (40, 0, False),  # no length recorded, and the budget reaches the end
    (41, 0, True),  # no length recorded, one frame left after the budget
])
def test_truncation_is_read_from_the_stream(monkeypatch, frames, claimed, truncated):
    from contextlib import contextmanager

    import fer.video

    @contextmanager
    def fake_open(data):
        yield LongCapture(frames), VideoInfo(10.0, claimed, 64, 48)

    monkeypatch.setattr(fer.video, "open_video", fake_open)
    state = {}
    sampled = list(sample_frames(b"x", every_s=0.1, max_samples=40, state=state))
    assert len(sampled) == min(40, frames) and state["truncated"] is truncated


def test_bad_bytes_are_refused_with_a_reason():
    with pytest.raises(VideoDecodeError, match="empty"):
        with open_video(b""):
            pass
    with pytest.raises(VideoDecodeError, match="not a video"):
        with open_video(b"this is not a video at all" * 40):
            pass
    photo = Image.new("RGB", (64, 48))
    buffer = io.BytesIO()
    photo.save(buffer, "JPEG")
    with pytest.raises(VideoDecodeError, match="still JPEG photo, not a video"):
        list(sample_frames(buffer.getvalue()))


def test_a_still_gif_is_refused_and_an_animated_one_read():
    def gif(frames: int) -> bytes:
        images = [Image.new("RGB", (64, 48), (40 * i, 0, 0)) for i in range(frames)]
        buffer = io.BytesIO()
        images[0].save(buffer, "GIF", save_all=True, append_images=images[1:], duration=100, loop=0)
        return buffer.getvalue()

    with pytest.raises(VideoDecodeError, match="still GIF image, not an animation"):
        list(sample_frames(gif(1)))
    assert len(list(sample_frames(gif(3), every_s=0.1))) == 3


def test_a_file_cut_short_says_where_decoding_ended(tmp_path):
    import cv2

    path = tmp_path / "clip.avi"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10, (64, 48))
    for i in range(100):
        writer.write(np.full((48, 64, 3), (i * 2) % 255, np.uint8))
    writer.release()
    whole, state = path.read_bytes(), {}
    list(sample_frames(whole, every_s=0.5, state=state))
    assert state["info"].duration_s == 10.0 and state["decoded_s"] == pytest.approx(10.0)
    list(sample_frames(whole[: len(whole) // 3], every_s=0.5, state=state))
    assert state["info"].duration_s == 10.0 and 1.0 < state["decoded_s"] < 5.0
    result = partial(VideoResult, VideoInfo(10.0, 100, 64, 48), 0.5, (), ())
    assert result(decoded_s=state["decoded_s"]).cut_short
    assert not result(decoded_s=9.6).cut_short  # a container's length may be off by a few frames
    assert not result(decoded_s=3.0, truncated=True).cut_short  # the frame budget ended it, not the file
    assert not VideoResult(VideoInfo(10.0, 0, 64, 48), 0.5, (), (), decoded_s=3.0).cut_short  # no length recorded
    # A sound GIF that holds its last frame for 2 s ends early in time, not in frames.
    images = [Image.new("RGB", (64, 48), (80 * i, 0, 0)) for i in range(3)]
    buffer = io.BytesIO()
    images[0].save(buffer, "GIF", save_all=True, append_images=images[1:], duration=[20, 20, 2000], loop=0)
    list(sample_frames(buffer.getvalue(), every_s=0.5, state=state))
    held = VideoResult(state["info"], 0.5, (), (), decoded_s=state["decoded_s"], decoded_frames=state["decoded_frames"])
    assert state["decoded_frames"] == 3 and not held.cut_short


@needs_photos
def test_sample_frames_reads_from_memory_at_the_step(tmp_path):
    data = write_clip(tmp_path / "clip.mp4", [(canvas(HAPPY), 1.0), (canvas(None), 1.0)])
    with open_video(data) as (_, info):
        assert (info.fps, info.frame_count, info.width, info.height) == (10.0, 20, 640, 480)
    frames = list(sample_frames(data, every_s=0.3))
    assert [round(t, 1) for t, _, _ in frames] == [0.0, 0.3, 0.6, 0.9, 1.2, 1.5, 1.8]
    assert all(f.shape == (480, 640, 3) and f.dtype == np.uint8 and s == 1.0 for _, f, s in frames)
    assert len(list(sample_frames(data, every_s=0.1, max_samples=5))) == 5


@needs_photos
@needs_released_model
def test_a_clip_gives_one_timeline_per_face(tmp_path):
    from fer.pipeline import FerPipeline

    # 2 s of a smiling man, 2 s of a neutral woman at the same place, 1 s of nothing, then both side by side.
    data = write_clip(tmp_path / "clip.mp4", [(canvas(HAPPY), 2.0), (canvas(NEUTRAL), 2.0), (canvas(None), 1.0),
                                              (np.maximum(canvas(HAPPY, left=0), canvas(NEUTRAL, left=320)), 1.0)])
    result = analyze_video(FerPipeline(), data, every_s=0.5, thumbnails=True)
    assert len(result.times_s) == 12 and len(result.thumbnails) == 12 and result.temperature > 1.0
    by_track = {track: {round(p.time_s, 1): p.label for p in points} for track, points in result.tracks.items()}
    # The woman replaces the man at the same place: her own track, not his going on. After the
    # blank second both come back side by side, each to their own track (face descriptors).
    assert set(by_track) == {1, 2}, by_track
    assert by_track[1] == dict.fromkeys((0.0, 0.5, 1.0, 1.5, 5.0, 5.5), "happy"), by_track
    assert by_track[2] == dict.fromkeys((2.0, 2.5, 3.0, 3.5, 5.0, 5.5), "neutral"), by_track
    assert result.cuts == pytest.approx((2.0, 4.0)), "to the woman, then to the blank frame"
    assert not [p for p in result.points if 4.0 <= p.time_s < 5.0], "no face in the blank second"
    table = result.table()
    assert len(table) == len(result.points) and np.allclose(table.filter(like="p_").sum(axis=1), 1, atol=1e-4)
    summary = result.summary().set_index("track")
    assert summary.loc[1, "frames"] == 6 and summary.loc[1, "first_s"] == 0.0 and summary.loc[1, "last_s"] == 5.5
    assert summary.loc[2, "dominant"] == "neutral" and summary.loc[2, "dominant_share"] == 1.0
    record = json.loads(result.to_json("fer_best", "hog"))
    assert record["samples"] == 12 and len(record["faces"]) == len(result.points)
    assert (record["model"], record["detector"]) == ("fer_best", "hog")
    # Each face's head pose travels with it: the same still photo gives the same yaw in every frame.
    assert table["yaw"].notna().all() and all(-60 < f["yaw"] < 60 for f in record["faces"])
    assert table[table["track"] == 1]["yaw"].std() < 3


@needs_photos
@needs_released_model
def test_cli_prints_tracks_and_writes_csv(tmp_path, capsys):
    data_path = tmp_path / "clip.mp4"
    write_clip(data_path, [(canvas(HAPPY), 1.0)])
    assert main([str(data_path), "--csv", str(tmp_path / "out.csv")]) == 0
    out = capsys.readouterr().out
    assert "1 face track(s)" in out and "mostly happy" in out
    header, first = (tmp_path / "out.csv").read_text().splitlines()[:2]
    assert header.startswith("time_s,track,x,y,w,h,label,score,tta,temperature,p_angry")
    assert float(first.split(",")[9]) > 1.0, "fer_best's calibration temperature"
    assert main([str(data_path), "--raw", "--csv", str(tmp_path / "raw.csv")]) == 0
    assert float((tmp_path / "raw.csv").read_text().splitlines()[1].split(",")[9]) == 1.0
    (tmp_path / "bad.mp4").write_bytes(b"\0" * 100)
    assert main([str(tmp_path / "bad.mp4")]) == 2
    assert "not a video" in capsys.readouterr().err
    assert main([str(tmp_path / "missing.mp4")]) == 2


@pytest.mark.parametrize("option, value, message", [
    ("--every", "0", "argument --every: must be a positive number, not 0"),
    ("--every", "nan", "argument --every: must be a positive number, not nan"),
    ("--max-samples", "0", "argument --max-samples: must be at least 1, not 0"),
])
def test_cli_names_the_option_that_is_wrong(tmp_path, option, value, message, capsys):
    with pytest.raises(SystemExit) as stopped:
        main([str(tmp_path / "clip.mp4"), option, value])
    error = capsys.readouterr().err.splitlines()[-1]  # after argparse's usage
    assert stopped.value.code == 2 and error == f"python -m fer.video: error: {message}"


@needs_released_model
def test_cli_on_a_file_that_is_no_video_says_so_without_opencv_warnings(tmp_path, capfd):
    import cv2

    level = cv2.utils.logging.getLogLevel()
    (tmp_path / "bad.mp4").write_bytes(b"\0" * 100)
    assert main([str(tmp_path / "bad.mp4")]) == 2
    err = capfd.readouterr().err  # OpenCV writes to the process's stderr, below Python's
    assert "not a video FFmpeg can read" in err
    assert "WARN" not in err and "cap.cpp" not in err, err
    assert cv2.utils.logging.getLogLevel() == level, "the tool leaves OpenCV's log level as it found it"


@needs_photos
@needs_released_model
def test_frame_thumbnails_number_faces_by_track(tmp_path, monkeypatch):
    import fer.draw
    from fer.pipeline import FerPipeline

    captions = []
    draw_box = fer.draw.draw_box

    def recording_draw_box(rgb_image, box, text="", *args, **kwargs):
        captions.append(text)
        return draw_box(rgb_image, box, text, *args, **kwargs)

    monkeypatch.setattr(fer.draw, "draw_box", recording_draw_box)
    # The man (track 1), the woman (track 2), then both, the woman on the left: in that frame she
    # is the first face read, but her box must say 2, as her timeline does.
    both = np.maximum(canvas(NEUTRAL, left=0), canvas(HAPPY, left=320))
    data = write_clip(tmp_path / "clip.mp4", [(canvas(HAPPY), 1.0), (canvas(NEUTRAL), 1.0), (both, 1.0)])
    result = analyze_video(FerPipeline(), data, every_s=1.0, thumbnails=True)
    assert [[p.track for p in result.points if p.time_s == t] for t in result.times_s] == [[1], [2], [2, 1]]
    assert [c.split(":")[0] for c in captions] == ["1", "2", "2", "1"], captions
    assert len(result.thumbnails) == 3
