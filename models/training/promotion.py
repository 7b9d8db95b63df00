"""The promotion guard of retraining: is a candidate at least as good as the current model?

It never looks at the test split, which is for reported numbers only. It judges on:
- a validation table the current model never trained on (a model chosen on `valid` keeps it), by
  track accuracy within `margin` points; or, for a model that trained on every labelled track,
- held-out corrections: the newest corrections are kept out of the candidate's training, and it must
  get them right at least as often as the current model (within `margin` points).
Either way, a per-genre check follows on the validation table, or else on the base training tracks:
no genre's recall may drop by more than `max_recall_drop` points.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from models.classifier.ensemble import Classifier
from models.classifier.predict import combine_windows, predict_windows
from models.training.data import grid_windows
from models.training.evaluation import evaluate_table
from utils.constants import GENRES
from utils.tables import EmbeddingTable, TrackFrames
from utils.text import plural

MAX_RECALL_DROP = 10.0  # points
HELD_OUT_SHARE = 0.25  # of the new corrections, the newest, when no validation table exists


@dataclass
class GuardDecision:
    """What the guard measured and decided, in words and numbers."""

    promoted: bool
    reason: str
    judged_on: str  # "validation tracks" or "held-out corrections"
    new_accuracy: float
    current_accuracy: float
    new_macro_f1: float = float("nan")
    current_macro_f1: float = float("nan")
    recall_drops: dict[str, float] = field(default_factory=dict)  # genre -> points lost (positive = worse)


def held_out_ids(new: list[tuple[int, str]], has_validation: bool) -> list[int]:
    """Which new corrections, given as (id, audio sha256), to keep out of training: every correction of the
    newest quarter of the new audios. None with a validation table, or with fewer than 2 new audios.

    It counts audios, not corrections: all corrections of one audio stay out together (a copy trained on
    would leak it), so holding out by correction let two corrections of one song hold each other out at
    every retrain, and nothing was ever learned from them.
    """
    if has_validation:
        return []
    newest: dict[str, int] = {}
    for cid, audio in new:
        newest[audio] = max(cid, newest.get(audio, cid))
    if len(newest) < 2:
        return []
    n = max(1, int(len(newest) * HELD_OUT_SHARE))
    held = set(sorted(newest, key=newest.__getitem__)[-n:])
    return sorted(cid for cid, audio in new if audio in held)


def correction_accuracy(
    model: Classifier, items: list[tuple[list[str], list[TrackFrames]]], frame_s: float,
) -> float:
    """Share of corrections whose corrected genre is the model's top genre over the correction's windows."""
    if not items:
        return float("nan")
    hits = []
    for genres, windows in items:
        probs = [predict_windows(model, *grid_windows(w, frame_s)).probabilities for w in windows]
        hits.append(GENRES[int(combine_windows(np.concatenate(probs)).argmax())] in genres)
    return float(np.mean(hits))


def per_genre_recall_drops(candidate: Classifier, parent: Classifier, table: EmbeddingTable) -> dict[str, float]:
    """Points of recall each genre loses from parent to candidate on `table` (negative: it gains)."""
    new, cur = evaluate_table(candidate, table), evaluate_table(parent, table)
    return {g: 100.0 * (cur["per_genre"][g]["recall"] - new["per_genre"][g]["recall"])
            for g in GENRES if cur["per_genre"].get(g, {}).get("support", 0) > 0}


def judge(
    candidate: Classifier,
    parent: Classifier,
    names: tuple[str, str],
    *,
    validation: EmbeddingTable | None,
    base: EmbeddingTable,
    held_out: list[tuple[list[str], list[TrackFrames]]],
    margin: float,
    max_recall_drop: float = MAX_RECALL_DROP,
) -> GuardDecision:
    """Decide promotion; `names` = (candidate version, current version)."""
    version, parent_version = names
    if validation is not None:
        new, cur = evaluate_table(candidate, validation), evaluate_table(parent, validation)
        judged_on = f"{len(validation.track_ids())} validation tracks"
        new_acc, cur_acc = new["accuracy"], cur["accuracy"]
        f1 = (new["macro_f1"], cur["macro_f1"])
    else:
        judged_on = plural(len(held_out), "held-out correction")
        new_acc = correction_accuracy(candidate, held_out, base.frame_seconds)
        cur_acc = correction_accuracy(parent, held_out, base.frame_seconds)
        f1 = (float("nan"), float("nan"))
    drops = per_genre_recall_drops(candidate, parent, validation if validation is not None else base)
    worst = max(drops.items(), key=lambda kv: kv[1], default=("", 0.0))
    floor = cur_acc - margin / 100.0
    if not np.isfinite(new_acc):  # nothing held out (a single new correction): the per-genre check alone
        accuracy_ok, accuracy_text = True, "no correction could be held out, so only the per-genre check applies"
    else:
        accuracy_ok = new_acc >= floor - 1e-9
        accuracy_text = (f"accuracy on {judged_on} {new_acc:.1%} vs {cur_acc:.1%} for {parent_version} "
                         f"({(new_acc - cur_acc) * 100:+.1f} points; at least {max(floor, 0.0):.1%} needed)")
    recall_ok = worst[1] <= max_recall_drop + 1e-9
    recall_text = (f"no genre lost more than {max_recall_drop:g} points of recall" if recall_ok else
                   f"{worst[0]} recall fell {worst[1]:.1f} points (at most {max_recall_drop:g} allowed)")
    promoted = accuracy_ok and recall_ok
    head = f"{version} is now current" if promoted else f"Kept {parent_version}; {version} stays selectable"
    return GuardDecision(promoted, f"{head}: {accuracy_text}; {recall_text}. The test split was not used.",
                         judged_on, float(new_acc), float(cur_acc), float(f1[0]), float(f1[1]), drops)
