"""The verdict of an analysis, "genre", "uncertain" or "not_music", and how its threshold is chosen.

One rule for the engine, the CLI, the pages and the metrics:
- `not_music`: the not-music detector (models/novelty.py) finds the track farther from the training
  music than almost every unseen GTZAN track;
- `genre`: otherwise, at least one genre's probability reaches the decision threshold;
- `uncertain`: music, but no genre reaches it; the closest genres are named, never claimed.

The default threshold is chosen on validation tracks (never the test split) as the one that maximises
"right answers minus wrong answers" of the tracks it answers: a genre is named only where, at that
confidence, it is more often right than wrong. `selective_curve` gives accuracy against coverage for
every threshold, which the Metrics page draws.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

GENRE, UNCERTAIN, NOT_MUSIC = "genre", "uncertain", "not_music"
VERDICTS = (GENRE, UNCERTAIN, NOT_MUSIC)
THRESHOLD_GRID = tuple(round(0.05 * k, 2) for k in range(1, 20))  # the sidebar slider's values


@dataclass(frozen=True)
class Verdict:
    """What the analysis concludes, with the numbers behind it."""

    kind: str  # one of VERDICTS
    genres: tuple[str, ...]  # genres at or above the threshold (empty unless kind == "genre")
    closest: tuple[tuple[str, float], ...]  # the two most likely genres, whatever the verdict
    threshold: float
    novelty: float | None = None  # distance from the training music (None: no detector)
    novelty_threshold: float | None = None
    genre_probabilities: tuple[float, ...] = ()  # the probability of each of `genres`, in the same order

    @property
    def text(self) -> str:
        """The verdict in words, as the CLI line, the Compare table and the Analysis page say it."""
        closest = ", ".join(f"{g} {p:.0%}" for g, p in self.closest)
        if self.kind == NOT_MUSIC:  # no percentages: a tone's "classical 100 %" would read as confidence
            forced = f" (forced to choose, it would say {self.closest[0][0]})" if self.closest else ""
            return f"Not music: far from every kind of music the model knows{forced}"
        if self.kind == UNCERTAIN:
            return f"Not sure: closest {closest}"
        return "Sounds like " + " + ".join(
            f"{g} {p:.0%}" for g, p in zip(self.genres, self.genre_probabilities, strict=True))

    def to_dict(self) -> dict:
        """JSON form: the top-level `verdict` of `analyze --json` is `kind`; this is its detail."""
        return {"kind": self.kind, "text": self.text, "genres": list(self.genres),
                "genre_probabilities": [round(p, 5) for p in self.genre_probabilities],
                "closest": [{"genre": g, "probability": round(p, 5)} for g, p in self.closest],
                "threshold": self.threshold,
                "novelty": None if self.novelty is None else round(self.novelty, 3),
                "novelty_threshold": None if self.novelty_threshold is None else round(self.novelty_threshold, 3)}


def decide(labels: Sequence[str], probabilities: np.ndarray, threshold: float,
           novelty: float | None = None, novelty_threshold: float | None = None) -> Verdict:
    """The verdict for one track's probabilities at a threshold, given its not-music distance."""
    p = np.asarray(probabilities, dtype=np.float64)
    order = np.argsort(-p, kind="stable")
    closest = tuple((labels[i], float(p[i])) for i in order[:2])
    above = tuple(i for i in order if p[i] >= threshold)
    if novelty is not None and novelty_threshold is not None and novelty > novelty_threshold:
        kind, above = NOT_MUSIC, ()
    else:
        kind = GENRE if above else UNCERTAIN
    return Verdict(kind, tuple(labels[i] for i in above), closest, float(threshold), novelty, novelty_threshold,
                   tuple(float(p[i]) for i in above))


def selective_curve(probabilities: np.ndarray, true_index: np.ndarray,
                    grid: Sequence[float] = THRESHOLD_GRID) -> list[dict]:
    """Per threshold: coverage (share of tracks answered) and accuracy of the top genre on those."""
    p = np.asarray(probabilities, dtype=np.float64)
    top, conf = p.argmax(1), p.max(1)
    right = top == np.asarray(true_index)
    rows = []
    for t in grid:
        answered = conf >= t
        n = int(answered.sum())
        rows.append({"threshold": float(t), "coverage": n / len(p), "answered": n,
                     "accuracy": float(right[answered].mean()) if n else None,
                     "net": int(right[answered].sum()) - int((~right[answered]).sum())})
    return rows


def choose_threshold(probabilities: np.ndarray, true_index: np.ndarray,
                     grid: Sequence[float] = THRESHOLD_GRID) -> tuple[float, list[dict]]:
    """The grid threshold with the most (right - wrong) answers; ties go to the lower (more answers)."""
    curve = selective_curve(probabilities, true_index, grid)
    best = max(curve, key=lambda r: (r["net"], -r["threshold"]))
    return best["threshold"], curve
