"""bench/bench_shift_sizes.py measures what the README says the pitch and tempo rows measure."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers.data import shared_path

ROOT = Path(__file__).resolve().parents[2]


def test_a_vocoder_half_semitone_moves_a_track_further_than_a_resampled_six_percent_speed_change() -> None:
    pytest.importorskip("musicnn", reason="needs the musicnn wheel's weights (pip install --no-deps musicnn==0.1.0)")
    shared_path("data", "gtzan_mini")
    shared_path("data", "gtzan_musicnn_pool")
    out = subprocess.run(
        [sys.executable, "bench/bench_shift_sizes.py", "--clips", "1", "--only", "pitch_+0.5", "speed_+6%", "--json"],
        cwd=ROOT, capture_output=True, text=True, timeout=600, check=True,
    ).stdout.strip().splitlines()
    summary = json.loads(out[-1])
    assert summary["clips"] == 1 and 5.0 < summary["median_track_gap"] < 50.0
    vocoder, resampled = summary["changes"]["pitch_+0.5"], summary["changes"]["speed_+6%"]
    assert vocoder["median_shift"] == pytest.approx(vocoder["mean_shift"])  # one clip: its shift is the mean
    assert vocoder["median_shift"] > 2 * resampled["median_shift"] > 0  # the smearing, not the pitch change
