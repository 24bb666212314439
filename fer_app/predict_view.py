"""The Predict page's input collection and result rendering."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import streamlit as st

from fer.detect import DETECTORS, turn_text
from fer.explain import PATCH
from fer.image_io import IMAGE_SUFFIXES
from fer.photo_report import face_table
from fer.preprocess import ILLUMINATIONS
from fer_app import charts, resources, widgets

EXPLAIN_HELP = f"An occlusion map per face ({PATCH}-pixel squares), colours scaled per face. {charts.MAP_LEGEND}"

# Extensions the uploader offers; the format itself is read from the bytes.
UPLOAD_TYPES: tuple[str, ...] = tuple(suffix.lstrip(".") for suffix in IMAGE_SUFFIXES)
DETECTOR_NAMES: dict[str, str] = {
    "hog": "HOG (dlib)", "haar": "Haar cascade (OpenCV)", "cnn": "CNN (dlib, slow)", "blaze": "BlazeFace (MediaPipe)",
}
# A crowd's photo gets its annotated image and a table of every face first, and this many face
# cards unless asked for all: each card is four images and a chart (a 45-face crowd made a page
# of 180 images).
FACE_CARDS_SHOWN: int = 12
ILLUMINATION_NAMES: dict[str, str] = {
    "none": "none", "hist": "histogram equalisation", "clahe": "CLAHE (adaptive)",
}


@dataclass(frozen=True)
class PhotoInput:
    """One photo to analyse: a display name and its encoded bytes (kept in memory only)."""

    name: str
    data: bytes


@dataclass(frozen=True)
class PredictOptions:
    detector: str
    illumination: str | None  # None: the model's own correction
    tta: bool  # average each face with its mirror image
    explain: bool = False  # an occlusion map per face


def options(model_illumination: str) -> PredictOptions:
    """Detector, displayed-illumination and test-time augmentation choices."""
    left, right, last = st.columns([4, 4, 3])
    detector = left.radio("Face detector", DETECTORS, key=widgets.kept("predict_detector"), horizontal=True,
                          format_func=DETECTOR_NAMES.get,
                          help="HOG is fast and frontal; BlazeFace then takes a second look for the faces it "
                               "missed (sunglasses, faces turned away). BlazeFace alone is faster still but misses "
                               "faces under ~4% of the photo's width. The CNN also finds turned, tilted and partly "
                               "covered faces, but takes seconds per photo on a CPU.")
    choices = ("model", *ILLUMINATIONS)
    shown = right.radio(
        "Illumination correction shown", choices, key=widgets.kept("predict_illumination"), horizontal=True,
        format_func=lambda c: f"model's ({model_illumination})" if c == "model" else ILLUMINATION_NAMES[c],
        help="The model always gets the correction it was trained with; this changes the crop shown.",
    )
    # On by default: one more 48x48 forward pass per face buys accuracy (README: fer_best with flip TTA).
    tta = last.toggle("Flip TTA", value=True, key=widgets.kept("predict_tta"),
                      help="Average each face's probabilities with those of its mirror image.")
    explain = last.toggle("Explain each face", key=widgets.kept("predict_explain"), help=EXPLAIN_HELP)
    return PredictOptions(detector=detector, illumination=None if shown == "model" else shown, tta=tta,
                          explain=explain)


def photo_inputs() -> list[PhotoInput]:
    """Uploads, a camera shot and a sample photo, reduced to (name, bytes) pairs."""
    inputs: list[PhotoInput] = []
    uploads = st.file_uploader(
        "Photos with faces", type=list(UPLOAD_TYPES), accept_multiple_files=True, key="predict_uploads",
        max_upload_size=25,
        help="Several at once is fine. Photos stay in memory and are never written to disk.",
    )
    for upload in uploads or ():
        inputs.append(PhotoInput(upload.name, upload.getvalue()))
    if st.toggle("Use the camera", key=widgets.kept("predict_camera_on")):
        shot = st.camera_input("Take a photo", key="predict_camera")
        if shot is not None:
            inputs.append(PhotoInput("camera.jpg", shot.getvalue()))
    samples = resources.sample_photos()
    if samples:
        # A row of its own: beside the camera switch, the pills ran past a narrow window's edge.
        choice = st.pills("Or try a sample photo", list(samples), key="predict_sample",
                             format_func=lambda n: n.rsplit(".", 1)[0])
        if choice:
            inputs.append(PhotoInput(choice, samples[choice].read_bytes()))
    return inputs


def render_photo(name: str, result, photo_index: int = 0, explainer: Explainer | None = None,
                 pose_report: dict | None = None, resolution_report: dict | None = None) -> None:
    """One photo: a summary line, the annotated whole photo, and a card per face.

    Args:
        name: the photo's display name.
        result: its ``fer.pipeline.PhotoResult``.
        photo_index: its position among the inputs (keeps widget keys unique).
        explainer: makes each face's occlusion map, or ``None`` for no maps.
        pose_report: the model card's accuracy by head pose (``fer.pose``), for each face's caution.
        resolution_report: the card's accuracy by face resolution (``fer.resolution``), likewise.
    """
    count = len(result.faces)
    total = result.timings.get("total", 0.0)
    st.subheader(name, divider="gray")
    width, height = result.original_size
    second = f" ({result.second_look_faces} by BlazeFace's second look)" if result.second_look_faces else ""
    calibration = (f"probabilities calibrated (temperature {result.temperature:.2f}, fitted on PublicTest)"
                   if result.temperature != 1.0 else "probabilities uncalibrated (no temperature in the card)")
    stages = ", ".join(f"{k} {v:.0f}" for k, v in result.timings.items() if k != "total")
    flat = " · flat (dark or washed out), so equalised before faces were looked for" if result.equalised else ""
    st.caption(
        f"{count} face{'s' if count != 1 else ''} · {width}×{height} px{flat} · detector {result.detector}{second} · "
        f"model run by {result.runtime} · {calibration} · analysed in {total:.0f} ms ({stages})"
    )
    if result.turn:
        st.info(
            f"No face was found upright, so the photo was searched turned: these faces were found with it "
            f"turned {turn_text(result.turn)} (a tilted head, or a photo stored on its side). Each face is "
            "aligned by its own landmarks as usual.",
            icon=":material/screen_rotation:",
        )
    annotated = result.boxes_image()
    shown = count
    if count > FACE_CARDS_SHOWN:
        # A crowd: the whole photo and every face's line first, then a few cards unless asked.
        st.image(annotated, caption=f"{name}: every face with its top label", width=min(800, annotated.shape[1]))
        st.dataframe(face_table(result), hide_index=True, column_config=widgets.SCORE_COLUMNS)
        every = st.toggle(f"Show all {count} face cards", key=f"predict_all_cards_{photo_index}",
                          help=f"The first {FACE_CARDS_SHOWN} are shown; each card has the face's stages and chart.")
        shown = count if every else FACE_CARDS_SHOWN
    for index in range(shown):
        render_face_card(result, index, f"{photo_index}_{index}", explainer, pose_report,
                         resolution_report)
    if shown < count:
        st.caption(f"{count - shown} more face cards: switch on “Show all {count} face cards” above.")
    if count and count <= FACE_CARDS_SHOWN:
        st.image(annotated, caption=f"{name}: every face with its top label", width=min(800, annotated.shape[1]))


def render_face_card(result, index: int, key: str, explainer: Explainer | None = None,
                     pose_report: dict | None = None, resolution_report: dict | None = None) -> None:
    """Stages side by side, the probability chart, the top label and the head pose of one face
    (and its occlusion map when ``explainer`` is given). A face turned as far as the test faces
    the model is measurably worse on (``pose_report``) gets a caution, and so does one with as
    few pixels (``resolution_report``).
    """
    from fer.draw import EMOTION_COLORS
    from fer.photo_report import enlarge, face_in_context
    from fer.pose import angles_text, yaw_caution
    from fer.resolution import resolution_caution

    face = result.faces[index]
    images = [
        face_in_context(result.rgb_image, face.box, result.scale, color=EMOTION_COLORS.get(face.label, (0, 255, 0))),
        enlarge(face.gray_face, 3),
        enlarge(face.display_face, 3),
        result.landmarks_image(index, size=120),
    ]
    captions = ["detected", "aligned 48×48", f"illumination: {result.display_illumination}", "landmarks and regions"]
    if explainer is not None:
        images.append(explanation_image(explainer, face))
        captions.append(charts.map_caption(face.label))
    with st.container(border=True, key=f"predict_face_card_{key}"):
        st.markdown(f"#### Face {index + 1}: **{face.label}** ({face.score:.0%})")
        stages, chart = st.columns([3, 2])
        with stages:
            # One line at 1280x800 with the sidebar open (the column is ~500 px): five stages at
            # 88 px, four at 110 (at 100 and 120 the last one wrapped).
            st.image(images, caption=captions, width=88 if explainer is not None else 110)
        with chart:
            st.markdown(charts.probability_bars_html(face.probabilities), unsafe_allow_html=True)
        if face.detector == "blaze" and result.second_look_faces:
            st.caption(f"Found by BlazeFace's second look: the {DETECTOR_NAMES[result.detector]} detector missed "
                       "this face (covered, turned away, or small), so its landmarks may be rougher.")
        if face.pose is None:
            st.caption("Head pose: unknown (the landmarks could not be fitted to a head).")
        else:
            pose = face.pose
            st.caption(f"Head pose: {pose.describe()} ({angles_text(pose.yaw, pose.pitch, pose.roll)}; estimated "
                       "from the landmarks).")
            caution = yaw_caution(pose.yaw, pose_report)
            if caution:
                st.warning(caution, icon=":material/rotate_90_degrees_ccw:")
        small = resolution_caution(face.resolution, resolution_report)
        if small:
            st.warning(small, icon=":material/photo_size_select_small:")


@dataclass(frozen=True)
class Explainer:
    """What makes occlusion maps for one photo: the pipeline's classifier with the photo's TTA
    setting, and a key naming that model and setting (maps are remembered per session under it).
    """

    classify: Callable[[np.ndarray], np.ndarray]
    key: tuple


# Maps remembered per session (widgets.session_memo): a map costs ~0.1-0.3 s a face, and every
# widget click reruns the page.
_MEMO_KEY = "predict_explanations"
_MEMO_SIZE = 64


def explanation_image(explainer: Explainer, face) -> np.ndarray:
    """The face's occlusion map for its top label, over the aligned face."""
    from fer.explain import occlusion_map, overlay
    from fer.labels import EMOTIONS

    def make() -> np.ndarray:
        explained = occlusion_map(explainer.classify, face.gray_face, EMOTIONS.index(face.label))
        return overlay(face.gray_face, explained.drop, zoom=3)

    key = (explainer.key, face.label, hashlib.blake2b(face.gray_face.tobytes(), digest_size=16).digest())
    return widgets.session_memo(_MEMO_KEY, key, _MEMO_SIZE, make)
