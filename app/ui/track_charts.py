"""The track-long slice strip as a plotly figure: the static fallback of the linked player's strip.

Pure, like `app.ui.charts` (whose colours and aligned margins it uses), so it lines up under the
static timeline and spectrogram and is unit-tested without Streamlit.
"""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go

from app.analysis import Analysis
from app.ui.chart_marks import mark_padding
from app.ui.chart_style import ACCENT, ALIGNED, FORCED_OPACITY, _layout, genre_color
from app.ui.slices import SliceStrip
from models.verdict import NOT_MUSIC

STRIP_HEIGHT = 120
MIN_OPACITY = 0.25  # a 0 %-confident slice is still visible
TITLE = "Every 5 s slice: its top genre (averaged over its windows)"
FORCED_TITLE = "Every 5 s slice: forced picks (not music)"  # short: a phone clips a long title


def slice_strip_figure(analysis: Analysis, strip: SliceStrip, selected: int | None = None) -> go.Figure:
    """Every 5 s slice as a bar from its start to its end, in its top genre's colour, opacity by confidence.

    Each bar's customdata starts with the window a click selects; the selected window is outlined. A
    not-music track's slices are all faded and named without a percentage: they are forced picks.
    """
    labels = analysis.labels
    tops = [labels[int(t)] for t in strip.top]
    conf = strip.confidence
    colours = [genre_color(g) for g in tops]
    forced = analysis.verdict.kind == NOT_MUSIC
    opacity = [FORCED_OPACITY if forced else float(MIN_OPACITY + (1 - MIN_OPACITY) * c) for c in conf]
    texts = [g if forced else f"{g} {c:.0%}" for g, c in zip(tops, conf, strict=True)]
    fig = go.Figure(go.Bar(
        x=np.full(len(strip), 5.0), base=strip.starts_s, y=np.zeros(len(strip)), orientation="h", width=0.9,
        marker={"color": colours, "opacity": opacity, "line": {"width": 1, "color": "#14161c"}},
        text=texts, textposition="inside",
        insidetextanchor="middle", textfont={"color": "#e8e6e3" if forced else "#14161c", "size": 11},
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
                   title=FORCED_TITLE if forced else TITLE, margin=ALIGNED | {"t": 30})
