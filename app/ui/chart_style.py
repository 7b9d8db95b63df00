"""The dashboard's shared chart look: genre colours, the accent, margins and the common layout.

Split out of `app.ui.charts` so the chart modules (`charts`, `window_charts`, ...) can share it
without importing each other; import these names from here.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import plotly.graph_objects as go

# Tableau 10, assigned by association (blues blue, reggae green, rock red), lightened for a dark theme.
GENRE_COLORS: dict[str, str] = {
    "blues": "#5E8FD0",
    "classical": "#B07AA1",
    "country": "#EDC948",
    "disco": "#FF9DA7",
    "hiphop": "#B58462",
    "jazz": "#76B7B2",
    "metal": "#BAB0AC",
    "pop": "#F28E2B",
    "reggae": "#59A14F",
    "rock": "#E15759",
}
ACCENT = "#F2A541"  # the theme's primary colour: selections and highlights
MUTED = "rgba(232,230,227,0.35)"
SEQUENTIAL = "Viridis"
ALIGNED = {"l": 72, "r": 16, "t": 40, "b": 10}  # timeline and spectrogram share x positions
# genre names on an x axis: level when they fit, else upright (plotly checks each angle; a -40 tilt still overlapped)
TICK_ANGLES = [0, -90]
PERCENT_BAR = {"tickformat": ".0%", "thickness": 12}  # colour bars of probability heatmaps, in %
# A not-music verdict: every genre number is what the model would pick if forced, not a confidence.
# Charts fade those marks to this opacity (the genre bars' "under the threshold" look) and say so.
FORCED_OPACITY = 0.4
FORCED_NOTE = "not music: forced picks, not confidences"
FORCED_SCALE = [[0.0, "#1e2129"], [1.0, "#6b6f78"]]  # a forced-pick heatmap: greys, never the confidence colours


def genre_color(genre: str) -> str:
    """The genre's colour; unknown labels get a neutral grey rather than an error."""
    return GENRE_COLORS.get(genre, "#9AA0A6")


def _layout(fig: go.Figure, height: int, **kwargs: Any) -> go.Figure:
    """Shared look: transparent background, tight margins, a legend that does not eat the plot."""
    layout: dict[str, Any] = {
        "height": height,
        "margin": {"l": 10, "r": 10, "t": 40, "b": 10},
        "paper_bgcolor": "rgba(0,0,0,0)",
        "plot_bgcolor": "rgba(0,0,0,0)",
        "legend": {"orientation": "h", "yanchor": "bottom", "y": 1.02, "x": 0},
    }
    if "title" in kwargs and kwargs.get("showlegend", True):  # title above, legend under it, never on top
        layout["margin"]["t"] = 72
        kwargs["title"] = {"text": kwargs["title"], "y": 0.98, "yanchor": "top"}
    fig.update_layout(**(layout | kwargs))
    return fig


def _pct(values: np.ndarray | Sequence[float]) -> list[str]:
    """Probabilities as whole percentages for bar labels."""
    return [f"{100 * float(v):.0f}%" for v in values]


def two_line_title(head: str, note: str) -> str:
    """A title whose second, smaller line wraps off a long note (a phone clips one long line)."""
    return f"{head}<br><sup>{note}</sup>"
