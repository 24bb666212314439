"""Model: the selected model's card: metrics, confusion matrices, training curves, architecture."""

import pandas as pd
import streamlit as st

from fer.distill import describe_targets
from fer.labels import EMOTIONS, EVAL_SPLITS
from fer.lite import describe_lite
from fer.metadata import training_commands, training_cycles, training_runs
from fer_app import charts, resources, widgets

# Card keys written by scripts/ablation_table.py (and landmark_fusion.py), in the order they are shown.
ABLATION_TABLES = (
    ("ablation", "Each change added to the one before (GPU runs, 30 epochs planned)"),
    ("ablation_10_epochs", "The same chain, every row 10 epochs (same length)"),
    ("landmark_experiment", "The paper's feature-extraction hypothesis: dlib landmarks as a second input"),
    ("landmark_fusion", "The same hypothesis at this model's scale: landmarks fused with its output or features"),
)


def metrics_table(metrics: dict) -> pd.DataFrame:
    """Headline metrics per split as one table."""
    return pd.DataFrame(
        {split: {"faces": m.get("n"), "accuracy": m.get("accuracy"), "macro-F1": m.get("macro_f1")}
         for split, m in metrics.items()}
    ).T


def per_class_frame(metrics: dict) -> pd.DataFrame:
    """Per-class accuracy and precision, one column pair per split."""
    columns = {}
    for split, m in metrics.items():
        columns[(split, "accuracy")] = [m.get("per_class_accuracy", {}).get(e) for e in EMOTIONS]
        columns[(split, "precision")] = [m.get("per_class_precision", {}).get(e) for e in EMOTIONS]
    return pd.DataFrame(columns, index=list(EMOTIONS))


def render_metrics(metrics: dict, title: str, key: str) -> None:
    st.subheader(title, divider="gray")
    st.plotly_chart(charts.accuracy_figure({s: m["accuracy"] for s, m in metrics.items() if "accuracy" in m}),
                    key=f"{key}_accuracy", config={"displayModeBar": False})
    left, right = st.columns([2, 3])
    left.dataframe(metrics_table(metrics).style.format({"faces": "{:.0f}", "accuracy": "{:.2%}", "macro-F1": "{:.3f}"}))
    right.dataframe(per_class_frame(metrics).style.format("{:.1%}", na_rep="–"))
    columns = st.columns(max(1, len(metrics)))
    for column, (split, m) in zip(columns, metrics.items(), strict=False):
        if "confusion_matrix" in m:
            column.plotly_chart(charts.confusion_figure(m["confusion_matrix"], title=f"{split} (row share, count)"),
                                key=f"{key}_cm_{split}", config={"displayModeBar": False})


CALIBRATION_SCORES = {"ece": "ECE", "mce": "MCE", "nll": "NLL", "brier": "Brier"}


def calibration_table(entry: dict) -> pd.DataFrame:
    """Each split's calibration scores before and after the temperature (lower is better)."""
    return pd.DataFrame({
        split: {f"{name} {stage}": summary[stage][key] for key, name in CALIBRATION_SCORES.items()
                for stage in ("before", "after")} | {"faces": summary["n"]}
        for split, summary in entry["splits"].items()
    }).T


def render_calibration(card: dict) -> None:
    """How far the probabilities can be trusted, and the temperature the app applies."""
    entries = [(key, how) for key, how in (("calibration", ""), ("calibration_tta", ", flip TTA")) if card.get(key)]
    if not entries:
        return
    st.subheader("Calibration", divider="gray")
    st.caption("Among faces given a top probability near p, about p should be right. The app, `fer.predict` and the "
               "Predict page's downloads divide the network's log-probabilities by a temperature fitted on PublicTest "
               "(lowest NLL); labels never change. ECE: the count-weighted gap between confidence and accuracy "
               "over equal-width bins of the top probability; MCE: the largest bin's gap (noisy where a bin holds "
               "few faces).")
    for key, how in entries:
        entry = card[key]
        reference = " against FER+ majority labels" if entry.get("reference") == "ferplus" else ""
        st.markdown(f"**Temperature {entry['temperature']:.3f}**{how}{reference} · {entry.get('bins', '?')} bins · "
                    f"`{entry.get('command', '')}`")
        st.dataframe(calibration_table(entry), key=f"model_{key}_table",
                     column_config={"faces": st.column_config.NumberColumn(format="%d")})
        columns = st.columns(max(1, len(entry["splits"])))
        for column, (split, summary) in zip(columns, entry["splits"].items(), strict=False):
            column.plotly_chart(charts.reliability_figure(summary, f"{split}{how}"), key=f"model_{key}_{split}",
                                config={"displayModeBar": False})


def pose_frame(report: dict, angle: str) -> pd.DataFrame:
    """Accuracy per absolute ``angle`` (``yaw`` or ``pitch``) bin, one column group per split."""
    columns, index = {}, None
    for split in EVAL_SPLITS:
        rows = (report.get(split) or {}).get(angle) or []
        if not rows or (index is not None and [row["bin"] for row in rows] != index):
            continue  # a split without this table, or with other bins, is left out
        index = [row["bin"] for row in rows]
        for field, name in (("faces", "faces"), ("accuracy", "accuracy"), ("accuracy_class_mix", "at class mix")):
            columns[(split, name)] = [row.get(field) for row in rows]
    return pd.DataFrame(columns, index=pd.Index(index or [], name=f"|{angle}|"))


def caution_report(card: dict, key: str, title: str) -> tuple[dict | None, str]:
    """A card's table that the Predict page's cautions read, under its heading: ``(report, views)``,
    ``views`` saying with which views it was measured; ``(None, "")`` when the card has none."""
    report = card.get(key)
    if not report:
        return None, ""
    st.subheader(title, divider="gray")
    return report, "with flip TTA" if report.get("tta") else "without TTA"


def render_pose(card: dict) -> None:
    """Accuracy by head pose (``python -m fer.pose``), which the Predict page's cautions read."""
    report, views = caution_report(card, "pose_accuracy", "Accuracy by head pose")
    if report is None:
        return
    st.caption(f"Test faces grouped by the head pose their dlib landmarks give ({views}; `python -m fer.pose`). "
               "'At class mix' weights each emotion's accuracy in a bin by its share of the whole split, so a bin "
               "richer in hard emotions (sad faces are turned more often than happy ones) is not blamed on the "
               "pose. The Predict page warns when a face is turned as far as a PublicTest bin at least 5 points "
               "below the frontal one.")
    for angle in ("yaw", "pitch"):
        st.markdown(f"**By {angle}**")
        frame = pose_frame(report, angle)
        shares = [c for c in frame.columns if c[1] != "faces"]
        st.dataframe(frame.style.format("{:.1%}", na_rep="–", subset=shares), key=f"model_pose_{angle}")


def render_resolution(card: dict) -> None:
    """Accuracy by face resolution (``python -m fer.resolution``), which the Predict page's cautions read."""
    report, views = caution_report(card, "resolution_accuracy", "Accuracy by face resolution")
    if report is None:
        return
    if report.get("reference") == "ferplus":
        views += ", against the FER+ crowd's majority labels"
    st.caption(f"Test faces shrunk to fewer pixels a side and enlarged back to 48 ({views}; `python -m "
               "fer.resolution`), as a small face in a photo is enlarged by its alignment. The Predict page warns "
               "under a face with as few pixels as a PublicTest size at least 5 points below full size.")
    splits = [s for s in EVAL_SPLITS if report.get(s)]
    frame = pd.DataFrame({s: [row["accuracy"] for row in report[s]] for s in splits},
                         index=pd.Index([row["size"] for row in report[splits[0]]], name="px a side"))
    st.dataframe(frame.style.format("{:.1%}"), key="model_resolution")


def render() -> None:
    st.title("Model card")
    model = widgets.require_model()
    if model is None:
        return
    card = model.card
    arch = card.get("architecture", {})
    st.markdown(f"### {model.name}  \n`{model.path.name}` · architecture **{arch.get('name', '?')}**")
    cols = st.columns(4)
    cols[0].metric("Parameters", f"{arch['parameters']:,}" if "parameters" in arch else "–")
    # A warm-restarted model's epochs and wall time are those of its whole chain of runs.
    cycles = training_cycles(card)
    epochs = [c.epochs for c in cycles if c.epochs is not None]
    walls = [c.wall_seconds for c in cycles if c.wall_seconds is not None]
    cols[1].metric("Epochs", sum(epochs) if epochs else "–")
    cols[2].metric("Training wall time", f"{sum(walls) / 60:.1f} min" if walls else "–")
    cols[3].metric("Input", "×".join(str(v) for v in card.get("input_shape", [])) or "–")
    machines = list(dict.fromkeys(c.machine for c in cycles if c.machine)) or ["unknown"]
    keras_version = f" · Keras {card['keras']}" if card.get("keras") else ""  # e.g. "3.15.1 (tensorflow backend)"
    st.caption(f"Machine{'s' if len(machines) > 1 else ''}: {'; '.join(machines)}{keras_version}")
    runs = training_runs(card)
    if len(runs) > 1:
        st.caption(f"Trained in {len(runs)} runs, each a warm restart from an earlier run or average: "
                   + " + ".join(str(c.epochs) if c.epochs is not None else "?" for c in runs) + " epochs.")
    if soup := card.get("soup"):
        members = [str(m.get("from", "?")) for m in soup.get("members", [])]
        st.caption(f"Its weights are the average of {len(members)} snapshots ({', '.join(members)}), with "
                   f"batch-norm statistics re-estimated on {soup.get('bn_faces', '?')} training faces and "
                   "their mirror images (`python -m fer.soup`).")
    if distilled := card.get("distillation"):
        st.caption(f"The last training run learnt from these targets: {describe_targets(distilled)}.")

    if card.get("metrics"):
        render_metrics(card["metrics"], "Test metrics", "model_metrics")
    else:
        st.info(f"No metrics in the card; add them with `python -m fer.evaluate --model {model.path} --update-card`.")
    if card.get("metrics_tta"):
        render_metrics(card["metrics_tta"], "Test metrics with flip test-time augmentation", "model_metrics_tta")
    if card.get("metrics_ferplus"):
        render_metrics(card["metrics_ferplus"], "Against FER+ majority labels (faces with emotion votes)",
                       "model_metrics_ferplus")
    if card.get("metrics_ferplus_tta"):
        render_metrics(card["metrics_ferplus_tta"], "Against FER+ majority labels, with flip test-time augmentation",
                       "model_metrics_ferplus_tta")
    for suffix, how in (("", ""), ("_tta", ", flip TTA"), ("_tta_shifts", ", 10 views")):
        if card.get("metrics_no_twin" + suffix):
            render_metrics(card["metrics_no_twin" + suffix],
                           f"Test faces not also in Training{how} (no near-duplicate there; `fer.twins`)",
                           "model_metrics_no_twin" + suffix)
    render_calibration(card)
    render_pose(card)
    render_resolution(card)
    if card.get("notes"):
        st.subheader("Notes", divider="gray")
        st.markdown("\n".join(f"- {note}" for note in card["notes"]))
    tables = [(key, title) for key, title in ABLATION_TABLES if card.get(key)]
    if tables:
        st.subheader("Ablation", divider="gray")
        st.caption("PublicTest (our validation split) only: the test split is never used to choose.")
        for key, title in tables:
            st.markdown(f"**{title}**")
            st.dataframe(pd.DataFrame(card[key]), hide_index=True, key=f"model_{key}")

    st.subheader("Training curves", divider="gray")
    history = resources.load_history(model)
    if history is None or history.empty:
        st.info(f"No training history (`{model.stem}.history.csv`) beside the model.")
    else:
        left, middle, right = st.columns(3)
        left.plotly_chart(charts.history_figure(history, "accuracy"), key="model_hist_acc")
        middle.plotly_chart(charts.history_figure(history, "loss"), key="model_hist_loss")
        if "lr" in history:
            right.plotly_chart(charts.learning_rate_figure(history), key="model_hist_lr")
        if "epoch_seconds" in history:
            st.caption(f"{len(history)} epochs, {history['epoch_seconds'].mean():.1f} s per epoch on average.")

    st.subheader("How to reproduce", divider="gray")
    steps = training_commands(card) or ["# (no training command recorded)"]
    if card.get("evaluate_command"):
        steps.append(card["evaluate_command"])
    lite = card.get("lite") or {}
    if lite.get("command"):
        steps.append(lite["command"])
    st.code("\n".join(steps), language="bash")
    sums = [(what, card[key]) for what, key in (("Model", "model_sha256"), ("Data", "data_sha256")) if card.get(key)]
    if sums:
        st.caption(" · ".join(f"{what} SHA-256: `{value}`" for what, value in sums))
    if lite:
        st.caption(describe_lite(lite))
    left, right = st.columns(2)
    with left:
        st.markdown("**Training configuration**")
        st.json(card.get("training", {}), expanded=True)
    with right:
        st.markdown("**Pre-processing**")
        st.json(card.get("preprocessing", {}), expanded=True)
    with st.expander("Architecture summary", expanded=False):
        st.code(arch.get("summary", "(no summary in the card)"), language=None)


widgets.run_page(render)
