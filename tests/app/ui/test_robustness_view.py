"""The Metrics page's everyday-audio table reads the bench's record faithfully."""

from __future__ import annotations

import pytest

from app.ui.robustness_view import LABELS, robustness_table
from utils.degrade import DEGRADATIONS, SPEED_CHANGES


def test_rows_give_accuracy_drop_and_whether_they_count() -> None:
    entry = {"clean_accuracy": 0.84, "mean_drop_points": 7.0,
             "accuracy": {"mp3_64k": 0.84, "pitch_+1": 0.70}, "context_accuracy": {"speed_+6%": 0.82}}
    table = robustness_table(entry)
    assert list(table["condition"]) == ["clean", "MP3 64 kbps", "pitch +1 semitone (phase vocoder)",
                                        "speed +6 % (pitch and tempo, resampled)"]
    assert list(table["drop (points)"]) == pytest.approx([0.0, 0.0, 14.0, 2.0])
    assert list(table["in the mean"]) == ["", "yes", "yes", "no: context"]


def test_every_bench_condition_has_a_label() -> None:
    assert set(DEGRADATIONS) | set(SPEED_CHANGES) == set(LABELS)
