"""Plotly figures for "why" and "where": the saliency overlay and the map of known tracks.

Pure functions, like `app.ui.charts` (whose genre colours, frequency ticks and layout they reuse),
so they are unit-tested without Streamlit.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import plotly.graph_objects as go
from scipy.ndimage import gaussian_filter

from app.explain import Saliency
from app.ui.charts import ACCENT, ALIGNED, FREQ_TICKS_HZ, _layout, genre_color
from utils.embedding_map import EmbeddingMap
from utils.text import plotly_text

FOR_COLOR = (61, 245, 210)  # aqua: evidence for the genre
AGAINST_COLOR = (255, 92, 168)  # pink: evidence against
GREYS = [[0.0, "#0b0c10"], [1.0, "#8d9099"]]  # the spectrogram under an overlay: dim, colourless
SMOOTH_S, SMOOTH_ROWS = 0.12, 1.5  # display blur (seconds, mel rows): gradients are speckled
PARTS = ("for", "against", "both")
FLOOR = 0.12  # normalised saliency below this stays transparent, so the spectrogram shows through
UPLOAD_SYMBOL = "star"
WRONG_SYMBOL = "diamond"
MAP_PAD = 0.08  # extra axis range on each side, so upload labels at the edge are not clipped


def _ramp(rgb: tuple[int, int, int], floor: float = FLOOR) -> list[list[Any]]:
    """Transparent up to `floor`, then fading in to the opaque colour at 1."""
    r, g, b = rgb
    return [[0.0, f"rgba({r},{g},{b},0)"], [floor, f"rgba({r},{g},{b},0)"], [1.0, f"rgba({r},{g},{b},1)"]]


def _diverging(floor: float = FLOOR) -> list[list[Any]]:
    """Pink (against) to transparent to aqua (for), on [-1, 1] mapped to [0, 1]."""
    lo, hi = _ramp(AGAINST_COLOR, floor), _ramp(FOR_COLOR, floor)
    return [[0.0, lo[2][1]], [0.5 - floor / 2, lo[0][1]], [0.5 + floor / 2, hi[0][1]], [1.0, hi[2][1]]]


def smoothed(saliency_map: np.ndarray, times_s: np.ndarray, seconds: float = SMOOTH_S,
             rows: float = SMOOTH_ROWS) -> np.ndarray:
    """Gaussian blur for display only: gradient maps are speckled at the bin level (max-pooling
    networks route the gradient to single bins), and the eye reads regions, not bins."""
    step = float(np.median(np.diff(times_s))) if len(times_s) > 1 else 1.0
    return gaussian_filter(np.asarray(saliency_map, dtype=np.float64), (rows, seconds / max(step, 1e-6)),
                           mode="constant")


def normalised_saliency(saliency_map: np.ndarray, part: str = "for", quantile: float = 99.0) -> np.ndarray:
    """The map scaled so its `quantile` of magnitude is 1 and clipped: [0, 1] for 'for'/'against',
    [-1, 1] for 'both'. A robust scale: one hot bin must not wash the rest out."""
    if part not in PARTS:
        raise ValueError(f"part must be one of {PARTS}, not {part!r}")
    m = np.asarray(saliency_map, dtype=np.float64)
    shown = np.clip(m, 0, None) if part == "for" else np.clip(-m, 0, None) if part == "against" else m
    mag = np.abs(shown)
    scale = float(np.percentile(mag[mag > 0], quantile)) if np.any(mag > 0) else 1.0
    low = -1.0 if part == "both" else 0.0
    return np.clip(shown / max(scale, 1e-12), low, 1.0)


def time_profile(saliency_map: np.ndarray, part: str = "for") -> np.ndarray:
    """Share of the shown evidence in each column (sums to 1; zeros when there is none)."""
    m = np.asarray(saliency_map, dtype=np.float64)
    shown = np.clip(m, 0, None) if part == "for" else np.clip(-m, 0, None) if part == "against" else np.abs(m)
    total = shown.sum()
    return shown.sum(axis=0) / total if total > 0 else np.zeros(m.shape[1])


def _hz(f: float) -> str:
    """A frequency for a sentence: '250 Hz', '2.5 kHz'."""
    return f"{f / 1000:.1f} kHz".replace(".0 kHz", " kHz") if f >= 1000 else f"{f:.0f} Hz"


def saliency_sentence(saliency: Saliency, part: str = "for", span_s: float = 3.0) -> str:
    """One sentence naming the `span_s` stretch that holds the most evidence, and its frequency band."""
    m = np.asarray(saliency.map, dtype=np.float64)
    shown = np.clip(m, 0, None) if part == "for" else np.clip(-m, 0, None) if part == "against" else np.abs(m)
    side = {"for": "for", "against": "against", "both": "about"}[part]
    total = shown.sum()
    times = saliency.spectrogram.times_s
    if total <= 0 or len(times) == 0:
        return f"No evidence {side} {saliency.genre} was found."
    cum = np.concatenate([[0.0], np.cumsum(shown.sum(axis=0))])
    ends = np.searchsorted(times, times + span_s)
    shares = (cum[ends] - cum[np.arange(len(times))]) / total
    i = int(np.argmax(shares))
    j = max(int(ends[i]), i + 1)
    rows = shown[:, i:j].sum(axis=1)
    quartiles = np.searchsorted(np.cumsum(rows) / max(rows.sum(), 1e-12), [0.25, 0.75])
    freqs = saliency.spectrogram.freqs_hz
    lo, hi = (float(freqs[min(int(q), len(freqs) - 1)]) for q in quartiles)
    start, end = float(times[i]), float(times[j - 1])
    return (f"The {start:.0f}–{end:.0f} s stretch holds {shares[i]:.0%} of the evidence {side} "
            f"{saliency.genre}, mostly between {_hz(lo)} and {_hz(hi)}.")


def saliency_overlay(
    saliency: Saliency,
    opacity: float = 0.8,
    part: str = "for",
    duration_s: float | None = None,
    window: tuple[float, float] | None = None,
) -> go.Figure:
    """The mel spectrogram, in grey, with the saliency drawn over it (`opacity` 0 hides it, 1 is full).

    `part`: 'for' (what raised the genre's probability), 'against' (what lowered it) or 'both'.
    `window` (start, end) in seconds outlines the explained 15 s window. The map is blurred lightly
    for display (`smoothed`); sentences and tests use the raw map.
    """
    spec = saliency.spectrogram
    rows = np.arange(len(spec.freqs_hz))
    z = normalised_saliency(smoothed(saliency.map, spec.times_s), part)
    scale = _ramp(FOR_COLOR) if part == "for" else _ramp(AGAINST_COLOR) if part == "against" else _diverging()
    what = {"for": "evidence for", "against": "evidence against", "both": "evidence (− against, + for)"}[part]
    fig = go.Figure([
        go.Heatmap(z=spec.db, x=spec.times_s, y=rows, colorscale=GREYS, zmin=-80, zmax=0, showscale=False,
                   hoverinfo="skip"),
        go.Heatmap(z=z, x=spec.times_s, y=rows, colorscale=scale, zmin=-1 if part == "both" else 0, zmax=1,
                   opacity=float(np.clip(opacity, 0.0, 1.0)), customdata=spec.db, name="saliency",
                   colorbar={"title": {"text": "saliency", "side": "right"}, "thickness": 10, "len": 0.8,
                             "tickvals": [0, 1] if part != "both" else [-1, 0, 1],
                             "ticktext": ["0", "max"] if part != "both" else ["against", "0", "for"]},
                   hovertemplate=f"%{{x:.1f}} s · {what} {saliency.genre}: %{{z:.2f}} · %{{customdata:.0f}} dB"
                                 "<extra></extra>"),
    ])
    ticks = [(int(np.argmin(np.abs(spec.freqs_hz - f))), f) for f in FREQ_TICKS_HZ if f <= spec.freqs_hz[-1]]
    fig.update_yaxes(title="frequency (Hz)", tickvals=[r for r, _ in ticks], automargin=False,
                     ticktext=[f"{f // 1000}k" if f >= 1000 else str(f) for _, f in ticks])
    end = duration_s if duration_s is not None else float(spec.times_s[-1]) if len(spec.times_s) else 1.0
    fig.update_xaxes(title="time (s)", range=[0, end])
    if window is not None:
        fig.add_vrect(x0=window[0], x1=window[1], line={"color": ACCENT, "width": 2}, fillcolor="rgba(0,0,0,0)")
    return _layout(fig, 360, showlegend=False, margin=ALIGNED | {"t": 30, "r": 70})


# ------------------------------------------------------------------------------------ the map
@dataclass(frozen=True)
class PlacedTrack:
    """An upload placed on the map."""

    key: str  # the upload's sha256
    name: str
    top_genre: str
    xy: tuple[float, float]


def embedding_map(
    emap: EmbeddingMap,
    predictions: Mapping[str, Mapping[str, Any]] | None = None,
    uploads: Sequence[PlacedTrack] = (),
    selected: str | None = None,
) -> go.Figure:
    """Reference tracks coloured by true genre (diamonds: the model got them wrong), uploads as stars.

    Every point's customdata starts with its key (track id or upload sha256), which is what a click
    returns; hover shows the track id, true and predicted genre. The legend draws each genre as a
    circle whatever its first point is (legend-only entries; a click on one still hides its genre),
    plus one grey diamond for "predicted wrong". Upload names are encoded for plotly and may draw
    past the plot edge; the axes leave room for them.
    """
    predictions = predictions or {}
    fig = go.Figure()
    predicted = np.array([str(predictions.get(t, {}).get("predicted", "?")) for t in emap.track_ids])
    genres = list(dict.fromkeys(emap.genres.tolist()))
    for genre in genres:
        idx = np.flatnonzero(emap.genres == genre)
        wrong = [predicted[i] not in (genre, "?") for i in idx]
        fig.add_trace(go.Scatter(
            x=emap.coords[idx, 0], y=emap.coords[idx, 1], mode="markers", name=genre, legendgroup=genre,
            showlegend=False,
            marker={"color": genre_color(genre), "size": 9, "opacity": 0.85,
                    "symbol": [WRONG_SYMBOL if w else "circle" for w in wrong],
                    "line": {"width": 0.5, "color": "rgba(0,0,0,0.6)"}},
            customdata=np.stack([emap.track_ids[idx], emap.genres[idx], predicted[idx]], axis=1),
            hovertemplate="<b>%{customdata[0]}</b><br>true %{customdata[1]} · predicted %{customdata[2]}"
                          "<extra></extra>",
        ))
    for genre in genres:  # the legend: one plain circle per genre, toggling its group
        fig.add_trace(go.Scatter(x=[None], y=[None], mode="markers", name=genre, legendgroup=genre,
                                 marker={"color": genre_color(genre), "size": 9, "symbol": "circle"},
                                 hoverinfo="skip"))
    if any(p not in (g, "?") for p, g in zip(predicted, emap.genres, strict=True)):
        fig.add_trace(go.Scatter(x=[None], y=[None], mode="markers", name="predicted wrong", hoverinfo="skip",
                                 marker={"color": "#9AA0A6", "size": 9, "symbol": WRONG_SYMBOL}))
    if uploads:
        spots = label_spots(np.array([u.xy for u in uploads], dtype=float), emap.coords)
        fig.add_trace(go.Scatter(
            x=[u.xy[0] for u in uploads], y=[u.xy[1] for u in uploads], mode="markers+text", name="your tracks",
            text=[plotly_text(u.name if len(u.name) <= 24 else u.name[:22] + "…") if spot else ""
                  for u, spot in zip(uploads, spots, strict=True)],
            textposition=[spot or "top center" for spot in spots], textfont={"color": ACCENT, "size": 13},
            cliponaxis=False,
            marker={"symbol": UPLOAD_SYMBOL, "size": 20, "color": [genre_color(u.top_genre) for u in uploads],
                    "line": {"width": 2, "color": ACCENT}},
            customdata=[[u.key, plotly_text(u.name), u.top_genre] for u in uploads],
            hovertemplate="<b>%{customdata[1]}</b><br>your upload · predicted %{customdata[2]}<extra></extra>",
        ))
    xy = _selected_xy(emap, uploads, selected)
    if xy is not None:
        fig.add_trace(go.Scatter(x=[xy[0]], y=[xy[1]], mode="markers", name="selected", hoverinfo="skip",
                                 showlegend=False, marker={"size": 22, "symbol": "circle-open", "color": ACCENT,
                                                           "line": {"width": 3}}))
    axes = ("PC 1", "PC 2") if emap.method == "PCA" else ("t-SNE 1", "t-SNE 2")
    if emap.explained is not None:
        axes = tuple(f"{a} ({v:.0%} of variance)" for a, v in zip(axes, emap.explained, strict=True))
    xs = np.concatenate([emap.coords[:, 0], [u.xy[0] for u in uploads]])
    ys = np.concatenate([emap.coords[:, 1], [u.xy[1] for u in uploads]])
    fig.update_xaxes(title=axes[0], zeroline=False, showgrid=False, range=_padded(xs, MAP_PAD * 2))
    fig.update_yaxes(title=axes[1], zeroline=False, showgrid=False, range=_padded(ys, MAP_PAD, top=MAP_PAD * 2))
    return _layout(fig, 560, clickmode="event+select", dragmode="pan", hovermode="closest")


def _padded(values: np.ndarray, pad: float, top: float | None = None) -> list[float] | None:
    """[min, max] widened by `pad` of the span (`top` above), so labels next to edge points fit."""
    values = np.asarray(values, dtype=float)
    values = values[np.isfinite(values)]
    if not values.size:
        return None
    lo, hi = float(values.min()), float(values.max())
    span = hi - lo or 1.0
    return [lo - pad * span, hi + (pad if top is None else top) * span]


def label_spots(points: np.ndarray, background: np.ndarray, width: float = 0.16, height: float = 0.05,
                ) -> list[str | None]:
    """Where each upload's name goes ("top center" or "bottom center"), or None where both would cover
    a name already placed (the star keeps its hover). Sizes are fractions of the map's extent."""
    every = np.concatenate([background.reshape(-1, 2), points]) if len(background) else points
    span = np.maximum(every.max(0) - every.min(0), 1e-9)
    placed: list[np.ndarray] = []
    spots: list[str | None] = []
    for p in (points - every.min(0)) / span:
        spot = None
        for name, dy in (("top center", height), ("bottom center", -height)):
            centre = p + np.array([0.0, dy])
            if all(abs(centre[0] - q[0]) >= width or abs(centre[1] - q[1]) >= height for q in placed):
                spot = name
                placed.append(centre)
                break
        spots.append(spot)
    return spots


def _selected_xy(emap: EmbeddingMap, uploads: Sequence[PlacedTrack], key: str | None) -> tuple[float, float] | None:
    """Position of the selected point (reference track id or upload key), if it is on the map."""
    if key is None:
        return None
    for u in uploads:
        if u.key == key:
            return u.xy
    hits = np.flatnonzero(emap.track_ids == key)
    return (float(emap.coords[hits[0], 0]), float(emap.coords[hits[0], 1])) if hits.size else None
