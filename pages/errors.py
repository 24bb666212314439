"""Errors: the confusion matrix of a model on a test split; click a cell to see its faces, or
list all the split's errors, highest loss first."""

from typing import NamedTuple

import numpy as np
import streamlit as st

from fer.explorer import (
    CELL_ORDERS,
    PAPER_ACCURACY,
    REFERENCES,
    cell_members,
    cell_table,
    error_members,
    face_losses,
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


# What the list under the matrix shows: key -> words for the "Show" control.
SHOW_CHOICES: dict[str, str] = {"cell": "a cell of the matrix", "errors": "all errors by loss"}
ANY_CLASS = "any"


class FaceList(NamedTuple):
    """One list of faces to browse under the matrix: a cell's, or all the errors."""

    members: np.ndarray  # positions into the view's arrays, in their order
    order: str  # how they are ordered, for the caption ("most confident first")
    csv_label: str
    csv_name: str
    pager: str  # the pager's key; each list keeps its own page
    context: tuple  # what the list depends on: when it changes, the list starts at page 1
    loss: bool  # the captions show each face's loss


def cell_explorer(model, view, predictions, annotations, normalise: bool, context: tuple, tta: bool = False) -> None:
    """The clickable matrix, the per-class table and the faces of the chosen cell or all errors.

    Not an ``st.fragment``: a full rerun costs ~0.1 s here, and a fragment loses its clicks when
    a previous long run (a model load) ends after the page registered it (Streamlit 1.67 clears
    the fragment storage at the end of every full run, including an overtaken one).
    """
    # One above the other: side by side, the matrix (566 px) and the table (300 px) do not both fit
    # in the page's 820 px at 1280 px. In a window narrower than the matrix it scrolls sideways.
    st.markdown("**Confusion matrix** (rows: reference label, columns: predicted). Click a cell to see its faces.")
    # The chosen cell outlives a visit to another page: Streamlit drops the matrix's selection
    # when the page is left, so it is drawn again from the last one seen.
    previous = st.session_state.get("errors_cell_kept")
    # Over all errors the matrix stays as their map, drawn with no cell chosen: a click on any
    # cell, the last one chosen too, asks for that cell's faces and switches back to them (on the
    # cell's own matrix, a click on the chosen cell would only unchoose it).
    picking = widgets.kept_value("errors_show") == "errors"
    kept = previous if not picking and "errors_cell" not in st.session_state else None
    default = None if kept is None else {"selection": {"cells": [[kept[0], EMOTIONS[kept[1]]]]}}
    event = widgets.confusion_table(view.metrics.confusion, "errors_cell_pick" if picking else "errors_cell",
                                    normalise, row_height=CELL_HEIGHT, column_config=MATRIX_COLUMNS,
                                    selection_default=default)
    cell = selected_cell(event.selection.cells)
    if picking and cell is not None:
        st.session_state["errors_cell_kept"], st.session_state["errors_show"] = cell, "cell"
        st.session_state.pop("errors_cell", None)  # drawn anew from the cell just picked
        st.session_state.pop("errors_cell_pick", None)
        st.rerun()
    if picking:
        cell = previous
    else:
        st.session_state["errors_cell_kept"] = cell
    st.markdown("**Per class** (recall is the per-class accuracy)")
    st.dataframe(per_class_table(view.metrics), key="errors_classes", width="content",
                 column_config=widgets.PER_CLASS_COLUMNS)

    choices = st.container(horizontal=True, vertical_alignment="bottom", key="errors_list_controls")
    show = choices.segmented_control(
        "Show", list(SHOW_CHOICES), key=widgets.kept("errors_show"), default="cell", required=True,
        format_func=SHOW_CHOICES.get,
        help="One cell's faces, or every misclassified face of the split ranked by its loss, -log p(reference): "
             "the errors the model was surest of, where wrong labels gather, first.")
    shares, yaws = cell_order_tables()
    faces = (cell_faces(view, cell, context, shares, yaws) if show == "cell"
             else error_faces(view, context, choices))
    if faces is not None:
        face_list(model, view, predictions, annotations, faces, shares, yaws, tta)


def cell_faces(view, cell: tuple[int, int] | None, context: tuple, shares: np.ndarray | None,
               yaws: np.ndarray | None) -> FaceList | None:
    """The chosen cell's heading, its order control and its faces (``None``: nothing to list)."""
    if cell is None:
        st.info("Click a cell of the confusion matrix to see its faces.", icon=":material/touch_app:")
        return None
    true, pred = cell
    count = int(view.metrics.confusion[true, pred])
    st.subheader(f"True {EMOTIONS[true]}, predicted {EMOTIONS[pred]}: {count} faces", divider="gray")
    if not count:
        st.info("No face in this cell.")
        return None
    order = cell_order_control("errors_order", shares, yaws)
    members = cell_members(view, true, pred, order, shares, yaws)
    return FaceList(members, CELL_ORDERS[order], f"This cell's {len(members)} faces as CSV",
                    f"{context[0]}_{EMOTIONS[true]}_as_{EMOTIONS[pred]}.csv", "errors_page",
                    (*context, true, pred, order), loss=False)


def error_faces(view, context: tuple, controls) -> FaceList | None:
    """Every misclassified face of the split, highest loss first, optionally of one true or
    predicted class (two choosers drawn in ``controls``); ``None`` when there is none.
    """
    names = [ANY_CLASS, *EMOTIONS]
    true = controls.selectbox("True", names, key=widgets.kept("errors_loss_true"), width=130)
    pred = controls.selectbox("Predicted", names, key=widgets.kept("errors_loss_pred"), width=130)
    members = error_members(view, *(None if name == ANY_CLASS else EMOTIONS.index(name) for name in (true, pred)))
    which = [f"{word} {name}" for word, name in (("of true", true), ("predicted", pred)) if name != ANY_CLASS]
    st.subheader(f"{' '.join(['Errors', *which]) if which else 'All errors'}, highest loss first: "
                 f"{len(members)} faces", divider="gray")
    if not len(members):
        st.info("No error among these faces.")
        return None
    name = "_".join([context[0], "errors", *(f"{word}_{name}" for word, name in (("true", true), ("as", pred))
                                              if name != ANY_CLASS), "by_loss"])
    return FaceList(members, "highest loss first", f"These {len(members)} errors as CSV", f"{name}.csv",
                    "errors_loss_page", (*context, true, pred), loss=True)


def face_list(model, view, predictions, annotations, faces: FaceList, shares: np.ndarray | None,
              yaws: np.ndarray | None, tta: bool) -> None:
    """One list of faces: its CSV, a pager, occlusion maps on request, the captioned grid, and the
    chosen face's close-up and annotation panel.
    """
    state = (str(model.path), *faces.context)  # another model's list starts at its first page
    if st.session_state.get(f"{faces.pager}_list") != state:
        st.session_state[f"{faces.pager}_list"] = state
        widgets.reset_pager(faces.pager)
    members = faces.members
    notes = annotation_lookup(annotations)
    # A callable: built only when someone downloads it, not on every click of the matrix.
    st.download_button(faces.csv_label, lambda: cell_table(view, members, shares, yaws, notes).to_csv(index=False),
                       faces.csv_name, "text/csv", key=f"{faces.pager}_csv", on_click="ignore")
    page = widgets.pager(len(members), FACES_PER_PAGE, faces.pager, keep=True)  # as the cell and view are
    shown = members[page.start:page.stop]
    rows = view.rows[shown]
    explain = st.segmented_control(
        "Occlusion maps", list(EXPLAIN_CHOICES), key=widgets.kept("errors_explain"), default="off", required=True,
        format_func=EXPLAIN_CHOICES.get,
        help=charts.MAP_LEGEND + " The first view of a page of faces takes a few seconds.")
    overlays = None
    targets = (view.predicted if explain == "predicted" else view.reference)[shown]
    if explain != "off":
        try:
            with st.spinner(f"Explaining {len(shown)} faces…"):
                overlays = occlusion_overlays(model, rows, targets, tta=tta)
        except (FileNotFoundError, ValueError, OSError) as err:
            st.error(f"The model `{model.path.name}` cannot be run for occlusion maps: {err}")
    # Over all errors the classes mix: the maps are named by what they explain, not by one class.
    target = (EMOTIONS[targets[0]] if len(set(targets.tolist())) == 1
              else f"each face's {'prediction' if explain == 'predicted' else 'reference label'}")
    st.caption(f"Faces {page.start + 1}–{page.stop} of {page.total}, {faces.order}."
               + calibration_note(model, tta)
               + ("" if overlays is None else f" Maps: {charts.map_caption(target)}. "
                  + charts.scale_note(overlays.scale, len(overlays.images))))
    widgets.legend()
    twins, poses, confidence = resources.twin_lookup(), resources.face_poses(), view.confidence
    losses = face_losses(view) if faces.loss else None
    captions = [
        f"row {r} · {label_name(view.reference[i])} → {label_name(view.predicted[i])} {confidence[i]:.0%}"
        + ("" if losses is None else f" · loss {losses[i]:.2f}")
        + f" · {vote_summary(r)}{twin_text(r, twins)}{pose_text(r, poses)}{annotation_text(notes, r)}"
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
