"""The Metrics page's table of test tracks, from a metrics.json report (no Streamlit, so it is unit-tested).

"Genres above threshold" is computed here from each track's probabilities and the model's own decision
threshold, the same rule as the Analyze verdict (models/verdict.py): a genre is listed only at or above it.
"""

from __future__ import annotations

from typing import Any

import pandas as pd

COLUMNS = ["track", "true", "predicted", "confidence", "correct", "genres above threshold"]


def genres_at(track: dict[str, Any], threshold: float) -> str:
    """Every genre of a test track at or above `threshold`, best first, or "none".

    Read from the track's probabilities: the stored `predicted_genres` falls back to the top genre when none
    reaches the threshold (utils/metrics.py), which would show "blues" for a track at 47 % under a 50 % one.
    """
    probs = track.get("probabilities")
    if isinstance(probs, dict) and probs:
        above = [g for g, p in sorted(probs.items(), key=lambda gp: -gp[1]) if p >= threshold]
    else:  # an older report: trust its list only when the top genre itself reaches the threshold
        above = list(track.get("predicted_genres", [])) if track.get("confidence", 0.0) >= threshold else []
    return ", ".join(above) or "none"


def track_table(metrics: dict[str, Any], threshold: float | None = None) -> pd.DataFrame:
    """The per-track test results as a table; genres above `threshold` (default: the report's own)."""
    threshold = float(metrics.get("threshold", 0.5)) if threshold is None else threshold
    rows = [{"track": t["track_id"], "true": t["true"], "predicted": t["predicted"], "confidence": t["confidence"],
             "correct": t["correct"], "genres above threshold": genres_at(t, threshold)}
            for t in metrics.get("tracks", [])]
    return pd.DataFrame(rows, columns=COLUMNS)
