"""Which tables a retrain uses: a --test that was asked for must exist; only the default one may be absent."""

from __future__ import annotations

from pathlib import Path

import pytest

from app.jobs.retrain import resolve_inputs, retrain_params
from models.classifier.bundle import set_current
from models.training.retrain import RetrainError
from tests.helpers.bundles import make_test_bundle
from tests.helpers.data import synthetic_table


@pytest.fixture
def root(tmp_path: Path) -> Path:
    """A checkpoints folder whose current model names a base table that exists (and no test table beside it)."""
    synthetic_table(n_per_genre=1, dim=4).save(tmp_path / "train.npz")
    make_test_bundle(tmp_path / "ckpt", "base")
    set_current("base", tmp_path / "ckpt")
    return tmp_path / "ckpt"


def test_an_explicit_test_table_that_is_missing_is_an_error(root: Path, tmp_path: Path) -> None:
    """`retrain --test missing.npz` was silently ignored: the new model had no test numbers and no one was told."""
    params = retrain_params(root, tables=[tmp_path / "train.npz"], test=tmp_path / "missing.npz")
    with pytest.raises(RetrainError, match=r"No test table at .*missing\.npz"):
        resolve_inputs(params)


def test_the_default_test_table_may_be_absent(root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("models.training.retrain.test_table_of", lambda card: tmp_path / "absent" / "test.npz")
    assert resolve_inputs(retrain_params(root, tables=[tmp_path / "train.npz"])).test is None
    synthetic_table(n_per_genre=1, dim=4, seed=1).save(tmp_path / "given.npz")
    given = resolve_inputs(retrain_params(root, tables=[tmp_path / "train.npz"], test=tmp_path / "given.npz"))
    assert given.test == (tmp_path / "given.npz").resolve()
