"""bench/bench_robustness.py keeps its contract: a selection model from a recipe, one JSON line last."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from models.classifier.bundle import read_card
from tests.helpers.bundles import make_test_bundle
from tests.helpers.data import shared_path

ROOT = Path(__file__).resolve().parents[2]


def test_the_bench_builds_the_selection_model_of_a_recipe_and_ends_with_its_json(tmp_path: Path) -> None:
    pytest.importorskip("musicnn", reason="needs the musicnn wheel's weights (pip install --no-deps musicnn==0.1.0)")
    shared_path("data", "gtzan_mini")
    shared_path("data", "gtzan_musicnn_pool")
    target = make_test_bundle(tmp_path, "record-here")
    out = subprocess.run(
        [sys.executable, "bench/bench_robustness.py", "--recipe", "docs/recipes/msd-musicnn-v5-robust.json",
         "--clips", "2", "--only", "gain_-20dB", "speed_+6%", "--record-in", str(target), "--json"],
        cwd=ROOT, capture_output=True, text=True, timeout=600, check=True,
    ).stdout.strip().splitlines()
    summary = json.loads(out[-1])
    assert summary["model"] == "msd-musicnn-v5-robust-select" and summary["clips"] == 2
    assert set(summary["accuracy"]) == {"gain_-20dB"} and 0.0 <= summary["clean_accuracy"] <= 1.0
    # the speed change is a context row: reported, but not in the mean drop
    assert set(summary["context_accuracy"]) == {"speed_+6%"}
    assert summary["mean_drop_points"] == pytest.approx(100 * (summary["clean_accuracy"]
                                                               - summary["accuracy"]["gain_-20dB"]))
    assert sum(summary["verdicts"]["clean"].values()) == 2 and sum(summary["verdicts"]["speed_+6%"].values()) == 2
    # --record-in: the same numbers in the card, for the Metrics page, with the command that made them
    entry = read_card(target).evaluation["robustness"]
    assert entry["mean_drop_points"] == summary["mean_drop_points"] and entry["clips"] == 2
    assert entry["context_accuracy"] == summary["context_accuracy"] and entry["selection_model"] is True
    assert entry["evaluated_model"] == "msd-musicnn-v5-robust-select" and "--record-in" in entry["command"]


def test_a_missing_record_target_is_refused_before_the_run() -> None:
    done = subprocess.run([sys.executable, "bench/bench_robustness.py", "--record-in", "no-such-version"],
                          cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and "--record-in" in done.stderr


def test_a_checkpoint_and_a_recipe_together_are_refused() -> None:
    done = subprocess.run([sys.executable, "bench/bench_robustness.py", "--checkpoint", "x", "--recipe", "y.json"],
                          cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and "not allowed with argument" in done.stderr
