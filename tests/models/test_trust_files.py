"""Damaged or out-of-range bundle files fall back to defaults (or one CheckpointError), never a page crash."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from models.classifier.bundle import CheckpointError, list_versions, read_card
from models.novelty import NOVELTY_FILE, fit_detector
from models.trust import TRUST_FILE, inherit_trust, load_trust, save_trust
from utils.constants import DEFAULT_THRESHOLD


@pytest.mark.parametrize("threshold", [math.nan, 0.0, -1.0, 1.2, "0.3x"])
def test_a_threshold_that_is_no_probability_is_ignored(tmp_path: Path, threshold: object) -> None:
    (tmp_path / TRUST_FILE).write_text(json.dumps({"threshold": threshold}))
    trust = load_trust(tmp_path)
    assert trust.threshold == DEFAULT_THRESHOLD and trust.report is None
    assert not inherit_trust(tmp_path, tmp_path / "child"), "nothing unusable is passed on"


def test_a_truncated_detector_is_ignored_and_the_threshold_kept(tmp_path: Path) -> None:
    means = np.random.default_rng(0).normal(0, 1, (40, 4))
    save_trust(tmp_path, fit_detector(means[:20], means[20:])[0], {"threshold": 0.3})
    assert load_trust(tmp_path).detector is not None
    data = (tmp_path / NOVELTY_FILE).read_bytes()
    (tmp_path / NOVELTY_FILE).write_bytes(data[: len(data) // 2])
    trust = load_trust(tmp_path)
    assert trust.threshold == 0.3 and trust.detector is None


@pytest.mark.parametrize("content", [b"\xff\xfe not utf-8", b"[1, 2]", b"{\"version\": ", b"null"])
def test_a_damaged_card_is_one_checkpoint_error(tmp_path: Path, content: bytes) -> None:
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "card.json").write_bytes(content)
    with pytest.raises(CheckpointError, match="is not valid"):
        read_card(tmp_path / "bad")
    assert list_versions(tmp_path) == [], "skipped, not fatal to the version list every page reads"


def test_the_dashboard_clamps_a_valid_threshold_into_its_sliders_range(tmp_path: Path, monkeypatch) -> None:
    from app.ui import state
    from models.trust import MAX_THRESHOLD
    from tests.helpers.bundles import make_test_bundle

    folder = make_test_bundle(tmp_path)
    (folder / TRUST_FILE).write_text(json.dumps({"threshold": 0.99}))
    monkeypatch.setenv("GENRE_LENS_CHECKPOINTS", str(tmp_path))
    assert load_trust(folder).threshold == 0.99  # the CLI answers at it
    assert state.default_threshold(folder.name) == MAX_THRESHOLD  # the slider cannot show 0.99


@pytest.mark.parametrize("content", [b"garbage", b"\xff\xfe", b"[1]", b"{}"])
def test_an_unreadable_trust_file_is_said_not_silently_dropped(tmp_path: Path, content: bytes, caplog) -> None:
    """`garbage` in trust.json switched the not-music detector off without a word (novelty.npz already warned)."""
    (tmp_path / TRUST_FILE).write_bytes(content)
    with caplog.at_level("WARNING", logger="genre_lens.trust"):
        trust = load_trust(tmp_path)
    assert trust.threshold == DEFAULT_THRESHOLD and trust.detector is None
    assert [r.getMessage() for r in caplog.records] == [
        f"ignoring the unreadable trust settings {tmp_path / TRUST_FILE}: using the default threshold and no "
        "not-music detector"]


def test_a_bundle_without_trust_files_gets_the_defaults_quietly(tmp_path: Path, caplog) -> None:
    with caplog.at_level("WARNING", logger="genre_lens.trust"):
        assert load_trust(tmp_path).report is None
    assert not caplog.records, "v1 and v2 have no trust files by design"
