"""One window's charts on the Analyze page: the attention per slice, and what each slice says alone.

Pure plotly (no Streamlit), sharing `app.ui.chart_style` with the other chart modules. `forced` (a
not-music verdict) fades the genre marks and says they are forced picks, as the genre bars do, so no
slice reads as a confident genre.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import plotly.graph_objects as go

from app.analysis import WindowResult
from app.ui.chart_style import (
    FORCED_NOTE,
    FORCED_OPACITY,
    FORCED_SCALE,
    PERCENT_BAR,
    SEQUENTIAL,
    TICK_ANGLES,
    _layout,
    genre_color,
    two_line_title,
)
from app.ui.window_text import equal_attention
from utils.constants import SLICE_S


def attention_bars(window: WindowResult, labels: Sequence[str], forced: bool = False) -> go.Figure:
    """Attention weight of each 5 s slice in a window, coloured by what that slice alone predicts."""
    tops = [labels[int(np.argmax(p))] for p in window.slice_probabilities]
    names = [f"slice {j + 1}<br>{s:.0f}–{s + SLICE_S:.0f} s" for j, s in enumerate(window.slice_starts_s)]
    fig = go.Figure(
        go.Bar(
            x=names,
            y=window.attention,
            marker={"color": [genre_color(g) for g in tops], "opacity": FORCED_OPACITY if forced else 1.0},
            text=[f"{a:.0%} · {g}" for a, g in zip(window.attention, tops, strict=True)],
            textposition="outside",
            cliponaxis=False,
            hovertemplate="%{x}: attention %{y:.1%}<extra></extra>",
        )
    )
    fig.update_yaxes(range=[0, max(1.0, float(np.max(window.attention)) * 1.15)], tickformat=".0%", title="attention")
    title = "Attention per slice" + (" · equal for this model" if equal_attention(window) else "")
    if forced:
        title = two_line_title(title, FORCED_NOTE)
    return _layout(fig, 300, title=title, showlegend=False, margin={"l": 10, "r": 10, "t": 56 if forced else 40,
                                                                     "b": 10})


def slice_heatmap(window: WindowResult, labels: Sequence[str], forced: bool = False) -> go.Figure:
    """What each slice of a window says on its own: slice × genre probabilities.

    Forced (not music): the cells are grey, not the confidence colours, and the title says they are forced picks
    (a faded heatmap would fade its numbers too).
    """
    names = [f"slice {j + 1} ({s:.0f}–{s + SLICE_S:.0f} s)" for j, s in enumerate(window.slice_starts_s)]
    z = np.asarray(window.slice_probabilities)
    fig = go.Figure(
        go.Heatmap(z=z, x=list(labels), y=names, zmin=0, zmax=1, colorscale=FORCED_SCALE if forced else SEQUENTIAL,
            text=np.vectorize(lambda v: f"{100 * v:.0f}")(z), texttemplate="%{text}", colorbar=PERCENT_BAR,
            hovertemplate="%{y} · %{x}: %{z:.1%}" + (" (forced pick)" if forced else "") + "<extra></extra>")
    )
    fig.update_yaxes(autorange="reversed")
    fig.update_xaxes(autotickangles=TICK_ANGLES)
    title = "Each slice on its own (%)"
    if forced:
        title = two_line_title("Each slice on its own, if forced (%)", FORCED_NOTE)
    return _layout(fig, 300, title=title, showlegend=False, margin={"l": 10, "r": 10, "t": 56 if forced else 40,
                                                                     "b": 10})
