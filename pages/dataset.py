"""Dataset: browse FER2013 faces by split and label, with the FER+ crowd's votes, or go to one
face by its row (``?row=N`` in the address links to it)."""

import re

import numpy as np
import streamlit as st

from fer.explorer import browse_indices, label_name
from fer.ferplus import FER2013_ROWS
from fer.labels import EMOTIONS, EVAL_SPLITS, PROB_COLUMNS, SPLITS
from fer.photo_report import enlarge
from fer_app import resources, widgets
from fer_app.explorer_view import (
    TWIN_HELP,
    annotation_lookup,
    annotation_text,
    face_close_up,
    pose_text,
    tiles_for_rows,
    twin_pairs,
    twin_text,
    vote_summary,
)

PER_PAGE = 48


def render() -> None:
    st.title("Browse the dataset")
    row = row_finder()
    if row is not None:
        face_view(row)
        return
    full = resources.full_dataset_available()
    splits = SPLITS if full else EVAL_SPLITS
    if not full:
        st.caption("Only the embedded PublicTest and PrivateTest faces are available here; the Training split "
                   "needs the full FER2013 CSV (`fer.paths.FER2013_CSV`).")
    # A wrapping row: both controls on one line at 1280 px; in a narrower window Label goes under
    # Split and its options wrap onto a second line instead of scrolling out of sight.
    with st.container(horizontal=True, key="dataset_controls"):
        split = st.segmented_control("Split", splits, key=widgets.kept("dataset_split"), default="PublicTest",
                                     required=True, wrap=True)
        label = st.segmented_control("Label", ["all", *EMOTIONS], key=widgets.kept("dataset_label"), default="all",
                                     required=True, wrap=True)

    try:
        with st.spinner("Reading FER2013…"):
            dataset = resources.full_dataset() if split == "Training" else resources.test_faces()
    except (FileNotFoundError, ValueError) as err:
        st.error(f"The faces cannot be loaded: {err}")
        return
    code = None if label == "all" else EMOTIONS.index(label)
    positions = browse_indices(dataset.labels, dataset.usage, split, code)
    pairs = split != "Training" and bool(resources.twin_lookup()) and st.toggle(
        "Only faces also in Training, beside their copy", key=widgets.kept("dataset_twins"), help=TWIN_HELP)
    if st.session_state.get("dataset_last") != (split, label, pairs):
        st.session_state["dataset_last"] = (split, label, pairs)
        widgets.reset_pager("dataset_page")
    if pairs:
        twin_pairs(dataset, positions, f"{split}, {label}", "dataset_page", PER_PAGE // 2)
        return
    st.subheader(f"{split}, {label}: {len(positions)} faces", divider="gray")
    if not len(positions):
        return
    page = widgets.pager(len(positions), PER_PAGE, "dataset_page")
    shown = positions[page.start:page.stop]
    rows = dataset.rows[shown]
    st.caption(f"Faces {page.start + 1}–{page.stop} of {page.total}, in FER2013 row order.")
    if resources.ferplus() is not None:
        widgets.legend(model=False)
    notes = annotation_lookup(widgets.current_annotations())
    captions = [f"row {r} · {EMOTIONS[int(lab)]} · {vote_summary(r)}{annotation_text(notes, r)}" for r, lab in
                zip(rows, dataset.labels[shown], strict=True)]
    widgets.face_grid(tiles_for_rows(rows, faces=dataset.images[shown]), captions)


def row_finder() -> int | None:
    """The row box; ``?row=N`` in the address fills it, and the address follows it, so a face
    can be bookmarked or sent to a colleague."""
    if "dataset_row" not in st.session_state and "row" in st.query_params:
        wanted = st.query_params["row"]
        if re.fullmatch(r"[0-9]{1,6}", wanted) and int(wanted) < FER2013_ROWS:  # isdigit() passes "²"
            st.session_state["dataset_row"] = int(wanted)
        else:
            st.warning(f"The address asks for row {wanted!r}: FER2013 rows are 0 to {FER2013_ROWS - 1}.")
    row = st.number_input("Go to a FER2013 row", min_value=0, max_value=FER2013_ROWS - 1, value=None, step=1,
                          key="dataset_row", placeholder="a row number, e.g. 32298; empty to browse",
                          help="The 0-based data row of the face in fer2013.csv, as every caption gives it.")
    if row is None:
        st.query_params.pop("row", None)
    else:
        st.query_params["row"] = str(row)
    return row


def face_view(row: int) -> None:
    """One face by its row: split, label, crowd votes, Training copy, annotation, and for a test
    face the model's probabilities; then the annotation panel."""
    lookup = resources.test_face_lookup()
    test = lookup.positions[row] >= 0
    if not test:
        if not resources.full_dataset_available():
            st.info(f"Row {row} is a Training face; only the embedded PublicTest and PrivateTest faces are "
                    "available here (Training needs the full FER2013 CSV, `fer.paths.FER2013_CSV`).")
            return
        try:
            with st.spinner("Reading FER2013…"):
                lookup = resources.full_face_lookup()
        except (FileNotFoundError, ValueError) as err:
            st.error(f"The faces cannot be loaded: {err}")
            return
        if lookup.positions[row] < 0:  # a CSV without that row: never another face's label
            st.error(f"Row {row} is not in `{resources.full_dataset().source}`.")
            return
    label = int(lookup.labels[lookup.positions[row]])
    split = (resources.test_faces() if test else resources.full_dataset()).usage[lookup.positions[row]]
    st.subheader(f"Row {row}: {split}, labelled {label_name(label)}", divider="gray")
    # No annotation here: the panel below reads this face's own history and says it.
    st.caption(f"{vote_summary(row) or 'no FER+ votes'}{twin_text(row, resources.twin_lookup())}"
               f"{pose_text(row, resources.face_poses())}")
    usable = widgets.annotation_store_opens()
    close_up = model_close_up(row, label) if test else None
    if close_up is None:
        st.image(enlarge(lookup.faces(np.array([row]))[0], 3), caption=f"row {row}", width=144)
    elif not usable:
        close_up(row)  # the panel that draws it is left out without a store
    caption = f"row {row} · {split} · {label_name(label)}"
    widgets.annotate_panel([widgets.FaceRef(row, label, caption)], "dataset_annotate", close_up)


def model_close_up(row: int, label: int):
    """The Errors page's close-up of a test face with the chosen model's plain or flip-TTA
    probabilities (a switch, off by default as on Errors and Map), or None without a model or
    predictions."""
    model = widgets.selected_model()
    if model is None or not model.has_predictions:
        return None
    tta = resources.has_tta_predictions(model) and st.toggle(
        "Flip TTA", key=widgets.kept("dataset_tta"),
        help="The predictions made with flip test-time augmentation instead of the plain ones.")
    try:
        predictions = resources.load_predictions(model, tta=tta).set_index("row")
    except (FileNotFoundError, ValueError) as err:
        st.caption(f"No model probabilities: the predictions of `{model.path.name}` cannot be read ({err}).")
        return None
    if row not in predictions.index:
        return None
    probabilities = predictions.loc[row, list(PROB_COLUMNS)].to_numpy(np.float64)
    predicted = int(predictions.at[row, "pred"])
    st.caption(f"`{model.stem}` predicts **{label_name(predicted)}** ({probabilities[predicted]:.0%})"
               f"{' with flip TTA' if tta else ''}.")

    def close_up(chosen: int) -> None:
        face_close_up(model, chosen, probabilities, label, predicted, key="dataset_close_up", tta=tta, link=False)

    return close_up


widgets.run_page(render)
