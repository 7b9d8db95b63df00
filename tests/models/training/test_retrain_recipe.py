"""A retrain keeps its parent's recipe: its validation (a final fit stays one) and its same-run baseline."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from models.classifier.bundle import ModelCard, read_card, save_bundle, set_current
from models.training.loop import train
from models.training.retrain import _fit_on_everything, retrain
from tests.helpers.retrain import add_correction, card_for, corrected_world
from utils.feedback import FeedbackStore


@pytest.mark.parametrize(("training", "final"), [
    ({"val_tracks": []}, True),  # v3-v5: `train --no-validation`
    ({"val_tracks": ["a", "b"]}, False),  # v1: its own validation split
    ({"members": [{"val_tracks": []}, {"val_tracks": []}]}, True),  # a final-fit ensemble
    ({"members": [{"val_tracks": ["a"]}, {"val_tracks": ["b"]}]}, False),  # v2: members on folds
    ({}, False),  # a card from before the lists: a fresh split, as before
])
def test_a_final_fit_is_told_by_empty_validation_lists(training: dict, final: bool) -> None:
    card = ModelCard(version="x", labels=[], embedder={}, classifier={}, training=training)
    assert _fit_on_everything(card) is final


def test_a_final_fit_parent_retrains_on_every_base_track(world: dict, tmp_path: Path) -> None:
    """v5 (`train --no-validation`, early_stopping still on in its config) was retrained on a fresh 85 % split:
    every retrain learned from 130 fewer base tracks than its parent."""
    from models.training.config import TrainConfig

    cfg = TrainConfig.from_dict(dict(arch="pooled", hidden=0, dropout=0.0, members=1, solver="lda"))
    assert cfg.early_stopping
    parent = train(world["table"], cfg, val_ids=[])  # the final fit, as the shipped recipe does it
    root = tmp_path / "ckpt"
    card = card_for("final", world["table"])
    card.training = {"data": "train.npz", "data_sha256": world["table"].fingerprint(), "config": cfg.to_dict(),
                     **parent.card_fields()}
    assert card.training["val_tracks"] == [] and card.training["n_train_tracks"] == len(world["table"].track_ids())
    save_bundle(parent.model, card, root)
    set_current("final", root)
    store = FeedbackStore(f"sqlite:///{tmp_path / 'fb.sqlite3'}")
    for k, (e, s) in enumerate(world["tracks"][:4]):
        add_correction(store, e, s, world["target"], "final", k)

    res = retrain(store, world["table"], None, root=root)

    new = read_card(res.folder).training
    assert new["val_tracks"] == [] and new["n_train_tracks"] == card.training["n_train_tracks"]


def test_a_retrain_reuses_its_parents_baseline_only_when_the_data_are_the_same(
        world: dict, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The baseline's grid search kept a retrain at "92 %" for minutes, to refit numbers the parent holds."""
    from models.training import evaluation
    from models.training.evaluation import evaluate_and_record

    root, _, store = corrected_world(world, tmp_path, 4)
    parent = evaluate_and_record(root / "base", world["test"], world["table"], world["cfg"].seed)
    steps: list[str] = []

    def no_refit(*_a, **_k):
        raise AssertionError("the baseline was fitted again")

    monkeypatch.setattr(evaluation, "fit_baseline", no_refit)
    res = retrain(store, world["table"], None, test=world["test"], root=root, progress=lambda f, m: steps.append(m))
    metrics = json.loads((res.folder / "metrics.json").read_text())
    assert metrics["baseline"] == parent["baseline"]
    assert any(m.startswith(("Promoting", "Not promoting")) and "test metrics" in m for m in steps), steps

    other = world["table"].subset(world["table"].track_ids()[:-1])  # another base table: fitted afresh
    assert evaluation.recorded_baseline(root / "base", other, world["test"], world["cfg"].seed) is None
    assert evaluation.recorded_baseline(root / "base", world["table"], world["test"], world["cfg"].seed + 1) is None
    assert evaluation.recorded_baseline(root / "base", world["table"], other, world["cfg"].seed) is None
