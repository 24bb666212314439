"""Shared widgets and renderers: the sidebar, model choice, paging, face grids, annotation.

Widget helpers return values; renderers draw what they are given. Keys are namespaced:
``app_*`` for the sidebar (kept across pages), ``<page>_*`` for a page's own widgets.
"""

from __future__ import annotations

import contextlib
import logging
import re
import sqlite3
import threading
from collections.abc import Callable, Hashable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import numpy as np
import streamlit as st

from fer.explorer import (
    EMOTION_COLORS,
    PageSlice,
    confusion_frame,
    current_annotation_map,
    describe_annotation,
    normalise_rows,
    paginate,
)
from fer.labels import EMOTIONS
from fer_app import charts, resources

MODEL_KEY = "app_model"
ANNOTATOR_KEY = "app_annotator"
T = TypeVar("T")
_frame = threading.local()
# Served by the app itself: a Material icon as the page icon made every page load fetch an SVG
# from Google's font server (a third-party request, and a console error offline).
FAVICON = Path(__file__).with_name("favicon.png")


@contextlib.contextmanager
def app_frame() -> Iterator[None]:
    """What every page sits in: page config and sidebar before it, the status line after it."""
    st.set_page_config(page_title="fer-lab", page_icon=str(FAVICON), layout="wide")
    sidebar()
    status = st.sidebar.container()
    _frame.active = True
    try:
        yield
    finally:
        _frame.active = False
    # After the page: the device line may import TensorFlow (models without a LiteRT copy).
    sidebar_status(status)
    # Decompress the face arrays while nobody waits, not on the first grid.
    resources.warm_test_faces()


_log = logging.getLogger("fer_app")


def run_page(render: Callable[[], None]) -> None:
    """Runs a page inside :func:`app_frame` unless the entrypoint already opened one.

    Streamlit runs a ``pages/`` script on its own (without the entrypoint) in its multipage-v1
    emulation: under ``AppTest.switch_page`` and on a fresh server's deep-linked requests. Such a
    run is sent through the entrypoint instead, so that every page sits in the app's navigation.
    """
    if getattr(_frame, "active", False):
        _kept(render)
        return
    from streamlit.runtime.pages_manager import PagesManager

    if PagesManager.uses_pages_directory:
        # Streamlit ran this page alone, under a navigation made from the ``pages/`` folder: a
        # fresh server's deep link (``/dataset?row=N``) does, and every later one did until a
        # request ran the entrypoint (the sidebar then listed file names). Tell Streamlit what
        # ``st.navigation`` itself tells it, and run again: the entrypoint runs, and its
        # navigation opens the page asked for.
        PagesManager.uses_pages_directory = False
        st.rerun()
    with app_frame():
        _kept(render)


def _kept(render: Callable[[], None]) -> None:
    """Runs a page guarded, and saves its kept controls' choices after (:func:`kept`)."""
    try:
        _guarded(render)
    finally:
        remember_kept()


# Controls whose choices outlive a visit to another page: Streamlit drops a widget's state in
# every run that does not draw it, so hopping Errors -> Map -> Errors reset the split, the
# reference, the filters and TTA. The keys are code constants, registered as the controls draw.
_KEPT_PREFIX = "_kept_"
_kept_keys: set[str] = set()


def kept(key: str) -> str:
    """A control's key, marked so that the control keeps its choice across visits to other pages.

    Call it inside the control's own call (``st.toggle(..., key=widgets.kept("errors_tta"))``),
    so it runs only when the control is drawn: a choice given back through Session State to a
    control not drawn in that run becomes a plain value, which the control, drawn later, would
    use while the browser shows its default. Uploads, selections and buttons cannot be kept
    (their state cannot be set), nor choices among options that change (Compare's model B);
    pagers can (:func:`pager` with ``keep``), and a matrix cell through its ``selection_default``.
    """
    _kept_keys.add(key)
    if key not in st.session_state and _KEPT_PREFIX + key in st.session_state:
        st.session_state[key] = st.session_state[_KEPT_PREFIX + key]
    return key


def kept_value(key: str, default: object = None) -> object:
    """A kept control's choice before the control is drawn in this run (:func:`kept`)."""
    return st.session_state.get(key, st.session_state.get(_KEPT_PREFIX + key, default))


def remember_kept() -> None:
    """Saves each kept control's current choice under a key no widget owns, which Streamlit keeps."""
    for key in _kept_keys:
        if key in st.session_state:
            st.session_state[_KEPT_PREFIX + key] = st.session_state[key]


def _guarded(render: Callable[[], None]) -> None:
    """Runs a page; an unexpected failure becomes a short message, never a traceback.

    Streamlit's own control flow (rerun, stop) derives from ``BaseException`` and passes
    through. The full traceback goes to the server log for whoever runs the app.
    """
    try:
        render()
    except sqlite3.Error as err:
        _log.exception("annotation database error")
        st.error(f"The annotation database cannot be used ({err}). Check that `{annotations_db_hint()}` is "
                 "writable, or set FER_ANNOTATIONS_DB to another file.", icon=":material/database:")
    except Exception as err:  # noqa: BLE001 - the last line of defence of a page
        _log.exception("page failed")
        st.error(f"Something went wrong on this page ({type(err).__name__}: {err}). Nothing was saved by the "
                 "failed action; the details are in the server log.", icon=":material/error:")


def annotations_db_hint() -> str:
    """Where the annotation database lives, for error messages."""
    from fer.annotations import default_db_path

    return str(default_db_path())


def sidebar() -> None:
    """The model selector and the annotator's name (rendered on every page)."""
    models = resources.list_models()
    with st.sidebar:
        if models:
            paths = [str(m.path) for m in models]
            labels = {str(m.path): m.label() for m in models}
            if st.session_state.get(MODEL_KEY) not in paths:
                st.session_state.pop(MODEL_KEY, None)
            st.selectbox("Model", paths, key=MODEL_KEY, format_func=labels.__getitem__,
                         help=f"Name · PublicTest / PrivateTest accuracy. Every *.h5 with a .json card in "
                              f"`{resources.models_dir()}`.")
            with st.expander(f"{len(models)} model{'s' if len(models) != 1 else ''}"):
                st.dataframe(model_table(models), hide_index=True,
                             column_config={"PublicTest": percent_column(), "PrivateTest": percent_column()})
        else:
            st.warning(f"No model in `{resources.models_dir()}`.")
        st.text_input("Annotator name", key=ANNOTATOR_KEY, placeholder="your name, to annotate faces",
                      help="Stored with every annotation you make in this session.")


def model_table(models: Sequence[resources.ModelEntry]):
    """Name, file and test accuracies of every model, for the sidebar."""
    import pandas as pd

    return pd.DataFrame([
        {"name": m.name, "file": m.path.name, "PublicTest": m.accuracy.get("PublicTest"),
         "PrivateTest": m.accuracy.get("PrivateTest")} for m in models
    ])


def percent_column(label: str | None = None):
    """A column of fractions shown as percentages with one decimal (0.6961 as 69.6%)."""
    # Streamlit's "percent" format shows (decimals of step - 2) decimals.
    return st.column_config.NumberColumn(label, format="percent", step=0.001)


# The per-class table's formats (``fer.explorer.per_class_table``): column formats, not a pandas
# Styler, which costs ~16 ms to send on every rerun.
PER_CLASS_COLUMNS = {"precision": percent_column(), "recall": percent_column(),
                     "f1": st.column_config.NumberColumn(format="%.3f")}


# A face table's score as a bar (Predict's tables of several photos and of a crowd's faces).
SCORE_COLUMNS = {"score": st.column_config.ProgressColumn(format="percent", min_value=0.0, max_value=1.0)}


def confusion_table(cm: np.ndarray, key: str, normalise: bool = False, **options):
    """A confusion matrix (rows true) whose one cell can be clicked, each cell coloured by its
    share of its row; ``options`` go to ``st.dataframe``. Returns the selection event.
    """
    styled = confusion_frame(cm, normalise).style.apply(
        lambda f: charts.confusion_styles(f, normalise_rows(cm)), axis=None).format("{:.1%}" if normalise else "{:d}")
    return st.dataframe(styled, key=key, on_select="rerun", selection_mode="single-cell", width="content", **options)


def sidebar_status(container) -> None:
    """The device and model line at the bottom of the sidebar (after the page ran)."""
    model = selected_model()
    with container:
        st.divider()
        st.caption(f"**Model:** {model.name} (`{model.path.name}`)" if model else "**Model:** none")
        if model is not None and model.accuracy:
            st.markdown(charts.accuracy_bars_html(model.accuracy, compact=True), unsafe_allow_html=True)
        st.caption(f"**Device:** {resources.device_description(model)}")


def selected_model() -> resources.ModelEntry | None:
    """The model chosen in the sidebar (``None`` when the folder has none)."""
    models = resources.list_models()
    chosen = st.session_state.get(MODEL_KEY)
    for model in models:
        if str(model.path) == chosen:
            return model
    return models[0] if models else None


def require_model(predictions: bool = False) -> resources.ModelEntry | None:
    """The selected model, or ``None`` after telling the user what is missing.

    Args:
        predictions: also require the model's per-image predictions CSV.
    """
    model = selected_model()
    if model is None:
        st.warning(
            f"No model found in `{resources.models_dir()}`. Train one with `python -m fer.train --out runs/x`, "
            "copy its `.h5` and `.json` card into `models/`, then evaluate it with "
            "`python -m fer.evaluate --model models/<name>.h5`."
        )
        return None
    if model.error:
        st.error(f"`{model.path.name}` cannot be used: {model.error}" if model.mismatch
                 else f"The card of `{model.path.name}` cannot be read: {model.error}")
        return None
    if predictions and not model.has_predictions:
        st.warning(
            f"`{model.path.name}` has no per-image predictions yet. Create them with "
            f"`python -m fer.evaluate --model {model.path}`."
        )
        return None
    return model


# The page sizes a pager offers, as multiples of the list's own: more faces a page for a quick
# scan, fewer rounds of paging (a grid of 64 faces still draws as one element).
PAGE_SIZE_FACTORS = (1, 2, 4)


def pager(total: int, per_page: int, key: str, keep: bool = False) -> PageSlice:
    """A page selector for a list of ``total`` items; returns the chosen page's slice.

    A list longer than ``per_page`` also gets a page-size choice (:data:`PAGE_SIZE_FACTORS`);
    a new size keeps the first item shown on the page shown. With ``keep``, the page and size
    chosen outlive a visit to another page (:func:`kept`), until :func:`reset_pager`.
    """
    if total > per_page:
        bar = st.container(horizontal=True, vertical_alignment="bottom", key=f"{key}_bar")
        per_page = _page_size(bar, per_page, key, keep)
    pages = paginate(total, 1, per_page).pages
    if pages > 1:
        if keep:
            kept(key)
        current = st.session_state.get(key, 1)
        if not isinstance(current, int) or current < 1:
            reset_pager(key)
        elif current > pages:  # the list shrank (a face annotated away): its last page, not its first
            st.session_state[key] = pages
        with bar:  # stretched: at its content width beside "Per page", it showed only "‹ 1 ›"
            page = st.pagination(pages, key=key, max_visible_pages=9, width="stretch")
    else:
        page = 1
    return paginate(total, page, per_page)


def _page_size(bar, per_page: int, key: str, keep: bool) -> int:
    """The page size chosen in ``bar``; on a change, the page that holds the first item shown."""
    sizes = [per_page * f for f in PAGE_SIZE_FACTORS]
    size_key, was_key, base_key = f"{key}_size", f"{key}_size_was", f"{key}_size_base"
    if st.session_state.get(base_key, per_page) != per_page:
        # Another list on this pager, with another page size (Dataset's faces and their pairs):
        # a size chosen there must not carry over as a multiple it was not.
        # Set, not dropped: a dropped value leaves the browser showing (and sending back) the old one.
        st.session_state[size_key] = per_page
        st.session_state.pop(_KEPT_PREFIX + size_key, None)
        st.session_state[was_key] = per_page
    st.session_state[base_key] = per_page
    with bar:
        size = st.selectbox("Per page", sizes, key=kept(size_key) if keep else size_key, width=110,
                            help="How many each page shows")
    was = st.session_state.get(was_key, per_page)
    st.session_state[was_key] = size
    if size != was and isinstance(st.session_state.get(key), int):
        st.session_state[key] = (st.session_state[key] - 1) * was // size + 1
    return size


def reset_pager(key: str) -> None:
    """Back to page 1 (e.g. when the list changes). Call it before the pager is drawn: the state
    is set, not dropped, so that the browser moves its highlight to page 1 too.
    """
    st.session_state[key] = 1
    st.session_state.pop(_KEPT_PREFIX + key, None)


def session_memo(store: str, key: Hashable, size: int, make: Callable[[], T]) -> T:
    """``make()``'s result, remembered under ``key`` in this session's ``store`` (at most
    ``size`` entries, oldest dropped first). Session memory only: never on disk, never shared
    between sessions, so it may hold what an upload's faces produced.
    """
    memo = st.session_state.setdefault(store, {})
    if key not in memo:
        value = make()
        while memo and len(memo) >= size:  # a while: ``size`` may have shrunk since the last call
            memo.pop(next(iter(memo)))
        memo[key] = value
    return memo[key]


def forget_memo(store: str, keep: Callable[[Hashable], bool]) -> None:
    """Drops the entries of this session's ``store`` (:func:`session_memo`) whose key ``keep``
    rejects, e.g. the results of uploads no longer on the page.
    """
    memo = st.session_state.get(store, {})
    for key in [k for k in memo if not keep(k)]:
        del memo[key]


def face_grid(tiles: Sequence[np.ndarray], captions: Sequence[str], width: int = 112) -> None:
    """Draws face tiles as one image list (one element however many faces)."""
    if not tiles:
        st.info("No faces to show.")
        return
    st.image(list(tiles), caption=list(captions), width=width)


def legend(model: bool = True, votes: bool = True) -> None:
    """Explains the bars under each face and their colours."""
    swatches = " ".join(
        f"<span style='background: rgb{EMOTION_COLORS[e]}; padding: 0 6px; border-radius: 3px;"
        f" color: black; font-size: 0.8em'>{e}</span>" for e in EMOTIONS
    )
    strips = [s for s, on in (("the model's probabilities", model), ("the FER+ crowd's votes", votes)) if on]
    which = " (upper), then ".join(strips) + (" (lower)" if len(strips) > 1 else "")
    st.markdown(f"Bars under each face: {which}; one bar per class, left to right: {swatches}.",
                unsafe_allow_html=True)


@dataclass(frozen=True)
class FaceRef:
    """A face offered for annotation: its FER2013 row, original label code and a caption."""

    row: int
    original: int
    caption: str


def annotate_panel(faces: Sequence[FaceRef], key: str, close_up: Callable[[int], None] | None = None) -> None:
    """Choose one of ``faces`` (and see ``close_up(row)`` of it, if given), then confirm,
    relabel or reject it, with an optional note.

    Choosing a face redraws its close-up at once; the save runs in the button's callback, before
    the page reruns, so the grid drawn on the rerun already shows the new annotation. The choice
    starts from the chosen face's current annotation, and a Save that would store it again stores
    nothing, so a Save nobody meant cannot overwrite earlier work. No ``st.form``: a form's browser
    keeps edits nobody submitted and sends them with its next Save, even after the server reset
    the choice on screen (another face, another page, a save of several faces), so they would
    reach a face they were not made for.
    """
    from fer.annotations import UI_CHOICES

    if not faces or st.session_state.get(STORE_ERROR_KEY):
        return  # no faces, or no usable store (current_annotations said why)
    annotator = str(st.session_state.get(ANNOTATOR_KEY, "")).strip()
    by_row = {f.row: f for f in faces}
    rows = list(by_row)
    left = _left_after_save(key, rows)
    with st.container(border=True, key=f"{key}_panel"):
        if len(rows) == 1 and left is None:  # nothing to choose between (but never a face nobody chose)
            st.markdown("**Annotate this face**")
            st.session_state[f"{key}_row"] = row = rows[0]
        else:
            st.markdown("**Look closer at a face on this page, and annotate it**")
            row = _face_chooser(key, rows, by_row, left)
        if left is not None:
            st.info(f"Row {left[0]} left this list with your annotation; choose the next face to annotate "
                    "(▶ goes to the face that took its place).")
        history = resources.annotation_store().history(row) if row is not None else None
        now = current_annotation_map(history.tail(1)).get(row) if history is not None else None
        if st.session_state.get(f"{key}_form_row", "unset") != row or f"{key}_choice" not in st.session_state:
            # A newly chosen face, or a form whose state Streamlit dropped during a visit to
            # another page: the form starts from what is stored for the face.
            st.session_state[f"{key}_form_row"] = row
            st.session_state[f"{key}_choice"] = _choice_of(now) if now else UI_CHOICES[0]
            st.session_state[f"{key}_note"] = ""
        if now:
            st.caption(f"Row {row} is annotated: {describe_annotation(now[0], now[1])} "
                       f"(by {escape_markdown(now[2])}); the form starts from it.")
        if close_up is not None and row is not None:
            close_up(int(row))
        if not annotator:
            st.info("Set your name under *Annotator name* in the sidebar to annotate.")
        st.radio("Label", UI_CHOICES, key=f"{key}_choice", horizontal=True,
                 help="confirm keeps the FER2013 label; an emotion relabels the face")
        st.text_input("Note (optional)", key=f"{key}_note",
                      help="Saving the stored label again with no note keeps its note; type a new one to change it.")
        st.button(
            "Save annotation", key=f"{key}_save", disabled=not annotator or row is None, on_click=_save_annotation,
            args=(key, {r: f.original for r, f in by_row.items()}),
        )
    if len(rows) > 1:
        _several_faces_panel(key, by_row, annotator)
    st.session_state[f"{key}_list"] = tuple(rows)
    message = st.session_state.pop(f"{key}_message", None)
    if message:
        kind, text = message
        {"ok": st.success, "same": st.info}.get(kind, st.error)(text)
    if history is not None:
        _history(int(row), history)


def _several_faces_panel(key: str, by_row: dict[int, FaceRef], annotator: str) -> None:
    """One choice for several faces of the page at once (e.g. confirm a page of faces one has
    checked), collapsed; nothing is chosen until someone chooses, and another page or list of
    faces starts it empty again. No ``st.form``, for the reason :func:`annotate_panel` gives.
    """
    from fer.annotations import UI_CHOICES

    rows = tuple(by_row)
    if st.session_state.get(f"{key}_many_list") != rows:
        # Another page or list: "all faces" and a label chosen for the last one must not apply
        # to this one unseen. Set, not dropped, so the browser shows the reset too.
        _empty_several(key)
        st.session_state[f"{key}_many_list"] = rows
    with st.expander(f"Annotate several faces of this page at once ({len(by_row)} shown)"):
        chosen = st.multiselect("Faces", list(by_row), key=f"{key}_many", format_func=lambda r: by_row[r].caption,
                                placeholder="Choose faces")
        everyone = st.checkbox(f"All {len(by_row)} faces of this page", key=f"{key}_many_all")
        # No label until one is chosen, for every save: a label left from the last batch must not
        # reach a new one unseen (with "all faces" ticked, a whole page).
        choice = st.radio("Label", UI_CHOICES, key=f"{key}_many_choice", horizontal=True, index=None,
                          help="confirm keeps each face's own FER2013 label; an emotion relabels every chosen face")
        st.text_input("Note (optional, the same for every face)", key=f"{key}_many_note")
        replaced = _replaced_by(list(rows) if everyone else chosen, by_row, choice)
        if replaced:
            st.warning(replaced, icon=":material/warning:")
        st.caption("A face already annotated gets the new annotation; its history keeps the old one. A face "
                   "that holds this annotation already is left as it is.")
        st.button("Save for the chosen faces", key=f"{key}_many_save", disabled=not annotator, on_click=_save_many,
                  args=(key, {r: f.original for r, f in by_row.items()}))


def _empty_several(key: str) -> None:
    st.session_state[f"{key}_many"], st.session_state[f"{key}_many_all"] = [], False
    st.session_state[f"{key}_many_choice"], st.session_state[f"{key}_many_note"] = None, ""


def _replaced_by(rows: Sequence[int], by_row: dict[int, FaceRef], choice: str | None) -> str:
    """A warning naming the chosen faces whose current annotation (someone's relabel, say) the
    choice would replace with another; empty when there are none. "confirm" means each face's
    FER2013 label, which undoes a relabel: said before the save, not found out after it.
    """
    from fer.annotations import choice_to_action

    if not rows or choice is None:
        return ""
    current = current_annotation_map(resources.annotation_store().current())
    changed = []
    for row in rows:
        now = current.get(row)
        if now is not None and (now[0], now[1]) != choice_to_action(choice, by_row[row].original):
            changed.append(f"row {row} ({describe_annotation(now[0], now[1])} by {escape_markdown(now[2])})")
    if not changed:
        return ""
    shown = ", ".join(changed[:4]) + (f" and {len(changed) - 4} more" if len(changed) > 4 else "")
    return (f"{len(changed)} of the {len(rows)} chosen faces hold another annotation, which this save replaces: "
            f"{shown}." + (" \"confirm\" gives each face its FER2013 label." if choice == "confirm" else ""))


def _save_many(key: str, originals: dict[int, int]) -> None:
    from collections import Counter

    from fer.annotations import annotate_many

    everyone = st.session_state.get(f"{key}_many_all", False)
    rows = list(originals) if everyone else [r for r in st.session_state.get(f"{key}_many", []) if r in originals]
    choice = st.session_state.get(f"{key}_many_choice")
    if not rows or choice is None:
        missing = "choose faces, or tick all faces of this page." if not rows else "choose a label."
        st.session_state[f"{key}_message"] = ("error", f"Not saved: {missing}")
        return
    annotator = str(st.session_state.get(ANNOTATOR_KEY, "")).strip()
    note = st.session_state.get(f"{key}_many_note", "")
    # One transaction: all the chosen faces are stored, or none (a failure loses no half).
    done, stored = _attempt(key, lambda: annotate_many(
        resources.annotation_store(), {r: originals[r] for r in rows}, choice, note, annotator))
    if not done:
        return
    asked = (tuple(rows), choice, note, annotator)
    last = st.session_state.get(f"{key}_many_last")
    if not stored and last is not None and last[0] == asked:
        # The same save again, as a double click sends it: "nothing new" alone would hide what
        # the first click saved, so its message stays, with a word on the second.
        st.session_state[f"{key}_message"] = ("ok", f"{last[1]} Saving the same again stored nothing more.")
        _empty_several(key)
        return
    kinds = Counter(describe_annotation(a.action, a.label) for a in stored)
    what = ", ".join(f"{n} {text}" for text, n in kinds.items())
    same = len(rows) - len(stored)
    faces = "1 face" if len(rows) == 1 else f"{len(stored)} of {len(rows)} faces"
    text = ((f"Saved for {faces}: {what} (by {escape_markdown(annotator)})." if stored
             else f"The {len(rows)} chosen faces hold this annotation already; nothing new to save.")
            + (f" {same} held it already." if stored and same else ""))
    st.session_state[f"{key}_message"] = ("ok" if stored else "same", text)
    st.session_state[f"{key}_many_last"] = (asked, text)
    _empty_several(key)
    # The one-face form starts again from what is now stored; no face "left the list" by itself.
    st.session_state.pop(f"{key}_form_row", None)
    st.session_state.pop(f"{key}_saved", None)


def _left_after_save(key: str, rows: list[int]) -> tuple[int, int] | None:
    """``(row, its index)`` when the face just saved left this list because of the save (it
    moved to another cell, or annotated faces are hidden), else None.

    Streamlit would then choose the first face in its place, and a second click on Save would
    annotate a face nobody chose, so the selector empties. When the list changed for another
    reason (another cell, another page of faces), the choice simply starts again.
    """
    saved, chosen = st.session_state.get(f"{key}_saved"), st.session_state.get(f"{key}_row")
    before = st.session_state.get(f"{key}_list", ())
    if saved is None or chosen != saved or saved in rows or saved not in before:
        return None
    if not set(before) - {saved} <= set(rows):
        st.session_state.pop(f"{key}_saved", None)  # the person moved on: no stale message
        return None
    st.session_state[f"{key}_row"] = None
    return saved, before.index(saved)


def _face_chooser(key: str, rows: list[int], by_row: dict[int, FaceRef], left: tuple[int, int] | None) -> int | None:
    """The face selector with previous and next buttons; returns the chosen row (or None)."""
    if st.session_state.get(f"{key}_row") not in (None, *rows):
        # Another list: start again from its first face. Set, not dropped: a dropped value leaves
        # the browser showing (and later sending back) the old face.
        st.session_state[f"{key}_row"] = rows[0]
    # A row whose buttons keep their natural width: in columns they were cut to "…" at 800 px.
    with st.container(horizontal=True, vertical_alignment="bottom", key=f"{key}_chooser"):
        row = st.selectbox("Face", rows, key=f"{key}_row", format_func=lambda r: by_row[r].caption,
                           placeholder="Choose a face")
        if row is not None:
            at = rows.index(row)
            back, ahead = (rows[at - 1] if at > 0 else None), (rows[at + 1] if at < len(rows) - 1 else None)
        elif left is not None:  # around the place of the face that left
            at = min(left[1], len(rows) - 1)
            back, ahead = (rows[at - 1] if at > 0 else None), rows[at]
        else:
            back, ahead = None, rows[0]
        st.button("◀ Previous", key=f"{key}_previous", help="the previous face on this page", disabled=back is None,
                  on_click=_choose_face, args=(key, back), width="content")
        st.button("Next ▶", key=f"{key}_next", help="the next face on this page", disabled=ahead is None,
                  on_click=_choose_face, args=(key, ahead), width="content")
    return row


def _choose_face(key: str, row: int | None) -> None:
    st.session_state[f"{key}_row"] = row


def _choice_of(annotation: tuple[str, str | None, str, str]) -> str | None:
    """The form's choice for a stored ``(action, label, annotator, note)``; None (no choice made)
    for one this version cannot show, so that a Save nobody meant cannot replace it.
    """
    from fer.annotations import action_to_choice

    try:
        return action_to_choice(annotation[0], annotation[1])
    except ValueError:
        return None


def _save_annotation(key: str, originals: dict[int, int]) -> None:
    from fer.annotations import annotate

    row = st.session_state.get(f"{key}_row")
    choice = st.session_state.get(f"{key}_choice", "confirm")
    note = st.session_state.get(f"{key}_note", "")
    annotator = str(st.session_state.get(ANNOTATOR_KEY, "")).strip()
    if not isinstance(row, (int, np.integer)) or int(row) not in originals:  # None, or a stale caption
        st.session_state[f"{key}_message"] = ("error", "Not saved: choose a face first.")
        return
    # Checked and stored in one transaction: a double click's two runs store it once.
    done, saved = _attempt(key, lambda: annotate(resources.annotation_store(), int(row), choice, note, annotator,
                                                 originals[int(row)], only_if_new=True))
    if not done:
        return
    if saved is None:
        st.session_state[f"{key}_message"] = (
            "same", f"Row {row} holds this annotation already (by {escape_markdown(annotator)}); nothing new to save.")
        return
    st.session_state[f"{key}_message"] = (
        "ok", f"Saved for row {saved.row}: {describe_annotation(saved.action, saved.label)} "
              f"(by {escape_markdown(saved.annotator)}).",
    )
    # The form now shows what is stored: a second click saves nothing new.
    st.session_state[f"{key}_note"] = ""
    st.session_state[f"{key}_saved"] = saved.row


def _attempt(key: str, save: Callable[[], T]) -> tuple[bool, T | None]:
    """``(True, save())``, or ``(False, None)`` with the panel's error message when it fails."""
    try:
        return True, save()
    except (ValueError, KeyError, TypeError) as err:
        st.session_state[f"{key}_message"] = ("error", f"Not saved: {err}")
    except sqlite3.Error as err:  # a callback runs before the page, outside its guard
        _log.exception("annotation database error")
        st.session_state[f"{key}_message"] = ("error", f"Not saved: the annotation database cannot be used ({err}).")
    return False, None


def _history(row: int, history) -> None:
    if history.empty:
        return
    with st.expander(f"Annotation history of row {row} ({len(history)})"):
        st.dataframe(history.drop(columns=["id", "row"]), hide_index=True)


def escape_markdown(text: str) -> str:
    """Backslash-escapes ASCII punctuation, so that text someone typed or a file held shows as
    written in a Markdown message, never as a link or markup.
    """
    return re.sub(r"([!-/:-@\[-`{-~])", r"\\\1", text)


# Set in a session while its annotation database cannot be read: the pages then show what needs
# no annotations, and the annotation panel says why it is missing.
STORE_ERROR_KEY = "annotations_unusable"


def current_annotations():
    """The store's current annotation per row (a fresh read: annotations change).

    With a database that cannot be used, none, and a warning: a broken file must not hide the
    matrix and the faces, which need no annotations.
    """
    from fer.annotations import history_frame

    current = _from_store(lambda store: store.current())
    return history_frame() if current is None else current


def annotation_store_opens() -> bool:
    """Whether the annotation database opens (nothing is read). When it does not, a warning says
    why and the annotation panels stay away, as after :func:`current_annotations`.
    """
    return _from_store(lambda store: True) is not None


def _from_store(read: Callable[[object], T]) -> T | None:
    """``read(store)``, or None with a warning (and the panels kept away) when the database
    cannot be used; a success clears an earlier failure's flag (the file was mended).
    """
    try:
        value = read(resources.annotation_store())
    except sqlite3.Error as err:
        _log.exception("annotation database error")
        st.session_state[STORE_ERROR_KEY] = str(err)
        st.warning(f"The annotation database cannot be used ({err}), so annotations are left out and cannot be "
                   f"saved. Check that `{annotations_db_hint()}` is a writable SQLite file, or set "
                   "FER_ANNOTATIONS_DB to another file.", icon=":material/database:")
        return None
    st.session_state.pop(STORE_ERROR_KEY, None)
    return value
