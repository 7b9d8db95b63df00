"""train/evaluate check their inputs before any work: one `error:` line, no bundle, no model trained."""

from __future__ import annotations

import json

import numpy as np
import pytest

from app.cli.main import main
from tests.helpers.bundles import make_test_bundle
from tests.helpers.cli import one_error_line
from tests.helpers.data import synthetic_table


@pytest.fixture
def table(tmp_path):
    """A small 4-d training table on disk."""
    path = tmp_path / "t.npz"
    synthetic_table(n_per_genre=2, dim=4).save(path)
    return path


@pytest.fixture
def no_training(monkeypatch):
    """Fail the test if a model is fitted: these inputs must be refused before that."""
    monkeypatch.setattr("app.cli.dataset.train_model", lambda *a, **k: pytest.fail("trained anyway"))


def _train(tmp_path, table, *extra: str) -> int:
    return main(["train", "--table", str(table), "--root", str(tmp_path / "ckpt"), "--no-set-current", *extra])


def test_a_bad_test_table_is_refused_before_training(tmp_path, table, capsys, no_training):
    """A missing or wrong-dimension --test failed only after the bundle was saved."""
    assert _train(tmp_path, table, "--test", str(tmp_path / "missing.npz")) == 2
    assert "missing.npz" in one_error_line(capsys)
    synthetic_table(n_per_genre=1, dim=7).save(tmp_path / "other.npz")
    assert _train(tmp_path, table, "--test", str(tmp_path / "other.npz")) == 2
    line = one_error_line(capsys)
    assert "--test" in line and "7-dimensional" in line and "4-dimensional" in line
    assert not (tmp_path / "ckpt").exists()


def _without_genre(src, dst, genre: str = "") -> None:
    """A copy of a table whose genre column is `genre` everywhere ("" : no column at all)."""
    with np.load(src) as data:
        arrays = {k: data[k] for k in data.files if k != "genre"}
    if genre:
        arrays["genre"] = np.full(len(arrays["track_id"]), genre)
    np.savez(dst, **arrays)


def test_training_needs_genre_labels_of_two_genres_at_least(tmp_path, table, capsys, no_training):
    """No genre column said 'labels outside the GTZAN genres: .'; one genre trained with accuracy 1.000."""
    _without_genre(table, tmp_path / "none.npz")
    assert _train(tmp_path, tmp_path / "none.npz") == 2
    assert "none.npz has no genre labels" in one_error_line(capsys)
    _without_genre(table, tmp_path / "one.npz", "blues")
    assert _train(tmp_path, tmp_path / "one.npz") == 2
    assert "holds only blues tracks; training needs at least 2 genres" in one_error_line(capsys)


@pytest.mark.parametrize(("content", "says"), [
    ("nothing.00001\nnothing.00002\n", "none of the 2 track ids in --val-list"),  # trained with no validation
    ("\n\n", "names no tracks"),
    (None, "names every track"),  # 'need at least one array to concatenate'
    (b"\xff\xfe\x00\x81binary", "is not a text file of track ids"),  # "'utf-8' codec can't decode"
])
def test_a_val_list_must_hold_some_but_not_all_training_tracks(tmp_path, table, capsys, no_training, content, says):
    ids = tmp_path / "ids.txt"
    if content is None:
        ids.write_text("\n".join(synthetic_table(n_per_genre=2, dim=4).track_ids()))
    elif isinstance(content, bytes):
        ids.write_bytes(content)
    else:
        ids.write_text(content)
    assert _train(tmp_path, table, "--val-list", str(ids)) == 2
    line = one_error_line(capsys)
    assert says in line and "ids.txt" in line


def test_the_progress_bar_ends_its_line_when_training_fails(tmp_path, table, capsys):
    """'training:   0%| ... error: Unknown solver' glued the error to the bar."""
    (tmp_path / "cfg.json").write_text(json.dumps({"solver": "sgd"}))
    assert _train(tmp_path, table, "--config", str(tmp_path / "cfg.json")) == 2
    last = capsys.readouterr().err.rstrip("\n").split("\n")[-1]
    assert last.startswith("error: ") and "sgd" in last


@pytest.fixture
def bundle(tmp_path):
    """A random-weights 50-d bundle."""
    return make_test_bundle(tmp_path / "ckpt")


def test_evaluate_a_table_without_genres_says_so(tmp_path, capsys, bundle):
    """'tuple.index(x): x not in tuple' was all evaluate said."""
    synthetic_table(n_per_genre=1, dim=50).save(tmp_path / "t.npz")
    _without_genre(tmp_path / "t.npz", tmp_path / "none.npz")
    assert main(["evaluate", str(tmp_path / "none.npz"), "--checkpoint", str(bundle)]) == 2
    assert "none.npz has no genre labels" in one_error_line(capsys)


def test_evaluate_a_train_table_of_another_size_names_it(tmp_path, capsys, bundle, monkeypatch):
    """sklearn's 'X has 753 features, but FlooredScaler is expecting 50' named no table."""
    synthetic_table(n_per_genre=1, dim=50).save(tmp_path / "t.npz")
    synthetic_table(n_per_genre=1, dim=7).save(tmp_path / "base.npz")
    monkeypatch.setattr("app.jobs.evaluate.evaluate_source", lambda *a, **k: pytest.fail("evaluated anyway"))
    assert main(["evaluate", str(tmp_path / "t.npz"), "--checkpoint", str(bundle),
                 "--train-table", str(tmp_path / "base.npz")]) == 2
    line = one_error_line(capsys)
    assert "--train-table" in line and "base.npz holds 7-dimensional" in line
