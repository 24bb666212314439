"""Compare: the selected model (A) against another (B) on the same test faces."""

import streamlit as st

from fer.compare import GROUPS, compare, per_class
from fer.explorer import label_name
from fer.labels import EMOTIONS, EVAL_SPLITS
from fer_app import resources, widgets
from fer_app.explorer_view import (
    FACES_PER_PAGE,
    annotation_lookup,
    annotation_text,
    p_text,
    points_text,
    pose_subset,
    pose_text,
    tiles_for_rows,
    twin_subset,
    twin_text,
    vote_summary,
)

# The p-values and the difference are formatted by the table's Styler (p_text, points_text), so
# the grid shows the page's own text while it still sorts by the numbers.
CLASS_COLUMNS = {"A": widgets.percent_column(), "B": widgets.percent_column(),
                 "B - A": st.column_config.NumberColumn("B − A"),
                 "p": st.column_config.NumberColumn("McNemar p"),
                 "p (Holm)": st.column_config.NumberColumn("p, Holm-adjusted")}


def class_table(comparison):
    """Per true class, as the page shows it (a Styler over :func:`fer.compare.per_class`)."""
    return per_class(comparison).style.format({"B - A": points_text, "p": p_text, "p (Holm)": p_text})


def render() -> None:
    st.title("Compare two models")
    model_a = widgets.require_model(predictions=True)
    if model_a is None:
        return
    others = [m for m in resources.list_models() if m.has_predictions and m.path != model_a.path and not m.error]
    if not others:
        st.info(f"Only `{model_a.path.name}` has per-image predictions; evaluate another model with "
                "`python -m fer.evaluate --model models/<name>.h5` to compare.")
        return
    left, right = st.columns([3, 2])
    names = {m.stem: m for m in others}
    model_b = names[left.selectbox("Model B (A is the model chosen in the sidebar)", list(names), key="compare_b")]
    split = right.segmented_control("Split", EVAL_SPLITS, key=widgets.kept("compare_split"), default="PrivateTest",
                                    required=True)
    both_tta = resources.has_tta_predictions(model_a) and resources.has_tta_predictions(model_b)
    if not both_tta:
        # A disabled switch keeps its stored value: an earlier "on" would ask for predictions one
        # of these models lacks, with no way to turn it off.
        st.session_state["compare_tta"] = False
    tta = right.toggle("Flip TTA", key=widgets.kept("compare_tta"), disabled=not both_tta,
                       help="Both models' predictions with flip test-time augmentation"
                            + ("" if both_tta else " (needs both models' `.predictions_tta.csv`)"))
    try:
        a, b = resources.load_predictions(model_a, tta=tta), resources.load_predictions(model_b, tta=tta)
    except (FileNotFoundError, ValueError) as err:
        st.error(f"The predictions cannot be read: {err}")
        return
    faces_col, pose_col = st.columns(2)
    with faces_col:
        subset, a = twin_subset(a, "compare_twins")
    with pose_col:
        pose, a = pose_subset(a, "compare_pose")
    if subset != "all" or pose != "any":
        b = b[b["row"].isin(a["row"])]
    try:
        comparison = compare(a, b, split)
    except ValueError as err:
        st.error(f"`{model_a.stem}` and `{model_b.stem}` cannot be compared: {err}")
        return

    cols = st.columns(4)
    cols[0].metric(f"A: {model_a.stem}", f"{comparison.accuracy_a:.1%}")
    low, high = comparison.difference_interval()
    cols[1].metric(f"B: {model_b.stem}", f"{comparison.accuracy_b:.1%}",
                   delta=f"{points_text(comparison.accuracy_b - comparison.accuracy_a)} vs A",
                   help=f"95% confidence interval of B - A: {100 * low:+.1f} to {100 * high:+.1f} points "
                        "(paired: from the faces one model gets right and the other wrong)")
    cols[2].metric("Discordant faces",
                   f"{comparison.count('only_a') + comparison.count('only_b')}",
                   help="A right and B wrong, or B right and A wrong")
    cols[3].metric("McNemar exact p", p_text(comparison.p_value),
                   help="How likely a split of those faces at least this uneven is if neither model is better: "
                        "under 0.05, the difference is unlikely to be chance")
    st.caption(f"{comparison.n} {split} faces · " + ", ".join(
        f"{title}: {comparison.count(group)}" for group, title in GROUPS.items()))
    st.markdown("**Per true class** (McNemar's p per class; the Holm column adjusts it for the seven tests)")
    st.dataframe(class_table(comparison), key="compare_classes", column_config=CLASS_COLUMNS)

    group = st.segmented_control("Faces to show", list(GROUPS), key=widgets.kept("compare_group"), default="only_b",
                                 required=True, format_func=GROUPS.get)
    faces = comparison.ordered(group)
    if st.session_state.get("compare_last") != (model_a.stem, model_b.stem, split, subset, pose, group, tta):
        st.session_state["compare_last"] = (model_a.stem, model_b.stem, split, subset, pose, group, tta)
        widgets.reset_pager("compare_page")
    st.subheader(f"{GROUPS[group]}: {len(faces)} faces", divider="gray")
    if faces.empty:
        return
    page = widgets.pager(len(faces), FACES_PER_PAGE, "compare_page")
    shown = faces.iloc[page.start:page.stop]
    rows = shown["row"].to_numpy()
    true = shown["true"].to_numpy()
    probs_a = shown[[f"p_{e}_a" for e in EMOTIONS]].to_numpy()
    probs_b = shown[[f"p_{e}_b" for e in EMOTIONS]].to_numpy()
    st.caption(f"Faces {page.start + 1}–{page.stop} of {page.total}, largest change in the true label's "
               "probability first; bars: B's probabilities (upper), the FER+ crowd's votes (lower).")
    copies, poses = resources.twin_lookup(), resources.face_poses()
    notes = annotation_lookup(widgets.current_annotations())
    captions = [
        f"row {r} · {label_name(true[i])} · A: {label_name(shown['pred_a'].iloc[i])} "
        f"{probs_a[i].max():.0%} · B: {label_name(shown['pred_b'].iloc[i])} {probs_b[i].max():.0%}"
        f" · {vote_summary(r)}{twin_text(r, copies)}{pose_text(r, poses)}{annotation_text(notes, r)}"
        for i, r in enumerate(rows)
    ]
    widgets.face_grid(tiles_for_rows(rows, probs_b), captions)


widgets.run_page(render)
