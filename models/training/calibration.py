"""Temperature scaling, fitted on tracks the model never trained on (validation or out-of-fold).
"""

from __future__ import annotations

import numpy as np
import torch
from torch.nn import functional as F

from models.classifier.predict import combine_windows, predict_windows
from models.training.config import MemberResult
from models.training.data import grid_windows, one_hot
from utils.constants import GENRES
from utils.tables import TrackFrames


def fit_temperature(logits: np.ndarray, targets: np.ndarray) -> float:
    """Temperature minimising BCE of sigmoid(logits / T) on validation (a 1-D search in log T)."""
    z = torch.from_numpy(logits).double()
    y = torch.from_numpy(targets).double()
    grid = np.exp(np.linspace(np.log(0.25), np.log(8.0), 241))
    losses = [F.binary_cross_entropy_with_logits(z / t, y).item() for t in grid]
    return float(grid[int(np.argmin(losses))])


def _out_of_fold(
    results: list[MemberResult], by_id: dict[str, TrackFrames], frame_s: float, f: int,
) -> tuple[float, float]:
    """Out-of-fold accuracy and the ensemble's temperature, from the members' validation tracks.

    Every validation track is predicted by the members that held it out (their window
    probabilities averaged, as the ensemble averages them); the temperature is fitted on those
    windows, the accuracy counted on the tracks the windows combine into.
    """
    held: dict[str, list[np.ndarray]] = {}
    for r in results:
        for t in r.val_ids:
            x, m = grid_windows(by_id[t], frame_s, f)
            held.setdefault(t, []).append(predict_windows(r.model, x, m).probabilities)
    if not held:
        return float("nan"), float("nan")
    probs = {t: np.mean(ps, axis=0) for t, ps in held.items()}
    hits = [GENRES[int(combine_windows(p).argmax())] in by_id[t].genre.split("|") for t, p in probs.items()]
    windows = np.concatenate(list(probs.values()))
    targets = np.concatenate([np.repeat(one_hot([by_id[t].genre]), len(p), axis=0) for t, p in probs.items()])
    p = np.clip(windows, 1e-7, 1 - 1e-7)
    return float(np.mean(hits)), fit_temperature(np.log(p / (1 - p)), targets)
