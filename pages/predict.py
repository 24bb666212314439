"""Predict: find the faces in photos and classify their expressions."""

import hashlib
import logging

import streamlit as st

from fer.image_io import ImageDecodeError
from fer.photo_report import results_csv, results_json, summary_rows
from fer_app import predict_view, resources, widgets

# Results remembered per session (widgets.session_memo, memory only): every click on the page
# reruns it, and analysing a group photo again took ~1.3 s with HOG and ~4 s with the CNN.
_RESULTS_KEY = "predict_results"


# Settings per photo remembered at once (e.g. TTA on and off, two detectors), each result
# holding the decoded photo.
_SETTINGS_KEPT = 4


def photo_digest(data: bytes) -> str:
    """What a photo's results are remembered under: its bytes' SHA-256."""
    return hashlib.sha256(data).hexdigest()


def analysed_photo(pipeline, model_key: tuple, digest: str, data: bytes, illumination: str, tta: bool,
                   photos: int):
    """The pipeline's result for one photo's bytes (``digest``: :func:`photo_digest`), analysed once
    per model, detector, illumination and TTA setting in this session (:func:`forget_other_photos`
    keeps the memo to the photos shown).
    """
    key = (model_key, digest, illumination, tta)
    return widgets.session_memo(_RESULTS_KEY, key, photos * _SETTINGS_KEPT,
                                lambda: pipeline.analyze_bytes(data, illumination=illumination, tta=tta))


def forget_other_photos(digests: set[str]) -> None:
    """Drops the remembered results of photos no longer on the page: each holds its decoded photo
    (up to ~150 MB for a 50 MP PNG), which must not outlive the upload in the server's memory.
    """
    widgets.forget_memo(_RESULTS_KEY, lambda key: key[1] in digests)


def render() -> None:
    st.title("Predict expressions in photos")
    model = widgets.require_model()
    if model is None:
        return
    opts = predict_view.options(model.card.get("preprocessing", {}).get("illumination", "none"))
    inputs = predict_view.photo_inputs()
    digests = [photo_digest(photo.data) for photo in inputs]
    forget_other_photos(set(digests))

    # Loaded after the widgets are on screen, so the page is usable while the model loads.
    try:
        with st.spinner(f"Loading {model.name} and the {opts.detector} detector…"):
            pipeline = resources.get_pipeline(model, opts.detector)
    except (FileNotFoundError, ValueError, OSError) as err:
        st.error(f"The model `{model.path.name}` cannot be used: {err}")
        return
    if not inputs:
        st.info("Upload one or more photos, take one with the camera, or pick a sample photo.",
                icon=":material/upload:")
        return

    model_key = resources.pipeline_key(model, opts.detector)
    explainer = None
    if opts.explain:
        explainer = predict_view.Explainer(lambda faces: pipeline.classify(faces, tta=opts.tta), (model_key, opts.tta))
    reports = []  # every photo, in upload order: its result, or why it could not be read (a str)
    for photo_index, (photo, digest) in enumerate(zip(inputs, digests, strict=True)):
        try:
            result = analysed_photo(pipeline, model_key, digest, photo.data, opts.illumination, opts.tta,
                                    len(inputs))
        except ImageDecodeError as err:
            reason = str(err).rstrip()
            reports.append((photo.name, f"cannot be read: {reason}"))
            st.error(f"**{photo.name}** cannot be read: {reason}{'.' if reason[-1:].isalnum() else ''}",
                     icon=":material/broken_image:")
            continue
        except Exception as err:  # noqa: BLE001 - one bad photo must not hide the others
            logging.getLogger("fer_app").exception("analysis of an upload failed")
            reports.append((photo.name, f"could not be analysed ({type(err).__name__}: {err})"))
            st.error(f"**{photo.name}** could not be analysed ({type(err).__name__}: {err}).",
                     icon=":material/broken_image:")
            continue
        reports.append((photo.name, result))
        if not result.faces:
            searched = ", upright or turned" if pipeline.turn_search else ""
            others = {
                "hog": ", or another detector: BlazeFace alone takes the faces it is less sure of (HOG's second "
                       "look asks more of it), and the CNN finds turned and partly covered faces",
                "cnn": ", or BlazeFace alone, which takes faces the CNN is less sure of",
            }.get(opts.detector, ", or another detector: the CNN finds turned and partly covered faces")
            st.warning(
                f"**{photo.name}**: no face found{searched}. Try a photo where faces are at least about 40 "
                f"pixels wide{others}.",
                icon=":material/face_retouching_off:",
            )
            continue
        predict_view.render_photo(photo.name, result, photo_index, explainer, model.card.get("pose_accuracy"),
                                  model.card.get("resolution_accuracy"))

    read = [(name, result) for name, result in reports if not isinstance(result, str)]
    analysed = [(name, result) for name, result in read if result.faces]
    if analysed and len(inputs) > 1:
        faces = sum(len(result.faces) for _, result in analysed)
        photos = f"All {len(inputs)} photos" if len(analysed) == len(inputs) else \
            f"{len(analysed)} of {len(inputs)} photos with faces"
        st.subheader(f"{photos}: {faces} faces", divider="gray")
        st.dataframe(summary_rows(analysed), hide_index=True, column_config=widgets.SCORE_COLUMNS)
    if read:
        st.subheader("Download the results", divider="gray")
        left, right = st.columns(2)
        # The JSON has a record for every photo, with no faces or the reason it was not read.
        left.download_button("Results as JSON (one record per photo)", results_json(reports, model.name),
                             "fer_results.json", "application/json", key="predict_download_json", on_click="ignore")
        right.download_button("Results as CSV (one row per face)", results_csv(analysed), "fer_results.csv",
                              "text/csv", key="predict_download_csv", on_click="ignore")


widgets.run_page(render)
