"""Marks shared by the static track charts (pure plotly, no Streamlit)."""

from __future__ import annotations

import plotly.graph_objects as go

from app.analysis import Analysis

PAD_FILL = "rgba(14,17,23,0.62)"  # the linked player's shade for the same thing


def padded_from(analysis: Analysis) -> float | None:
    """Where the real audio ends when a short clip was repeated to fill one window, else None."""
    audio = float(analysis.source.get("duration_s", analysis.duration_s))
    return audio if analysis.source.get("padded") and audio < analysis.duration_s - 0.05 else None


def mark_padding(fig: go.Figure, analysis: Analysis) -> go.Figure:
    """Shade the repeated part of a padded clip, so it is not read as more audio."""
    start = padded_from(analysis)
    if start is not None:
        fig.add_vrect(x0=start, x1=analysis.duration_s, fillcolor=PAD_FILL, line_width=0, layer="above",
                      annotation_text=f"repeated to fill {analysis.duration_s:.0f} s", annotation_position="top left",
                      annotation_font_size=11)
    return fig
