"""The photo pipeline: decode, detect, landmarks, align, correct illumination, classify.

One :class:`FerPipeline` object serves the CLI, the app and the tests. It reads the model's
pre-processing from the model's metadata card, so the faces it classifies are prepared exactly
as the training faces were. It holds no per-call state: the app shares one instance across
sessions (``st.cache_resource``); the detector and the model are guarded by locks, the
landmark predictor is read-only.
"""

from __future__ import annotations

import io
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from fer.calibration import apply_temperature, card_temperature
from fer.detect import (
    BLAZE_PADDINGS,
    BLAZE_TILE_GRID,
    BLAZE_UPRIGHT_ROLL,
    DETECT_FINEST_PIXELS,
    DETECT_MAX_PIXELS,
    BlazeDetector,
    Box,
    Detection,
    FaceDetector,
    blaze_second_look,
    clip_box,
    detect_faces,
    make_detector,
    needs_tiles,
    reading_order,
    search_turned,
    settled,
    upright_crop,
)
from fer.image_io import DecodedImage, decode_image
from fer.labels import EMOTIONS
from fer.metadata import ModelInfo, model_info, weights_problem
from fer.paths import MODELS_DIR
from fer.pose import HeadPose, pose_or_none, unturned_pose
from fer.preprocess import ILLUMINATIONS, correct_illumination, lift_low_contrast, to_model_input
from fer.resolution import face_resolution

# Released models, best first: the tuned model when there is one, else the paper's CNN.
DEFAULT_MODEL_NAMES: tuple[str, ...] = ("fer_best.h5", "paper_cnn.h5")
STAGES: tuple[str, ...] = ("decode", "detect", "landmarks", "align", "classify")
# JPEGs are decoded at reduced size while at least this many pixels remain: half the detection
# budget, so detection still sees ~600x450 or more and faces stay >= ~3x the 48 px crop.
DECODE_FAST_PIXELS: int = DETECT_MAX_PIXELS // 2
# A photo whose fast decode shows small faces or none is decoded again, finer: half the finest
# pass's budget, so a 12 MP photo comes at half size (3 MP) and its small faces stay big enough
# for the finest pass. Portraits settle on the fast decode and never pay for this one.
DECODE_MIN_PIXELS: int = DETECT_FINEST_PIXELS // 2
# The landmark predictor was trained on dlib's HOG boxes; the other detectors' boxes are mapped
# to that framing: (HOG side / their side, HOG centre's drop below theirs in their sides).
# Medians over the sample photos' faces both detectors found: the Haar cascade's boxes are
# larger and higher (49 faces); the CNN's about as large, a little higher (54 faces).
# BlazeFace's are a little larger, at the same height (54 faces).
HOG_FRAMING: dict[str, tuple[float, float]] = {"haar": (0.88, 0.07), "cnn": (0.98, 0.07), "blaze": (0.96, 0.01)}


def default_model_path(models_dir: Path = MODELS_DIR) -> Path:
    """Returns the released model the app and CLI use by default.

    ``fer_best.h5`` if it exists, else ``paper_cnn.h5`` (returned even if missing, so the
    error names the file a person should release).
    """
    for name in DEFAULT_MODEL_NAMES:
        path = models_dir / name
        if path.is_file():
            return path
    return models_dir / DEFAULT_MODEL_NAMES[-1]


@dataclass(frozen=True, eq=False)  # eq=False: fields hold arrays, compare .to_dict() instead
class FaceResult:
    """One face: where it is, what it looks like to the model, and what the model says.

    Attributes:
        box: (x, y, w, h) in the original photo's pixels, clipped to the photo.
        detector_score: the detector's confidence.
        landmarks: float32 (68, 2), original photo pixels (may lie outside the photo).
        regions: named landmark regions (see ``fer.landmarks.REGIONS``), views of ``landmarks``.
        gray_face: uint8 (48, 48), aligned in FER2013's framing, before illumination correction.
        corrected_face: uint8 (48, 48), the face with the model's own illumination correction:
            exactly what the model classified.
        display_face: uint8 (48, 48), corrected with the illumination chosen for display (the same
            as ``corrected_face`` unless a different one was asked for).
        probabilities: label -> probability, in ``fer.labels.EMOTIONS`` order.
        label: the most probable label.
        score: its probability.
        pose: the head's yaw, pitch and roll from the landmarks (``fer.pose``), or ``None`` when
            the generic head could not be fitted.
        detector: the detector that found the face: the pipeline's own, or ``blaze`` for a face
            it missed and BlazeFace found (``FerPipeline(second_look=...)``).
        resolution: how many of the analysed photo's pixels the aligned face spans, a side
            (:func:`fer.resolution.face_resolution`): under the model's input size, the face was
            enlarged, and the model is less accurate on such faces (``fer.resolution``).
    """

    box: Box
    detector_score: float
    landmarks: np.ndarray = field(repr=False)
    regions: dict[str, np.ndarray] = field(repr=False)
    gray_face: np.ndarray = field(repr=False)
    corrected_face: np.ndarray = field(repr=False)
    display_face: np.ndarray = field(repr=False)
    probabilities: dict[str, float]
    label: str
    score: float
    pose: HeadPose | None = None
    detector: str = ""
    resolution: float = 0.0

    @property
    def top(self) -> tuple[str, float]:
        """``(label, score)`` of the most probable class."""
        return self.label, self.score

    def to_dict(self) -> dict[str, object]:
        """The JSON-friendly part: box, the detector that found it, label, score, probabilities and head pose."""
        return {
            "box": [int(v) for v in self.box],
            "detector": self.detector,
            "label": self.label,
            "score": round(float(self.score), 6),
            "probabilities": {k: round(float(v), 6) for k, v in self.probabilities.items()},
            "pose": None if self.pose is None else self.pose.to_dict(),
        }


@dataclass(frozen=True, eq=False)
class PhotoResult:
    """Everything the pipeline found in one photo.

    Attributes:
        faces: one :class:`FaceResult` per face, in reading order.
        rgb_image: the photo as analysed: upright RGB, possibly a reduced copy of a big JPEG.
        scale: ``rgb_image`` pixels per original pixel.
        original_size: (width, height) of the original, upright photo.
        timings: milliseconds per stage (:data:`STAGES`) and ``total``.
        model_illumination: the correction the model was trained with (and got).
        display_illumination: the correction of ``FaceResult.display_face``.
        detector: the detector's name.
        tta: whether each face's probabilities average it with its mirror image.
        runtime: what ran the model: ``fer.lite.LITERT`` or ``fer.lite.KERAS``.
        temperature: the calibration temperature applied to the probabilities (1.0: none).
        turn: 0, or the degrees (counter-clockwise) the photo was turned to find its faces after
            the upright search found none (:func:`fer.detect.search_turned`).
        equalised: the photo was flat (dark, hazy or washed out), so faces were looked for,
            fitted and aligned in its histogram-equalised copy
            (:func:`fer.preprocess.lift_low_contrast`).
    """

    faces: tuple[FaceResult, ...]
    rgb_image: np.ndarray = field(repr=False)
    scale: float
    original_size: tuple[int, int]
    timings: dict[str, float]
    model_illumination: str
    display_illumination: str
    detector: str
    tta: bool = False
    runtime: str = ""
    temperature: float = 1.0
    turn: float = 0.0
    equalised: bool = False

    @property
    def second_look_faces(self) -> int:
        """How many of the faces BlazeFace's second look added (the detector had missed them)."""
        return 0 if self.detector == "blaze" else sum(face.detector == "blaze" for face in self.faces)

    def boxes_image(self, probabilities: bool = False, numbers: Sequence[int] | None = None) -> np.ndarray:
        """The photo with every face's box and label (and probability bars if asked), each
        numbered by ``numbers`` (e.g. video tracks) or else from 1 in reading order.
        """
        from fer.draw import annotate_faces

        faces = self.faces
        return annotate_faces(
            self.rgb_image, [f.box for f in faces], [f.label for f in faces], [f.score for f in faces],
            [f.probabilities for f in faces] if probabilities else None, self.scale, numbers=numbers,
        )

    def landmarks_image(self, index: int, size: int = 256) -> np.ndarray:
        """A close-up of face ``index`` with its landmark regions outlined."""
        from fer.draw import face_overlay

        face = self.faces[index]
        return face_overlay(self.rgb_image, face.box, face.landmarks, self.scale, size)

    def stage_images(self, index: int) -> dict[str, np.ndarray]:
        """The stages of face ``index`` for display: ``boxes`` (whole photo), ``landmarks``
        (close-up with regions), ``aligned`` (grey 48x48) and ``corrected`` (48x48 as displayed).
        """
        face = self.faces[index]
        return {
            "boxes": self.boxes_image(),
            "landmarks": self.landmarks_image(index),
            "aligned": face.gray_face,
            "corrected": face.display_face,
        }


def _to_hog_box(detection: Detection, detector_name: str) -> Box:
    """Converts a detector's box to the HOG framing the landmark predictor expects."""
    if detector_name not in HOG_FRAMING:
        return detection.box
    shrink, shift_down = HOG_FRAMING[detector_name]
    x, y, w, h = detection.box
    side = w * shrink
    cx, cy = x + w / 2, y + h / 2 + shift_down * h
    return round(cx - side / 2), round(cy - side / 2), round(side), round(side)


def _in_reading_order(detections: list[Detection], *alongside: list) -> tuple[list, ...]:
    """``detections`` in reading order (:func:`fer.detect.reading_order`).

    Each list of ``alongside`` (one item per detection) comes back in the same order.
    """
    order = reading_order([d.box for d in detections])
    return tuple([items[i] for i in order] for items in (detections, *alongside))


def _warm_up_jpeg() -> bytes:
    """A faceless 320x240 grey-gradient JPEG (the pipeline's warm-up photo), made in memory."""
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray((np.indices((240, 320)).sum(axis=0) % 256).astype(np.uint8)).convert("RGB").save(buffer, "JPEG")
    return buffer.getvalue()


def _gray(rgb_image: np.ndarray) -> tuple[np.ndarray, bool]:
    """The photo in grey, equalised where it is flat (dark or washed out: HOG and the landmark
    predictor need contrast; :func:`fer.preprocess.lift_low_contrast`), and whether it was.
    """
    import cv2

    gray = cv2.cvtColor(rgb_image, cv2.COLOR_RGB2GRAY)
    lifted = lift_low_contrast(gray)
    return lifted, lifted is not gray


class FerPipeline:
    """Finds faces in photos and classifies their expressions.

    Args:
        model_path: a Keras ``.h5`` with its metadata JSON beside it; defaults to
            :func:`default_model_path`. Its checked LiteRT copy runs instead when it is fresh
            (:func:`fer.lite.load_classifier`; ``runtime`` says which ran).
        detector: ``hog`` (dlib, default), ``haar`` (OpenCV), ``cnn`` (dlib's CNN: slow, finds
            turned faces) or ``blaze`` (MediaPipe's BlazeFace: fast; small faces only in tiles).
        illumination: correction for *displayed* faces; ``None`` shows what the model sees.
            The model always gets the correction it was trained with (from its metadata).
        tta: average each face's probabilities with those of its mirror image.
        turn_search: when the upright search finds no face, search turned copies of the photo
            (:data:`fer.detect.TURN_ANGLES`: tilted heads, photos stored on their side or upside
            down). ``None``: with HOG only, whose scores set the bar for turned hits (the CNN
            detector is too slow to search six times).
        second_look: also search the photo with BlazeFace (:class:`fer.detect.BlazeDetector`,
            ~6 ms a view) and add the faces the detector missed (sunglasses, faces turned away,
            heads rolled far over; :func:`fer.detect.blaze_second_look`): in a photo where the
            detector found faces, or, where it found none, when the turned search finds none
            either (never in a quick, ``thorough=False`` search that found none). ``None``: on,
            unless the detector is BlazeFace itself.
        tiles: BlazeFace (the second look's, or the detector) also sees the photo in tiles
            where the faces found are small or none were (:func:`fer.detect.needs_tiles`; nine
            more model runs), in a ``thorough`` search only (not a video frame's).
        calibrated: apply the temperature the model card stores for plain or flip-TTA
            probabilities (``python -m fer.calibration``; none stored means none applied), so a
            face called 80% happy is right about 80% of the time on the test split. Argmax,
            hence every label, is the same either way.

    Raises:
        FileNotFoundError: the model or its metadata, or BlazeFace's model, is missing.
        ValueError: an unknown detector or illumination, a model this pipeline cannot feed, or
            ``turn_search=True`` with a detector other than HOG; :class:`fer.models.ModelFileError`
            (a ``ValueError``) for a model file that is not a saved Keras model.
    """

    def __init__(
        self,
        model_path: str | Path | None = None,
        detector: str = "hog",
        illumination: str | None = None,
        tta: bool = False,
        calibrated: bool = True,
        turn_search: bool | None = None,
        second_look: bool | None = None,
        tiles: bool = True,
    ) -> None:
        path = Path(model_path) if model_path else default_model_path()
        if not path.is_file():
            if not path.is_absolute():  # a path copied from the docs, run from another folder
                raise FileNotFoundError(f"model not found: {path} (relative to {Path.cwd()}); "
                                        f"the released models are in {MODELS_DIR}")
            raise FileNotFoundError(f"model not found: {path} (train one with `python -m fer.train`)")
        if illumination is not None and illumination not in ILLUMINATIONS:
            raise ValueError(f"unknown illumination {illumination!r}; expected one of {', '.join(ILLUMINATIONS)}")
        self.info: ModelInfo = model_info(path)
        problem = weights_problem(path, self.info.raw)
        if problem:  # the card's preprocessing and calibration may not fit these weights
            raise ValueError(problem)
        card = self.info.raw if calibrated else {}  # the card model_info has just read
        # Temperatures for plain (False) and flip-TTA (True) probabilities; 1.0 leaves them as they are.
        self.temperatures: dict[bool, float] = {tta: card_temperature(card, tta) for tta in (False, True)}
        if turn_search and detector != "hog":
            raise ValueError(f"the turned search needs the HOG detector (its score bar is HOG's), not {detector!r}")
        self.detector_name = detector
        self.detector: FaceDetector = make_detector(detector)
        self.turn_search = detector == "hog" if turn_search is None else turn_search
        look_again = detector != "blaze" if second_look is None else second_look
        self.second_look: BlazeDetector | None = BlazeDetector() if look_again else None
        self.tiles = tiles
        from fer.landmarks import LandmarkPredictor
        from fer.lite import LiteModel, load_classifier

        self.landmark_predictor = LandmarkPredictor()
        self.model, self.runtime = load_classifier(path)
        if isinstance(self.model, LiteModel):
            self.uses_landmarks = False  # only single-input models have LiteRT copies
            face_shape = self.model.input_shape
        else:
            self.uses_landmarks = len(self.model.inputs) > 1
            # A landmark model has two inputs; the face is the first (named "face").
            face_shape = self.model.inputs[0].shape
        if self.uses_landmarks != self.info.landmarks:
            raise ValueError(f"{path}: the model's inputs and its metadata disagree about the landmark input")
        self.input_size: tuple[int, int] = (int(face_shape[1]), int(face_shape[2]))
        self.illumination = illumination
        self.tta = tta
        self._model_lock = threading.Lock()
        self._warm_up()

    def _warm_up(self) -> None:
        """Runs the model once for batches of 1 and 2 faces, then a small photo through the pipeline.

        TensorFlow traces a new graph for each new batch size until the second one, then keeps
        a size-agnostic graph; paying that (~0.3 s each) here keeps it out of the first photos.
        The JPEG decoder and the detector also pay one-time costs on their first photo (a 1 MP
        photo took ~100 ms first, ~30-40 ms after this warm-up, on a 2-core CPU); a faceless
        320x240 JPEG pays them here (~25-55 ms), without the turned search its facelessness would
        set off. Not for the CNN detector, whose seconds per photo dwarf them. BlazeFace's first
        run (which that quick, faceless search skips) is paid here too.
        """
        height, width = self.input_size
        for n in (1, 2):
            self.model.predict_on_batch(self._model_inputs(np.zeros((n, height, width), np.uint8)))
        if self.second_look is not None:
            self.second_look.detect(np.zeros((240, 320, 3), np.uint8))
        if self.detector_name != "cnn":
            self.analyze_bytes(_warm_up_jpeg(), thorough=False)

    def _model_inputs(self, gray_faces: np.ndarray) -> np.ndarray | dict[str, np.ndarray]:
        """The model's input for aligned uint8 faces, prepared exactly as in training.

        Illumination comes from the model's metadata. Landmark models also get
        ``fer.landmark_features`` of the uncorrected face, quantised to 1/255 as the training
        table stores them.
        """
        faces = to_model_input(gray_faces, self.model_illumination)
        if not self.uses_landmarks:
            return faces
        from fer.landmark_features import model_landmark_features

        return {"face": faces, "landmarks": model_landmark_features(gray_faces)}

    @property
    def model_illumination(self) -> str:
        """The illumination correction the model was trained with."""
        return self.info.illumination

    def classify(self, gray_faces: np.ndarray, tta: bool | None = None) -> np.ndarray:
        """Returns class probabilities (N, 7) for aligned faces (N, H, W) of grey levels 0-255.

        The faces get the model's own pre-processing here (see :meth:`_model_inputs`). A single
        face (H, W) counts as a batch of one, and a trailing channel axis of 1 (N, H, W, 1) is
        dropped. The grey levels are uint8, or integers of another type within 0-255; floats are
        refused rather than guessed at (faces scaled to [0, 1] would otherwise become black).

        Raises:
            ValueError: faces of another shape than the model's input, float faces, or grey
                levels outside 0-255.
        """
        faces = self._face_batch(gray_faces)
        if len(faces) == 0:
            return np.zeros((0, len(EMOTIONS)), np.float32)
        use_tta = self.tta if tta is None else tta
        count = len(faces)
        if use_tta:
            faces = np.concatenate([faces, faces[:, :, ::-1]])
        batch = self._model_inputs(faces)
        with self._model_lock:
            probs = np.asarray(self.model.predict_on_batch(batch), dtype=np.float32)
        if use_tta:
            probs = (probs[:count] + probs[count:]) / 2
        if self.temperatures[use_tta] != 1.0:
            probs = apply_temperature(probs, self.temperatures[use_tta]).astype(np.float32)
        return probs

    def _face_batch(self, gray_faces: np.ndarray) -> np.ndarray:
        """``gray_faces`` as uint8 (N, H, W) of the model's input size (see :meth:`classify`)."""
        given = np.asarray(gray_faces)
        faces = given
        if faces.ndim == 2:
            faces = faces[None]
        elif faces.ndim == 4 and faces.shape[-1] == 1:
            faces = faces[..., 0]
        if faces.ndim >= 1 and len(faces) == 0:
            return np.zeros((0, *self.input_size), np.uint8)
        height, width = self.input_size
        if faces.ndim != 3 or faces.shape[1:] != (height, width):
            raise ValueError(f"expected grey faces (N, {height}, {width}), (N, {height}, {width}, 1) or one face "
                             f"({height}, {width}); got shape {given.shape}")
        if faces.dtype == np.uint8:
            return faces
        if not np.issubdtype(faces.dtype, np.integer):
            raise ValueError(f"expected grey levels 0-255 as uint8, got {faces.dtype} (floats are not guessed at): "
                             "pass faces.round().astype(np.uint8), or (faces * 255).round().astype(np.uint8) "
                             "for faces scaled to [0, 1]")
        low, high = int(faces.min()), int(faces.max())
        if low < 0 or high > 255:
            raise ValueError(f"expected grey levels 0-255, got {faces.dtype} values from {low} to {high}")
        return faces.astype(np.uint8)

    def _landmarks(self, image: np.ndarray, detection: Detection, source: str) -> tuple[np.ndarray, HeadPose | None]:
        """The landmarks (``image`` pixels) and head pose of one face found by ``source``.

        Both are fitted where the face stands upright (the fit starts from an upright head): a
        face BlazeFace found rolled past :data:`fer.detect.BLAZE_UPRIGHT_ROLL` in a crop turned
        by its roll, whose landmarks are mapped back.
        """
        from fer.align import transform_points

        if source != "blaze" or detection.roll is None or abs(detection.roll) <= BLAZE_UPRIGHT_ROLL:
            points = self.landmark_predictor.predict(image, _to_hog_box(detection, source))
            return points, pose_or_none(points)
        crop, box, to_image = upright_crop(image, detection)
        points = self.landmark_predictor.predict(crop, _to_hog_box(Detection(box, detection.score), source))
        pose = unturned_pose(pose_or_none(points), detection.roll)
        return transform_points(points, to_image).astype(np.float32), pose

    def analyze_bytes(
        self, data: bytes, illumination: str | None = None, tta: bool | None = None, thorough: bool = True
    ) -> PhotoResult:
        """Analyses an encoded photo (an upload's bytes; nothing touches the disk).

        ``thorough``: as in :meth:`analyze`.

        Raises:
            fer.image_io.ImageDecodeError: the bytes are not a usable image.
        """
        return self._analyze_encoded(data, illumination, tta, thorough, time.perf_counter())

    def analyze_path(self, path: str | Path, illumination: str | None = None, tta: bool | None = None) -> PhotoResult:
        """Analyses a photo file (see :meth:`analyze_bytes`)."""
        start = time.perf_counter()  # reading the file counts as decoding
        return self._analyze_encoded(Path(path).read_bytes(), illumination, tta, True, start)

    def _analyze_encoded(
        self, data: bytes, illumination: str | None, tta: bool | None, thorough: bool, start: float
    ) -> PhotoResult:
        """Decodes reduced (``DECODE_FAST_PIXELS``) and analyses; :meth:`_analyze` may decode finer."""
        decoded = decode_image(data, min_pixels=DECODE_FAST_PIXELS)
        decode_ms = (time.perf_counter() - start) * 1000
        return self._analyze(decoded, illumination, tta, decode_ms, start, thorough, data)

    def analyze(
        self, rgb_image: np.ndarray, illumination: str | None = None, tta: bool | None = None, thorough: bool = True
    ) -> PhotoResult:
        """Analyses an RGB uint8 array (H, W, 3), e.g. a camera frame.

        Raises ``ValueError`` for any other dtype or shape, or an image without pixels.

        ``thorough=False`` skips the searches that cost time only when faces are small or absent
        (the finest detection pass and the turned search): a video's frames would pay them on
        every faceless frame.
        """
        rgb_image = np.asarray(rgb_image)
        if rgb_image.dtype != np.uint8 or rgb_image.ndim != 3 or rgb_image.shape[2] != 3:
            raise ValueError(f"expected an RGB uint8 image (H, W, 3), got {rgb_image.dtype} {rgb_image.shape}")
        if rgb_image.size == 0:
            raise ValueError(f"expected an RGB uint8 image (H, W, 3) with pixels, got shape {rgb_image.shape}")
        height, width = rgb_image.shape[:2]
        decoded = DecodedImage(rgb=rgb_image, format="array", original_size=(width, height))
        return self._analyze(decoded, illumination, tta, 0.0, time.perf_counter(), thorough)

    def _analyze(
        self,
        decoded: DecodedImage,
        illumination: str | None,
        tta: bool | None,
        decode_ms: float,
        start: float,
        thorough: bool = True,
        encoded: bytes | None = None,
    ) -> PhotoResult:
        from fer.align import align_face, transform_points
        from fer.landmarks import region_points

        display = illumination or self.illumination or self.model_illumination
        if display not in ILLUMINATIONS:
            raise ValueError(f"unknown illumination {display!r}; expected one of {', '.join(ILLUMINATIONS)}")
        timings = {"decode": decode_ms}
        width, height = decoded.original_size

        tick = time.perf_counter()
        gray, equalised = _gray(decoded.rgb)
        # A reduced decode's finest pass waits for the finer decode, which it would need anyway.
        # BlazeFace has no passes (a finer decode shows it nothing new) and sees colour.
        whole = self.detector.whole_image
        reduced = thorough and encoded is not None and decoded.scale < 1 and not whole
        detections = detect_faces(self.detector, decoded.rgb if whole else gray,
                                  finest_pixels=None if thorough and not reduced else 0,
                                  tiles=thorough and self.tiles)
        if reduced and not settled(detections, *gray.shape[::-1]):
            # Small faces or none in a reduced decode: decode finer, for the finest pass (the
            # coarser passes would see what they saw in the reduced one).
            again = time.perf_counter()
            decoded = decode_image(encoded, min_pixels=DECODE_MIN_PIXELS)
            timings["decode"] += (time.perf_counter() - again) * 1000
            tick += time.perf_counter() - again
            gray, equalised = _gray(decoded.rgb)
            detections = detect_faces(self.detector, gray, finest_only=True)
        scale = decoded.scale
        turned = None
        if not detections and thorough and self.turn_search:
            # BlazeFace, when the second look has it, gates the turns HOG searches.
            turned = search_turned(self.detector, gray, gate=self.second_look)
        searched = gray
        if turned is not None:
            searched, detections = turned.image, turned.detections
        sources = [self.detector_name] * len(detections)
        if turned is None and self.second_look is not None and (detections or thorough):
            # Only where faces found show the photo upright, or the whole search found none:
            # BlazeFace also finds faces upside down, and reads them as upright (so would a video
            # frame's quick search, which skips the turned one). Faces it finds rolled far over
            # are fitted upright (_landmarks).
            # In colour, in ``gray``'s pixels. The padded view is for a face filling the photo: with
            # faces found, one that big would be among them.
            paddings = BLAZE_PADDINGS[:1] if detections else BLAZE_PADDINGS
            # Tiles for faces too small for the whole look, where the faces found are small or
            # none were: not in a video frame's quick search (thorough is False there).
            small = thorough and self.tiles and needs_tiles([d.box for d in detections], *gray.shape[::-1])
            extra = blaze_second_look(self.second_look, decoded.rgb, detections, paddings,
                                      tiles=BLAZE_TILE_GRID if small else 0)
            if extra:
                detections, sources = _in_reading_order(detections + extra, sources + ["blaze"] * len(extra))
        timings["detect"] = (time.perf_counter() - tick) * 1000

        tick = time.perf_counter()
        fitted = [self._landmarks(searched, d, source) for d, source in zip(detections, sources, strict=True)]
        points, poses = [f[0] for f in fitted], [f[1] for f in fitted]
        if turned is not None:  # back to the photo's pixels, where the faces are aligned
            points = [transform_points(p, turned.to_original).astype(np.float32) for p in points]
            detections = [Detection(turned.original_box(d.box), d.score) for d in detections]
            poses = [unturned_pose(pose, turned.angle) for pose in poses]
            # As the photo is shown, not as searched.
            detections, sources, points, poses = _in_reading_order(detections, sources, points, poses)
        timings["landmarks"] = (time.perf_counter() - tick) * 1000

        tick = time.perf_counter()
        size = self.input_size[0]
        gray_faces = np.zeros((len(points), size, size), np.uint8)
        for i, face_points in enumerate(points):
            gray_faces[i] = align_face(gray, face_points, size)
        timings["align"] = (time.perf_counter() - tick) * 1000

        use_tta = self.tta if tta is None else tta
        tick = time.perf_counter()
        probs = self.classify(gray_faces, use_tta)
        timings["classify"] = (time.perf_counter() - tick) * 1000

        faces = []
        found = zip(detections, sources, points, poses, gray_faces, probs, strict=True)
        for det, source, pts, pose, face, prob in found:
            landmarks = (pts / scale).astype(np.float32)
            corrected = correct_illumination(face, self.model_illumination)
            shown = corrected if display == self.model_illumination else correct_illumination(face, display)
            best = int(np.argmax(prob))
            x, y, w, h = det.box
            faces.append(FaceResult(
                box=clip_box((round(x / scale), round(y / scale), round(w / scale), round(h / scale)), width, height),
                detector_score=det.score,
                landmarks=landmarks,
                regions=region_points(landmarks),
                gray_face=face,
                corrected_face=corrected,
                display_face=shown,
                probabilities={name: float(p) for name, p in zip(EMOTIONS, prob, strict=True)},
                label=EMOTIONS[best],
                score=float(prob[best]),
                pose=pose,
                detector=source,
                resolution=face_resolution(pts, size),
            ))
        timings["total"] = (time.perf_counter() - start) * 1000
        return PhotoResult(
            faces=tuple(faces),
            rgb_image=decoded.rgb,
            scale=scale,
            original_size=decoded.original_size,
            timings=timings,
            model_illumination=self.model_illumination,
            display_illumination=display,
            detector=self.detector_name,
            tta=use_tta,
            runtime=self.runtime,
            temperature=self.temperatures[use_tta],
            turn=0.0 if turned is None else float(turned.angle),
            equalised=equalised,
        )
