"""Expressions over time in a video: sampled frames, faces followed from frame to frame.

The video is decoded from memory (OpenCV's FFmpeg backend reads an ``io.BytesIO``), so an
uploaded clip is never written to disk. Every ``every_s`` seconds one frame goes through the
photo pipeline (:class:`fer.pipeline.FerPipeline`: detection, landmarks, alignment, the model);
faces are linked across sampled frames into one track per person (:class:`FaceTracker`: box
overlap from one frame to the next, checked and, when it fails, replaced by dlib's face
descriptor, so someone who leaves and comes back keeps one timeline).

``python -m fer.video clip.mp4 [--every 0.5] [--csv out.csv] [--json]``
"""

from __future__ import annotations

import functools
import io
import json
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from fer.cli import argument_parser, at_least, positive, quiet_opencv, quiet_tensorflow
from fer.detect import DETECTORS, box_iou
from fer.labels import EMOTIONS

DEFAULT_EVERY_S: float = 0.5
MAX_SAMPLES: int = 240
MAX_FRAME_PIXELS: int = 1920 * 1080 * 2  # frames above ~4 MP are decoded, then reduced
TRACK_IOU: float = 0.3
TRACK_GAP: int = 3  # sampled frames a face may be missing before box overlap no longer links it
SAME_PERSON: float = 0.6  # dlib's threshold on the distance between two face descriptors
# Only descriptors this close update a person's mean, so a look-alike accepted near the threshold
# does not drag it towards them.
CLEARLY_SAME: float = 0.45
# Aligned 48x48 faces of one person half a second apart correlate well whatever the expression;
# below this a box-overlap link is checked with the identity descriptor.
FACE_CHANGE: float = 0.7
# A cut between two sampled frames (:func:`is_cut`): their 32x32 grey thumbnails barely correlate
# (different layouts) and their grey-level histograms differ too, since a light change alone
# keeps the layout (>= 0.87 on the sample photos) and a pan of up to a fifth of the frame the
# grey levels (>= 0.66); or the grey levels are unrelated (a light change alone: down to -0.36)
# while the layout is not a light change's. Between any two of the sample photos, full-frame or
# on a dark canvas, this finds 79-84% of the cuts (the rule without the second test and the bars
# left out: 10-49% on a canvas) and takes no pan of up to a fifth of the frame, zoom of up to
# 1.25x, motion or light change alone for one.
CUT_LAYOUT: float = 0.4
CUT_HISTOGRAM: float = 0.5
CUT_UNLIKE_LAYOUT: float = 0.6
CUT_UNLIKE_HISTOGRAM: float = 0.0
# Dark flat bars at a frame's edges (letterbox, pillarbox, a canvas around a photo) are no part
# of the picture: shared by two shots, they kept their histograms and layouts alike.
BAR_GREY: int = 48  # the brightest grey level a bar may have
VIDEO_SUFFIXES: tuple[str, ...] = (".mp4", ".m4v", ".mov", ".webm", ".mkv", ".avi", ".gif")


class VideoDecodeError(ValueError):
    """The bytes are not a video OpenCV's FFmpeg can read; the message says why."""


@dataclass(frozen=True)
class VideoInfo:
    """What the container says about the video."""

    fps: float
    frame_count: int
    width: int
    height: int

    @property
    def duration_s(self) -> float:
        return self.frame_count / self.fps if self.fps > 0 else 0.0


@dataclass(frozen=True)
class TrackPoint:
    """One face in one sampled frame.

    Attributes:
        time_s: the frame's time in the video.
        track: which person (linked across frames), from 1.
        box: (x, y, w, h) in video pixels.
        probabilities: (7,) in :data:`fer.labels.EMOTIONS` order.
        yaw: the head's yaw in degrees (``fer.pose``; positive towards the frame's right), or
            None when the landmarks could not be fitted.
    """

    time_s: float
    track: int
    box: tuple[int, int, int, int]
    probabilities: np.ndarray = field(repr=False)
    yaw: float | None = None

    @property
    def label(self) -> str:
        return EMOTIONS[int(np.argmax(self.probabilities))]

    @property
    def score(self) -> float:
        return float(np.max(self.probabilities))


@dataclass(frozen=True)
class VideoResult:
    """A video's faces over time.

    Attributes:
        info: the container's figures.
        every_s: the sampling step actually used (widened for long videos).
        times_s: the time of every sampled frame, with or without faces.
        points: every face found, in time order.
        thumbnails: per sampled frame, a small annotated JPEG (memory only), or empty.
        seconds: wall time of the analysis.
        tta: whether the faces were classified with flip TTA.
        temperature: the calibration temperature applied to the probabilities.
        truncated: whether the frame budget ended the analysis before the end of the video.
        decoded_s: where decoding ended, in seconds (the last frame's time plus one frame); well
            short of ``info.duration_s`` in a file cut short or damaged (:attr:`cut_short`).
        decoded_frames: how many frames decoding reached; fewer than the container records in a
            file cut short.
        cuts: times of the sampled frames that start a new shot (:func:`is_cut`); every face there
            is checked by its descriptor before it continues a track.
        identity_checks: how many face descriptors the tracker computed.
    """

    info: VideoInfo
    every_s: float
    times_s: tuple[float, ...]
    points: tuple[TrackPoint, ...]
    thumbnails: tuple[bytes, ...] = field(default=(), repr=False)
    seconds: float = 0.0
    tta: bool = False
    temperature: float = 1.0
    truncated: bool = False
    cuts: tuple[float, ...] = ()
    identity_checks: int = 0
    decoded_s: float = 0.0
    decoded_frames: int = 0

    @property
    def cut_short(self) -> bool:
        """Whether decoding stopped well before the length the container records (not the
        frame budget): the file is cut short or damaged, and a track ending there says nothing
        of the person. Both the time and the frame count must fall short: a GIF that holds its
        last frame for seconds ends early in time but not in frames, and containers misstate
        their length by a frame or an estimate, hence the margins.
        """
        duration, frames = self.info.duration_s, self.info.frame_count
        short_in_time = duration > 0 and duration - self.decoded_s > max(1.0, 0.05 * duration)
        short_in_frames = frames - self.decoded_frames > max(2, 0.05 * frames)
        return not self.truncated and short_in_time and short_in_frames

    @property
    def tracks(self) -> dict[int, list[TrackPoint]]:
        """Track number -> its points, in time order."""
        out: dict[int, list[TrackPoint]] = {}
        for point in self.points:
            out.setdefault(point.track, []).append(point)
        return out

    def table(self):
        """One row per face per sampled frame (the CSV download): time, track, box, label, score, TTA
        (0/1), temperature, p_*, yaw (degrees; empty when unknown).
        """
        import pandas as pd

        rows = [{"time_s": round(p.time_s, 3), "track": p.track, "x": p.box[0], "y": p.box[1], "w": p.box[2],
                 "h": p.box[3], "label": p.label, "score": round(p.score, 6), "tta": int(self.tta),
                 "temperature": self.temperature,
                 **{f"p_{e}": round(float(v), 6) for e, v in zip(EMOTIONS, p.probabilities, strict=True)},
                 "yaw": None if p.yaw is None else round(p.yaw, 1)}
                for p in self.points]
        columns = ["time_s", "track", "x", "y", "w", "h", "label", "score", "tta", "temperature",
                   *(f"p_{e}" for e in EMOTIONS), "yaw"]
        return pd.DataFrame(rows, columns=columns)

    def summary(self):
        """One row per track: when it is seen, how often, its mean probabilities and dominant expression."""
        import pandas as pd

        rows = []
        for track, points in self.tracks.items():
            mean = np.mean([p.probabilities for p in points], axis=0)
            labels = [p.label for p in points]
            rows.append({"track": track, "first_s": round(points[0].time_s, 2), "last_s": round(points[-1].time_s, 2),
                         "frames": len(points), "dominant": max(EMOTIONS, key=labels.count),
                         "dominant_share": round(max(labels.count(e) for e in EMOTIONS) / len(labels), 3),
                         "mean_top": EMOTIONS[int(np.argmax(mean))],
                         **{f"mean_{e}": round(float(v), 4) for e, v in zip(EMOTIONS, mean, strict=True)}})
        return pd.DataFrame(rows)

    def to_json(self, model: str = "", detector: str = "") -> str:
        """The whole result as JSON (no thumbnails), saying which model and detector made it."""
        return json.dumps({
            "model": model, "detector": detector,
            "fps": self.info.fps, "frames": self.info.frame_count, "size": [self.info.width, self.info.height],
            "duration_s": round(self.info.duration_s, 3), "every_s": self.every_s, "tta": self.tta,
            "temperature": self.temperature, "samples": len(self.times_s), "truncated": self.truncated,
            "decoded_s": round(self.decoded_s, 3), "cut_short": self.cut_short,
            "cuts_s": [round(t, 3) for t in self.cuts],
            "faces": [{"time_s": round(p.time_s, 3), "track": p.track, "box": list(p.box), "label": p.label,
                       "score": round(p.score, 6),
                       "probabilities": {e: round(float(v), 6) for e, v in zip(EMOTIONS, p.probabilities,
                                                                                strict=True)},
                       "yaw": None if p.yaw is None else round(p.yaw, 1)}
                      for p in self.points],
        })


@contextmanager
def open_video(data: bytes) -> Iterator[tuple[object, VideoInfo]]:
    """An OpenCV capture reading ``data`` from memory, with its :class:`VideoInfo`; released on exit.

    The ``io.BytesIO`` is kept referenced here for the capture's whole life: OpenCV's stream
    reader does not hold a reference of its own, and a capture that outlives its stream crashes
    the process when released.

    Raises:
        VideoDecodeError: empty bytes, or nothing FFmpeg can decode.
    """
    import cv2

    from fer.image_io import sniff_format

    if not data:
        raise VideoDecodeError("the file is empty (0 bytes)")
    still = sniff_format(data)
    if still not in (None, "GIF"):  # FFmpeg would read a photo as a one-frame video
        raise VideoDecodeError(f"the file is a still {still} photo, not a video: analyse photos on the Predict page "
                               "or with `python -m fer.predict`")
    stream = io.BytesIO(data)
    capture = cv2.VideoCapture(stream, cv2.CAP_FFMPEG, [])
    try:
        if not capture.isOpened():
            raise VideoDecodeError("the file is not a video FFmpeg can read (expected MP4, MOV, WebM, MKV, AVI or GIF)")
        info = VideoInfo(fps=float(capture.get(cv2.CAP_PROP_FPS) or 0.0),
                         frame_count=max(0, int(capture.get(cv2.CAP_PROP_FRAME_COUNT) or 0)),
                         width=int(capture.get(cv2.CAP_PROP_FRAME_WIDTH) or 0),
                         height=int(capture.get(cv2.CAP_PROP_FRAME_HEIGHT) or 0))
        if still == "GIF" and info.frame_count == 1:
            raise VideoDecodeError("the file is a still GIF image, not an animation: analyse photos on the Predict "
                                   "page or with `python -m fer.predict`")
        if info.width * info.height > 8 * MAX_FRAME_PIXELS:
            raise VideoDecodeError(f"the video's frames are too large ({info.width}x{info.height})")
        yield capture, info
    finally:
        capture.release()
        del capture
        stream.close()


def sampling_step(info: VideoInfo, every_s: float, max_samples: int = MAX_SAMPLES) -> float:
    """The step between sampled frames: ``every_s``, widened so a long video gives at most
    ``max_samples`` frames (the work per video stays bounded).
    """
    if every_s <= 0:
        raise ValueError(f"the sampling step must be positive, not {every_s}")
    if info.duration_s > 0 and info.duration_s / every_s > max_samples:
        return info.duration_s / max_samples
    return every_s


def sample_frames(data: bytes, every_s: float = DEFAULT_EVERY_S, max_samples: int = MAX_SAMPLES,
                  state: dict | None = None) -> Iterator[tuple[float, np.ndarray, float]]:
    """Yields ``(time in s, RGB frame, scale)`` for the first frame at or after each multiple of
    the step (see :func:`sampling_step`); ``scale`` is frame pixels per video pixel (below 1
    for frames reduced to :data:`MAX_FRAME_PIXELS`).

    Times come from the stream's timestamps (right for variable-frame-rate phone clips), else
    from the frame index. Frames between samples are only grabbed, never converted to RGB arrays.
    When ``state`` is given, it gets ``info`` (:class:`VideoInfo`) and ``step`` (the step used)
    before the first frame, and at the end ``truncated``: whether frames were left after the last
    sample the budget allowed (read from the stream, not from the length the container claims,
    which can be missing or wrong), ``decoded_frames`` (the frames grabbed) and ``decoded_s``:
    where decoding ended (the last frame grabbed, plus one frame).

    Raises:
        VideoDecodeError: when the bytes cannot be opened or no frame decodes.
    """
    import cv2

    index, next_time, yielded, moment = 0, 0.0, 0, None
    with open_video(data) as (capture, info):
        step = sampling_step(info, every_s, max_samples)
        if state is not None:
            state.update(info=info, step=step)
        fps = info.fps if info.fps > 0 else 25.0  # some containers (GIF) report none
        while yielded < max_samples and capture.grab():
            stamp = capture.get(cv2.CAP_PROP_POS_MSEC)
            moment = stamp / 1000 if stamp and stamp > 0 else index / fps
            index += 1
            if moment + 1e-6 < next_time:
                continue
            ok, bgr = capture.retrieve()
            if not ok or bgr is None:
                continue
            # The next sample is the next point of the step's grid, so a run of undecodable
            # frames is skipped rather than followed by a burst of samples.
            next_time = (np.floor(moment / step + 1e-6) + 1) * step
            yielded += 1
            rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
            reduced = _reduced(rgb)
            yield moment, reduced, reduced.shape[1] / rgb.shape[1]
        if state is not None:
            state["decoded_s"] = 0.0 if moment is None else moment + 1 / fps
            state["decoded_frames"] = index
            state["truncated"] = yielded >= max_samples and capture.grab()
    if yielded == 0:
        raise VideoDecodeError("no frame of the video could be decoded")


def _reduced(rgb: np.ndarray) -> np.ndarray:
    import cv2

    height, width = rgb.shape[:2]
    if height * width <= MAX_FRAME_PIXELS:
        return rgb
    factor = (MAX_FRAME_PIXELS / (height * width)) ** 0.5
    return cv2.resize(rgb, (round(width * factor), round(height * factor)), interpolation=cv2.INTER_AREA)


def match_boxes(last_boxes: dict[int, Sequence[int]], boxes: Sequence[Sequence[int]],
                min_iou: float = TRACK_IOU) -> list[int | None]:
    """Pairs each box of a new sampled frame with the track whose last box it overlaps most
    (greedy, by IoU, each track at most once).

    Args:
        last_boxes: track -> its last box, for the tracks box overlap may still continue.
        boxes: this frame's face boxes.
        min_iou: the least overlap that continues a track.

    Returns:
        The track each box continues, or None where it overlaps no free track enough.
    """
    pairs = sorted(((box_iou(box, last), i, track) for i, box in enumerate(boxes)
                    for track, last in last_boxes.items()), reverse=True)
    matched: list[int | None] = [None] * len(boxes)
    used: set[int] = set()
    for overlap, i, track in pairs:
        if overlap < min_iou:
            break
        if matched[i] is None and track not in used:
            matched[i] = track
            used.add(track)
    return matched


@dataclass(frozen=True)
class FrameSignature:
    """What a cut test compares: a 32x32 grey thumbnail, which of its cells show the picture
    rather than a dark bar at the frame's edge, and the picture's 32-bin grey-level histogram.
    """

    layout: np.ndarray
    picture: np.ndarray
    histogram: np.ndarray


def picture_box(gray: np.ndarray) -> tuple[int, int, int, int]:
    """Where the picture is within dark flat bars at a grey frame's edges: (top, bottom, left,
    right), bottom and right exclusive. The whole frame when it has no bars, or little but bars.
    """
    import cv2

    height, width = gray.shape
    # A reduced copy is enough for bars, and averages away the compression noise on them.
    step = max(1, max(height, width) // 320)
    small = cv2.resize(gray, (max(1, width // step), max(1, height // step)), interpolation=cv2.INTER_AREA)
    small = small.astype(np.int16)
    bars = []
    for lines in (small, small[::-1], small.T, small.T[::-1]):
        edge = int(np.median(lines[0]))
        flat = (np.abs(lines - edge) <= 8).mean(axis=1) >= 0.97
        bars.append(0 if edge > BAR_GREY else len(flat) if flat.all() else int(np.argmin(flat)))
    ratio_y, ratio_x = height / small.shape[0], width / small.shape[1]
    top, bottom = round(bars[0] * ratio_y), height - round(bars[1] * ratio_y)
    left, right = round(bars[2] * ratio_x), width - round(bars[3] * ratio_x)
    if bottom - top < height / 8 or right - left < width / 8:
        return 0, height, 0, width
    return top, bottom, left, right


def frame_signature(rgb: np.ndarray) -> FrameSignature:
    """The :class:`FrameSignature` of an RGB frame."""
    import cv2

    gray = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
    height, width = gray.shape
    top, bottom, left, right = picture_box(gray)
    rows = (np.arange(32) + 0.5) * height / 32
    columns = (np.arange(32) + 0.5) * width / 32
    picture = ((rows >= top) & (rows < bottom))[:, None] & ((columns >= left) & (columns < right))[None, :]
    layout = cv2.resize(gray, (32, 32), interpolation=cv2.INTER_AREA).astype(np.float32)
    histogram = np.bincount(gray[top:bottom, left:right].ravel() >> 3, minlength=32).astype(np.float32)
    return FrameSignature(layout, picture, histogram)


def _correlation(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a - a.mean(), b - b.mean()
    norm = float(np.linalg.norm(a) * np.linalg.norm(b))
    return float(a @ b) / norm if norm > 0 else 0.0


def is_cut(previous: FrameSignature, current: FrameSignature) -> bool:
    """Whether two sampled frames belong to different shots (see :data:`CUT_LAYOUT`).

    The layouts are compared where either frame shows its picture; cells that are bars in both
    say nothing of the shots.
    """
    shown = previous.picture | current.picture
    layout = _correlation(previous.layout[shown], current.layout[shown])
    histogram = _correlation(previous.histogram, current.histogram)
    return ((layout < CUT_LAYOUT and histogram < CUT_HISTOGRAM)
            or (layout < CUT_UNLIKE_LAYOUT and histogram < CUT_UNLIKE_HISTOGRAM))


class FaceIdentifier:
    """dlib's ResNet face descriptor (128-D; one person below :data:`SAME_PERSON` apart), the model
    ``face-recognition-models`` ships. One network is shared; a lock serialises its use.
    """

    def __init__(self) -> None:
        import dlib
        import face_recognition_models

        self._network = dlib.face_recognition_model_v1(face_recognition_models.face_recognition_model_location())
        self._lock = threading.Lock()

    def describe(self, rgb: np.ndarray, landmarks: np.ndarray) -> np.ndarray:
        """The descriptor of the face whose 68 landmarks (frame pixels) are given."""
        import dlib

        points = [dlib.point(int(round(x)), int(round(y))) for x, y in landmarks]
        xs, ys = landmarks[:, 0], landmarks[:, 1]
        shape = dlib.full_object_detection(dlib.rectangle(int(xs.min()), int(ys.min()), int(xs.max()), int(ys.max())),
                                           points)
        rgb = np.asarray(rgb)
        if rgb.ndim == 2:
            rgb = np.dstack([rgb] * 3)
        chip = dlib.get_face_chip(np.ascontiguousarray(rgb[..., :3], dtype=np.uint8), shape, size=150, padding=0.25)
        with self._lock:
            return np.asarray(self._network.compute_face_descriptor(chip), dtype=np.float32)


_identifier_lock = threading.Lock()


@functools.lru_cache(maxsize=1)
def _load_identifier() -> FaceIdentifier:
    return FaceIdentifier()


def face_identifier() -> FaceIdentifier:
    """The process's one :class:`FaceIdentifier` (loaded once, on first use, ~0.3 s)."""
    with _identifier_lock:  # two sessions at once must not load it twice
        return _load_identifier()


def _unit(face: np.ndarray) -> np.ndarray:
    values = np.asarray(face, dtype=np.float32).ravel()
    values = values - values.mean()
    norm = np.linalg.norm(values)
    return values / norm if norm > 0 else values


@dataclass
class _Track:
    box: tuple[int, int, int, int]
    face: np.ndarray
    descriptor_sum: np.ndarray | None = None
    descriptors: int = 0
    gap: int = 0

    def distance(self, descriptor: np.ndarray) -> float:
        if self.descriptor_sum is None:
            return float("inf")
        return float(np.linalg.norm(self.descriptor_sum / self.descriptors - descriptor))


class FaceTracker:
    """Gives each face of successive sampled frames a person's track number (from 1).

    Box overlap (:func:`match_boxes`, tracks missing for up to :data:`TRACK_GAP` sampled frames)
    links a face to the track it continues. Every new track gets a face descriptor
    (:class:`FaceIdentifier`, about 0.13 s a face on 2 cores, so only when needed); a link is
    checked with one when the aligned face changed much since the track's last frame
    (:data:`FACE_CHANGE`) or the frame starts a new shot, and holds only if that person is the
    nearest known one and within :data:`SAME_PERSON`. A face no box links, or whose link fails,
    joins the nearest known person within :data:`SAME_PERSON`, else starts a new track.
    """

    def __init__(self, identifier: FaceIdentifier | None = None) -> None:
        self._identifier = identifier
        self._tracks: dict[int, _Track] = {}
        self.descriptors_computed = 0

    def _describe(self, rgb: np.ndarray, landmarks: np.ndarray) -> np.ndarray:
        if self._identifier is None:
            self._identifier = face_identifier()
        self.descriptors_computed += 1
        return self._identifier.describe(rgb, landmarks)

    def update(self, rgb: np.ndarray, faces: Sequence, boxes: Sequence[tuple[int, int, int, int]],
               new_shot: bool = False) -> list[int]:
        """Tracks for one sampled frame's faces (``fer.pipeline.FaceResult``, boxes in any fixed unit)."""
        live = {t: track.box for t, track in self._tracks.items() if track.gap <= TRACK_GAP}
        linked = match_boxes(live, boxes)
        units = [_unit(face.gray_face) for face in faces]
        descriptors: dict[int, np.ndarray] = {}
        assigned: dict[int, int] = {}
        for i, track_id in enumerate(linked):
            if track_id is None:
                continue  # no box overlap: identified by descriptor below
            track = self._tracks[track_id]
            if new_shot or float(units[i] @ track.face) < FACE_CHANGE:
                descriptors[i] = self._describe(rgb, faces[i].landmarks)
                nearest_id = min(self._tracks, key=lambda t: self._tracks[t].distance(descriptors[i]))
                if track.distance(descriptors[i]) > SAME_PERSON or nearest_id != track_id:
                    continue  # the box is where they were, but it is someone else (maybe someone known)
            assigned[i] = track_id
        taken = set(assigned.values())
        pending = [i for i in range(len(faces)) if i not in assigned]
        for i in pending:
            if i not in descriptors:
                descriptors[i] = self._describe(rgb, faces[i].landmarks)
        pairs = sorted((track.distance(descriptors[i]), i, t) for i in pending
                       for t, track in self._tracks.items() if t not in taken)
        for distance, i, t in pairs:
            if distance > SAME_PERSON:
                break
            if i not in assigned and t not in taken:
                assigned[i] = t
                taken.add(t)
        for i in pending:
            if i not in assigned:
                assigned[i] = len(self._tracks) + 1
                self._tracks[assigned[i]] = _Track(box=tuple(boxes[i]), face=units[i])
        for track in self._tracks.values():
            track.gap += 1
        for i, t in assigned.items():
            track = self._tracks[t]
            track.box, track.face, track.gap = tuple(boxes[i]), units[i], 0
            if i in descriptors and (track.descriptor_sum is None or track.distance(descriptors[i]) < CLEARLY_SAME):
                d = descriptors[i]
                track.descriptor_sum = d.copy() if track.descriptor_sum is None else track.descriptor_sum + d
                track.descriptors += 1
        return [assigned[i] for i in range(len(faces))]


def _thumbnail(pipeline_result, tracks: Sequence[int], width: int = 480) -> bytes:
    """A small JPEG of the analysed frame, each face's box captioned with its track number (as in
    the timelines and the CSV), not its place in the frame.
    """
    from PIL import Image

    image = Image.fromarray(pipeline_result.boxes_image(numbers=tracks))
    if image.width > width:
        image = image.resize((width, round(image.height * width / image.width)))
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=80)
    return buffer.getvalue()


def analyze_video(pipeline, data: bytes, every_s: float = DEFAULT_EVERY_S, max_samples: int = MAX_SAMPLES,
                  tta: bool | None = None, thumbnails: bool = False,
                  progress: Callable[[float, float], None] | None = None) -> VideoResult:
    """Runs the photo pipeline on sampled frames of a video and links faces into tracks.

    Args:
        pipeline: a :class:`fer.pipeline.FerPipeline`.
        data: the video file's bytes (never written anywhere).
        every_s: seconds between sampled frames (widened for long videos, see :func:`sampling_step`).
        max_samples: the most frames analysed.
        tta: flip TTA (``None``: the pipeline's setting).
        thumbnails: keep a small annotated JPEG of each sampled frame (in memory).
        progress: called with (time reached, duration) after each sampled frame.

    Raises:
        VideoDecodeError: when the video cannot be read.
    """
    started = time.perf_counter()
    times, points, images = [], [], []
    use_tta = pipeline.tta if tta is None else tta
    cuts, signature, tracker = [], None, FaceTracker()
    sampling: dict = {}  # the stream's info and step, then whether it was truncated
    for moment, rgb, scale in sample_frames(data, every_s, max_samples, state=sampling):
        previous, signature = signature, frame_signature(rgb)
        new_shot = previous is not None and is_cut(previous, signature)
        if new_shot:
            cuts.append(moment)
        result = pipeline.analyze(rgb, tta=use_tta, thorough=False)  # per frame: the fast passes only
        # Boxes in video pixels, whatever size the frame was analysed at.
        boxes = [tuple(round(v / scale) for v in face.box) for face in result.faces]
        tracks = tracker.update(rgb, result.faces, boxes, new_shot)
        for face, box, track in zip(result.faces, boxes, tracks, strict=True):
            probabilities = np.array([face.probabilities[e] for e in EMOTIONS], dtype=np.float32)
            points.append(TrackPoint(moment, track, box, probabilities, None if face.pose is None else face.pose.yaw))
        times.append(moment)
        if thumbnails:
            images.append(_thumbnail(result, tracks))
        if progress is not None:
            progress(moment, sampling["info"].duration_s)
    return VideoResult(info=sampling["info"], every_s=sampling["step"], times_s=tuple(times), points=tuple(points),
                       thumbnails=tuple(images), seconds=time.perf_counter() - started, tta=use_tta,
                       temperature=pipeline.temperatures[use_tta], truncated=sampling["truncated"],
                       cuts=tuple(cuts), identity_checks=tracker.descriptors_computed,
                       decoded_s=sampling["decoded_s"], decoded_frames=sampling["decoded_frames"])


def main(argv: list[str] | None = None) -> int:
    """CLI: prints each tracked face's summary; ``--csv`` / ``--json`` write the timeline."""
    parser = argument_parser("python -m fer.video", __doc__)
    parser.add_argument("video", type=Path, help="video file (MP4, MOV, WebM, MKV, AVI or animated GIF)")
    parser.add_argument("--every", type=positive, default=DEFAULT_EVERY_S, help="seconds between analysed frames")
    parser.add_argument("--max-samples", type=at_least(1), default=MAX_SAMPLES,
                        help="the most frames analysed (a longer video is sampled more sparsely)")
    parser.add_argument("--model", type=Path, default=None, help="Keras .h5 model (default: the released model)")
    parser.add_argument("--detector", default="hog", choices=DETECTORS,
                        help="face detector (default: hog, with BlazeFace's second look where it found faces)")
    parser.add_argument("--tta", action="store_true", help="average each face with its mirror image")
    parser.add_argument("--raw", action="store_true",
                        help="the network's own probabilities, without the card's calibration temperature")
    parser.add_argument("--csv", type=Path, help="write one row per face per analysed frame")
    parser.add_argument("--json", action="store_true", help="print the whole timeline as JSON")
    args = parser.parse_args(argv)
    try:
        data = args.video.read_bytes()
    except OSError as err:
        print(f"error: cannot read {args.video}: {err.strerror or err}", file=sys.stderr)
        return 2
    quiet_tensorflow()
    from fer.pipeline import FerPipeline

    try:
        pipeline = FerPipeline(args.model, detector=args.detector, tta=args.tta, calibrated=not args.raw)
        with quiet_opencv():
            result = analyze_video(pipeline, data, args.every, args.max_samples)
    except (FileNotFoundError, ValueError) as err:  # VideoDecodeError is a ValueError
        print(f"error: {args.video}: {err}", file=sys.stderr)
        return 2
    if args.csv:
        args.csv.parent.mkdir(parents=True, exist_ok=True)
        result.table().to_csv(args.csv, index=False)
        print(f"wrote {len(result.points)} face rows to {args.csv}", file=sys.stderr)
    if args.json:
        from fer.pipeline import default_model_path

        print(result.to_json(Path(args.model or default_model_path()).stem, args.detector))
        return 0
    info = result.info
    print(f"{args.video}: {info.width}x{info.height}, {info.duration_s:.1f} s at {info.fps:.1f} fps; "
          f"{len(result.times_s)} frames analysed (every {result.every_s:.2f} s) in {result.seconds:.1f} s; "
          f"{len(result.tracks)} face track(s), {len(result.cuts)} cut(s)"
          + (f"; stopped after {len(result.times_s)} frames, before the end" if result.truncated else "")
          + (f"; only {result.decoded_s:.1f} s decoded: the file seems cut short or damaged"
             if result.cut_short else ""))
    for row in result.summary().itertuples():
        print(f"  face {row.track}: {row.first_s:.1f}-{row.last_s:.1f} s, {row.frames} frames, mostly {row.dominant} "
              f"({row.dominant_share:.0%} of its frames)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
