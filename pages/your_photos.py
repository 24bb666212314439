"""Your photos: a ZIP of photos sorted into emotion folders, scored end to end, errors browsable."""

import streamlit as st

from fer.explorer import per_class_table, selected_cell
from fer.folder_labels import (
    MAX_ZIP_PHOTOS,
    ZipPhotosError,
    analyse_photos,
    cell_photos,
    photo_table,
    photos_in_zip,
    score_labelled,
)
from fer.labels import EMOTIONS
from fer_app import resources, widgets
from fer_app.explorer_view import FACES_PER_PAGE


def render() -> None:
    st.title("Score the model on your own photos")
    model = widgets.require_model()
    if model is None:
        return
    st.markdown(
        "A ZIP of photos sorted into folders named after emotions (`happy/`, `sad/`, `s01/surprise/`, …; "
        "also `happiness`, `anger`, `surprised` and the like), as CK+, JAFFE, KDEF or your own come. "
        "Each photo's largest face is found, aligned and classified, and compared with its folder's emotion. "
        f"Up to {MAX_ZIP_PHOTOS} photos; the archive and its photos stay in memory and are never written to disk."
    )
    left, right = st.columns([3, 1])
    upload = left.file_uploader("A ZIP of labelled photos", type=["zip"], key="yours_upload")
    tta = right.toggle("Flip TTA", value=True, key=widgets.kept("yours_tta"),
                       help="Average each face with its mirror image, as the Predict page does by default.")
    if upload is None:
        # The archive was removed: so are its faces, from this session's memory.
        st.session_state.pop("yours_photos", None)
        st.session_state.pop("yours_key", None)
        st.info("Upload a ZIP archive of photos in emotion folders.", icon=":material/folder_zip:")
        return
    try:
        pipeline = resources.get_pipeline(model, "hog")
    except (FileNotFoundError, ValueError, OSError) as err:
        st.error(f"The model `{model.path.name}` cannot be used: {err}")
        return
    key = (upload.file_id, resources.pipeline_key(model, "hog"), tta)
    if st.session_state.get("yours_key") != key:
        try:
            photos = photos_in_zip(upload.getvalue())
        except ZipPhotosError as err:
            st.error(f"**{upload.name}** cannot be used: {err}.", icon=":material/folder_off:")
            return
        if not photos:
            st.warning(f"**{upload.name}** holds no photos (JPEG, PNG, WebP, HEIC, ...).")
            return
        progress = st.progress(0.0, text=f"Analysing {len(photos)} photos…")
        analysed = analyse_photos(pipeline, photos, upload.name, tta,
                                   lambda done: progress.progress(done / len(photos),
                                                                  text=f"Analysed {done} of {len(photos)} photos"))
        progress.empty()
        st.session_state["yours_key"], st.session_state["yours_photos"] = key, analysed
        widgets.reset_pager("yours_page")
    analysed = st.session_state["yours_photos"]
    score = score_labelled([(p.name, p.label, p.faces, p.error) for p in analysed])
    report(upload.name, analysed, score)


def report(archive: str, analysed, score) -> None:
    """The headline, the clickable confusion matrix and the chosen cell's photos."""
    if score.labelled == 0:
        st.warning(f"No photo of **{archive}** is in a folder named after an emotion ({', '.join(EMOTIONS)}).")
        return
    head, counts = st.columns([1, 2])
    if score.accuracy is None:
        head.metric("Accuracy", "—", help="The largest face of each photo against its folder's emotion. No photo "
                                         "had a face: nothing to score.")
        counted = ""
    else:
        head.metric("Accuracy", f"{score.accuracy:.1%}",
                    help=f"The largest face of each photo against its folder's emotion: {score.metrics.correct} of "
                         f"{score.metrics.total} photos with a face")
        counted = f" ({score.accuracy_counting_faceless:.1%} counting those as wrong)"
    counts.markdown(
        f"**{score.labelled}** labelled photos: **{score.metrics.total}** with a face, **{len(score.faceless)}** "
        f"without{counted}, **{len(score.unreadable)}** unreadable; "
        f"**{score.unlabelled}** outside any emotion folder."
    )
    if score.accuracy is None:
        # An empty confusion matrix would offer cells with nothing behind them.
        st.warning(f"No labelled photo of **{archive}** had a face: there is nothing to compare with the "
                   "folders' emotions.", icon=":material/face_retouching_off:")
        event = None
    else:
        event = matrix_and_classes(score)
    st.download_button("Results as CSV (one row per photo)", photo_table(analysed).to_csv(index=False),
                       "photo_scores.csv", "text/csv", key="yours_download", on_click="ignore")
    problem_photos(score)
    if event is None:
        return
    cell = selected_cell(event.selection.cells)
    if cell is None:
        st.info("Click a cell of the confusion matrix to see its photos, most confident first.",
                icon=":material/touch_app:")
        return
    true, pred = cell
    members = cell_photos(analysed, true, pred)
    if st.session_state.get("yours_last_cell") != (true, pred):
        st.session_state["yours_last_cell"] = (true, pred)
        widgets.reset_pager("yours_page")
    st.subheader(f"Folder {EMOTIONS[true]}, predicted {EMOTIONS[pred]}: {len(members)} photos", divider="gray")
    if not members:
        st.info("No photo in this cell.")
        return
    page = widgets.pager(len(members), FACES_PER_PAGE, "yours_page")
    shown = members[page.start:page.stop]
    st.caption(f"Photos {page.start + 1}–{page.stop} of {page.total}, most confident first: the face and "
               "its surroundings.")
    widgets.face_grid([p.crop for p in shown],
                      [f"{p.name} · {EMOTIONS[true]} → {EMOTIONS[pred]} {p.score:.0%}" for p in shown], width=140)


def matrix_and_classes(score):
    """The clickable confusion matrix above the per-class table; returns the matrix's event."""
    # Stacked, as on the Errors page: side by side, a narrow window hid most of the matrix's columns.
    st.markdown("**Confusion matrix** (rows: folder label, columns: predicted). Click a cell to see its photos.")
    event = widgets.confusion_table(score.metrics.confusion, "yours_cell")
    with st.container():
        st.markdown("**Per class**")
        table = per_class_table(score.metrics)
        # Only the classes the archive has or the model named: most archives hold a few emotions.
        present = (table["support"] > 0).to_numpy() | (score.metrics.confusion.sum(axis=0) > 0)
        st.dataframe(table[present], key="yours_classes", column_config=widgets.PER_CLASS_COLUMNS)
    return event


def problem_photos(score) -> None:
    """The labelled photos without a face, and apart those that could not be read, with why."""
    if score.faceless:
        count = len(score.faceless)
        with st.expander(f"{count} labelled photo{'s' if count != 1 else ''} without a face"):
            st.dataframe([{"photo": name} for name in score.faceless], hide_index=True)
    if score.unreadable:
        count = len(score.unreadable)
        with st.expander(f"{count} labelled photo{'s' if count != 1 else ''} that could not be read"):
            # A table, not Markdown: names and reasons come from the archive and show as written.
            st.dataframe([{"photo": name, "why": reason} for name, reason in score.unreadable], hide_index=True)


widgets.run_page(render)
