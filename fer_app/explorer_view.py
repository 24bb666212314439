"""Shared parts of the Errors, Dataset and Label-issues pages: reference labels and face grids."""

from __future__ import annotations

import io
import re
from collections.abc import Callable, Sequence
from functools import partial
from typing import NamedTuple

import numpy as np
import pandas as pd
import streamlit as st

from fer.explorer import (
    CELL_ORDERS,
    REFERENCES,
    SplitView,
    current_annotation_map,
    describe_annotation,
    face_tile,
    label_name,
    pair_tile,
    reference_labels,
    split_view,
)
from fer.labels import FERPLUS_COLUMNS
from fer.twins import conflicts_first, select_by_twin
from fer_app import charts, resources, widgets

# 16, not 24: a confusion-matrix click then draws in ~0.75 s instead of ~1.05 s (README, browser figures).
FACES_PER_PAGE: int = 16


def available_references() -> list[str]:
    """The reference-label sources this installation can offer (FER+ needs its table)."""
    return [r for r in REFERENCES if r != "ferplus" or resources.ferplus() is not None]


def split_view_for(predictions: pd.DataFrame, split: str, source: str, annotations: pd.DataFrame) -> SplitView:
    """One split of the predictions judged against the chosen reference labels."""
    part = predictions[predictions["split"] == split]
    tables = resources.ferplus()
    reference = reference_labels(
        source, part["true"].to_numpy(np.int64), part["row"].to_numpy(np.int64),
        None if tables is None else tables.majority, annotations,
    )
    return split_view(predictions, split, reference)


def p_text(p: float) -> str:
    """A p-value with two significant digits, in scientific notation when small: ``0.02``,
    ``0.0017``, ``2.9e-6``, ``1.1e-45``; a dash for none. One format for the metric and the table.
    """
    if not np.isfinite(p):
        return "–"
    return re.sub(r"e([+-])0*(\d)", r"e\1\2", f"{p:.2g}")


def points_text(difference: float) -> str:
    """A difference of two accuracies (fractions) in percentage points: ``+1.5 pts``."""
    return f"{100 * difference:+.1f} pts" if np.isfinite(difference) else "–"


TWIN_SUBSET_NAMES: dict[str, str] = {
    "all": "all", "no_twin": "not in Training", "twin": "also in Training",
}
TWIN_HELP = ("Nearly a quarter (23%) of FER2013's test faces are another copy (crop, scale, compression) of a "
             "Training photograph: a model can score them from memory. 'not in Training' keeps the "
             "faces without such a near-duplicate (`python -m fer.twins report`).")


def _subset_control(predictions: pd.DataFrame, key: str, label: str, names: dict[str, str], table,
                    select, help_text: str, unknown: str) -> tuple[str, pd.DataFrame]:
    """A segmented control over ``names`` (the first is "everything") and the predictions that
    ``select(predictions, table, choice)`` keeps. Without ``table``, or for predictions it does
    not cover (``KeyError``, shown after ``unknown``), all of them.
    """
    everything = next(iter(names))
    if table is None:
        return everything, predictions
    subset = st.segmented_control(label, list(names), key=widgets.kept(key), default=everything, required=True,
                                  format_func=names.get, help=help_text)
    try:
        return subset, select(predictions, table, subset)
    except KeyError as err:
        st.warning(f"{unknown}: {err}")
        return everything, predictions


def twin_subset(predictions: pd.DataFrame, key: str) -> tuple[str, pd.DataFrame]:
    """The "Faces" control (all, not in Training, also in Training) and the predictions it keeps."""
    return _subset_control(predictions, key, "Faces", TWIN_SUBSET_NAMES, resources.twins(), select_by_twin,
                           TWIN_HELP, "Near-duplicates are known only for FER2013's test faces")


POSE_HELP = ("Head pose from each face's dlib landmarks (`python -m fer.pose`). FER2013's faces are mostly "
             "frontal, and turned ones are harder: the Model page gives the accuracy by yaw.")


def pose_subset(predictions: pd.DataFrame, key: str) -> tuple[str, pd.DataFrame]:
    """The "Head pose" control (any, frontal, turned) and the predictions it keeps."""
    from fer.pose import YAW_SUBSETS, select_by_yaw

    return _subset_control(predictions, key, "Head pose", YAW_SUBSETS, resources.face_poses(), select_by_yaw,
                           POSE_HELP, "Head poses are known only for FER2013's test faces")


def pose_text(row: int, poses: pd.DataFrame | None) -> str:
    """`` · yaw -34°`` for a test face of the embedded pose table with a pose, else empty."""
    if poses is None or int(row) not in poses.index:
        return ""
    from fer.pose import signed_degrees

    yaw = float(poses.at[int(row), "yaw"])
    return f" · yaw {signed_degrees(yaw)}" if np.isfinite(yaw) else ""


def twin_text(row: int, lookup: dict[int, tuple[int, int, float]]) -> str:
    """`` · in Training: row 123 (sad, 0.97)`` for a face with a Training twin, else empty.

    Args:
        row: the test face's FER2013 row.
        lookup: :func:`fer_app.resources.twin_lookup`, fetched once per grid.
    """
    twin = lookup.get(int(row))
    if twin is None:
        return ""
    twin_row, twin_label, similarity = twin
    return f" · in Training: row {twin_row} ({label_name(twin_label)}, {similarity:.2f})"


def training_faces(rows: np.ndarray) -> tuple[np.ndarray | None, str | None]:
    """The (n, 48, 48) Training faces of FER2013 rows, from the full CSV.

    Returns:
        ``(faces, None)``, or ``(None, why)`` when the CSV is absent, unreadable or lacks a row.
    """
    if not resources.full_dataset_available():
        return None, "the Training faces need the full FER2013 CSV (`fer.paths.FER2013_CSV`)"
    try:
        with st.spinner("Reading FER2013…"):
            return resources.full_face_lookup().faces(rows), None
    except (FileNotFoundError, ValueError) as err:
        return None, f"the full FER2013 CSV cannot be read: {err}"
    except KeyError as err:
        return None, err.args[0]


def twin_pairs(dataset, positions: np.ndarray, title: str, pager_key: str, per_page: int) -> None:
    """The faces at ``positions`` that have a Training twin, each beside its twin; pairs whose
    labels differ first (each is a label error in one split or the other).

    The twin's pixels come from the full FER2013 CSV; without it the twin's row and label are
    given in the caption only.
    """
    lookup = resources.twin_lookup()
    kept = np.array([p for p in positions if int(dataset.rows[p]) in lookup], dtype=np.int64)
    twin = [lookup[int(dataset.rows[p])] for p in kept]
    order = conflicts_first(dataset.labels[kept], np.array([t[1] for t in twin], dtype=np.int64))
    kept, twin = kept[order], [twin[i] for i in order]
    differ = np.array([dataset.labels[p] != t[1] for p, t in zip(kept, twin, strict=True)], dtype=bool)
    st.subheader(f"{title}: {len(kept)} faces also in Training ({int(differ.sum())} with another label there)",
                 divider="gray")
    if not len(kept):
        return
    page = widgets.pager(len(kept), per_page, pager_key)
    shown = slice(page.start, page.stop)
    rows = dataset.rows[kept[shown]]
    tiles = tiles_for_rows(rows, faces=dataset.images[kept[shown]])
    twin_rows = np.array([t[0] for t in twin[shown]], dtype=np.int64)
    copies, why = training_faces(twin_rows)
    if copies is not None:
        tiles = [pair_tile(a, b) for a, b in zip(tiles, tiles_for_rows(twin_rows, faces=copies), strict=True)]
        st.caption(f"Pairs {page.start + 1}–{page.stop} of {page.total}: the test face (left) and its Training "
                   "copy (right), label disagreements first.")
    else:
        st.caption(f"Faces {page.start + 1}–{page.stop} of {page.total}, label disagreements first. No Training "
                   f"copies shown: {why}; their rows are in the captions.")
    captions = [
        f"row {r} · {label_name(int(dataset.labels[p]))} | Training row {t[0]} · {label_name(t[1])}"
        f" · {t[2]:.2f}{' · labels differ' if d else ''}"
        for r, p, t, d in zip(rows, kept[shown], twin[shown], differ[shown], strict=True)
    ]
    widgets.face_grid(tiles, captions, width=230 if copies is not None else 112)


def cell_order_tables() -> tuple[np.ndarray | None, np.ndarray | None]:
    """The tables the cell orders need, by FER2013 row: FER+ emotion shares (NaN rows where no
    emotion got a vote) and yaw in degrees (NaN where unknown); ``None`` for a missing table.
    """
    tables, poses = resources.ferplus(), resources.face_poses()
    shares = None
    if tables is not None:
        voted = tables.shares.sum(axis=1, keepdims=True) > 0
        shares = np.where(voted, tables.shares, np.nan)
    yaws = None
    if poses is not None:
        size = max(len(shares) if shares is not None else 0, int(poses.index.max()) + 1)
        yaws = np.full(size, np.nan)
        yaws[poses.index.to_numpy(np.int64)] = poses["yaw"].to_numpy(np.float64)
    return shares, yaws


def cell_order_control(key: str, shares: np.ndarray | None, yaws: np.ndarray | None) -> str:
    """A segmented control over :data:`fer.explorer.CELL_ORDERS` (those whose table exists)."""
    missing = {"crowd": shares is None, "turned": yaws is None}
    orders = [o for o in CELL_ORDERS if not missing.get(o, False)]
    # Kept apart from the widget's own state, which Streamlit drops on a run that does not draw
    # it (no cell, or an empty one): the order chosen survives them.
    kept = st.session_state.get(f"{key}_kept", "confident")
    order = st.segmented_control(
        "Order", orders, key=key, default=kept if kept in orders else "confident", required=True,
        format_func=lambda o: CELL_ORDERS[o].removesuffix(" first"),
        help="Off the diagonal, the most confident errors and those the FER+ crowd backs are the likeliest "
             "wrong labels; the least confident are the model's near misses; the most turned heads show "
             "what pose costs.",
    )
    st.session_state[f"{key}_kept"] = order
    return order


def vote_summary(row: int) -> str:
    """``FER+ happy (8/10)``-style text for one face, or empty without FER+ votes."""
    tables = resources.ferplus()
    if tables is None:
        return ""
    votes = tables.votes[row]
    total = int(votes.sum())
    if total == 0:
        return "FER+: no votes"
    majority = int(tables.majority[row])
    if majority < 0:
        top = FERPLUS_COLUMNS[int(np.argmax(votes))]
        return f"FER+: {top} ({int(votes.max())}/{total})"
    share = float(tables.shares[row, majority])
    return f"FER+ {label_name(majority)} ({share:.0%})"


def tiles_for_rows(rows: Sequence[int], probabilities: np.ndarray | None = None,
                   faces: np.ndarray | None = None, overlays: Sequence[np.ndarray] | None = None) -> list[np.ndarray]:
    """Face tiles (face, model bars, FER+ bars) for FER2013 rows of the embedded test faces.

    Args:
        rows: FER2013 rows.
        probabilities: (n, 7) model probabilities, or ``None`` for no model strip.
        faces: (n, 48, 48) faces if they do not come from the embedded test set (Training).
        overlays: (96, 96, 3) images to draw instead of the faces (occlusion maps), or ``None``.
    """
    rows = np.asarray(rows, dtype=np.int64)
    if faces is None:
        faces = resources.test_face_lookup().faces(rows)
    tables = resources.ferplus()
    tiles = []
    for i, row in enumerate(rows):
        votes = None if tables is None else tables.shares[row]
        tiles.append(face_tile(faces[i], None if probabilities is None else probabilities[i], votes,
                               face_rgb=None if overlays is None else overlays[i]))
    return tiles


EXPLAIN_CHOICES: dict[str, str] = {"off": "off", "predicted": "for the prediction", "reference": "for the reference"}
# Occlusion maps remembered per session (memory only): a page of 16 faces takes ~2 s to explain on 2 cores.
_MAPS_KEY = "explorer_occlusion_maps"
_MAPS_SIZE = 512


class Overlays(NamedTuple):
    """Occlusion maps drawn over their faces, all on one colour scale."""

    images: list[np.ndarray]
    scale: float  # the log-odds change drawn at full colour


def occlusion_overlays(model, rows: Sequence[int], targets: Sequence[int], zoom: int = 2,
                       tta: bool = False) -> Overlays:
    """Occlusion maps (``fer.explain``) of embedded test faces for the given classes, drawn over
    the faces enlarged ``zoom`` times (2: as the tiles), on one colour scale so that the maps
    shown together compare colour for colour.

    The model runs through its shared pipeline (its LiteRT copy, its illumination correction,
    flip TTA if ``tta``, like the predictions table shown), loading it if no page has yet. The
    maps (falls in log-odds) are remembered for the session under the pipeline's key, and
    drawn at any size.

    Raises:
        FileNotFoundError, ValueError, OSError: the model cannot be loaded.
    """
    from fer.explain import occlusion_map, overlay, shared_scale

    pipeline = resources.get_pipeline(model, "hog")
    model_key = resources.pipeline_key(model, "hog")

    def explain(face: np.ndarray, target: int) -> np.ndarray:
        return occlusion_map(lambda batch: pipeline.classify(batch, tta=tta), face, target).drop

    faces = resources.test_face_lookup().faces(np.asarray(rows, dtype=np.int64))
    drops = [widgets.session_memo(_MAPS_KEY, (model_key, int(row), int(target), tta), _MAPS_SIZE,
                                  partial(explain, face, int(target)))
             for face, row, target in zip(faces, rows, targets, strict=True)]
    scale = shared_scale(drops)
    return Overlays([overlay(face, drop, zoom=zoom, scale=scale) for face, drop in zip(faces, drops, strict=True)],
                    scale)


def face_close_up(model, row: int, probabilities: np.ndarray, reference: int, predicted: int, key: str,
                  tta: bool = False, calibrated: bool = True, link: bool = True) -> None:
    """One test face large: the face, its Training copy if any, its occlusion maps for the
    prediction and the reference label (when they differ), and its probabilities.

    Args:
        model: the app's :class:`fer_app.resources.ModelEntry`.
        row: the face's FER2013 row.
        probabilities: (7,) the model's probabilities for it.
        reference: its reference label code (-1: none).
        predicted: the model's label code.
        key: widget-key prefix of the calling page.
        tta: whether ``probabilities`` were made with flip TTA (the maps then are too).
        calibrated: whether ``probabilities`` went through the card's temperature (said under
            the bars: one face's figures differ between pages that show one or the other).
        link: add a link to the face's own view on the Dataset page (``?row=N``, an address to
            keep or share).
    """
    from fer.labels import EMOTIONS
    from fer.photo_report import enlarge

    face = resources.test_face_lookup().faces(np.array([row]))[0]
    zoom = 3
    images, captions = [enlarge(face, zoom)], [f"row {row}"]
    copy = resources.twin_lookup().get(int(row))
    if copy is not None:
        faces, why = training_faces(np.array([copy[0]]))
        if faces is not None:
            images.append(enlarge(faces[0], zoom))
            captions.append(f"its Training copy, row {copy[0]}: {label_name(copy[1])}")
        else:
            st.caption(f"Its Training copy is row {copy[0]} ({label_name(copy[1])}); not shown: {why}.")
    left, right = st.columns([3, 2])
    right.markdown(charts.probability_bars_html(dict(zip(EMOTIONS, probabilities, strict=True))),
                   unsafe_allow_html=True)
    how = "flip-TTA " if tta else ""
    right.caption((calibration_note(model, tta).strip() or f"The network's own {how}probabilities.") if calibrated
                  else f"The network's own {how}probabilities, not calibrated.")
    # Off by default: maps cost ~0.3 s a face (and the model's first load), clicks should not.
    if right.toggle("Occlusion maps", key=f"{key}_maps", help=charts.MAP_LEGEND):
        targets = [predicted] + ([reference] if reference >= 0 and reference != predicted else [])
        try:
            maps = occlusion_overlays(model, [row] * len(targets), targets, zoom=zoom, tta=tta)
        except (FileNotFoundError, ValueError, OSError) as err:
            right.caption(f"No occlusion maps: the model cannot be run ({err}).")
        else:
            images += maps.images
            captions += [charts.map_caption(EMOTIONS[t]) for t in targets]
            right.caption(charts.scale_note(maps.scale, len(targets)))
    left.image(images, caption=captions, width=48 * zoom)
    if link:  # under both columns: in the bars' column its words were cut short at 800 px
        st.page_link("pages/dataset.py", label=f"Row {row} on its own page", query_params={"row": str(row)},
                     help="The Dataset page's view of this face, at an address you can keep or share.")


def calibration_note(model, tta: bool = False) -> str:
    """A sentence saying which temperature softened the shown probabilities ('' for none)."""
    from fer.calibration import card_temperature

    temperature = card_temperature(model.card, tta)
    if temperature == 1.0:
        return ""
    return f" Probabilities calibrated (temperature {temperature:.2f}, fitted on PublicTest)."


def annotation_text(annotations: dict, row: int) -> str:
    """`` · ✎ relabelled sad (ann)`` for an annotated face, else empty."""
    current = annotations.get(int(row))
    if not current:
        return ""
    action, label, annotator, _ = current
    return f" · ✎ {describe_annotation(action, label)} ({annotator})"


def annotation_lookup(annotations: pd.DataFrame) -> dict:
    """Row -> current annotation, from the store's current table."""
    return current_annotation_map(annotations)


def grid_with_annotation(rows: Sequence[int], originals: Sequence[int], captions: Sequence[str],
                         tiles: Sequence[np.ndarray], key: str, first_number: int = 1,
                         close_up: Callable[[int], None] | None = None) -> None:
    """The face grid, then the annotation panel for the faces shown (with ``close_up(row)`` drawn
    for the chosen face, if given).
    """
    widgets.face_grid(tiles, captions)
    refs = [
        widgets.FaceRef(int(r), int(o), f"#{first_number + i} · row {int(r)} · {label_name(int(o))}")
        for i, (r, o) in enumerate(zip(rows, originals, strict=True))
    ]
    widgets.annotate_panel(refs, key, close_up)


def annotations_export(store) -> str:
    """The current label of every FER2013 row as CSV text (``fer.annotations`` export format)."""
    tables = resources.ferplus()
    if tables is None:
        raise FileNotFoundError("the embedded FER+ table is missing; rebuild it with `python -m fer.ferplus build`")
    buffer = io.StringIO()
    store.export_csv(buffer, resources.original_labels(), tables.majority, tables.usage)
    return buffer.getvalue()
