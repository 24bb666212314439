"""Errors: the confusion matrix of a model on a test split; click a cell to see its faces."""

import numpy as np
import streamlit as st

from fer.explorer import (
    CELL_ORDERS,
    PAPER_ACCURACY,
    REFERENCES,
    cell_members,
    cell_table,
    label_name,
    per_class_table,
    selected_cell,
)
from fer.labels import EMOTIONS, EVAL_SPLITS
from fer.pose import YAW_SUBSETS
from fer_app import charts, resources, widgets
from fer_app.explorer_view import (
    EXPLAIN_CHOICES,
    FACES_PER_PAGE,
    TWIN_SUBSET_NAMES,
    annotation_lookup,
    annotation_text,
    available_references,
    calibration_note,
    cell_order_control,
    cell_order_tables,
    face_close_up,
    grid_with_annotation,
    occlusion_overlays,
    points_text,
    pose_subset,
    pose_text,
    split_view_for,
    tiles_for_rows,
    twin_subset,
    twin_text,
    vote_summary,
)

# Fixed cell sizes: square-ish cells, an index column that holds "true \ predicted", and a geometry
# the browser test can click.
CELL_WIDTH, CELL_HEIGHT, INDEX_WIDTH = 64, 36, 116
MATRIX_COLUMNS = {"_index": st.column_config.Column(width=INDEX_WIDTH),
                  **{e: st.column_config.Column(width=CELL_WIDTH) for e in EMOTIONS}}


def render() -> None:
    st.title("Where the model goes wrong")
    model = widgets.require_model(predictions=True)
    if model is None:
        return
    # One wrapping row of controls: each keeps its natural width, and those that do not fit move to
    # the next line (at 1280 px two lines; in a narrow window more) instead of being cut off.
    controls = st.container(horizontal=True, vertical_alignment="bottom", key="errors_controls")
    with controls:
        split = st.segmented_control("Split", EVAL_SPLITS, key=widgets.kept("errors_split"), default="PrivateTest",
                                     required=True, wrap=True)
        reference = st.segmented_control(
            "Reference labels", available_references(), key=widgets.kept("errors_reference"), default="fer2013",
            required=True, format_func=REFERENCES.get,
            help="Which labels count as the truth for the matrix and the accuracy.", wrap=True,
        )
        switches = st.container(width="content", gap="small")
    tta = resources.has_tta_predictions(model) and switches.toggle(
        "Flip TTA", key=widgets.kept("errors_tta"), wrap=True,
        help="The predictions made with flip test-time augmentation (as the Predict page makes them by default) "
             "instead of the plain ones; maps follow.")
    normalise = switches.toggle("Row-normalised", key=widgets.kept("errors_normalise"), wrap=True,
                                help="Each true class's share, not counts")
    try:
        predictions = resources.load_predictions(model, tta=tta)
    except (FileNotFoundError, ValueError) as err:
        st.error(f"The predictions of `{model.path.name}` cannot be read: {err}")
        return
    with controls:
        subset, shown = twin_subset(predictions, "errors_twins")
        pose, shown = pose_subset(shown, "errors_pose")
    # How the faces were chosen, for the messages below ("" when all are shown).
    chosen = ", ".join(([f"{TWIN_SUBSET_NAMES[subset]}"] if subset != "all" else [])
                       + ([f"head {YAW_SUBSETS[pose]}"] if pose != "any" else []))

    annotations = widgets.current_annotations()
    views = {s: split_view_for(shown, s, reference, annotations) for s in EVAL_SPLITS
             if (shown["split"] == s).any()}
    if split not in views:
        st.warning(f"`{model.predictions.name}` has no {split} predictions"
                   + (f" among the faces {chosen}." if chosen else "."))
        return
    view = views[split]

    # The metric and the split bars side by side at 1280 px, one above the other when narrower.
    summary = st.container(horizontal=True, key="errors_summary")
    head, chart = summary.container(width=320), summary.container(width=440)
    title, versus, baseline = headline(predictions, split, reference, chosen, annotations)
    head.metric(title, f"{view.metrics.accuracy:.1%}",
                delta=f"{points_text(view.metrics.accuracy - baseline)} vs {versus}")
    head.caption(
        f"{view.metrics.total} faces evaluated against {REFERENCES[reference]} labels"
        + (f", only faces {chosen}" if chosen else "")
        + (f"; {view.excluded} excluded without a reference label (not a face, ambiguous or no FER+ emotion vote)"
           if view.excluded else "")
    )
    paper = "paper" if reference == "fer2013" else "paper, FER2013 labels"
    chart.markdown(charts.accuracy_bars_html({s: v.metrics.accuracy for s, v in views.items()},
                                             reference_name=paper), unsafe_allow_html=True)

    cell_explorer(model, view, predictions, annotations, normalise, (split, reference, subset, pose, tta), tta)


def headline(predictions, split: str, reference: str, chosen: str, annotations) -> tuple[str, str, float]:
    """The accuracy metric's title, what its delta compares with, and that accuracy.

    The paper's 61.7% is a FER2013-label figure: against other labels, or on a subset of the
    faces, the delta compares with the same model's own accuracy instead.
    """
    title = f"{split} accuracy"
    if chosen:
        baseline = split_view_for(predictions, split, reference, annotations).metrics.accuracy
        return f"{title}, chosen faces", f"all faces ({baseline:.1%})", baseline
    if reference != "fer2013":
        baseline = split_view_for(predictions, split, "fer2013", annotations).metrics.accuracy
        return title, f"FER2013 labels ({baseline:.1%})", baseline
    return title, f"the paper's {PAPER_ACCURACY:.1%}", PAPER_ACCURACY


def cell_explorer(model, view, predictions, annotations, normalise: bool, context: tuple, tta: bool = False) -> None:
    """The clickable matrix, the per-class table and the chosen cell's faces.

    Not an ``st.fragment``: a full rerun costs ~0.1 s here, and a fragment loses its clicks when
    a previous long run (a model load) ends after the page registered it (Streamlit 1.67 clears
    the fragment storage at the end of every full run, including an overtaken one).
    """
    # One above the other: side by side, the matrix (566 px) and the table (300 px) do not both fit
    # in the page's 820 px at 1280 px. In a window narrower than the matrix it scrolls sideways.
    st.markdown("**Confusion matrix** (rows: reference label, columns: predicted). Click a cell to see its faces.")
    # The chosen cell outlives a visit to another page: Streamlit drops the matrix's selection
    # when the page is left, so it is drawn again from the last one seen.
    kept = st.session_state.get("errors_cell_kept") if "errors_cell" not in st.session_state else None
    default = None if kept is None else {"selection": {"cells": [[kept[0], EMOTIONS[kept[1]]]]}}
    event = widgets.confusion_table(view.metrics.confusion, "errors_cell", normalise, row_height=CELL_HEIGHT,
                                    column_config=MATRIX_COLUMNS, selection_default=default)
    st.markdown("**Per class** (recall is the per-class accuracy)")
    st.dataframe(per_class_table(view.metrics), key="errors_classes", width="content",
                 column_config=widgets.PER_CLASS_COLUMNS)

    cell = selected_cell(event.selection.cells)
    st.session_state["errors_cell_kept"] = cell
    if cell is None:
        st.info("Click a cell of the confusion matrix to see its faces.", icon=":material/touch_app:")
        return
    true, pred = cell
    count = int(view.metrics.confusion[true, pred])
    st.subheader(f"True {EMOTIONS[true]}, predicted {EMOTIONS[pred]}: {count} faces", divider="gray")
    if not count:
        st.info("No face in this cell.")
        return
    shares, yaws = cell_order_tables()
    order = cell_order_control("errors_order", shares, yaws)
    members = cell_members(view, true, pred, order, shares, yaws)
    state = (str(model.path), *context, true, pred, order)  # another model's cell starts at its first page
    if st.session_state.get("errors_last_cell") != state:
        st.session_state["errors_last_cell"] = state
        widgets.reset_pager("errors_page")
    notes = annotation_lookup(annotations)
    # A callable: built only when someone downloads it, not on every click of the matrix.
    st.download_button(f"This cell's {len(members)} faces as CSV",
                       lambda: cell_table(view, members, shares, yaws, notes).to_csv(index=False),
                       f"{context[0]}_{EMOTIONS[true]}_as_{EMOTIONS[pred]}.csv", "text/csv", key="errors_cell_csv",
                       on_click="ignore")
    page = widgets.pager(len(members), FACES_PER_PAGE, "errors_page", keep=True)  # as the cell is
    shown = members[page.start:page.stop]
    rows = view.rows[shown]
    explain = st.segmented_control(
        "Occlusion maps", list(EXPLAIN_CHOICES), key=widgets.kept("errors_explain"), default="off", required=True,
        format_func=EXPLAIN_CHOICES.get,
        help=charts.MAP_LEGEND + " The first view of a page of faces takes a few seconds.")
    overlays = None
    target = pred if explain == "predicted" else true
    if explain != "off":
        try:
            with st.spinner(f"Explaining {len(shown)} faces…"):
                overlays = occlusion_overlays(model, rows, np.full(len(shown), target), tta=tta)
        except (FileNotFoundError, ValueError, OSError) as err:
            st.error(f"The model `{model.path.name}` cannot be run for occlusion maps: {err}")
    st.caption(f"Faces {page.start + 1}–{page.stop} of {page.total}, {CELL_ORDERS[order]}."
               + calibration_note(model, tta)
               + ("" if overlays is None else f" Maps: {charts.map_caption(EMOTIONS[target])}. "
                  + charts.scale_note(overlays.scale, len(overlays.images))))
    widgets.legend()
    twins, poses, confidence = resources.twin_lookup(), resources.face_poses(), view.confidence
    captions = [
        f"row {r} · {label_name(view.reference[i])} → {label_name(view.predicted[i])} {confidence[i]:.0%}"
        f" · {vote_summary(r)}{twin_text(r, twins)}{pose_text(r, poses)}{annotation_text(notes, r)}"
        for i, r in zip(shown, rows, strict=True)
    ]
    originals = predictions.set_index("row").loc[rows, "true"].to_numpy()
    position = {int(r): int(i) for i, r in zip(shown, rows, strict=True)}

    def close_up(row: int) -> None:
        i = position[row]
        face_close_up(model, row, view.probabilities[i], int(view.reference[i]), int(view.predicted[i]),
                      key="errors_close_up", tta=tta)

    maps = None if overlays is None else overlays.images
    grid_with_annotation(rows, originals, captions, tiles_for_rows(rows, view.probabilities[shown], overlays=maps),
                         key="errors_annotate", first_number=page.start + 1, close_up=close_up)


widgets.run_page(render)
