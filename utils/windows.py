"""Window geometry: 15 s windows every 5 s, each made of three 5 s slices.

Neighbouring windows share two of their three slices, so the engine embeds each unique slice once
and gathers windows from the slice table. Training builds the same windows from the frame rows of
an embedding table, taking the frames whose patch lies inside each slice.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from utils.constants import MIN_TAIL_S, SLICE_S, SLICES_PER_WINDOW, WINDOW_HOP_S, WINDOW_S

_EPS = 1e-6


@dataclass(frozen=True)
class WindowPlan:
    """Where every window and unique slice of a track lies, in seconds."""

    slice_starts: np.ndarray  # (S,) unique slice start times, sorted
    window_starts: np.ndarray  # (W,) window start times
    window_slices: np.ndarray  # (W, 3) indices into slice_starts


def window_starts(duration_s: float, hop_s: float = WINDOW_HOP_S) -> np.ndarray:
    """Window start times for a track: every `hop_s`, plus one end-aligned window for a long tail."""
    if duration_s + _EPS < WINDOW_S:
        raise ValueError(f"audio of {duration_s:.2f} s is shorter than one {WINDOW_S:.0f} s window")
    n = int(np.floor((duration_s - WINDOW_S) / hop_s + _EPS)) + 1
    starts = np.arange(n, dtype=np.float64) * hop_s
    tail = duration_s - (starts[-1] + WINDOW_S)
    if tail >= MIN_TAIL_S:
        starts = np.append(starts, duration_s - WINDOW_S)
    return starts


def plan_windows(duration_s: float) -> WindowPlan:
    """Plan windows and the unique slices they need for a track of `duration_s` seconds."""
    starts = window_starts(duration_s)
    all_slices = starts[:, None] + np.arange(SLICES_PER_WINDOW)[None, :] * SLICE_S
    unique = np.unique(np.round(all_slices, 6))
    index = np.searchsorted(unique, np.round(all_slices, 6))
    return WindowPlan(slice_starts=unique, window_starts=starts, window_slices=index)


def cut_slices(samples: np.ndarray, sample_rate: int, slice_starts: np.ndarray) -> np.ndarray:
    """Cut equal-length slices (S, SLICE_S * sr) out of a mono signal; the last may be zero-padded."""
    n = int(round(SLICE_S * sample_rate))
    out = np.zeros((len(slice_starts), n), dtype=np.float32)
    for i, start in enumerate(slice_starts):
        a = int(round(start * sample_rate))
        piece = samples[a : a + n]
        out[i, : len(piece)] = piece
    return out


def frames_in_slice(frame_starts: np.ndarray, frame_s: float, slice_start: float) -> np.ndarray:
    """Indices of frames whose whole patch lies inside [slice_start, slice_start + SLICE_S)."""
    inside = (frame_starts >= slice_start - 1e-3) & (frame_starts + frame_s <= slice_start + SLICE_S + 1e-3)
    return np.flatnonzero(inside)


def track_duration(frame_starts: np.ndarray, frame_s: float) -> float:
    """Duration a track's frame rows cover: the end of its last frame."""
    return float(frame_starts[-1] + frame_s) if len(frame_starts) else 0.0


def windows_from_frames(
    frames: np.ndarray,
    frame_starts: np.ndarray,
    frame_s: float,
    starts: np.ndarray,
    max_frames: int | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Gather windows (W, 3, F, D) and a frame mask (W, 3, F) from a track's frame rows.

    Slices with fewer frames than F are zero-padded and masked; a slice with no frame inside
    (possible only with odd frame lengths) falls back to the frame nearest its centre so the
    classifier always sees something.
    """
    dim = frames.shape[1]
    picks: list[list[np.ndarray]] = []
    for w in starts:
        row = []
        for j in range(SLICES_PER_WINDOW):
            s = w + j * SLICE_S
            idx = frames_in_slice(frame_starts, frame_s, s)
            if idx.size == 0:
                centre = s + SLICE_S / 2 - frame_s / 2
                idx = np.array([int(np.argmin(np.abs(frame_starts - centre)))])
            row.append(idx)
        picks.append(row)
    f = max_frames or max(len(i) for row in picks for i in row)
    out = np.zeros((len(starts), SLICES_PER_WINDOW, f, dim), dtype=np.float32)
    mask = np.zeros((len(starts), SLICES_PER_WINDOW, f), dtype=bool)
    for wi, row in enumerate(picks):
        for j, idx in enumerate(row):
            idx = idx[:f]
            out[wi, j, : len(idx)] = frames[idx]
            mask[wi, j, : len(idx)] = True
    return out, mask
