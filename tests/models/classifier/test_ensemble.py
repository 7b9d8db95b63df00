"""Ensembles: they average what their members say, round-trip as bundles and train on disjoint folds."""

import numpy as np
import pytest
import torch

from models.classifier.bundle import CheckpointError, ModelCard, load_bundle, save_bundle, update_card
from models.classifier.ensemble import GenreEnsemble, build_classifier, classifier_spec
from models.classifier.parallel_cnn import ClassifierConfig, ParallelCNN
from models.training.config import TrainConfig
from models.training.evaluation import evaluate_table
from models.training.loop import train
from models.training.splits import member_splits, track_blocks
from tests.helpers.data import synthetic_table
from utils.constants import GENRES


def _members(n: int, dim: int = 8) -> GenreEnsemble:
    torch.manual_seed(0)
    members = [ParallelCNN(ClassifierConfig(input_dim=dim, channels=8, hidden=16)).eval() for _ in range(n)]
    for k, m in enumerate(members):
        m.temperature.fill_(1.0 + k)  # calibrated differently, as trained members are
    return GenreEnsemble(members).eval()


def test_outputs_are_the_members_mean_probabilities() -> None:
    ens = _members(3)
    x = torch.randn(5, 3, 4, 8)
    mask = torch.ones(5, 3, 4, dtype=torch.bool)
    mask[0, 2, 2:] = False
    with torch.no_grad():
        outs = [m(x, mask) for m in ens.members]
        got = ens(x, mask)
    expected = torch.stack([torch.sigmoid(o.logits) for o in outs]).mean(0)
    torch.testing.assert_close(torch.sigmoid(got.logits), expected)
    torch.testing.assert_close(torch.sigmoid(got.slice_logits),
                               torch.stack([torch.sigmoid(o.slice_logits) for o in outs]).mean(0))
    torch.testing.assert_close(got.attention, torch.stack([o.attention for o in outs]).mean(0))
    torch.testing.assert_close(got.attention.sum(1), torch.ones(5))
    ens.temperature.fill_(2.0)  # the ensemble's own calibration divides the averaged log-odds
    with torch.no_grad():
        hot = ens(x, mask)
    torch.testing.assert_close(torch.sigmoid(hot.logits * 2.0), expected)
    torch.testing.assert_close(hot.attention, got.attention)


def test_members_must_share_an_architecture() -> None:
    with pytest.raises(ValueError, match="one architecture"):
        GenreEnsemble([ParallelCNN(ClassifierConfig(input_dim=8)), ParallelCNN(ClassifierConfig(input_dim=9))])
    with pytest.raises(ValueError, match="at least one"):
        build_classifier({"input_dim": 8, "members": 0})


def test_an_ensemble_bundle_round_trips_and_refuses_a_card_that_lies(tmp_path) -> None:
    ens = _members(2)
    card = ModelCard(version="e1", labels=list(GENRES), classifier={},
                     embedder={"name": "synthetic", "id": "synthetic/v1", "options": {}})
    folder = save_bundle(ens, card, tmp_path)
    model, card = load_bundle(folder)
    assert isinstance(model, GenreEnsemble) and card.classifier == classifier_spec(ens)
    assert card.classifier["members"] == 2
    x = torch.randn(2, 3, 4, 8)
    with torch.no_grad():
        torch.testing.assert_close(model(x).logits, ens(x).logits)
    update_card(folder, lambda c: c.classifier.__setitem__("members", 3))  # weights hold two members
    with pytest.raises(CheckpointError, match="do not fit"):
        load_bundle(folder)


def test_member_splits_hold_out_disjoint_whole_blocks_of_every_track() -> None:
    table = synthetic_table(n_per_genre=20, dim=4, seed=0)
    cfg = TrainConfig(members=7, member_folds=5, val_block=4)
    splits = member_splits(table, cfg)
    ids = set(table.track_ids())
    assert len(splits) == 7
    for tr, va in splits:
        assert set(tr) | set(va) == ids and not set(tr) & set(va)
    first_round = [set(va) for _, va in splits[:5]]
    assert set().union(*first_round) == ids and sum(map(len, first_round)) == len(ids)  # a partition
    blocks = track_blocks(sorted(ids), 4)
    for _, va in splits:
        held = {blocks[t] for t in va}
        assert all(t in va for t in ids if blocks[t] in held)  # blocks never split across train/val
    assert set(splits[5][1]) != set(splits[0][1])  # the second round reshuffles
    assert member_splits(table, TrainConfig(members=1))[0] == member_splits(table, TrainConfig(members=1))[0]
    given = member_splits(table, TrainConfig(members=3), val_ids=["blues.00000"])
    assert all(va == ["blues.00000"] for _, va in given)


def test_training_an_ensemble_learns_and_reports_out_of_fold_validation() -> None:
    table = synthetic_table(n_per_genre=6, seed=0)
    test = synthetic_table(n_per_genre=3, seed=0)  # same genre means; fresh noise below
    test.vectors = test.vectors + np.random.default_rng(5).normal(0, 0.3, test.vectors.shape).astype(np.float32)
    cfg = TrainConfig.from_dict(dict(epochs=8, patience=8, lr=5e-3, warmup_epochs=1, channels=16, hidden=32,
                                     windows_per_track=4, batch_size=16, members=3, member_folds=3))
    rows = []
    result = train(table, cfg, log=rows.append)
    assert isinstance(result.model, GenreEnsemble) and len(result.model.members) == 3
    assert [r["member"] for r in rows] == sorted(r["member"] for r in rows) and rows[-1]["member"] == 3
    fields = result.card_fields()
    assert len(fields["members"]) == 3 and fields["n_val_tracks"] == 60  # every track held out once
    assert 0.0 <= result.val_accuracy <= 1.0
    assert 0.25 <= result.temperature <= 8 and float(result.model.temperature) == result.temperature
    assert evaluate_table(result.model, test)["accuracy"] >= 0.8  # chance is 0.1
    single = evaluate_table(result.members[0].model, test)["accuracy"]
    assert single >= 0.5 and np.isfinite(single)
