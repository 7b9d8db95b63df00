"""Nuisance shifts (models/training/nuisance.py): the file, its checks, and what its scatter does to LDA."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from models.training.config import TrainConfig
from models.training.linear_fit import fit_lda_weights
from models.training.loop import train
from models.training.nuisance import NuisanceShifts, load_shifts, scatter
from tests.helpers.data import synthetic_table

LDA = dict(arch="pooled", hidden=0, dropout=0.0, members=1, solver="lda")


def _shifts(path: Path, rows: np.ndarray, embedder_id: str = "synthetic/16") -> Path:
    n = len(rows)
    NuisanceShifts(rows.astype(np.float32), np.array([f"c{i % 3}" for i in range(n)]),
                   np.array([f"change{i % 2}" for i in range(n)]), embedder_id, "python -m app nuisance ...").save(path)
    return path


def test_a_shift_file_round_trips_and_says_what_it_holds(tmp_path: Path) -> None:
    rows = np.random.default_rng(0).normal(0, 1, (6, 16))
    loaded = load_shifts(_shifts(tmp_path / "s.npz", rows), "synthetic/16+extra", 16)
    np.testing.assert_allclose(loaded.shifts, rows, rtol=1e-6)
    entry = loaded.card_entry("models/nuisance/x.npz")
    assert entry["shifts"] == 6 and entry["clips"] == 3 and entry["changes"] == ["change0", "change1"]
    assert len(entry["sha256"]) == 64 and loaded.command.startswith("python -m app nuisance")


@pytest.mark.parametrize("case, message", [
    ("missing", "does not exist"), ("garbage", "is not a nuisance shift file"), ("dim", "16-d shifts"),
    ("embedder", "was measured with"), ("nan", "no usable shifts"),
    ("pickled", r"it holds pickled objects\); make one with"),  # not numpy's advice to load it unsafely
])
def test_a_shift_file_that_does_not_fit_is_refused_in_one_sentence(tmp_path: Path, case: str, message: str) -> None:
    path = tmp_path / "s.npz"
    rows = np.ones((4, 16))
    if case == "garbage":
        path.write_bytes(b"not an npz")
    elif case == "pickled":
        np.savez(path, shifts=np.array([{"a": 1}], dtype=object), clips=np.array(["c"]))
    elif case == "nan":
        _shifts(path, np.full((4, 16), np.nan))
    elif case != "missing":
        _shifts(path, rows, embedder_id="other/16" if case == "embedder" else "synthetic/16")
    with pytest.raises(ValueError, match=message):
        load_shifts(path, "synthetic/16", 8 if case == "dim" else 16)


def test_the_scatter_takes_the_weight_off_the_direction_everyday_changes_move() -> None:
    """Two genres differ along both axes; a change moves tracks along axis 0, so LDA should lean on axis 1."""
    rng = np.random.default_rng(0)
    y = np.repeat([0, 1], 200)
    x = np.c_[np.where(y == 1, 1.0, -1.0), np.where(y == 1, 0.5, -0.5)] + rng.normal(0, 0.5, (400, 2))
    live = np.ones(2, bool)
    plain, _ = fit_lda_weights(x, np.eye(2)[y], np.ones(400), live)
    shifts = np.c_[rng.normal(0, 2.0, 100), np.zeros(100)]
    robust, bias = fit_lda_weights(x, np.eye(2)[y], np.ones(400), live, scatter(shifts))
    lean = lambda c: abs(c[1, 0] - c[0, 0]) / abs(c[1, 1] - c[0, 1])  # noqa: E731
    assert lean(plain) > 1.0 and lean(robust) < 0.5 * lean(plain)
    changed = x + np.c_[rng.choice([-2.0, 2.0], 400), np.zeros(400)]  # the change, at test time
    right = lambda c, b: float(((changed @ c.T + b).argmax(1) == y).mean())  # noqa: E731
    assert right(robust, bias) > right(plain, fit_lda_weights(x, np.eye(2)[y], np.ones(400), live)[1]) + 0.05


def test_training_with_a_shift_file_records_it_and_zero_weight_changes_nothing(tmp_path: Path) -> None:
    table = synthetic_table(n_per_genre=4, dim=16)
    rows = np.random.default_rng(1).normal(0, 0.5, (12, 16))
    path = _shifts(tmp_path / "s.npz", rows)
    plain = train(table, TrainConfig.from_dict(LDA))
    zero = train(table, TrainConfig.from_dict(LDA | {"nuisance": str(path), "nuisance_weight": 0.0}))
    used = train(table, TrainConfig.from_dict(LDA | {"nuisance": str(path), "nuisance_weight": 1.0}))
    w = lambda r: r.model.head.weight.detach().numpy()  # noqa: E731
    np.testing.assert_allclose(w(zero), w(plain), rtol=1e-5, atol=1e-6)
    assert not np.allclose(w(used), w(plain), atol=1e-4)
    card = used.card_fields()["nuisance"]
    assert card["path"] == str(path) and card["shifts"] == 12 and "nuisance" not in plain.card_fields()


@pytest.mark.parametrize("values, message", [
    ({"solver": "logistic"}, "needs the lda solver"),
    ({"nuisance_weight": -1.0}, "nuisance_weight must be a number at least 0"),  # said by the --config check
    ({"input_transform": "logit"}, "input_transform 'none'"),
])
def test_a_shift_file_with_the_wrong_settings_is_refused(tmp_path: Path, values: dict, message: str) -> None:
    path = _shifts(tmp_path / "s.npz", np.ones((3, 16)))
    with pytest.raises(ValueError, match=message):
        train(synthetic_table(n_per_genre=2, dim=16), TrainConfig.from_dict(LDA | {"nuisance": str(path)} | values))


def test_a_relative_path_is_read_from_the_repository(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=str(Path(__file__).resolve().parents[3] / "no/such.npz")):
        load_shifts("no/such.npz")
