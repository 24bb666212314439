"""Videos (fer.video): decoding from memory, sampling, face tracks, the CLI."""

import io
import json

import numpy as np
import pytest
from app_support import PHOTOS_DIR
from PIL import Image

from fer.paths import MODELS_DIR
from fer.video import (
    VideoDecodeError,
    VideoInfo,
    analyze_video,
    box_iou,
    link_tracks,
    main,
    open_video,
    sample_frames,
    sampling_step,
)

HAPPY, NEUTRAL = "deepface_img24.jpg", "deepface_img30.jpg"  # hand labels in photos/manifest.csv
needs_photos = pytest.mark.skipif(not (PHOTOS_DIR / HAPPY).is_file(), reason="sample photos not available")
needs_released_model = pytest.mark.skipif(not (MODELS_DIR / "fer_best.h5").is_file(), reason="no released model")


def canvas(name: str | None, size=(640, 480), left: int | None = None) -> np.ndarray:
    """A frame: the photo scaled into a dark canvas (or the canvas alone)."""
    frame = Image.new("RGB", size, (40, 40, 40))
    if name:
        photo = Image.open(PHOTOS_DIR / name).convert("RGB")
        photo.thumbnail((size[0] // 2 if left is not None else size[0], size[1]))
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


def test_box_iou():
    assert box_iou((0, 0, 10, 10), (0, 0, 10, 10)) == 1.0
    assert box_iou((0, 0, 10, 10), (5, 0, 10, 10)) == pytest.approx(50 / 150)
    assert box_iou((0, 0, 10, 10), (20, 20, 5, 5)) == 0.0


def test_link_tracks_follows_boxes_and_ends_lost_ones():
    tracks, active, nxt = link_tracks({}, [(0, 0, 10, 10), (100, 0, 10, 10)], 1)
    assert tracks == [1, 2] and nxt == 3
    # The faces swap reading order and move a little: each keeps its track.
    tracks, active, nxt = link_tracks(active, [(102, 1, 10, 10), (1, 1, 10, 10)], nxt)
    assert tracks == [2, 1] and nxt == 3
    # Track 2 disappears; a new face far away starts track 3.
    tracks, active, nxt = link_tracks(active, [(1, 1, 10, 10), (300, 300, 10, 10)], nxt)
    assert tracks == [1, 3] and set(active) == {1, 2, 3} and active[2][1] == 1
    for _ in range(3):
        tracks, active, nxt = link_tracks(active, [(1, 1, 10, 10)], nxt, max_gap=3)
    assert 2 not in active and tracks == [1]
    # A face back where track 2 was, after the gap, is a new person as far as boxes tell.
    tracks, _, _ = link_tracks(active, [(102, 1, 10, 10)], nxt)
    assert tracks == [nxt]


def test_sampling_step_is_widened_for_long_videos():
    assert sampling_step(VideoInfo(25.0, 250, 640, 480), 0.5) == 0.5
    assert sampling_step(VideoInfo(25.0, 25 * 600, 640, 480), 0.5, max_samples=240) == pytest.approx(2.5)
    with pytest.raises(ValueError):
        sampling_step(VideoInfo(25.0, 250, 640, 480), 0)


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


@needs_photos
def test_sample_frames_reads_from_memory_at_the_step(tmp_path):
    data = write_clip(tmp_path / "clip.mp4", [(canvas(HAPPY), 1.0), (canvas(None), 1.0)])
    with open_video(data) as (_, info):
        assert (info.fps, info.frame_count, info.width, info.height) == (10.0, 20, 640, 480)
    frames = list(sample_frames(data, every_s=0.3))
    assert [round(t, 1) for t, _ in frames] == [0.0, 0.3, 0.6, 0.9, 1.2, 1.5, 1.8]
    assert all(f.shape == (480, 640, 3) and f.dtype == np.uint8 for _, f in frames)
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
    labels = {round(p.time_s, 1): p.label for p in result.points if p.track == 1}
    assert all(labels[t] == "happy" for t in (0.0, 0.5, 1.0, 1.5)), labels
    assert all(labels[t] == "neutral" for t in (2.0, 2.5, 3.0, 3.5)), labels
    assert not [p for p in result.points if 4.0 <= p.time_s < 5.0], "no face in the blank second"
    last = [p for p in result.points if p.time_s >= 5.0]
    assert sorted(p.label for p in last) == ["happy", "happy", "neutral", "neutral"]
    assert len({p.track for p in last}) == 2 and min(p.track for p in last) > 1, "new people after a 1 s gap"
    table = result.table()
    assert len(table) == len(result.points) and np.allclose(table.filter(like="p_").sum(axis=1), 1, atol=1e-4)
    summary = result.summary().set_index("track")
    assert summary.loc[1, "frames"] == 8 and summary.loc[1, "first_s"] == 0.0 and summary.loc[1, "last_s"] == 3.5
    record = json.loads(result.to_json())
    assert record["samples"] == 12 and len(record["faces"]) == len(result.points)


@needs_photos
@needs_released_model
def test_cli_prints_tracks_and_writes_csv(tmp_path, capsys):
    data_path = tmp_path / "clip.mp4"
    write_clip(data_path, [(canvas(HAPPY), 1.0)])
    assert main([str(data_path), "--csv", str(tmp_path / "out.csv")]) == 0
    out = capsys.readouterr().out
    assert "1 face track(s)" in out and "mostly happy" in out
    assert (tmp_path / "out.csv").read_text().splitlines()[0].startswith("time_s,track,x,y,w,h,label,score,p_angry")
    (tmp_path / "bad.mp4").write_bytes(b"\0" * 100)
    assert main([str(tmp_path / "bad.mp4")]) == 2
    assert "not a video" in capsys.readouterr().err
    assert main([str(tmp_path / "missing.mp4")]) == 2
