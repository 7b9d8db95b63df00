"""Training learns, is deterministic, keeps validation honest; metrics agree with scikit-learn."""

import numpy as np
import pytest
import torch
from sklearn.metrics import accuracy_score, confusion_matrix, f1_score

from models.training.baseline import baseline_probabilities, fit_baseline
from models.training.calibration import fit_temperature
from models.training.config import TrainConfig
from models.training.evaluation import evaluate_table
from models.training.loop import train
from models.training.splits import split_tracks
from tests.helpers.data import synthetic_table
from utils.constants import GENRES
from utils.metrics import classification_report, reliability

FAST = TrainConfig.from_dict(dict(
    epochs=12, patience=12, lr=5e-3, warmup_epochs=1, channels=16, hidden=32, windows_per_track=6, batch_size=16,
    members=1,
))


@pytest.fixture(scope="module")
def tables():
    return synthetic_table(n_per_genre=6, seed=0), synthetic_table(n_per_genre=3, seed=0)


def test_validation_split_is_by_track_and_stratified(tables):
    train_t, _ = tables
    tr, va = split_tracks(train_t, 0.2, seed=0)
    assert not set(tr) & set(va) and len(tr) + len(va) == 60
    assert sorted({v.split(".")[0] for v in va}) == sorted(GENRES)  # every genre in validation
    tr2, va2 = split_tracks(train_t, 0.2, seed=0, val_ids=["blues.00000", "rock.00001"])
    assert va2 == ["blues.00000", "rock.00001"] and len(tr2) == 58


def test_training_learns_a_separable_problem(tables):
    train_t, _ = tables
    test_t = synthetic_table(n_per_genre=3, seed=0)  # same genre means, fresh frames
    test_t = type(test_t)(
        test_t.vectors + np.random.default_rng(5).normal(0, 0.3, test_t.vectors.shape).astype(np.float32),
        test_t.track_id,
        test_t.genre,
        test_t.frame_start_s,
        test_t.meta,
    )
    result = train(train_t, FAST)
    report = evaluate_table(result.model, test_t, train_t)
    assert report["accuracy"] >= 0.8  # chance is 0.1
    assert report["baseline"]["accuracy"] >= 0.8
    assert len(result.history) >= 1 and 0.25 <= result.temperature <= 8


def test_same_seed_gives_identical_weights(tables):
    train_t, _ = tables
    cfg = TrainConfig.from_dict(dict(epochs=2, patience=2, channels=8, hidden=16, windows_per_track=2, members=2))
    a, b = train(train_t, cfg).model.state_dict(), train(train_t, cfg).model.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    c = train(train_t, TrainConfig.from_dict({**cfg.to_dict(), "seed": 1})).model.state_dict()
    assert not all(torch.equal(a[k], c[k]) for k in a)


def test_fit_temperature_recovers_an_overconfident_scale():
    rng = np.random.default_rng(0)
    true_logits = rng.normal(0, 2, (4000, 1))
    y = (rng.random((4000, 1)) < 1 / (1 + np.exp(-true_logits))).astype(float)
    assert fit_temperature(true_logits * 3, y) == pytest.approx(3.0, rel=0.1)


def test_report_agrees_with_scikit_learn():
    rng = np.random.default_rng(1)
    true = [GENRES[i] for i in rng.integers(0, 10, 200)]
    probs = rng.random((200, 10))
    y = np.array([GENRES.index(g) for g in true])
    probs[np.arange(200)[:120], y[:120]] += 1.0  # mostly right
    probs /= probs.max()
    rep = classification_report(true, probs, [f"t{i}" for i in range(200)])
    pred = probs.argmax(1)
    assert rep["accuracy"] == pytest.approx(accuracy_score(y, pred))
    assert rep["macro_f1"] == pytest.approx(f1_score(y, pred, average="macro"))
    assert rep["weighted_f1"] == pytest.approx(f1_score(y, pred, average="weighted"))
    assert rep["confusion_matrix"] == confusion_matrix(y, pred, labels=range(10)).tolist()
    assert sum(g["support"] for g in rep["per_genre"].values()) == 200
    assert rep["tracks"][0]["true"] == true[0] and len(rep["tracks"]) == 200


def test_ece_is_zero_when_confidence_matches_accuracy_and_large_when_not():
    conf = np.full(100, 0.75)
    correct = np.r_[np.ones(75, bool), np.zeros(25, bool)]
    ece, table = reliability(conf, correct)
    assert ece == pytest.approx(0.0, abs=1e-9) and sum(r["count"] for r in table) == 100
    ece_bad, _ = reliability(np.full(100, 0.95), np.r_[np.ones(50, bool), np.zeros(50, bool)])
    assert ece_bad == pytest.approx(0.45)


def test_baseline_probabilities_are_in_genre_order(tables):
    train_t, _ = tables
    model, c = fit_baseline(train_t.tracks(), folds=3)
    p = baseline_probabilities(model, train_t.tracks()[:10])
    assert p.shape == (10, 10) and np.allclose(p.sum(1), 1)
    assert c > 0
