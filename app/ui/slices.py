"""The whole track at a glance: every 5 s slice's verdict, and which window a moment belongs to.

Pure functions of an `Analysis` (no Streamlit), shared by the linked player, the static charts
and the tests, so a click means the same window everywhere.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from app.analysis import Analysis
from utils.constants import SLICE_S

START_TOLERANCE_S = 1e-3  # slice starts are the same floats in windows and in the track list


@dataclass(frozen=True)
class SliceStrip:
    """One row per unique slice of a track, in time order."""

    starts_s: np.ndarray  # (S,)
    probabilities: np.ndarray  # (S, C): the slice's probabilities averaged over the windows holding it
    windows: np.ndarray  # (S,) int: the window a click on the slice selects
    coverage: np.ndarray  # (S,) int: how many windows hold the slice
    attention: np.ndarray  # (S,): the attention weight the slice got, averaged over those windows

    @property
    def ends_s(self) -> np.ndarray:
        """Where each slice ends."""
        return self.starts_s + SLICE_S

    @property
    def top(self) -> np.ndarray:
        """(S,) index of each slice's most likely genre."""
        return self.probabilities.argmax(axis=1)

    @property
    def confidence(self) -> np.ndarray:
        """(S,) the top genre's averaged probability."""
        return self.probabilities.max(axis=1)

    def __len__(self) -> int:
        return len(self.starts_s)


def window_centres(analysis: Analysis) -> np.ndarray:
    """(W,) the centre time of every window."""
    return np.array([(w.start_s + w.end_s) / 2 for w in analysis.windows], dtype=np.float64)


def window_at(analysis: Analysis, t: float) -> int:
    """The window under time `t`: of the windows that contain it, the one centred nearest to it.

    Outside every window (before the first start is impossible; past a padded end is not) it is the
    window with the nearest centre, so a click never selects nothing.
    """
    if not analysis.windows:
        raise ValueError("the analysis has no windows")
    centres = window_centres(analysis)
    starts = np.array([w.start_s for w in analysis.windows])
    ends = np.array([w.end_s for w in analysis.windows])
    distance = np.abs(centres - float(t))
    inside = (starts <= t) & (t <= ends)
    if inside.any():
        distance = np.where(inside, distance, np.inf)
    return int(np.argmin(distance))


def slice_strip(analysis: Analysis) -> SliceStrip:
    """Every slice's probabilities averaged over the windows that contain it, and its click target.

    Each window reports its three slices' own probabilities (what the slice says alone, in that
    window's context); a slice appears in up to three windows, and the strip averages those views.
    A click on a slice selects the window whose centre is nearest the slice's centre: the window in
    which it is the middle slice where there is one.
    """
    starts = np.asarray(analysis.slice_starts_s, dtype=np.float64)
    n_labels = len(analysis.labels)
    sums = np.zeros((len(starts), n_labels))
    attention = np.zeros(len(starts))
    counts = np.zeros(len(starts), dtype=int)
    for w in analysis.windows:
        for s, p, a in zip(w.slice_starts_s, w.slice_probabilities, w.attention, strict=True):
            hits = np.flatnonzero(np.abs(starts - float(s)) <= START_TOLERANCE_S)
            if hits.size:
                sums[hits[0]] += p
                attention[hits[0]] += a
                counts[hits[0]] += 1
    held = np.maximum(counts, 1)
    targets = np.array([window_at(analysis, s + SLICE_S / 2) for s in starts], dtype=int)
    return SliceStrip(starts_s=starts, probabilities=sums / held[:, None], windows=targets, coverage=counts,
                      attention=attention / held)
