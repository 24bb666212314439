"""Map: the test faces laid out by how the model sees them; select a region to see its faces."""

import numpy as np
import pandas as pd
import streamlit as st

from fer.embedding import map_table, nearest
from fer.explorer import REFERENCES, annotation_columns, label_name
from fer.labels import EMOTIONS, EVAL_SPLITS, PROB_COLUMNS
from fer_app import charts, resources, widgets
from fer_app.explorer_view import (
    FACES_PER_PAGE,
    annotation_lookup,
    annotation_text,
    available_references,
    calibration_note,
    face_close_up,
    grid_with_annotation,
    split_view_for,
    tiles_for_rows,
    twin_text,
    vote_summary,
)

NEIGHBOURS = 12


def render() -> None:
    st.title("The test faces as the model sees them")
    model = widgets.require_model(predictions=True)
    if model is None:
        return
    try:
        face_map = resources.load_face_map(model)
    except FileNotFoundError:
        st.info(f"`{model.path.name}` has no map yet. Build it (about 7 minutes on 2 cores) with "
                f"`python -m fer.embedding build --model {model.path}`.")
        return
    except ValueError as err:
        st.error(f"The map of `{model.path.name}` cannot be read: {err}")
        return
    if face_map.model_sha256 != resources.model_sha256(str(model.path), model.path.stat().st_mtime_ns):
        st.warning(f"This map was built from other weights than the current `{model.path.name}`; rebuild it with "
                   f"`python -m fer.embedding build --model {model.path}`.")
    # Colour by gets a row of its own: beside Split and Flip TTA, its last options lay hidden under
    # the next column at 1280 px.
    left, right = st.columns([3, 2], vertical_alignment="bottom")
    split = left.segmented_control("Split", EVAL_SPLITS, key=widgets.kept("map_split"), default="PrivateTest",
                                   required=True)
    colour = st.segmented_control("Colour by", list(charts.MAP_COLOURINGS), key=widgets.kept("map_colour"),
                                  default="true", required=True, format_func=charts.MAP_COLOURINGS.get)
    # Above the map, not with the selection: the points' true-label colours follow it too.
    reference = st.segmented_control(
        "Reference labels", available_references(), key=widgets.kept("map_reference"), default="fer2013",
        required=True, format_func=REFERENCES.get,
        help="Which labels count as the truth: the map's true-label and right-or-wrong colours and its hover texts, "
             "and the selection's accuracy, order, captions and CSV.")
    tta = resources.has_tta_predictions(model) and right.toggle("Flip TTA", key=widgets.kept("map_tta"),
                                                                help="Colour and caption by the flip-TTA predictions")
    try:
        predictions = resources.load_predictions(model, tta=tta)
    except (FileNotFoundError, ValueError) as err:
        st.error(f"The predictions of `{model.path.name}` cannot be read: {err}")
        return
    annotations = widgets.current_annotations()
    references = reference_by_row(predictions, reference, annotations)
    table = map_table(face_map, predictions, split, references)
    table["twin"] = table["row"].isin(resources.twin_lookup().keys())
    if table.empty:
        st.warning(f"The map and the predictions of `{model.path.name}` share no {split} face.")
        return

    st.caption(
        f"{len(table)} {split} faces placed by t-SNE on the features the model's last layer reads (flip-averaged): "
        "near faces look alike to the model. Distances between far clusters and cluster sizes mean little; the map "
        f"keeps {face_map.neighbourhood_kept.get(split, float('nan')):.0%} of each face's 10 nearest neighbours. "
        "Drag a lasso or box to see the faces inside (double-click clears)."
    )
    # The reference labels drawn are part of the look: an annotation saved under "ours" recolours
    # the figure, which Plotly then draws without its selection; that is no clearing by the user.
    drawn_labels = int(pd.util.hash_pandas_object(table["reference"], index=False).sum())
    chosen = map_with_selection(table, (str(model.path), split), (colour, tta, reference, drawn_labels))
    if not chosen:
        st.info("Select a region of the map to see its faces.", icon=":material/gesture_select:")
        return
    render_selection(model, table, chosen, predictions, face_map, split, tta, reference=reference,
                     references=references, annotations=annotations)


def map_with_selection(table, place: tuple[str, str], look: tuple[str, bool, str, int]) -> list[int]:
    """Draws the map and gives the selected rows, kept (per model and split) across redraws.

    ``look`` is (colouring, flip TTA, reference labels, a digest of the labels drawn). Plotly's
    selection belongs to the figure: another look makes a new figure whose selection is empty.
    So the last selection is remembered and drawn into the new figure; only the user's own change
    to a figure's selection (a new region, or a double-click that clears one) replaces it.
    """
    remembered = st.session_state.setdefault("map_selected", {})
    key = f"map_chart_{st.session_state.get('map_chart_revision', 0)}"
    # (place, look, rows drawn as selected, whether the figure held a selection of the user's) of
    # the figure drawn in the last run, while the chart is still on the page (not after a visit
    # elsewhere, which drops it).
    last = st.session_state.get("map_drawn") if key in st.session_state else None
    same_figure = last is not None and last[:2] == (place, look)
    drawn = last[2] if same_figure else remembered.get(place, ())
    figure = charts.face_map_figure(table, look[0], selected=drawn, reference_name=REFERENCES[look[2]])
    event = st.plotly_chart(figure, key=key, on_select="rerun",
                            selection_mode=("box", "lasso"), config={"displayModeBar": True, "displaylogo": False})
    selection = event.selection if event else {}
    rows = tuple(charts.selected_customdata(selection.get("points")))
    users = bool(rows or selection.get("box") or selection.get("lasso"))
    if users:
        remembered[place] = rows
    elif same_figure and last[3]:  # the user's selection on this very figure is gone: cleared
        remembered.pop(place, None)
    st.session_state["map_drawn"] = (place, look, drawn, users)
    placed = set(table["row"].tolist())
    return [r for r in remembered.get(place, ()) if r in placed]


def clear_selection(place: tuple[str, str]) -> None:
    """Forgets the selection and draws a fresh chart (Plotly's own selection cannot be set)."""
    st.session_state.setdefault("map_selected", {}).pop(place, None)
    st.session_state["map_chart_revision"] = st.session_state.get("map_chart_revision", 0) + 1


def reference_by_row(predictions: pd.DataFrame, source: str, annotations: pd.DataFrame) -> pd.Series:
    """Each predicted test face's reference label under ``source`` (one of ``REFERENCES``), by
    FER2013 row; -1 where it has none (FER+ without an emotion majority, or annotated not a face or
    ambiguous). Both splits: a face's nearest neighbours may lie in the other one.
    """
    views = [split_view_for(predictions, s, source, annotations) for s in EVAL_SPLITS
             if (predictions["split"] == s).any()]
    if not views:  # no test predictions: the map table comes out empty and the page says so
        return pd.Series([], dtype=np.int64)
    return pd.Series(np.concatenate([v.reference for v in views]), index=np.concatenate([v.rows for v in views]))


def selection_heading(part: pd.DataFrame, reference: str) -> str:
    """``30 faces selected: 57% right``, naming the reference labels when they are not FER2013's
    and how many faces are left out for want of one.
    """
    judged = part[part["reference"] >= 0]
    excluded = len(part) - len(judged)
    head = f"{len(part)} faces selected: "
    if judged.empty:
        return head + f"none has a {REFERENCES[reference]} label"
    against = "" if reference == "fer2013" else f" against {REFERENCES[reference]}"
    return (head + f"{(judged['reference'] == judged['pred']).mean():.0%} right{against}"
            + (f", {excluded} excluded" if excluded else ""))


def render_selection(model, table, chosen: list[int], predictions, face_map, split: str, tta: bool, *,
                     reference: str, references: pd.Series, annotations: pd.DataFrame) -> None:
    """The selected faces (worst-predicted first), then the nearest neighbours of one of them.

    The selection is judged against the ``reference`` labels (``references``: by row, both splits,
    from :func:`reference_by_row`; the map's colours read the same), as on the Errors page.
    """
    placed, indexed = table.set_index("row"), predictions.set_index("row")
    part = placed.loc[chosen].copy()
    # 0: wrong, 1: right, 2: no reference label (left out of the accuracy, shown last).
    part["outcome"] = np.where(part["reference"] < 0, 2, (part["reference"] == part["pred"]).astype(int))
    excluded = int((part["outcome"] == 2).sum())
    st.subheader(selection_heading(part, reference), divider="gray")
    st.button("Clear selection", key="map_clear", icon=":material/deselect:", on_click=clear_selection,
              args=((str(model.path), split),),
              help="Also clears a selection kept from another colouring, which a double-click on the map cannot.")
    counts = part.loc[part["reference"] >= 0, "reference"].value_counts()
    st.caption(f"{REFERENCES[reference]} labels here: " + (", ".join(f"{EMOTIONS[i]} {n}" for i, n in counts.items())
                                                          or "none")
               + (f"; {excluded} excluded without a reference label (not a face, ambiguous or no FER+ emotion "
                  "vote), shown last" if excluded else "")
               + ". Wrong predictions first, most confident first." + calibration_note(model, tta))
    part = part.sort_values(["outcome", "confidence"], ascending=[True, False])
    notes = annotation_lookup(annotations)
    named = "" if reference == "fer2013" else f"_{reference}"
    # A callable: built only when someone downloads it, not on every rerun of the page.
    st.download_button(f"These {len(part)} selected faces as CSV",
                       lambda: selection_table(part, indexed, split, notes).to_csv(index=False),
                       f"{model.path.stem}_{split}{'_tta' if tta else ''}{named}_map_selection.csv", "text/csv",
                       key="map_selection_csv", on_click="ignore")
    selection = (str(model.path), split, tta, reference, tuple(chosen))  # another model or view: its first page
    if st.session_state.get("map_last_selection") != selection:
        st.session_state["map_last_selection"] = selection
        widgets.reset_pager("map_page")
    page = widgets.pager(len(part), FACES_PER_PAGE, "map_page")
    shown = part.iloc[page.start:page.stop]
    rows = shown.index.to_numpy()
    probabilities = indexed.loc[rows, list(PROB_COLUMNS)].to_numpy()
    twins = resources.twin_lookup()
    captions = [f"row {r} · {label_name(t)} → {label_name(p)} {c:.0%} · {vote_summary(r)}{twin_text(r, twins)}"
                f"{annotation_text(notes, r)}"
                for r, t, p, c in zip(rows, shown["reference"], shown["pred"], shown["confidence"], strict=True)]

    def close_up(row: int) -> None:
        # The Map's probabilities are load_predictions' default: calibrated by the card's temperature.
        face_close_up(model, row, indexed.loc[row, list(PROB_COLUMNS)].to_numpy(dtype=float),
                      int(references.loc[row]), int(indexed.loc[row, "pred"]), key="map_close_up", tta=tta,
                      calibrated=True)

    widgets.legend()
    grid_with_annotation(rows, shown["true"].to_numpy(), captions, tiles_for_rows(rows, probabilities),
                         key="map_annotate", first_number=page.start + 1, close_up=close_up)

    st.subheader("Faces the model finds most alike", divider="gray")
    anchor = st.selectbox("Face", rows.tolist(), key="map_anchor", format_func=lambda r: f"row {r}",
                          help="Nearest neighbours by cosine over the first 32 principal components of the model's "
                               "features, among both test splits.")
    position = int(placed.loc[anchor, "position"])
    found = nearest(face_map.features.astype(np.float32), face_map.features[position].astype(np.float32),
                    NEIGHBOURS, exclude=position)
    rows_near = face_map.rows[found]
    known = [r for r in rows_near if r in indexed.index]
    near = indexed.loc[known]
    near_reference = references.loc[known].to_numpy() if known else np.array([], dtype=np.int64)
    anchor_label = int(references.loc[anchor])
    widgets.face_grid(
        tiles_for_rows([anchor, *known], indexed.loc[[anchor, *known], list(PROB_COLUMNS)].to_numpy()),
        [f"chosen · row {anchor} · {label_name(anchor_label)}"]
        + [f"row {r} · {label_name(t)} → {label_name(p)}" for r, t, p in zip(known, near_reference, near["pred"],
                                                                          strict=True)],
    )
    if anchor_label < 0:
        st.caption(f"The chosen face has no {REFERENCES[reference]} label to compare its neighbours' with.")
        return
    labelled = near_reference[near_reference >= 0]
    if not len(labelled):
        st.caption(f"None of these neighbours has a {REFERENCES[reference]} label to compare with the chosen face's.")
        return
    left_out = len(near_reference) - len(labelled)
    st.caption(f"{(labelled == anchor_label).mean():.0%} of these {len(labelled)} neighbours carry the chosen "
               f"face's label ({label_name(anchor_label)})"
               + (f"; {left_out} without a {REFERENCES[reference]} label left out" if left_out else "") + ".")


def selection_table(part: pd.DataFrame, indexed: pd.DataFrame, split: str, notes: dict) -> pd.DataFrame:
    """The selected faces (``part``, indexed by row, in the page's order, with each one's
    ``reference`` label, -1 for none) as a table to export: row, split, reference (``none`` for a
    face without one) and predicted labels, confidence, the seven probabilities and the face's
    current annotation (:func:`fer.explorer.annotation_columns`, as Label issues exports it).
    """
    rows = part.index.to_numpy()
    table = pd.DataFrame({
        "row": rows,
        "split": split,
        "reference": [label_name(v) for v in part["reference"]],
        "predicted": [label_name(v) for v in part["pred"]],
        "confidence": part["confidence"].to_numpy().round(6),
    })
    for column in PROB_COLUMNS:
        table[column] = indexed.loc[rows, column].to_numpy().round(6)
    return pd.concat([table, annotation_columns(rows, notes)], axis=1)


widgets.run_page(render)
