"""The track-long slice strip as a plotly figure: the static fallback of the linked player's strip.

Pure, like `app.ui.charts` (whose colours and aligned margins it uses), so it lines up under the
static timeline and spectrogram and is unit-tested without Streamlit.
"""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go

from app.analysis import Analysis
from app.ui.chart_marks import mark_padding
from app.ui.charts import ACCENT, ALIGNED, _layout, genre_color
from app.ui.slices import SliceStrip

STRIP_HEIGHT = 120
MIN_OPACITY = 0.25  # a 0 %-confident slice is still visible


def slice_strip_figure(analysis: Analysis, strip: SliceStrip, selected: int | None = None) -> go.Figure:
    """Every 5 s slice as a bar from its start to its end, in its top genre's colour, opacity by confidence.

    Each bar's customdata starts with the window a click selects; the selected window is outlined.
    """
    labels = analysis.labels
    tops = [labels[int(t)] for t in strip.top]
    conf = strip.confidence
    colours = [genre_color(g) for g in tops]
    fig = go.Figure(go.Bar(
        x=np.full(len(strip), 5.0), base=strip.starts_s, y=np.zeros(len(strip)), orientation="h", width=0.9,
        marker={"color": colours, "opacity": [float(MIN_OPACITY + (1 - MIN_OPACITY) * c) for c in conf],
                "line": {"width": 1, "color": "#14161c"}},
        text=[f"{g} {c:.0%}" for g, c in zip(tops, conf, strict=True)], textposition="inside",
        insidetextanchor="middle", textfont={"color": "#14161c", "size": 11},
        customdata=np.stack([strip.windows, strip.starts_s, strip.ends_s, 100 * conf], axis=1),
        hovertemplate="%{customdata[1]:.0f}–%{customdata[2]:.0f} s: %{text} · click for window "
                      "%{customdata[0]:.0f}<extra></extra>" if len(strip) else None,
    ))
    if selected is not None and 0 <= selected < len(analysis.windows):
        w = analysis.windows[selected]
        fig.add_shape(type="rect", x0=w.start_s, x1=w.end_s, y0=-0.55, y1=0.55, line={"color": ACCENT, "width": 2},
                      fillcolor="rgba(0,0,0,0)")
    fig.update_xaxes(title="time (s)", range=[0, analysis.duration_s], showgrid=False)
    fig.update_yaxes(visible=False, range=[-0.6, 0.6], automargin=False)
    return _layout(mark_padding(fig, analysis), STRIP_HEIGHT, showlegend=False,
                   title="Every 5 s slice: its top genre (averaged over its windows)", margin=ALIGNED | {"t": 30})
