"""Dataset: browse FER2013 faces by split and label, with the FER+ crowd's votes."""

import streamlit as st

from fer.explorer import browse_indices
from fer.labels import EMOTIONS, EVAL_SPLITS, SPLITS
from fer_app import resources, widgets
from fer_app.explorer_view import TWIN_HELP, tiles_for_rows, twin_pairs, vote_summary

PER_PAGE = 48


def render() -> None:
    st.title("Browse the dataset")
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
    captions = [f"row {r} · {EMOTIONS[int(lab)]} · {vote_summary(r)}" for r, lab in
                zip(rows, dataset.labels[shown], strict=True)]
    widgets.face_grid(tiles_for_rows(rows, faces=dataset.images[shown]), captions)


widgets.run_page(render)
