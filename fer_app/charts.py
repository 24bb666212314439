"""Plotly figures for the app (pure functions: data in, figure out; no streamlit)."""

from __future__ import annotations

import functools
from collections.abc import Mapping

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from fer.explorer import EMOTION_COLORS, PAPER_ACCURACY, normalise_rows
from fer.labels import EMOTIONS


def _rgb(color: tuple[int, int, int]) -> str:
    return f"rgb({color[0]},{color[1]},{color[2]})"


def probability_figure(probabilities: Mapping[str, float], height: int = 220) -> go.Figure:
    """A horizontal bar per emotion, in percent, the top label highlighted."""
    values = [100.0 * float(probabilities.get(e, 0.0)) for e in EMOTIONS]
    top = int(np.argmax(values))
    fig = go.Figure(go.Bar(
        x=values, y=list(EMOTIONS), orientation="h",
        marker_color=[_rgb(EMOTION_COLORS[e]) for e in EMOTIONS],
        marker_line_width=[2 if i == top else 0 for i in range(len(EMOTIONS))],
        text=[f"{v:.1f}%" for v in values], textposition="outside", cliponaxis=False,
        hovertemplate="%{y}: %{x:.1f}%<extra></extra>",
    ))
    fig.update_layout(
        height=height, margin=dict(l=0, r=40, t=4, b=0), showlegend=False,
        xaxis=dict(range=[0, 100], ticksuffix="%", showgrid=True), yaxis=dict(autorange="reversed"),
    )
    return fig


def accuracy_figure(accuracies: Mapping[str, float], reference: float = PAPER_ACCURACY,
                    reference_name: str = "paper", compact: bool = False) -> go.Figure:
    """Accuracy per split as bars, with the paper's accuracy as a reference line.

    ``compact`` makes a small version for the sidebar. Equal arguments return the same figure,
    built once (~20 ms, on every rerun of every page otherwise): treat it as read-only.
    """
    items = tuple((str(name), float(value)) for name, value in accuracies.items())
    return _accuracy_figure(items, float(reference), reference_name, compact)


@functools.lru_cache(maxsize=32)
def _accuracy_figure(items: tuple[tuple[str, float], ...], reference: float, reference_name: str,
                     compact: bool) -> go.Figure:
    names = [name for name, _ in items]
    values = [100.0 * value for _, value in items]
    fig = go.Figure(go.Bar(
        x=values, y=names, orientation="h", marker_color="#4C78A8",
        text=[f"{v:.1f}%" for v in values], textposition="inside", insidetextanchor="end",
        hovertemplate="%{y}: %{x:.2f}%<extra></extra>",
    ))
    fig.add_vline(x=100.0 * reference, line_dash="dash", line_color="#E45756",
                  annotation_text=f"{reference_name} {reference:.1%}", annotation_position="top")
    fig.update_layout(
        height=(24 + 26 * len(names)) if compact else (60 + 36 * len(names)),
        margin=dict(l=0, r=10, t=22, b=0), showlegend=False,
        xaxis=dict(range=[0, 100], ticksuffix="%", showticklabels=not compact),
        font=dict(size=10) if compact else None,
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
