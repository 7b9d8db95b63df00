"""Not-music detection: how far a track's embedding lies from the music the model was trained on.

A track is summarised by the mean of its frame vectors (the same track mean the classifier sees),
restricted to the live columns (470 of MusiCNN's 753 pooled values never vary on GTZAN), and
standardised with the training tracks' statistics. Its distance from the training distribution is a
Mahalanobis distance with a shrunk correlation matrix, `(1 - s) R + s I`: with 283 columns and 442
training tracks the full matrix overfits (training tracks look much closer than unseen ones), so the
shrinkage `s` is chosen on the validation tracks as the one whose distances generalise, i.e. whose
validation 99th percentile is closest to the training one. The threshold is a percentile of the
validation tracks' distances (never the test split's): a track farther than almost every unseen
GTZAN track is "not music" (noise, tones, speech, clicks: anything the model knows nothing about).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from utils.atomic import atomic_path
from utils.constants import DEAD_STD

SHRINKAGES = (0.5, 0.9, 1.0)  # 1.0: a diagonal covariance (standardised Euclidean distance)
THRESHOLD_PERCENTILE = 99.0  # of the validation tracks' distances
NOVELTY_FILE = "novelty.npz"


@dataclass(frozen=True)
class NoveltyDetector:
    """Training statistics, the shrunk precision over live columns, and the not-music threshold."""

    mean: np.ndarray  # (D,) training track means' mean
    std: np.ndarray  # (D,) their spread
    live: np.ndarray  # (D,) bool: columns that vary in training
    precision: np.ndarray  # (L, L) inverse of the shrunk correlation of the live columns; (0, 0): identity
    shrinkage: float
    threshold: float  # distances above this are "not music"

    @property
    def dim(self) -> int:
        """Embedding dimension the detector expects."""
        return int(self.mean.shape[0])

    def scores(self, track_means: np.ndarray) -> np.ndarray:
        """(N,) distances of (N, D) track means, scaled so that sqrt(number of live columns) ~ typical."""
        x = np.atleast_2d(np.asarray(track_means, dtype=np.float64))
        if x.shape[1] != self.dim:
            raise ValueError(f"expected {self.dim}-d track means, got {x.shape[1]}-d")
        z = (x[:, self.live] - self.mean[self.live]) / self.std[self.live]
        if self.precision.size == 0:  # shrinkage 1: the identity, stored as nothing
            return np.sqrt(np.einsum("ij,ij->i", z, z))
        return np.sqrt(np.maximum(np.einsum("ij,jk,ik->i", z, self.precision, z), 0.0))

    def score(self, track_mean: np.ndarray) -> float:
        """Distance of one track mean."""
        return float(self.scores(track_mean)[0])

    def save(self, path: Path) -> None:
        """Plain arrays in an .npz (no pickle), written by the bundle recipe; atomically, so an interrupted
        write leaves the old detector, never half a file."""
        identity = self.shrinkage >= 1.0
        with atomic_path(path, suffix=".npz") as tmp:
            np.savez_compressed(tmp, mean=self.mean, std=self.std, live=self.live,
                                precision=np.zeros((0, 0)) if identity else self.precision,
                                shrinkage=np.float64(self.shrinkage), threshold=np.float64(self.threshold))

    @classmethod
    def load(cls, path: Path) -> NoveltyDetector:
        """Read what `save` wrote."""
        with np.load(path, allow_pickle=False) as f:
            return cls(f["mean"], f["std"], f["live"].astype(bool), f["precision"], float(f["shrinkage"]),
                       float(f["threshold"]))


def track_mean(frames: np.ndarray) -> np.ndarray:
    """(D,) mean of any (..., D) stack of frame vectors (an analysis' slice embeddings, a table track)."""
    a = np.asarray(frames, dtype=np.float64)
    return a.reshape(-1, a.shape[-1]).mean(0)


def _precision(z: np.ndarray, shrinkage: float) -> np.ndarray:
    """Inverse of (1 - s) * correlation + s * identity of standardised columns."""
    if shrinkage >= 1.0:
        return np.eye(z.shape[1])
    corr = np.corrcoef(z, rowvar=False)
    return np.linalg.inv((1.0 - shrinkage) * corr + shrinkage * np.eye(z.shape[1]))


def fit_detector(train_means: np.ndarray, valid_means: np.ndarray, percentile: float = THRESHOLD_PERCENTILE,
                 shrinkages: tuple[float, ...] = SHRINKAGES) -> tuple[NoveltyDetector, dict]:
    """Fit on training track means; choose the shrinkage and the threshold on validation track means.

    Returns the detector and a report of every candidate (train and valid percentiles), for the card.
    """
    train = np.asarray(train_means, dtype=np.float64)
    valid = np.asarray(valid_means, dtype=np.float64)
    if len(train) < 10 or len(valid) < 10:
        raise ValueError("need at least 10 training and 10 validation tracks to fit the not-music detector")
    mean, std = train.mean(0), train.std(0)
    live = std >= DEAD_STD
    z = (train[:, live] - mean[live]) / std[live]
    candidates, best = [], None
    for s in shrinkages:
        det = NoveltyDetector(mean, std, live, _precision(z, s), float(s), np.inf)
        p_train = float(np.percentile(det.scores(train), percentile))
        p_valid = float(np.percentile(det.scores(valid), percentile))
        gap = abs(np.log(p_valid / p_train))
        candidates.append({"shrinkage": s, "train_p": round(p_train, 3), "valid_p": round(p_valid, 3),
                           "log_ratio": round(float(gap), 4)})
        if best is None or gap < best[0]:
            best = (gap, det, p_valid)
    _, det, threshold = best
    chosen = NoveltyDetector(det.mean, det.std, det.live, det.precision, det.shrinkage, threshold)
    report = {"method": "Mahalanobis distance of the track mean over live columns, shrunk correlation",
              "percentile": percentile, "live_columns": int(live.sum()), "shrinkage": chosen.shrinkage,
              "threshold": round(threshold, 4), "candidates": candidates,
              "n_train_tracks": len(train), "n_valid_tracks": len(valid)}
    return chosen, report
