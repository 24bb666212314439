"""Label issues: faces whose FER2013 label is probably wrong, most suspicious first; re-annotate them."""

import io
import sqlite3

import streamlit as st

from fer.explorer import label_name
from fer.label_issues import filter_issues, issues_table
from fer.labels import EMOTIONS, EVAL_SPLITS, PROB_COLUMNS
from fer.twins import conflicting_rows
from fer_app import resources, widgets
from fer_app.explorer_view import (
    FACES_PER_PAGE,
    annotation_lookup,
    annotation_text,
    annotations_export,
    face_close_up,
    grid_with_annotation,
    tiles_for_rows,
    twin_text,
    vote_summary,
)

IMPORT_MESSAGES_KEY = "issues_import_messages"


def import_upload(store) -> None:
    """Import the uploaded CSV: the Import button's callback, run before the page so that its count is fresh."""
    upload = st.session_state.get("issues_import_file")
    if upload is None:
        return
    annotator = str(st.session_state.get(widgets.ANNOTATOR_KEY, "")).strip() or None
    try:
        result = store.import_csv(io.StringIO(upload.getvalue().decode("utf-8")), default_annotator=annotator,
                                  fer_labels=resources.original_labels())
    except (ValueError, OSError) as err:  # UnicodeDecodeError is a ValueError.
        messages = [("error", f"Nothing imported: {widgets.escape_markdown(str(err))}")]
    except sqlite3.Error as err:  # a callback runs before the page, outside its guard
        messages = [("error", f"Nothing imported: the annotation database cannot be used "
                              f"({widgets.escape_markdown(str(err))}).")]
    else:
        messages = [("success", result.summary())]
        if result.warning():
            messages.append(("warning", result.warning()))
    st.session_state[IMPORT_MESSAGES_KEY] = messages


def render_export_import() -> None:
    try:
        store = resources.annotation_store()
        stored = store.count()
    except sqlite3.Error:
        return  # widgets.current_annotations has said why; the ranking needs no store
    # A key keeps the expander open when an import changes the count in its label.
    with st.expander(f"Export or import annotations ({stored} action{'' if stored == 1 else 's'} stored)",
                     key="issues_transfer"):
        if resources.ferplus() is not None:
            # A callable: the 35,887-row CSV is built only when someone downloads it.
            st.download_button("Download current labels (CSV, all FER2013 rows)", lambda: annotations_export(store),
                               "fer2013_labels.csv", "text/csv", key="issues_export", on_click="ignore")
        upload = st.file_uploader("Import an annotation CSV", type=["csv"], key="issues_import_file",
                                  max_upload_size=25)
        if upload is not None:
            st.button("Import", key="issues_import", on_click=import_upload, args=(store,))
        show = {"error": st.error, "success": st.success, "warning": st.warning}
        for kind, text in st.session_state.pop(IMPORT_MESSAGES_KEY, []):
            show[kind](text)


def csv_file_name(model: str, classes, splits, flagged: bool, conflicts: bool, tta: bool, weight: float,
                  hide_annotated: bool) -> str:
    """``fer_best_label_issues_fear_PublicTest_flagged_ferplus0.5.csv``: the model, then the filters."""
    switches = {"flagged": flagged, "training_copy_conflicts": conflicts, "tta": tta}
    parts = [model, "label_issues", "-".join(classes), "-".join(splits), *(n for n, on in switches.items() if on),
             f"ferplus{weight:g}", "unannotated" if hide_annotated else ""]
    return "_".join(p for p in parts if p) + ".csv"


def render() -> None:
    st.title("Label issues")
    st.caption("Faces ranked by how likely their FER2013 label is wrong: confident learning on the model's "
               "out-of-sample test predictions, mixed with the FER+ crowd's disagreement.")
    model = widgets.require_model(predictions=True)
    if model is None:
        return
    a, b, c = st.columns([3, 3, 2])
    classes = a.multiselect("Given label", EMOTIONS, key=widgets.kept("issues_classes"), placeholder="all classes")
    splits = b.multiselect("Split", EVAL_SPLITS, key=widgets.kept("issues_splits"), placeholder="both test splits")
    weight = c.slider("FER+ weight", 0.0, 1.0, 0.5, 0.1, key=widgets.kept("issues_weight"))
    # The switches on a wrapping row of their own: their labels stay whole at any width.
    switches = st.container(horizontal=True, gap="medium", key="issues_switches")
    flagged = switches.toggle("Flagged only", key=widgets.kept("issues_flagged"), wrap=True,
                              help="Only faces confident learning flags as issues")
    twins = resources.twins()
    conflicts = twins is not None and switches.toggle(
        "Training copy labelled otherwise", key=widgets.kept("issues_twin_conflict"), wrap=True,
        help="Only faces with a copy in Training (another crop of the same photograph) that carries another "
             "label: one of the two labels is wrong, whatever the model says.")
    tta = resources.has_tta_predictions(model) and switches.toggle(
        "Flip TTA", key=widgets.kept("issues_tta"), wrap=True,
        help="Rank from the predictions made with flip test-time augmentation (as the Predict page makes them "
             "by default) instead of the plain ones.")
    hide_annotated = switches.toggle(
        "Hide faces already annotated", key=widgets.kept("issues_hide_annotated"), wrap=True,
        help="Leave out the faces that have an annotation, so the faces you fix leave the queue.")
    try:
        issues = resources.label_issues(model, weight, tta=tta)
    except (FileNotFoundError, ValueError) as err:
        st.error(f"The label issues cannot be ranked: {err}")
        return
    chosen = filter_issues(issues, given=classes or None, split=splits or None, only_flagged=flagged)
    if conflicts:
        chosen = chosen[chosen["row"].isin(conflicting_rows(twins))]
    notes = annotation_lookup(widgets.current_annotations())
    hidden = 0
    if hide_annotated:
        # Only the toggle changes the page; annotating a face just shortens the list, and the faces
        # after it move up on the same page, so the reviewer's place in the queue is kept.
        annotated = chosen["row"].isin(list(notes)).to_numpy()
        hidden = int(annotated.sum())
        chosen = chosen[~annotated]
    choice = (str(model.path), tuple(classes), tuple(splits), flagged, conflicts, weight, tta,
              hide_annotated)  # another model: page 1
    if st.session_state.get("issues_last") != choice:
        st.session_state["issues_last"] = choice
        widgets.reset_pager("issues_page")
    left_out = f" · {hidden} annotated face{'' if hidden == 1 else 's'} hidden" if hide_annotated else ""
    st.subheader(f"{len(chosen)} faces ({int(chosen['is_issue'].sum())} flagged){left_out}", divider="gray")
    render_export_import()
    if chosen.empty:
        return
    # The ranking's own input, so the bars explain the order.
    predictions = resources.load_predictions(model, tta=tta, calibrated=False).set_index("row")
    copies = resources.twin_lookup()
    predicted = predictions.loc[chosen["row"].to_numpy(), "pred"].to_numpy()
    # A callable: the table is built only when someone downloads it, from the list as it is now.
    st.download_button(f"These {len(chosen)} faces as CSV",
                       lambda: issues_table(chosen, predicted, notes, copies or None).to_csv(index=False),
                       csv_file_name(model.path.stem, classes, splits, flagged, conflicts, tta, weight, hide_annotated),
                       "text/csv", key="issues_csv", on_click="ignore")
    page = widgets.pager(len(chosen), FACES_PER_PAGE, "issues_page")
    shown = chosen.iloc[page.start:page.stop]
    rows = shown["row"].to_numpy()
    # "#n" is the face's place in this list (the CSV's rank), not in the full ranking: with annotated
    # faces hidden, the caption's count, the pager and the annotation panel's "#n" all count this
    # list, and numbers with gaps would disagree with them.
    st.caption(f"Faces {page.start + 1}–{page.stop} of {page.total}, most suspicious first"
               f"{' (numbered without the annotated faces)' if hidden else ''}. The bars show the network's own "
               f"{'flip-TTA ' if tta else ''}probabilities, which the ranking reads (not calibrated).")
    widgets.legend()
    probabilities = predictions.loc[rows, list(PROB_COLUMNS)].to_numpy()
    captions = [
        f"#{page.start + i + 1} row {r} · {label_name(given)} → {label_name(suggested)}? · score {score:.2f}"
        f"{' · flagged' if flag else ''} · {vote_summary(r)}{twin_text(r, copies)}{annotation_text(notes, r)}"
        for i, (r, given, suggested, score, flag) in enumerate(
            shown[["row", "given", "suggested", "score", "is_issue"]].itertuples(index=False))
    ]
    given = shown["given"].to_numpy()
    # The stored predictions, as the CSV's: an argmax of the rounded probabilities can break a tie otherwise.
    shown_predicted = predicted[page.start:page.stop]
    position = {int(r): i for i, r in enumerate(rows)}

    def close_up(row: int) -> None:
        i = position[row]
        face_close_up(model, row, probabilities[i], int(given[i]), int(shown_predicted[i]),
                      key="issues_close_up", tta=tta, calibrated=False)

    grid_with_annotation(rows, given, captions, tiles_for_rows(rows, probabilities),
                         key="issues_annotate", first_number=page.start + 1, close_up=close_up)


widgets.run_page(render)
