"""The shrinkage-LDA solver of the pooled head (v4): exactness, weights, calibration, training, bundles."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from sklearn.discriminant_analysis import LinearDiscriminantAnalysis

from models.classifier.bundle import ModelCard, load_bundle, save_bundle
from models.classifier.pooled_head import PooledHead
from models.training.config import TrainConfig
from models.training.data import one_hot, track_probabilities
from models.training.linear_fit import fit_lda_weights, fit_platt, standardised_means
from models.training.loop import train
from tests.helpers.data import synthetic_table
from utils.constants import GENRES

LDA = TrainConfig.from_dict(dict(arch="pooled", hidden=0, dropout=0.0, members=1, solver="lda"))


def _blobs(seed: int = 0, n: int = 40, dim: int = 6) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = np.repeat(np.arange(3), n)
    x = rng.normal(0, 1, (3, dim))[y] + rng.normal(0, 1, (len(y), dim)) @ rng.normal(0, 0.7, (dim, dim))
    return x, y


def test_unweighted_lda_is_scikit_learns_shrinkage_lda() -> None:
    x, y = _blobs()
    coef, bias = fit_lda_weights(x, np.eye(3)[y], np.ones(len(y)), np.ones(x.shape[1], bool))
    ref = LinearDiscriminantAnalysis(solver="lsqr", shrinkage="auto").fit(x, y)
    np.testing.assert_allclose(coef, ref.coef_, rtol=1e-8, atol=1e-10)
    np.testing.assert_allclose(bias, ref.intercept_, rtol=1e-8, atol=1e-10)


def test_lda_weights_count_and_dead_columns_get_no_weight() -> None:
    x, y = _blobs(seed=1)
    x = np.c_[x, np.zeros(len(y))]  # a column constant in training
    live = np.r_[np.ones(6, bool), False]
    flat = fit_lda_weights(x, np.eye(3)[y], np.ones(len(y)), live)
    heavy = fit_lda_weights(x, np.eye(3)[y], np.where(y == 2, 4.0, 1.0), live)
    assert np.all(flat[0][:, -1] == 0) and np.all(heavy[0][:, -1] == 0)
    assert heavy[1][2] - flat[1][2] > heavy[1][0] - flat[1][0] + 0.5  # a heavier genre gets a larger prior
    skew = np.where(np.arange(len(y)) % 2 == 0, 10.0, 1.0)  # weighted class means move the boundary
    assert not np.allclose(fit_lda_weights(x, np.eye(3)[y], skew, live)[0], flat[0])


def test_platt_recovers_a_known_slope_and_offset() -> None:
    rng = np.random.default_rng(0)
    z = rng.normal(0, 6, (20000, 10))
    t = (rng.random(z.shape) < 1 / (1 + np.exp(-(0.2 * z - 1.0)))).astype(float)
    a, b = fit_platt(z, t)
    assert a == pytest.approx(0.2, abs=0.01) and b == pytest.approx(-1.0, abs=0.05)


def test_lda_solver_learns_deterministically_calibrates_and_keeps_lda_rankings() -> None:
    table = synthetic_table(n_per_genre=8, dim=12, seed=1, spread=1.0)
    first, second = train(table, LDA, val_ids=[]), train(table, LDA, val_ids=[])
    for a, b in zip(first.model.state_dict().values(), second.model.state_dict().values(), strict=True):
        assert torch.equal(a, b)  # closed form, no seeds
    assert first.temperature != 1.0 and float(first.model.temperature) == pytest.approx(first.temperature)
    held_out = synthetic_table(n_per_genre=3, dim=12, seed=1, spread=1.0).tracks()
    probs = track_probabilities(first.model, held_out, table.frame_seconds, 3)
    assert (probs.argmax(1) == [GENRES.index(t.genre) for t in held_out]).mean() >= 0.9
    # the calibration is one shared slope and offset: every track mean ranks genres as plain LDA does
    tracks = table.tracks()
    x = standardised_means(first.model, tracks)
    live = (first.model.input_std < 1e5).numpy()
    coef, bias = fit_lda_weights(x, one_hot([t.genre for t in tracks]), np.ones(len(tracks)), live)
    head = first.model.head
    ours = x @ head.weight.detach().double().numpy().T + head.bias.detach().double().numpy()
    assert np.array_equal(ours.argsort(1), (x @ coef.T + bias).argsort(1))


def test_lda_takes_weighted_corrections_and_unknown_solvers_are_refused() -> None:
    table = synthetic_table(n_per_genre=6, dim=12, seed=2, spread=1.0)
    tracks = table.tracks()
    relabelled = replace(tracks[0], track_id="fix-1", genre="metal")  # a user says: this one is metal
    base = train(table, LDA, val_ids=[]).model
    fixed = train(table, LDA, val_ids=[], extra=[(relabelled, 20.0)]).model
    before, after = (track_probabilities(m, [relabelled], table.frame_seconds, 3)[0] for m in (base, fixed))
    assert after[GENRES.index("metal")] > before[GENRES.index("metal")]
    with pytest.raises(ValueError, match="Unknown solver 'ldaa'"):
        train(table, replace(LDA, solver="ldaa"), val_ids=[])


def test_an_lda_bundle_round_trips(tmp_path: Path) -> None:
    table = synthetic_table(n_per_genre=4, dim=12, seed=3)
    result = train(table, LDA, val_ids=[])
    card = ModelCard(version="lda", labels=list(GENRES), classifier={},
                     embedder={"name": "synthetic", "id": "synthetic/12", "options": {}})
    model, _ = load_bundle(save_bundle(result.model, card, tmp_path))
    assert isinstance(model, PooledHead)
    x = torch.randn(3, 3, 2, 12)
    torch.testing.assert_close(model(x).logits, result.model(x).logits)
