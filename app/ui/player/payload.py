"""What the linked player's front-end is sent: plain JSON plus a few byte arrays. No Streamlit here.

The spectrogram and the saliency map travel as uint8 images (one byte per cell, row 0 = lowest mel
band), not as JSON numbers: 96 x 800 cells are 77 kB instead of about 400 kB. Streamlit caches an
identical large element message by hash, but any change (a new selected window) re-sends the whole
element, audio bytes included: serving the audio by URL instead is a known follow-up.
Colours come from `app.ui.charts` / `app.ui.explain_charts`, so the player and the static charts agree.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from app.analysis import Analysis
from app.ui import explain_charts
from app.ui.chart_marks import padded_from
from app.ui.chart_style import FORCED_OPACITY
from app.ui.charts import ACCENT, FREQ_TICKS_HZ, MAGMA, genre_color
from app.ui.slices import slice_strip
from models.verdict import NOT_MUSIC
from utils.spectrogram import DisplaySpectrogram

DB_FLOOR = -80.0
OTHERS_COLOR = "#9AA0A6"
FORCED_FILL = "rgba(154,160,166,0.3)"  # the slice strip of a not-music track: no genre colour


@dataclass(frozen=True)
class Overlay:
    """A saliency map to draw over the spectrogram, as the page's controls chose it."""

    map: np.ndarray  # (mels, frames) on `spectrogram`'s grid, raw and signed
    spectrogram: DisplaySpectrogram
    genre: str
    part: str  # 'for' | 'against' | 'both'
    opacity: float


@dataclass(frozen=True)
class PlayRequest:
    """'Play this window': play from `start_s` and stop at `end_s`; `id` changes on every click."""

    id: int
    start_s: float
    end_s: float


def quantise_db(db: np.ndarray) -> bytes:
    """dB in [-80, 0] as bytes 0..255 (row-major, mel rows)."""
    scaled = (np.clip(np.asarray(db, dtype=np.float64), DB_FLOOR, 0.0) - DB_FLOOR) / -DB_FLOOR
    return np.round(scaled * 255).astype(np.uint8).tobytes()


def quantise_signed(z: np.ndarray, signed: bool) -> bytes:
    """A normalised map ([0, 1], or [-1, 1] when `signed`) as bytes 0..255 (128 = 0 when signed)."""
    z = np.asarray(z, dtype=np.float64)
    scaled = (np.clip(z, -1, 1) + 1) / 2 if signed else np.clip(z, 0, 1)
    return np.round(scaled * 255).astype(np.uint8).tobytes()


def _grid(spec: DisplaySpectrogram) -> dict[str, Any]:
    """Shape and time span of a spectrogram image (columns are centred on `times_s`)."""
    times = np.asarray(spec.times_s, dtype=np.float64)
    step = float(np.median(np.diff(times))) if len(times) > 1 else 1.0
    t0 = float(times[0] - step / 2) if len(times) else 0.0
    t1 = float(times[-1] + step / 2) if len(times) else 1.0
    ticks = [[int(np.argmin(np.abs(spec.freqs_hz - f))), f"{f // 1000}k" if f >= 1000 else str(f)]
             for f in FREQ_TICKS_HZ if f <= spec.freqs_hz[-1]]
    return {"mels": int(spec.db.shape[0]), "frames": int(spec.db.shape[1]), "t0": max(0.0, t0), "t1": t1,
            "ticks": ticks}


def _colorscale(stops: Sequence[Any]) -> list[list[Any]]:
    """[[position, '#rrggbb'], ...] from a plotly colour list or colourscale."""
    if stops and isinstance(stops[0], str):
        n = len(stops) - 1
        return [[i / n, c] for i, c in enumerate(stops)]
    return [[float(p), c] for p, c in stops]


def series(analysis: Analysis, genres: Sequence[str] | None, stacked: bool) -> list[dict[str, Any]]:
    """The timeline's lines: each chosen genre per window, as probabilities or (stacked) shares.

    Shares are of all ten genres' total, with the genres not chosen as one grey band on top, as in
    `charts.window_timeline`, so a share never claims more than the model said.
    """
    genres = list(genres) if genres else [g for g, _ in analysis.ranking[:3]]
    probs = analysis.window_probabilities
    shares = probs / np.clip(probs.sum(axis=1, keepdims=True), 1e-12, None)
    values = shares if stacked else probs
    out = [{"name": g, "color": genre_color(g), "values": [round(float(v), 4) for v in
                                                           values[:, analysis.labels.index(g)]]}
           for g in genres if g in analysis.labels]
    others = [j for j, g in enumerate(analysis.labels) if g not in genres]
    if stacked and others:
        out.append({"name": f"other {len(others)} genres", "color": OTHERS_COLOR,
                    "values": [round(float(v), 4) for v in shares[:, others].sum(axis=1)]})
    return out


def player_args(
    analysis: Analysis,
    selected: int,
    genres: Sequence[str] | None = None,
    stacked: bool = False,
    overlay: Overlay | None = None,
    play: PlayRequest | None = None,
    audio_mime: str | None = None,
) -> tuple[dict[str, Any], dict[str, bytes | None]]:
    """(JSON arguments, byte arguments) for one render of the player."""
    labels = analysis.labels
    strip = slice_strip(analysis)
    spec = overlay.spectrogram if overlay is not None else analysis.spectrogram
    meta: dict[str, Any] = {
        "duration": round(float(analysis.duration_s), 3),
        "audio_seconds": round(float(analysis.source.get("duration_s", analysis.duration_s)), 3),
        "padded_from": padded_from(analysis),  # where a short clip's repeat starts (None: nothing repeated)
        "selected": int(selected),
        "accent": ACCENT,
        "threshold": round(float(analysis.threshold), 3),
        "spec": _grid(spec) | {"colorscale": _colorscale(explain_charts.GREYS if overlay is not None else MAGMA)},
        "windows": [{"start": round(float(w.start_s), 3), "end": round(float(w.end_s), 3),
                     "genre": labels[int(np.argmax(w.probabilities))],
                     "p": round(float(np.max(w.probabilities)), 4),
                     "slices": [round(float(s), 3) for s in w.slice_starts_s],
                     "attention": [round(float(a), 4) for a in w.attention]} for w in analysis.windows],
        "series": series(analysis, genres, stacked),
        "stacked": bool(stacked),
        "slices": [{"start": round(float(s), 3), "end": round(float(e), 3), "genre": labels[int(t)],
                    "color": genre_color(labels[int(t)]), "p": round(float(c), 4), "window": int(w),
                    "attention": round(float(a), 4)}
                   for s, e, t, c, w, a in zip(strip.starts_s, strip.ends_s, strip.top, strip.confidence,
                                               strip.windows, strip.attention, strict=True)],
        # not music: the genre lines fade and the slice strip turns grey, as the page's charts do
        "forced": {"opacity": FORCED_OPACITY, "fill": FORCED_FILL} if analysis.verdict.kind == NOT_MUSIC else None,
        "overlay": None,
        "play": None if play is None else {"id": int(play.id), "start": float(play.start_s),
                                           "end": float(play.end_s)},
        "audio_id": analysis.sha256[:16],
        "mime": audio_mime or "audio/wav",
    }
    data: dict[str, bytes | None] = {"spec": quantise_db(spec.db), "overlay": None}
    if overlay is not None:
        z = explain_charts.normalised_saliency(explain_charts.smoothed(overlay.map, spec.times_s), overlay.part)
        meta["overlay"] = {"genre": overlay.genre, "part": overlay.part, "floor": explain_charts.FLOOR,
                           "opacity": float(np.clip(overlay.opacity, 0.0, 1.0)),
                           "for": list(explain_charts.FOR_COLOR), "against": list(explain_charts.AGAINST_COLOR)}
        data["overlay"] = quantise_signed(z, overlay.part == "both")
    return meta, data
