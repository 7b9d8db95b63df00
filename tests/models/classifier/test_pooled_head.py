"""The pooled-feature head and its logistic solver: shapes, dead columns, determinism, learning, bundles."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from app.cli.main import main
from models.classifier.bundle import ModelCard, load_bundle, save_bundle
from models.classifier.parallel_cnn import ClassifierConfig
from models.classifier.pooled_head import PooledHead
from models.training.baseline import FlooredScaler
from models.training.config import TrainConfig
from models.training.data import track_probabilities
from models.training.loop import train
from tests.helpers.data import synthetic_table
from utils.constants import GENRES

LOGISTIC = TrainConfig.from_dict(dict(arch="pooled", hidden=0, dropout=0.0, members=1, solver="logistic", c=0.1))


def test_window_logits_are_the_mean_of_slice_logits_under_uniform_attention() -> None:
    torch.manual_seed(0)
    head = PooledHead(ClassifierConfig(input_dim=8, hidden=0, dropout=0.0, arch="pooled")).eval()
    x = torch.randn(5, 3, 4, 8)
    out = head(x)
    assert out.logits.shape == (5, 10) and out.slice_logits.shape == (5, 3, 10)
    torch.testing.assert_close(out.attention, torch.full((5, 3), 1 / 3))  # attention starts uniform
    torch.testing.assert_close(out.logits, out.slice_logits.mean(1))  # linear head: mean of slices
    masked = torch.ones(5, 3, 4, dtype=torch.bool)
    masked[:, :, 2:] = False  # masked frames do not count towards a slice's mean
    torch.testing.assert_close(head(x, masked).slice_logits, head(x[:, :, :2]).slice_logits)
    with pytest.raises(ValueError, match="windows"):
        head(torch.randn(5, 2, 4, 8))


def test_columns_constant_in_training_cannot_move_the_output() -> None:
    head = PooledHead(ClassifierConfig(input_dim=4, hidden=0, dropout=0.0, arch="pooled")).eval()
    head.set_normalisation(torch.zeros(4), torch.tensor([1.0, 1e-15, 1.0, 0.0]))
    x = torch.randn(2, 3, 3, 4)
    y = x.clone()
    y[..., 1] += 1e-3  # last-bit noise on new audio in a dead column
    y[..., 3] += 5.0
    torch.testing.assert_close(head(x).logits, head(y).logits, rtol=0, atol=1e-5)


def test_floored_scaler_zeroes_dead_columns() -> None:
    rng = np.random.default_rng(0)
    x = np.c_[rng.normal(0, 1, 50), np.full(50, 2e-6) + rng.normal(0, 1e-15, 50)]
    scaler = FlooredScaler().fit(x)
    out = scaler.transform(np.array([[0.0, 2e-6 + 1e-9]]))
    assert abs(out[0, 1]) < 1e-6 and scaler.scale_[0] == pytest.approx(x[:, 0].std(), rel=1e-6)


def test_logistic_solver_learns_deterministically_and_calibrates_out_of_fold() -> None:
    table = synthetic_table(n_per_genre=8, dim=12, seed=1, spread=1.0)
    first, second = train(table, LOGISTIC, val_ids=[]), train(table, LOGISTIC, val_ids=[])
    for a, b in zip(first.model.state_dict().values(), second.model.state_dict().values(), strict=True):
        assert torch.equal(a, b)  # convex, no seeds: identical weights
    assert 0.1 < first.temperature < 10 and first.temperature != 1.0  # fitted, not the default
    held_out = synthetic_table(n_per_genre=3, dim=12, seed=1, spread=1.0).tracks()
    probs = track_probabilities(first.model, held_out, table.frame_seconds, 3)
    assert (probs.argmax(1) == [GENRES.index(t.genre) for t in held_out]).mean() >= 0.9
    stronger = train(table, replace(LOGISTIC, c=1e-4), val_ids=[])  # C really is the regularisation
    assert stronger.model.head.weight.abs().sum() < first.model.head.weight.abs().sum()


def test_a_logistic_bundle_round_trips(tmp_path: Path) -> None:
    table = synthetic_table(n_per_genre=4, dim=12, seed=2)
    result = train(table, LOGISTIC, val_ids=[])
    card = ModelCard(version="lin", labels=list(GENRES), classifier={},
                     embedder={"name": "synthetic", "id": "synthetic/12", "options": {}})
    model, loaded_card = load_bundle(save_bundle(result.model, card, tmp_path))
    assert isinstance(model, PooledHead) and loaded_card.classifier["arch"] == "pooled"
    x = torch.randn(3, 3, 2, 12)
    torch.testing.assert_close(model(x).logits, result.model(x).logits)


def test_train_cli_selects_on_valid_then_fits_everything(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    synthetic_table(n_per_genre=5, dim=12, seed=3).save(tmp_path / "train.npz")
    valid = synthetic_table(n_per_genre=2, dim=12, seed=3)
    valid.track_id = np.char.add("v-", valid.track_id.astype(str))
    valid.save(tmp_path / "valid.npz")
    recipe = tmp_path / "recipe.json"
    recipe.write_text(json.dumps({"arch": "pooled", "hidden": 0, "dropout": 0.0, "members": 1,
                                  "solver": "logistic", "c": 0.1}))
    base = ["train", "--config", str(recipe), "--root", str(tmp_path / "ckpt"), "--no-set-current"]
    assert main([*base, "--table", str(tmp_path / "train.npz"), "--valid", str(tmp_path / "valid.npz"),
                 "--version", "sel"]) == 0
    sel = json.loads((tmp_path / "ckpt" / "sel" / "card.json").read_text())["training"]
    assert sel["n_train_tracks"] == 50 and sel["n_val_tracks"] == 20 and sel["val_accuracy"] >= 0.9
    assert sel["validation_data"] == "valid.npz" and "valid.npz (never trained on)" in sel["protocol"]
    assert main([*base, "--table", str(tmp_path / "train.npz"), str(tmp_path / "valid.npz"), "--no-validation",
                 "--version", "all"]) == 0
    final = json.loads((tmp_path / "ckpt" / "all" / "card.json").read_text())["training"]
    assert final["n_train_tracks"] == 70 and final["n_val_tracks"] == 0 and final["val_accuracy"] is None
    assert final["data"] == ["train.npz", "valid.npz"] and final["protocol"].startswith("final fit on every track")
    assert "one-vs-rest logistic regression" in capsys.readouterr().out
    assert main([*base, "--table", str(tmp_path / "train.npz"), str(tmp_path / "train.npz"), "--version", "x"]) == 2
    assert "train.npz is given twice" in capsys.readouterr().err
    synthetic_table(n_per_genre=1, dim=7, seed=4).save(tmp_path / "other.npz")  # another embedder's table
    assert main(["evaluate", str(tmp_path / "other.npz"), "--checkpoint", str(tmp_path / "ckpt" / "all")]) == 2
    assert "holds 7-dimensional synthetic/7 vectors, but all takes 12-dimensional" in capsys.readouterr().err
