"""Plotly figure builders for the dashboard: pure functions of an `Analysis` or a metrics dict.

No Streamlit here, so every chart is unit-tested on its own and reusable from notebooks. Each genre
has one colour everywhere (bars, lines, heatmap labels, chips), so a reader learns the palette once.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.colors import sequential
from plotly.subplots import make_subplots

from app.analysis import Analysis, WindowResult
from app.ui.chart_marks import mark_padding
from app.ui.chart_style import (
    ACCENT,
    ALIGNED,
    FORCED_NOTE,
    FORCED_OPACITY,
    MUTED,
    PERCENT_BAR,
    SEQUENTIAL,
    TICK_ANGLES,
    _layout,
    _pct,
    genre_color,
    two_line_title,
)
from models.verdict import NOT_MUSIC, UNCERTAIN, Verdict
from utils.constants import GENRES, SLICE_S
from utils.text import plotly_text

METRIC_COLORS = {"precision": "#5E8FD0", "recall": "#F2A541", "f1": "#59A14F"}
COUNTS = [[0.0, "#1e2129"], [0.5, "#3b6aa8"], [1.0, "#a9c8f0"]]  # dark zero cells on the dark theme
# Streamlit's plotly theme swaps colours #000001-#000040 for theme colours in the browser, and Magma
# starts at #000004: its floor would turn red. Nudge that one stop.
MAGMA = ["#05030f" if c.lower() == "#000004" else c for c in sequential.Magma]
FREQ_TICKS_HZ = (250, 500, 1000, 2000, 4000, 8000, 16000)
MAX_BOUNDARY_LINES = 60  # beyond this (tracks over ~5 min) slice lines become a grey wash
PLOT_WIDTH_PX = 900  # the narrowest the Analyze page draws the spectrogram (wide layout, 1280 px window)
LABEL_CHAR_PX = 7.5  # width of one character of a 12 px annotation
ROW_MARKS = {NOT_MUSIC: " (not music)", UNCERTAIN: " (not sure)"}  # compare heatmap row labels
FORCED_VEIL = "rgba(14,17,23,0.6)"  # dims a not-music row of the compare heatmap (the page background)
LABEL_AXIS_WIDTH = 0.08  # a bar label such as "46%", in x-axis units of the genre bars, on a phone


def window_label(window: WindowResult) -> str:
    """Human form of a window's span, e.g. '10–25 s'."""
    return f"{window.start_s:.0f}–{window.end_s:.0f} s"


# ------------------------------------------------------------------------------------ one track
def genre_bars(
    labels: Sequence[str], probabilities: np.ndarray, threshold: float, title: str = "Genre confidence",
    forced: bool = False,
) -> go.Figure:
    """Horizontal confidence bars, best first; genres under the threshold are faded, and every bar is when
    `forced` (a not-music verdict: what the model would say if made to choose, not a confidence)."""
    if forced:  # two lines: one long title is clipped on a phone
        title = two_line_title("If forced to choose", "not music: these are not confidences")
    order = np.argsort(-np.asarray(probabilities))[::-1]  # plotly draws the first bar at the bottom
    names = [labels[i] for i in order]
    values = np.asarray(probabilities)[order]
    # a label that would straddle the dashed threshold line (a small bar's "3%" under a 5% line) moves past it
    struck = [threshold - LABEL_AXIS_WIDTH < v < threshold for v in values]
    fig = go.Figure(
        go.Bar(
            x=values,
            y=names,
            orientation="h",
            marker={"color": [genre_color(g) for g in names],
                    "opacity": [1.0 if v >= threshold and not forced else FORCED_OPACITY for v in values]},
            text=_pct(values),
            textposition=["none" if hit else "outside" for hit in struck],
            cliponaxis=False,
            hovertemplate="%{y}: %{x:.1%}<extra></extra>",
        )
    )
    for name, text, hit in zip(names, _pct(values), struck, strict=True):
        if hit:
            fig.add_annotation(x=threshold, y=name, text=text, showarrow=False, xanchor="left", xshift=4,
                               font={"size": 12})
    fig.add_vline(x=threshold, line={"dash": "dash", "color": MUTED}, annotation_text=f"threshold {threshold:.0%}",
                  annotation_position="top")
    fig.update_xaxes(range=[0, 1.12], tickformat=".0%", showgrid=False)
    return _layout(fig, 320, title=title, showlegend=False,
                   margin={"l": 10, "r": 10, "t": 72 if forced else 40, "b": 10})


def window_timeline(
    analysis: Analysis,
    genres: Sequence[str] | None = None,
    selected: int | None = None,
    mode: str = "lines",
    threshold: float | None = None,
    forced: bool = False,
) -> go.Figure:
    """Probability of each genre per 15 s window, at the window's centre time.

    `forced` (a not-music verdict): the lines are faded and the axis says they are forced picks.

    `mode="lines"` shows the calibrated probabilities (they need not sum to one: the model is
    multi-label); `mode="share"` stacks each chosen genre's share of all ten genres' total, with the
    genres not chosen as one grey band on top, so a share never claims more than the model said.
    """
    genres = list(genres) if genres else [g for g, _ in analysis.ranking[:3]]
    centres = [(w.start_s + w.end_s) / 2 for w in analysis.windows]
    probs = analysis.window_probabilities
    shares = 100 * probs / np.clip(probs.sum(axis=1, keepdims=True), 1e-12, None)  # over all ten genres
    fig = go.Figure()
    for g in genres:
        j = analysis.labels.index(g)
        trace: dict[str, Any] = {"x": centres, "y": probs[:, j], "name": g,
                                 "line": {"color": genre_color(g), "width": 2.5},
                                 "hovertemplate": f"{g}: %{{y:.1%}} at %{{x:.1f}} s<extra></extra>"}
        if mode == "share":
            trace.update(y=shares[:, j], stackgroup="one", mode="lines",
                         hovertemplate=f"{g}: %{{y:.0f}}% of all ten genres at %{{x:.1f}} s<extra></extra>")
        else:
            trace.update(mode="lines+markers", marker={"size": 7})
        if forced:
            trace["opacity"] = FORCED_OPACITY
        fig.add_trace(go.Scatter(**trace))
    others = [j for j, g in enumerate(analysis.labels) if g not in genres]
    if mode == "share" and others:
        fig.add_trace(go.Scatter(x=centres, y=shares[:, others].sum(axis=1), name=f"other {len(others)} genres",
                                 stackgroup="one", mode="lines", line={"color": MUTED, "width": 0.5},
                                 fillcolor="rgba(154,160,166,0.25)",
                                 hovertemplate="the other genres: %{y:.0f}% at %{x:.1f} s<extra></extra>"))
    if selected is not None and 0 <= selected < len(analysis.windows):
        w = analysis.windows[selected]
        fig.add_vrect(x0=w.start_s, x1=w.end_s, fillcolor=ACCENT, opacity=0.12, line_width=0,
                      annotation_text=f"window {selected + 1}", annotation_position="top left")
    if threshold is not None and mode != "share":
        fig.add_hline(y=threshold, line={"dash": "dot", "color": MUTED})
    fig.update_xaxes(title="time (s), window centre", range=[0, analysis.duration_s], showgrid=False)
    if mode == "share":
        fig.update_yaxes(title="forced share (%)" if forced else "share of all ten genres (%)", range=[0, 100])
    else:
        fig.update_yaxes(title="forced pick" if forced else "probability", range=[0, 1.02], tickformat=".0%")
    if forced:  # on the axis, not over the lines (which sit at the top for a tone); the page's caption says more
        fig.update_xaxes(title=f"time (s), window centre · {FORCED_NOTE}")
    fig.update_yaxes(automargin=False)
    return _layout(mark_padding(fig, analysis), 300, hovermode="x unified", margin=ALIGNED)


def spectrogram(analysis: Analysis, selected: int | None = None) -> go.Figure:
    """Mel spectrogram (time s × mel-spaced frequency) with slice boundaries and the selected window.

    Rows are mel bands, so the y axis is mel-spaced; its ticks are labelled in Hz. Dotted lines mark
    the 5 s slice boundaries (windows start on them, every 5 s); the selected window is outlined,
    the rest of the track dimmed, and its three slices labelled with their attention weight.
    """
    spec = analysis.spectrogram
    rows = np.arange(len(spec.freqs_hz))
    ticks = [(int(np.argmin(np.abs(spec.freqs_hz - f))), f) for f in FREQ_TICKS_HZ if f <= spec.freqs_hz[-1]]
    fig = go.Figure(
        go.Heatmap(z=spec.db, x=spec.times_s, y=rows, colorscale=MAGMA, zmin=-80, zmax=0, showscale=False,
                   hovertemplate="%{x:.1f} s · %{z:.0f} dB (0 = loudest)<extra></extra>")
    )
    has_window = selected is not None and 0 <= selected < len(analysis.windows)
    bounds = np.unique(np.concatenate([analysis.slice_starts_s, analysis.slice_starts_s + SLICE_S]))
    if len(bounds) > MAX_BOUNDARY_LINES and has_window:  # a long track: only the selected window's slices
        bounds = analysis.windows[selected].slice_starts_s[1:]
    elif len(bounds) > MAX_BOUNDARY_LINES:
        bounds = np.array([])
    for s in bounds:
        if 0 < s < analysis.duration_s:
            fig.add_vline(x=float(s), line={"dash": "dot", "width": 1, "color": "rgba(255,255,255,0.35)"})
    if has_window:
        w = analysis.windows[selected]
        for x0, x1 in ((0.0, w.start_s), (w.end_s, analysis.duration_s)):
            if x1 > x0:
                fig.add_vrect(x0=x0, x1=x1, fillcolor="black", opacity=0.55, line_width=0)
        fig.add_vrect(x0=w.start_s, x1=w.end_s, line={"color": ACCENT, "width": 3}, fillcolor="rgba(0,0,0,0)")
        for x, text in slice_labels(w, analysis.duration_s):
            fig.add_annotation(x=x, y=1.0, yref="paper", yanchor="bottom", showarrow=False, text=text,
                               font={"color": ACCENT, "size": 12})
    fig.update_yaxes(title="frequency (Hz)", tickvals=[r for r, _ in ticks],
                     ticktext=[f"{f // 1000}k" if f >= 1000 else str(f) for _, f in ticks])
    fig.update_yaxes(automargin=False)
    fig.update_xaxes(title="time (s)", range=[0, analysis.duration_s])
    return _layout(mark_padding(fig, analysis), 340, margin=ALIGNED | {"t": 30})


def slice_labels(window: WindowResult, duration_s: float, width_px: float = PLOT_WIDTH_PX) -> list[tuple[float, str]]:
    """Attention labels over a window's slices, as (x in seconds, text), that never overlap.

    A 5 s slice of a long track is only a few pixels wide: then the labels shorten to the
    percentage, and when even that does not fit, one label over the window lists all three.
    """
    px_per_slice = width_px * SLICE_S / max(float(duration_s), SLICE_S)
    centres = [float(s) + SLICE_S / 2 for s in window.slice_starts_s]
    for form in ("slice {j}: {a:.0%}", "{a:.0%}"):
        texts = [form.format(j=j + 1, a=a) for j, a in enumerate(window.attention)]
        if max(len(t) for t in texts) * LABEL_CHAR_PX + 8 <= px_per_slice:
            return list(zip(centres, texts, strict=True))
    joined = " · ".join(f"{a:.0%}" for a in window.attention)
    return [((window.start_s + window.end_s) / 2, f"slices {joined}")]


# ------------------------------------------------------------------------------ several tracks
def compare_table(analyses: Sequence[Analysis], threshold: float) -> pd.DataFrame:
    """One row per track: verdict, confidence, every genre above the threshold, duration, warnings."""
    rows = []
    for a in analyses:
        top, p = a.ranking[0]
        verdict = replace(a, threshold=threshold).verdict
        if verdict.kind == NOT_MUSIC:  # no genre and no confidence to show for noise, tones or speech
            top, p = "—", float("nan")
        rows.append({"track": a.name, "verdict": table_verdict(verdict), "top genre": top, "confidence": p,
                     "genres above threshold": ", ".join(verdict.genres) or "none",
                     "duration (s)": round(a.source.get("duration_s", a.duration_s), 1), "windows": len(a.windows),
                     "warnings": len(a.warnings)})
    return pd.DataFrame(rows)


def table_verdict(verdict: Verdict) -> str:
    """The verdict as a table cell: a not-music verdict's long sentence is cut to fit a column."""
    if verdict.kind == NOT_MUSIC:
        return f"Not music (forced pick: {verdict.closest[0][0]})" if verdict.closest else "Not music"
    return verdict.text


def _row_name(a: Analysis) -> str:
    """A heatmap row label: the name (shortened), marked when the verdict claims no genre."""
    mark = ROW_MARKS.get(a.verdict.kind, "")
    room = 32 - len(mark)
    return plotly_text(a.name if len(a.name) <= room else a.name[:room - 2] + "…") + mark


def compare_heatmap(analyses: Sequence[Analysis]) -> go.Figure:
    """Tracks × genres probabilities, to compare several uploads at a glance.

    Rows are positions (two files may share a name) labelled with the names, encoded so plotly
    shows their characters instead of reading them as markup; long names are shortened. A not-music
    track's row says so and is dimmed (its numbers are forced picks, not confidences); an uncertain
    one's says "not sure".
    """
    labels = analyses[0].labels if analyses else list(GENRES)
    z = np.array([a.probabilities for a in analyses]) if analyses else np.zeros((0, len(labels)))
    names = [_row_name(a) for a in analyses]
    rows = list(range(len(analyses)))
    fig = go.Figure(go.Heatmap(z=z, x=labels, y=rows, zmin=0, zmax=1, colorscale=SEQUENTIAL, colorbar=PERCENT_BAR,
                               text=np.vectorize(lambda v: f"{100 * v:.0f}")(z) if z.size else None,
                               customdata=[[n] * len(labels) for n in names] if names else None,
                               texttemplate="%{text}", hovertemplate="%{customdata} · %{x}: %{z:.1%}<extra></extra>"))
    for i, a in enumerate(analyses):
        if a.verdict.kind == NOT_MUSIC:  # a veil over the row: the eye skips it, the numbers stay readable
            fig.add_shape(type="rect", xref="x domain", x0=0, x1=1, y0=i - 0.5, y1=i + 0.5, line_width=0,
                          fillcolor=FORCED_VEIL, layer="above")
    fig.update_yaxes(autorange="reversed", tickmode="array", tickvals=rows, ticktext=names)
    fig.update_xaxes(tickmode="array", tickvals=labels, ticktext=labels)  # every genre, even when narrow
    return _layout(fig, 120 + 34 * max(1, len(analyses)), title="Genre probabilities per track (%)", showlegend=False)


# ------------------------------------------------------------------------------------- metrics
def confusion_matrix(matrix: Sequence[Sequence[int]], labels: Sequence[str], normalise: bool = False) -> go.Figure:
    """Confusion matrix heatmap, rows = true genre; `normalise` divides each row by its total (recall)."""
    counts = np.asarray(matrix, dtype=float)
    z = counts / np.clip(counts.sum(1, keepdims=True), 1, None) if normalise else counts
    text = np.vectorize(lambda v: f"{100 * v:.0f}" if normalise else f"{v:.0f}")(z)
    fig = go.Figure(go.Heatmap(z=z, x=list(labels), y=list(labels), colorscale=COUNTS, text=text,
                               texttemplate="%{text}", zmin=0, zmax=1 if normalise else None,
                               hovertemplate="true %{y} → predicted %{x}: %{z}<extra></extra>"))
    fig.update_yaxes(title="true genre", autorange="reversed")
    fig.update_xaxes(title="predicted genre", autotickangles=TICK_ANGLES)  # upright when they fit, else tilted
    return _layout(fig, 460, title="Row-normalised (%)" if normalise else "Counts", showlegend=False)


def per_genre_bars(per_genre: dict[str, dict[str, float]]) -> go.Figure:
    """Grouped precision / recall / F1 bars per genre."""
    genres = list(per_genre)
    fig = go.Figure([
        go.Bar(name=m if m != "f1" else "F1", x=genres, y=[per_genre[g][m] for g in genres], marker_color=c,
               hovertemplate=f"%{{x}} {m}: %{{y:.2f}}<extra></extra>")
        for m, c in METRIC_COLORS.items()
    ])
    fig.update_yaxes(range=[0, 1.05], title="score")
    fig.update_xaxes(autotickangles=TICK_ANGLES)
    return _layout(fig, 460, barmode="group", title="Precision, recall and F1 per genre")


def reliability_diagram(bins: Sequence[dict[str, float]], ece: float | None) -> go.Figure:
    """Accuracy vs confidence per confidence bin against the diagonal; bar width = bin, hover = count."""
    used = [b for b in bins if b.get("count", 0) > 0]
    centres = [(b["bin_lower"] + b["bin_upper"]) / 2 for b in used]
    fig = go.Figure()
    widths = [b["bin_upper"] - b["bin_lower"] for b in used]
    fig.add_trace(go.Bar(x=centres, y=[b["accuracy"] for b in used], width=widths,
                         name="accuracy", marker={"color": "#5E8FD0", "line": {"width": 1, "color": "#14161c"}},
                         customdata=[[b["count"], b["confidence"]] for b in used],
                         hovertemplate="confidence %{customdata[1]:.2f}: accuracy %{y:.2f} (%{customdata[0]} tracks)"
                                       "<extra></extra>"))
    fig.add_trace(go.Scatter(x=[b["confidence"] for b in used], y=[b["accuracy"] for b in used], mode="markers",
                             name="mean confidence", marker={"color": ACCENT, "size": 8}, hoverinfo="skip"))
    fig.add_trace(go.Scatter(x=[0, 1], y=[0, 1], mode="lines", name="perfect calibration",
                             line={"dash": "dash", "color": MUTED}))
    fig.update_xaxes(range=[0, 1], title="confidence")
    fig.update_yaxes(range=[0, 1.02], title="accuracy")
    title = f"Reliability (ECE {ece:.3f})" if ece is not None else "Reliability"
    return _layout(fig, 360, title=title)


def _mean_by_epoch(history: Sequence[dict[str, float]]) -> list[dict[str, float]]:
    """Ensemble curves: each metric averaged over the members that trained that epoch."""
    df = pd.DataFrame(list(history))
    cols = [c for c in ("train_loss", "val_loss", "val_accuracy") if c in df]
    return df.groupby("epoch", sort=True)[cols].mean().reset_index().to_dict("records")


def training_curves(
    history: Sequence[dict[str, float]],
    best_epoch: int | None = None,
    member_best_epochs: Sequence[int] | None = None,
) -> go.Figure:
    """Train / validation loss and validation accuracy per epoch, the kept epoch marked.

    For an ensemble (rows carry `member`) the curves are the members' means and every member's
    kept epoch is a tick along the bottom.
    """
    if any("member" in h for h in history):
        history = _mean_by_epoch(history)
    epochs = [h["epoch"] for h in history]
    fig = make_subplots(specs=[[{"secondary_y": True}]])
    for key, name, color in (("train_loss", "train loss", "#5E8FD0"), ("val_loss", "validation loss", "#E15759")):
        if any(key in h for h in history):
            fig.add_trace(go.Scatter(x=epochs, y=[h.get(key) for h in history], name=name, line={"color": color}))
    if any("val_accuracy" in h for h in history):
        fig.add_trace(go.Scatter(x=epochs, y=[h.get("val_accuracy") for h in history], name="validation accuracy",
                                 line={"color": "#59A14F", "dash": "dot"}), secondary_y=True)
    if member_best_epochs:
        fig.add_trace(go.Scatter(
            x=list(member_best_epochs), y=[0.02] * len(member_best_epochs), mode="markers", name="member kept",
            marker={"symbol": "line-ns-open", "size": 14, "color": ACCENT},
            customdata=list(range(1, len(member_best_epochs) + 1)),
            hovertemplate="member %{customdata} kept epoch %{x}<extra></extra>",
        ), secondary_y=True)
    if best_epoch is not None:
        label = f"median kept: epoch {best_epoch}" if member_best_epochs else f"kept: epoch {best_epoch}"
        fig.add_vline(x=best_epoch, line={"dash": "dash", "color": ACCENT}, annotation_text=label,
                      annotation_position="bottom right")
    fig.update_xaxes(title="epoch")
    fig.update_yaxes(title="loss", secondary_y=False)
    fig.update_yaxes(title="accuracy", tickformat=".0%", range=[0, 1], tickmode="array",
                     tickvals=[0, 0.25, 0.5, 0.75, 1], secondary_y=True, showgrid=False)
    return _layout(fig, 340, hovermode="x unified")


def accuracy_comparison(entries: Sequence[tuple[str, float, str]]) -> go.Figure:
    """Horizontal accuracy bars for (name, accuracy, kind) rows; kind 'ours' | 'baseline' | 'reference'."""
    colors = {"ours": ACCENT, "baseline": "#5E8FD0", "reference": "#8A8F98"}
    rows = sorted(entries, key=lambda e: e[1])
    fig = go.Figure(go.Bar(x=[e[1] for e in rows], y=[e[0] for e in rows], orientation="h",
                           marker_color=[colors.get(e[2], MUTED) for e in rows], text=_pct([e[1] for e in rows]),
                           textposition="outside", cliponaxis=False, hovertemplate="%{y}: %{x:.1%}<extra></extra>"))
    fig.update_xaxes(range=[0, 1.08], tickformat=".0%", title="test accuracy")
    return _layout(fig, 90 + 34 * len(rows), showlegend=False, margin={"l": 10, "r": 30, "t": 10, "b": 10})
