"""Charts for the app: Plotly figures and HTML bars (pure functions: data in, chart out; no streamlit)."""

from __future__ import annotations

import html
from collections.abc import Collection, Mapping, Sequence

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from fer.explain import COPIES
from fer.explorer import EMOTION_COLORS, PAPER_ACCURACY, normalise_rows
from fer.labels import EMOTIONS

# How to read an occlusion map (fer.explain.overlay), wherever one is drawn.
MAP_LEGEND: str = ("Red where covering part of the face lowers the label's log-odds (evidence for it), blue where "
                   f"it raises them. {COPIES} covered copies per face.")


def scale_note(scale: float, maps: int) -> str:
    """Says what full colour means for ``maps`` occlusion maps drawn on one scale."""
    together = "these maps share one colour scale" if maps > 1 else "colours scaled to this map"
    return f"Full colour: a log-odds change of {scale:.2f}; {together}."


def map_caption(label: str) -> str:
    """The caption under an occlusion map for ``label``."""
    return f"evidence for {label} (red) and against (blue)"


def _rgb(color: tuple[int, int, int]) -> str:
    return f"rgb({color[0]},{color[1]},{color[2]})"


# Bars drawn as HTML, not Plotly, on the pages people land on (Predict) and click through
# (Errors), and in the sidebar of every page: Plotly's JavaScript takes ~2-3 s of a 2-core
# browser's main thread to compile on first use, and each Plotly chart costs a render.


def _bar_row(name: str, percent: float, color: str, height: int, label_width: int, font_size: str,
             strong: bool = False, extra: str = "") -> str:
    """One labelled horizontal bar on a 0-100% track, its value after it (``extra``: more marks)."""
    name = html.escape(name)
    weight = "font-weight:700;" if strong else ""
    outline = "outline:2px solid #1F2933;" if strong else ""
    return (
        f"<div title='{name}: {percent:.2f}%' style='display:flex;align-items:center;gap:6px;margin:3px 0;"
        f"font-size:{font_size};{weight}'>"
        f"<span style='width:{label_width}px;text-align:right'>{name}</span>"
        f"<span style='flex:1;position:relative;height:{height}px;background:#EEF1F5;border-radius:3px'>"
        f"<span style='display:block;height:100%;width:{percent:.1f}%;background:{color};border-radius:3px;"
        f"{outline}'></span>{extra}</span><span style='width:48px'>{percent:.1f}%</span></div>"
    )


def probability_bars_html(probabilities: Mapping[str, float]) -> str:
    """One horizontal bar per emotion (label order), in percent; the top label in bold, outlined.

    Returns:
        An HTML fragment for ``st.markdown(..., unsafe_allow_html=True)``.
    """
    values = [100.0 * float(probabilities.get(e, 0.0)) for e in EMOTIONS]
    top = int(np.argmax(values))
    rows = "".join(_bar_row(name, value, _rgb(EMOTION_COLORS[name]), 14, 64, "0.85em", strong=i == top)
                   for i, (name, value) in enumerate(zip(EMOTIONS, values, strict=True)))
    summary = ", ".join(f"{name} {value:.1f}%" for name, value in zip(EMOTIONS, values, strict=True))
    return f"<div role='img' aria-label='probabilities: {summary}'>{rows}</div>"


def accuracy_bars_html(accuracies: Mapping[str, float], reference: float = PAPER_ACCURACY,
                       reference_name: str = "paper", compact: bool = False) -> str:
    """Accuracy per split as bars on a 0-100% scale, with a dashed line at the reference accuracy.

    ``compact`` makes a small version for the sidebar. Returns an HTML fragment.
    """
    height, size, label_width = (14, "0.75em", 70) if compact else (22, "0.85em", 80)
    marker = (f"<span style='position:absolute;top:-2px;bottom:-2px;left:{100 * reference:.1f}%;"
              f"border-left:2px dashed #E45756'></span>")
    rows = "".join(_bar_row(str(name), 100.0 * float(value), "#4C78A8", height, label_width, size, extra=marker)
                   for name, value in accuracies.items())
    reference_text = f"{html.escape(reference_name)} {reference:.1%}"
    legend = (f"<div style='font-size:{size};color:#5A6572;margin-top:2px'>"
              f"<span style='color:#E45756'>┆</span> {reference_text}</div>")
    summary = ", ".join(f"{html.escape(str(n))} {float(v):.1%}" for n, v in accuracies.items())
    return f"<div role='img' aria-label='accuracy: {summary}; {reference_text}'>{rows}{legend}</div>"


def accuracy_figure(accuracies: Mapping[str, float], reference: float = PAPER_ACCURACY,
                    reference_name: str = "paper") -> go.Figure:
    """Accuracy per split as bars, with the paper's accuracy as a reference line."""
    names = list(accuracies)
    values = [100.0 * accuracies[n] for n in names]
    fig = go.Figure(go.Bar(
        x=values, y=names, orientation="h", marker_color="#4C78A8",
        text=[f"{v:.1f}%" for v in values], textposition="inside", insidetextanchor="end",
        hovertemplate="%{y}: %{x:.2f}%<extra></extra>",
    ))
    fig.add_vline(x=100.0 * reference, line_dash="dash", line_color="#E45756",
                  annotation_text=f"{reference_name} {reference:.1%}", annotation_position="top")
    fig.update_layout(
        height=60 + 36 * len(names), margin=dict(l=0, r=10, t=22, b=0), showlegend=False,
        xaxis=dict(range=[0, 100], ticksuffix="%"),
    )
    return fig


def confusion_figure(cm: np.ndarray, normalise: bool = True, title: str = "") -> go.Figure:
    """A confusion-matrix heatmap (rows true, columns predicted) for display only."""
    counts = np.asarray(cm, dtype=np.int64)
    shares = normalise_rows(counts)
    z = shares if normalise else counts
    text = [[f"{shares[i, j]:.0%}<br>{counts[i, j]}" for j in range(len(EMOTIONS))] for i in range(len(EMOTIONS))]
    fig = go.Figure(go.Heatmap(
        z=z, x=list(EMOTIONS), y=list(EMOTIONS), colorscale="Blues", text=text, texttemplate="%{text}",
        showscale=False, hovertemplate="true %{y}, predicted %{x}<extra></extra>",
    ))
    fig.update_layout(
        title=title or None, height=380, margin=dict(l=0, r=0, t=30 if title else 4, b=0),
        xaxis=dict(title="predicted", side="bottom"), yaxis=dict(title="true", autorange="reversed"),
    )
    return fig


def history_figure(history: pd.DataFrame, metric: str) -> go.Figure:
    """Training and validation curves of one metric (``accuracy`` or ``loss``) per epoch."""
    fig = go.Figure()
    epochs = history["epoch"] + 1 if "epoch" in history else pd.Series(range(1, len(history) + 1))
    for column, name in ((metric, "training"), (f"val_{metric}", "validation (PublicTest)")):
        if column in history:
            fig.add_trace(go.Scatter(x=epochs, y=history[column], mode="lines+markers", name=name))
    if metric == "accuracy":
        fig.add_hline(y=PAPER_ACCURACY, line_dash="dash", line_color="#E45756",
                      annotation_text=f"paper {PAPER_ACCURACY:.1%}")
    fig.update_layout(
        height=300, margin=dict(l=0, r=0, t=30, b=0), title=metric, xaxis_title="epoch",
        legend=dict(orientation="h", y=-0.25),
    )
    return fig


def learning_rate_figure(history: pd.DataFrame) -> go.Figure:
    """The learning rate per epoch."""
    epochs = history["epoch"] + 1 if "epoch" in history else pd.Series(range(1, len(history) + 1))
    fig = go.Figure(go.Scatter(x=epochs, y=history["lr"], mode="lines+markers", name="lr"))
    # Log scale: schedules span decades, and a constant rate stays readable (not "0").
    fig.update_layout(height=300, margin=dict(l=0, r=0, t=30, b=0), title="learning rate", xaxis_title="epoch",
                      yaxis=dict(type="log", exponentformat="e"))
    return fig


def confusion_styles(frame: pd.DataFrame, shares: np.ndarray) -> pd.DataFrame:
    """CSS per cell of a confusion table: a blue scale by row share, bold diagonal."""
    styles = np.empty(shares.shape, dtype=object)
    for i in range(shares.shape[0]):
        for j in range(shares.shape[1]):
            share = float(shares[i, j])
            # Light to dark blue; white text once the cell is dark.
            r, g, b = (int(round(255 - share * (255 - c))) for c in (8, 81, 156))
            text = "white" if share > 0.5 else "black"
            weight = "font-weight: bold;" if i == j else ""
            styles[i, j] = f"background-color: rgb({r},{g},{b}); color: {text}; {weight}"
    return pd.DataFrame(styles, index=frame.index, columns=frame.columns)


MAP_COLOURINGS: dict[str, str] = {"true": "true label", "pred": "predicted label", "correct": "right or wrong",
                                  "twin": "copy in Training", "confidence": "confidence"}
# Faces without a reference label (FER+ without a majority, annotated not a face or ambiguous):
# dark, apart from every emotion's colour (neutral's is light grey) and from "right"'s grey.
NO_LABEL_COLOR: str = "rgb(40,40,40)"


def face_map_figure(table: pd.DataFrame, colour: str = "true", height: int = 560,
                    selected: Collection[int] = (), reference_name: str = "FER2013") -> go.Figure:
    """The test faces on the model's 2-D map (``fer.embedding.map_table``), one WebGL trace per colour.

    Each point carries its FER2013 row as ``customdata``, so a box or lasso selection names faces.
    ``true`` colours by the ``reference`` column (the labels taken as the truth, named
    ``reference_name`` in the hover texts) and ``correct`` by whether the prediction matches it;
    under both, faces without a reference label (-1) get a "no label" trace of their own.
    ``twin`` needs a boolean ``twin`` column (the face has a copy in Training, ``fer.twins``);
    ``confidence`` draws one trace on a colour scale. ``selected`` rows are drawn as selected (the
    others dimmed, as after a lasso), so a selection outlives a redrawn figure.
    """
    if colour == "confidence":
        return _confidence_map(table, height, selected, reference_name)
    unlabelled = table["reference"] < 0
    if colour == "correct":
        groups = [("right", table["correct"], "rgb(150,150,150)"),
                  ("wrong", ~table["correct"] & ~unlabelled, "rgb(214,39,40)")]
    elif colour == "twin":
        groups = [("no copy in Training", ~table["twin"], "rgb(150,150,150)"),
                  ("copy in Training", table["twin"], "rgb(148,103,189)")]
    else:
        labels = table["reference" if colour == "true" else colour]
        groups = [(name, labels == i, _rgb(EMOTION_COLORS[name])) for i, name in enumerate(EMOTIONS)]
    if colour in ("true", "correct") and unlabelled.any():
        groups.append(("no label", unlabelled, NO_LABEL_COLOR))
    figure = go.Figure()
    for name, mask, color in groups:
        part = table[mask]
        figure.add_trace(go.Scattergl(
            x=part["x"], y=part["y"], mode="markers", name=f"{name} ({len(part)})", customdata=part["row"],
            text=_map_hover(part, reference_name), hoverinfo="text",
            marker={"size": 5, "color": color, "opacity": 0.75}, selectedpoints=_selected_points(part, selected),
        ))
    return _map_layout(figure, height)


def _map_hover(part: pd.DataFrame, reference_name: str) -> list[str]:
    """``row 5 · FER+ majority: happy → sad 80%`` per face (``no label`` for a face without one)."""
    return [f"row {r} · {reference_name}: {EMOTIONS[t] if t >= 0 else 'no label'} → {EMOTIONS[p]} {c:.0%}"
            for r, t, p, c in zip(part["row"], part["reference"], part["pred"], part["confidence"], strict=True)]


def _selected_points(part: pd.DataFrame, selected: Collection[int]) -> list[int] | None:
    """The positions in ``part`` of the ``selected`` rows; None (no selection, nothing dimmed)
    when nothing is selected anywhere on the map.
    """
    if not len(selected):
        return None
    return np.flatnonzero(part["row"].isin(list(selected)).to_numpy()).tolist()


def _map_layout(figure: go.Figure, height: int) -> go.Figure:
    # The legend (and the confidence colour bar) lie under the map, the top margin above it holds
    # the toolbar: at the top right, either hid the other's first entry.
    figure.update_layout(height=height, margin={"l": 0, "r": 0, "t": 30, "b": 0}, dragmode="lasso",
                         legend={"itemsizing": "constant", "orientation": "h", "x": 0, "xanchor": "left",
                                 "y": -0.02, "yanchor": "top"},
                         xaxis={"visible": False}, yaxis={"visible": False, "scaleanchor": "x"})
    return figure


def _confidence_map(table: pd.DataFrame, height: int, selected: Collection[int], reference_name: str) -> go.Figure:
    figure = go.Figure(go.Scattergl(
        x=table["x"], y=table["y"], mode="markers", customdata=table["row"], text=_map_hover(table, reference_name),
        hoverinfo="text",
        selectedpoints=_selected_points(table, selected),
        marker={"size": 5, "color": table["confidence"], "colorscale": "Viridis", "cmin": 0, "cmax": 1,
                "opacity": 0.8, "colorbar": {"title": {"text": "top probability", "side": "top"}, "thickness": 12,
                                             "orientation": "h", "len": 0.5, "x": 0, "xanchor": "left",
                                             "y": -0.02, "yanchor": "top"}},
    ))
    return _map_layout(figure, height)


def reliability_figure(summary: Mapping, title: str = "") -> go.Figure:
    """A reliability diagram from a card's calibration summary of one split (``fer.calibration``):
    accuracy against mean confidence per bin, before and after the temperature, and the diagonal
    a calibrated model would follow. Marker area follows the number of faces in the bin.
    """
    figure = go.Figure()
    figure.add_trace(go.Scatter(x=[0, 1], y=[0, 1], mode="lines", name="calibrated",
                                line={"color": "rgb(170,170,170)", "dash": "dot"}, hoverinfo="skip"))
    for stage, name, color in (("before", "network", "rgb(214,39,40)"),
                               ("after", "with temperature", "rgb(31,119,180)")):
        diagram = summary.get(f"reliability_{stage}") or {}
        points = [(c, a, n) for c, a, n in zip(diagram.get("confidence", []), diagram.get("accuracy", []),
                                               diagram.get("counts", []), strict=False) if n and c is not None]
        if not points:
            continue
        conf, acc, counts = (list(v) for v in zip(*points, strict=True))
        ece = (summary.get(stage) or {}).get("ece")
        figure.add_trace(go.Scatter(
            x=conf, y=acc, mode="lines+markers", name=name if ece is None else f"{name} (ECE {ece:.3f})",
            line={"color": color}, marker={"size": [6 + 14 * (n / max(counts)) ** 0.5 for n in counts]},
            text=[f"{n} faces" for n in counts],
            hovertemplate="confidence %{x:.2f}, accuracy %{y:.2f}, %{text}<extra></extra>",
        ))
    figure.update_layout(title=title, height=330, margin={"l": 10, "r": 10, "t": 40, "b": 10},
                         xaxis={"title": "mean top probability", "range": [0, 1]},
                         yaxis={"title": "accuracy", "range": [0, 1]}, legend={"orientation": "h", "y": -0.25})
    return figure


def selected_customdata(points) -> list[int]:
    """The ``customdata`` of the points of a Plotly selection event (FER2013 rows on the map),
    first-selected first, each once; points without it are skipped.
    """
    rows = []
    for point in points or []:
        value = point.get("customdata") if hasattr(point, "get") else None
        if isinstance(value, list | tuple):
            value = value[0] if value else None
        if value is not None:
            rows.append(int(value))
    return list(dict.fromkeys(rows))


def timeline_figure(times: Sequence[float], probabilities: np.ndarray, title: str = "", height: int = 300,
                    span: tuple[float, float] | None = None) -> go.Figure:
    """One face's probabilities over a video's time (``fer.video``), a line per emotion; ``span``
    fixes the time axis (the whole clip), so several faces' timelines line up.
    """
    probabilities = np.asarray(probabilities)
    figure = go.Figure()
    for j, name in enumerate(EMOTIONS):
        figure.add_trace(go.Scatter(x=list(times), y=probabilities[:, j] * 100, mode="lines+markers", name=name,
                                    line={"color": _rgb(EMOTION_COLORS[name])}, marker={"size": 4},
                                    hovertemplate=f"{name} %{{y:.0f}}% at %{{x:.1f}} s<extra></extra>"))
    figure.update_layout(title=title, height=height, margin={"l": 10, "r": 10, "t": 40, "b": 10},
                         xaxis={"title": "time (s)", **({"range": list(span)} if span else {})},
                         yaxis={"title": "probability (%)", "range": [0, 100]},
                         legend={"orientation": "h", "y": -0.3})
    return figure
