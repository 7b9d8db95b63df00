"""Track-level classification metrics for the Metrics page and the model card.

Pure functions of (true labels, probability matrix); scikit-learn does the arithmetic so our
numbers agree with everyone else's.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.metrics import (
    accuracy_score,
    average_precision_score,
    confusion_matrix,
    f1_score,
    precision_recall_fscore_support,
    roc_auc_score,
)

from utils.constants import DEFAULT_THRESHOLD, GENRES


def reliability(confidence: np.ndarray, correct: np.ndarray, n_bins: int = 10) -> tuple[float, list[dict]]:
    """Expected calibration error of top-1 confidence, and the per-bin table behind it."""
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    table, ece, n = [], 0.0, len(confidence)
    for i in range(n_bins):
        lo, hi = edges[i], edges[i + 1]
        inside = (confidence > lo) & (confidence <= hi) if i else (confidence >= lo) & (confidence <= hi)
        count = int(inside.sum())
        acc = float(correct[inside].mean()) if count else None
        conf = float(confidence[inside].mean()) if count else None
        if count:
            ece += count / n * abs(acc - conf)
        table.append({"bin_lower": round(float(lo), 3), "bin_upper": round(float(hi), 3), "count": count,
                      "accuracy": acc, "confidence": conf})
    return float(ece), table


def classification_report(
    true: list[str],
    probabilities: np.ndarray,
    track_ids: list[str],
    labels: tuple[str, ...] = GENRES,
    threshold: float = DEFAULT_THRESHOLD,
) -> dict[str, Any]:
    """Every number the Metrics page shows, from true genres and (T, C) probabilities."""
    labels = tuple(labels)
    y = np.array([labels.index(g) for g in true])
    pred = probabilities.argmax(1)
    onehot = np.eye(len(labels))[y]
    p, r, f, s = precision_recall_fscore_support(y, pred, labels=range(len(labels)), zero_division=0)
    present = onehot.sum(0) > 0
    confidence = probabilities.max(1)
    ece, table = reliability(confidence, pred == y)
    tracks = []
    for i, tid in enumerate(track_ids):
        above = [labels[j] for j in np.argsort(-probabilities[i]) if probabilities[i, j] >= threshold]
        tracks.append({
            "track_id": tid,
            "true": labels[y[i]],
            "predicted": labels[pred[i]],
            "predicted_genres": above or [labels[pred[i]]],
            "confidence": round(float(confidence[i]), 5),
            "correct": bool(pred[i] == y[i]),
            "probabilities": {g: round(float(v), 5) for g, v in zip(labels, probabilities[i], strict=True)},
        })
    return {
        "n_tracks": len(true),
        "accuracy": float(accuracy_score(y, pred)),
        # averaged over genres that occur (true or predicted), as scikit-learn does by default, so a
        # subset without some genres is not penalised for them
        "macro_f1": float(f1_score(y, pred, average="macro", zero_division=0)),
        "weighted_f1": float(f1_score(y, pred, average="weighted", zero_division=0)),
        "mAP": float(average_precision_score(onehot[:, present], probabilities[:, present], average="macro")),
        "roc_auc": _roc_auc(onehot, probabilities, present),
        "ece": ece,
        "reliability": table,
        "threshold": threshold,
        "labels": list(labels),
        "per_genre": {
            g: {"precision": float(p[i]), "recall": float(r[i]), "f1": float(f[i]), "support": int(s[i])}
            for i, g in enumerate(labels)
        },
        "confusion_matrix": confusion_matrix(y, pred, labels=range(len(labels))).tolist(),
        "tracks": tracks,
    }


def _roc_auc(onehot: np.ndarray, probabilities: np.ndarray, present: np.ndarray) -> float | None:
    """Macro one-vs-rest ROC-AUC over genres that occur (None when it is undefined)."""
    cols = present & (onehot.sum(0) < len(onehot))
    if not cols.any():
        return None
    return float(roc_auc_score(onehot[:, cols], probabilities[:, cols], average="macro"))
