"""Training windows from frame rows: the frames whose patch lies inside each 5 s slice, on the
engine's window grid, with window jitter and frame dropout for training batches.
"""

from __future__ import annotations

import numpy as np
import torch

from models.classifier.ensemble import Classifier, Member
from models.classifier.predict import combine_windows, predict_windows
from models.training.config import TrainConfig
from utils.constants import GENRES, N_GENRES, WINDOW_S
from utils.tables import EmbeddingTable, TrackFrames
from utils.windows import track_duration, window_starts, windows_from_frames


def one_hot(genres: list[str]) -> np.ndarray:
    """(N, C) multi-hot targets from genre names (a '|' separates several genres)."""
    y = np.zeros((len(genres), N_GENRES), dtype=np.float32)
    for i, g in enumerate(genres):
        for part in str(g).split("|"):
            y[i, GENRES.index(part)] = 1.0
    return y


def grid_windows(track: TrackFrames, frame_s: float, max_frames: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The windows the engine would analyse for this track: starts every 5 s."""
    duration = max(track_duration(track.frame_start_s, frame_s), WINDOW_S)
    return windows_from_frames(track.vectors, track.frame_start_s, frame_s, window_starts(duration), max_frames)


def max_slice_frames(table: EmbeddingTable) -> int:
    """Largest frame count a slice can hold for this table's frame grid."""
    frame_s = table.frame_seconds
    return max(grid_windows(t, frame_s)[0].shape[2] for t in table.tracks()[:50])


def track_probabilities(model: Classifier, tracks: list[TrackFrames], frame_s: float, f: int) -> np.ndarray:
    """(T, C) track probabilities, windows combined exactly as the engine combines them."""
    out = []
    for t in tracks:
        x, m = grid_windows(t, frame_s, f)
        out.append(combine_windows(predict_windows(model, x, m).probabilities))
    return np.stack(out)


def _sample_batch_windows(
    tracks: list[TrackFrames], weights: np.ndarray, frame_s: float, f: int, cfg: TrainConfig,
    rng: np.random.Generator,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """One epoch of training windows with jitter and frame dropout."""
    xs, ms, ys, ws = [], [], [], []
    for t, w in zip(tracks, weights, strict=True):
        duration = max(track_duration(t.frame_start_s, frame_s), WINDOW_S)
        if cfg.jitter:
            starts = rng.uniform(0.0, duration - WINDOW_S, size=cfg.windows_per_track)
        else:
            starts = window_starts(duration)
        x, m = windows_from_frames(t.vectors, t.frame_start_s, frame_s, starts, f)
        xs.append(x)
        ms.append(m)
        ys.append(np.repeat(one_hot([t.genre]), len(starts), axis=0))
        ws.append(np.full(len(starts), w, dtype=np.float32))
    x, m, y, w = np.concatenate(xs), np.concatenate(ms), np.concatenate(ys), np.concatenate(ws)
    if cfg.frame_dropout > 0:
        drop = rng.random(m.shape) < cfg.frame_dropout
        keep_one = m & ~drop
        empty = ~keep_one.any(axis=2)  # never drop every frame of a slice
        m = np.where(empty[..., None], m, keep_one)
    return x, m, y, w


def _window_logits(model: Member, tracks: list[TrackFrames], frame_s: float, f: int) -> list[np.ndarray]:
    """Uncalibrated window logits per track (temperature 1)."""
    saved = model.temperature.clone()
    model.temperature.fill_(1.0)
    out = []
    with torch.inference_mode():
        for t in tracks:
            x, m = grid_windows(t, frame_s, f)
            out.append(model(torch.from_numpy(x), torch.from_numpy(m)).logits.numpy())
    model.temperature.copy_(saved)
    return out
