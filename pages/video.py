"""Video: a clip's faces followed over time, with each one's expression timeline."""

import logging

import numpy as np
import streamlit as st

from fer.labels import EMOTIONS
from fer.video import DEFAULT_EVERY_S, MAX_SAMPLES, TRACK_GAP, VIDEO_SUFFIXES, VideoDecodeError, analyze_video
from fer_app import charts, resources, widgets

MAX_UPLOAD_MB = 200
STEPS_S = (0.2, 0.25, 0.5, 1.0, 2.0)
# Results of this session's last clips, in memory only (a clip's frames are faces).
_RESULTS_KEY = "video_results"
# BlazeFace alone analyses frames ~1.8x faster (benchmarks/bench_video.py) but misses faces under
# ~4% of the frame's width, which HOG finds.
DETECTOR_NAMES: dict[str, str] = {"hog": "HOG + BlazeFace", "blaze": "BlazeFace alone (faster)"}


def render() -> None:
    st.title("Expressions over time in a video")
    model = widgets.require_model()
    if model is None:
        return
    left, middle, right = st.columns([3, 2, 1])
    every = left.select_slider("Analyse one frame every", STEPS_S, value=DEFAULT_EVERY_S,
                               key=widgets.kept("video_every"), format_func=lambda s: f"{s:g} s",
                               help=f"At most {MAX_SAMPLES} frames are analysed: longer clips get a wider step.")
    detector = middle.radio("Face detector", tuple(DETECTOR_NAMES), key=widgets.kept("video_detector"), horizontal=True,
                            format_func=DETECTOR_NAMES.get,
                            help="HOG, with BlazeFace's second look for the faces it misses, as on the Predict "
                                 "page; or BlazeFace alone, about 1.8x faster, which misses faces under ~4% of the "
                                 "frame's width.")
    tta = right.toggle("Flip TTA", value=True, key=widgets.kept("video_tta"),
                       help="Average each face's probabilities with those of its mirror image.")
    upload = st.file_uploader(
        "A video clip", type=[s.lstrip(".") for s in VIDEO_SUFFIXES], key="video_upload",
        max_upload_size=MAX_UPLOAD_MB,
        help="Decoded in memory and never written to disk. Each person gets one track: box overlap from frame to "
             "frame, checked with a face descriptor, so someone who leaves and comes back keeps their track.",
    )
    try:
        with st.spinner(f"Loading {model.name}…"):
            pipeline = resources.get_pipeline(model, detector)
    except (FileNotFoundError, ValueError, OSError) as err:
        st.error(f"The model `{model.path.name}` cannot be used: {err}")
        return
    if upload is None:
        st.info(f"Upload a clip (MP4, MOV, WebM, MKV, AVI or animated GIF, up to {MAX_UPLOAD_MB} MB): each analysed "
                "frame goes through the Predict page's pipeline, and each face gets a timeline.",
                icon=":material/movie:")
        return
    data = upload.getvalue()
    # The uploader's id names this upload (hashing up to 200 MB on every rerun would not pay).
    key = (upload.file_id, upload.size, every, tta, resources.pipeline_key(model, detector))
    try:
        result = widgets.session_memo(_RESULTS_KEY, key, 2, lambda: _analyse(pipeline, data, every, tta))
    except VideoDecodeError as err:
        st.error(f"**{upload.name}** cannot be read: {err}.", icon=":material/broken_image:")
        return
    except Exception as err:  # noqa: BLE001 - a clip that breaks the decoder must not break the page
        logging.getLogger("fer_app").exception("analysis of a video failed")
        st.error(f"**{upload.name}** could not be analysed ({type(err).__name__}: {err}).",
                 icon=":material/broken_image:")
        return
    render_result(upload.name, result, model.name, upload.file_id, DETECTOR_NAMES[detector])


def _analyse(pipeline, data: bytes, every: float, tta: bool):
    bar = st.progress(0.0, text="Analysing frames…")

    def progress(reached: float, duration: float) -> None:
        share = min(1.0, reached / duration) if duration > 0 else 0.0
        bar.progress(share, text=f"Analysing frames… {reached:.1f} s of {duration:.1f} s")

    try:
        return analyze_video(pipeline, data, every_s=every, tta=tta, thumbnails=True, progress=progress)
    finally:
        bar.empty()


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}{'' if n == 1 else 's'}"


def render_result(name: str, result, model_name: str, clip_id: str = "", detector: str = "") -> None:
    """The clip's figures, each face's timeline, a frame browser and the downloads."""
    info = result.info
    tracks = result.tracks
    st.subheader(name, divider="gray")
    length = f"{info.duration_s:.1f} s at {info.fps:.1f} fps" if info.duration_s > 0 else "length not recorded"
    gaps = np.diff(result.times_s)
    # A clip whose frames are further apart than the step (a slow GIF) is analysed frame by frame.
    spacing = (f"one every {result.every_s:.2f} s" if not len(gaps) or np.median(gaps) < 1.5 * result.every_s
               else f"every frame (about {np.median(gaps):.2f} s apart)")
    st.caption(
        f"{info.width}×{info.height} px · {length} · {_count(len(result.times_s), 'frame')} analysed, {spacing}, "
        f"in {result.seconds:.1f} s · {_count(len(tracks), 'face track')} · "
        f"{_count(len(result.cuts), 'cut')} · model {model_name}{', flip TTA' if result.tta else ''}"
        + (f" · detector {detector}" if detector else "")
        + (f" · probabilities calibrated (temperature {result.temperature:.2f})" if result.temperature != 1.0 else "")
    )
    if result.truncated:
        st.warning(f"Only the first {result.times_s[-1]:.1f} s were analysed: the analysis stops at {MAX_SAMPLES} "
                   "frames, and this clip went on (its container understated its length or did not record it). Use a "
                   "longer step, or `python -m fer.video` with `--max-samples`.", icon=":material/content_cut:")
    if result.cut_short:
        st.warning(f"Only the first {result.decoded_s:.1f} s of the {info.duration_s:.1f} s the file records could "
                   "be decoded: it seems cut short or damaged, so a track ending there does not mean the person "
                   "left.", icon=":material/broken_image:")
    if not tracks:
        st.warning("No face found in any analysed frame. Faces need to be roughly frontal and at least about "
                   "40 pixels wide.", icon=":material/face_retouching_off:")
    else:
        summary = result.summary()
        st.dataframe(summary[["track", "first_s", "last_s", "frames", "dominant", "dominant_share", "mean_top"]],
                     hide_index=True, key="video_summary",
                     column_config={"dominant_share": widgets.percent_column("dominant share"),
                                    "first_s": st.column_config.NumberColumn("from (s)", format="%.1f"),
                                    "last_s": st.column_config.NumberColumn("to (s)", format="%.1f"),
                                    "mean_top": "top of the mean probabilities"})
        shown = list(tracks)
        if len(shown) > 1:
            # Keyed by the clip, so a new clip starts from its own first faces.
            shown = st.multiselect("Faces", shown, default=shown[:4], key=f"video_tracks_{clip_id}",
                                   format_func=lambda t: f"face {t}")
            if len(shown) < len(tracks):
                st.caption(f"Showing the timelines of {len(shown)} of {len(tracks)} faces: pick the others "
                           "in the list above.")
        for track in shown:
            points = tracks[track]
            st.plotly_chart(
                charts.timeline_figure([p.time_s for p in points], np.stack([p.probabilities for p in points]),
                                       title=f"Face {track}: {_count(len(points), 'frame')}",
                                       span=(0.0, max(result.times_s[-1], info.duration_s))),
                key=f"video_timeline_{track}", config={"displayModeBar": False})
    if result.thumbnails:
        moment = result.times_s[0]
        if len(result.times_s) > 1:
            moment = st.select_slider("Frame", result.times_s, key=f"video_frame_{clip_id}",
                                      format_func=lambda t: f"{t:.2f} s")
        index = result.times_s.index(moment)
        faces = sorted((p for p in result.points if p.time_s == moment), key=lambda p: p.track)
        st.image(result.thumbnails[index], width=480,
                 caption=f"{moment:.2f} s: " + (", ".join(f"face {p.track} {p.label} {p.score:.0%}" for p in faces)
                                                 or "no face"))
    left, right = st.columns(2)
    left.download_button("Timeline as CSV (one row per face per frame)", result.table().to_csv(index=False),
                         "fer_video.csv", "text/csv", key="video_download_csv", on_click="ignore")
    right.download_button("Timeline as JSON", result.to_json(model_name, detector), "fer_video.json",
                          "application/json", key="video_download_json", on_click="ignore")
    st.caption("Emotions: " + ", ".join(EMOTIONS) + ". A face continues the track whose box it overlaps (a track may "
               f"miss up to {TRACK_GAP} analysed frames); dlib's face descriptor checks that link when the face "
               "changed much or a new shot starts (a cut), and finds the person again when no box links them.")


widgets.run_page(render)
