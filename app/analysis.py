"""The result of analysing one track, and its JSON and table forms.

Everything the UI, the CLI and the feedback store need is here; the heavy arrays (slice
embeddings) stay out of the JSON form.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from models.verdict import Verdict, decide
from utils.spectrogram import DisplaySpectrogram


@dataclass
class WindowResult:
    """One 15 s window: its time span, genre probabilities, slice attention and slice probabilities."""

    index: int
    start_s: float
    end_s: float
    probabilities: np.ndarray  # (C,)
    attention: np.ndarray  # (3,)
    slice_starts_s: np.ndarray  # (3,)
    slice_probabilities: np.ndarray  # (3, C)

    def to_dict(self, labels: list[str]) -> dict[str, Any]:
        """JSON-friendly form with probabilities keyed by genre."""
        return {
            "index": self.index,
            "start_s": round(float(self.start_s), 3),
            "end_s": round(float(self.end_s), 3),
            "probabilities": _by_label(self.probabilities, labels),
            "attention": [round(float(a), 4) for a in self.attention],
            "slice_starts_s": [round(float(s), 3) for s in self.slice_starts_s],
            "slice_probabilities": [_by_label(p, labels) for p in self.slice_probabilities],
        }


@dataclass
class Analysis:
    """Everything known about one analysed track."""

    name: str  # sanitised display name, never a path
    sha256: str
    labels: list[str]
    probabilities: np.ndarray  # (C,) track level, calibrated
    threshold: float
    windows: list[WindowResult]
    slice_starts_s: np.ndarray  # (S,) unique slices
    spectrogram: DisplaySpectrogram
    duration_s: float  # analysed duration (after padding)
    source: dict[str, Any]  # format, sample rate, channels, source duration, truncated, padded
    quality: dict[str, float]
    warnings: list[str]
    timings_s: dict[str, float]
    model: dict[str, Any]  # id, version, embedder id
    slice_embeddings: np.ndarray | None = field(default=None, repr=False)  # (S, F, D)
    novelty: float | None = None  # distance from the training music (models/novelty.py); None: no detector
    novelty_threshold: float | None = None  # farther than this is "not music"

    @property
    def ranking(self) -> list[tuple[str, float]]:
        """All genres by decreasing probability."""
        order = np.argsort(-self.probabilities)
        return [(self.labels[i], float(self.probabilities[i])) for i in order]

    @property
    def top_genre(self) -> str:
        """The single most likely genre."""
        return self.labels[int(np.argmax(self.probabilities))]

    @property
    def verdict(self) -> Verdict:
        """genre / uncertain / not_music at this analysis' threshold (models/verdict.py)."""
        return decide(self.labels, self.probabilities, self.threshold, self.novelty, self.novelty_threshold)

    @property
    def predicted(self) -> list[str]:
        """Every genre at or above the threshold (multi-label); empty when the verdict is not "genre"."""
        return list(self.verdict.genres)

    @property
    def window_probabilities(self) -> np.ndarray:
        """(W, C) probabilities of every window, in time order."""
        return np.stack([w.probabilities for w in self.windows])

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly form (no embeddings)."""
        return {
            "name": self.name,
            "sha256": self.sha256,
            "verdict": self.verdict.kind,
            "verdict_detail": self.verdict.to_dict(),
            "model": self.model,
            "labels": self.labels,
            "probabilities": _by_label(self.probabilities, self.labels),
            "top_genre": self.top_genre,
            "predicted": self.predicted,
            "threshold": self.threshold,
            "duration_s": round(self.duration_s, 3),
            "source": self.source,
            "quality": {k: _finite(v) for k, v in self.quality.items()},
            "warnings": self.warnings,
            "timings_s": {k: round(v, 4) for k, v in self.timings_s.items()},
            "slices": [
                {"index": i, "start_s": round(float(s), 3), "end_s": round(float(s) + 5.0, 3)}
                for i, s in enumerate(self.slice_starts_s)
            ],
            "windows": [w.to_dict(self.labels) for w in self.windows],
            "spectrogram": self.spectrogram.to_dict(),
        }

    def to_json(self, indent: int | None = 2) -> str:
        """The analysis as a JSON document."""
        return json.dumps(self.to_dict(), indent=indent, allow_nan=False)

    def window_rows(self) -> list[dict[str, Any]]:
        """One flat row per window (the CSV export): windows and slices numbered from 1, as the page numbers
        them ("Window 1", "slice 1"); the JSON keeps 0-based indices for programs."""
        rows = []
        for w in self.windows:
            row: dict[str, Any] = {
                "window": w.index + 1,
                "start_s": round(float(w.start_s), 3),
                "end_s": round(float(w.end_s), 3),
                "top_genre": self.labels[int(np.argmax(w.probabilities))],
            }
            row.update({f"p_{g}": round(float(p), 4) for g, p in zip(self.labels, w.probabilities, strict=True)})
            row.update({f"attention_slice_{j}": round(float(a), 4) for j, a in enumerate(w.attention, 1)})
            rows.append(row)
        return rows


def _by_label(values: np.ndarray, labels: list[str]) -> dict[str, float]:
    """Map a probability vector to {genre: rounded probability}."""
    return {g: round(float(v), 5) for g, v in zip(labels, values, strict=True)}


def _finite(value: float) -> float | None:
    """JSON has no infinities: map them to None."""
    value = float(value)
    return round(value, 4) if np.isfinite(value) else None
