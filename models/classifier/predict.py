"""Running the classifier on windows and combining windows into a track prediction.

Shared by the engine and by evaluation, so the numbers on the Metrics page are computed exactly
the way the Analyze page computes a prediction.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from models.classifier.ensemble import Classifier
from models.precision import autocast


@dataclass(frozen=True)
class WindowPredictions:
    """Classifier outputs for W windows as numpy arrays."""

    probabilities: np.ndarray  # (W, C)
    attention: np.ndarray  # (W, 3)
    slice_probabilities: np.ndarray  # (W, 3, C)


def predict_windows(
    model: Classifier,
    windows: np.ndarray,
    mask: np.ndarray | None = None,
    batch_size: int = 256,
) -> WindowPredictions:
    """Sigmoid probabilities, attention and slice probabilities for (W, 3, F, D) windows."""
    device = next(model.parameters()).device
    probs, attn, slices = [], [], []
    with torch.inference_mode(), autocast(device):
        for a in range(0, len(windows), batch_size):
            x = torch.from_numpy(np.ascontiguousarray(windows[a : a + batch_size])).to(device)
            m = None if mask is None else torch.from_numpy(mask[a : a + batch_size]).to(device)
            out = model(x, m)
            probs.append(torch.sigmoid(out.logits.float()).cpu().numpy())
            attn.append(out.attention.float().cpu().numpy())
            slices.append(torch.sigmoid(out.slice_logits.float()).cpu().numpy())
    return WindowPredictions(np.concatenate(probs), np.concatenate(attn), np.concatenate(slices))


def combine_windows(window_probabilities: np.ndarray) -> np.ndarray:
    """Track probabilities: windows averaged with weights equal to their confidence (max probability).

    Confident windows (a clear chorus) count more than ambiguous ones (an intro, a break).
    """
    p = np.asarray(window_probabilities, dtype=np.float64)
    weights = p.max(axis=1)
    weights = weights / max(float(weights.sum()), 1e-12)
    return (weights[:, None] * p).sum(axis=0)
