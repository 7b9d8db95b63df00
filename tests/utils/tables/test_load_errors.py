"""Damaged or inconsistent tables are refused with one sentence naming the file, never a traceback or a model."""

from __future__ import annotations

import json

import numpy as np
import pytest

from tests.helpers.data import synthetic_table
from utils.tables import TableError, load_table, load_tables


@pytest.fixture
def table_path(tmp_path):
    """A small valid table on disk."""
    path = tmp_path / "t.npz"
    synthetic_table(n_per_genre=1, dim=4).save(path)
    return path


def _rewrite(path, **changes) -> None:
    """Rewrite an .npz with some arrays replaced."""
    with np.load(path) as data:
        arrays = {k: data[k] for k in data.files} | changes
    np.savez(path, **arrays)


@pytest.mark.parametrize("value", [np.nan, np.inf, -np.inf])
def test_non_finite_vectors_are_refused_naming_file_and_track(table_path, value):
    """NaN trained a garbage model with exit 0; inf failed in sklearn with 'Found array with 0 feature(s)'."""
    with np.load(table_path) as data:
        vectors, tid = data["vectors"].copy(), data["track_id"]
    vectors[3, 1] = value
    _rewrite(table_path, vectors=vectors)
    with pytest.raises(TableError) as err:
        load_table(table_path)
    assert str(err.value) == (f"{table_path} has 1 non-finite value (NaN or inf) in its vectors "
                              f"(track {tid[3]}).")


def test_a_truncated_archive_is_one_sentence(table_path):
    """zipfile.BadZipFile escaped as a traceback."""
    data = table_path.read_bytes()
    table_path.write_bytes(data[: len(data) // 2])
    with pytest.raises(TableError, match=r"Could not read embedding table .*t\.npz"):
        load_table(table_path)


@pytest.mark.parametrize(("meta", "says"), [
    ([1, 2], "'meta' entry that is a list, not a JSON object"),  # AttributeError at meta.get
    ({}, "'meta' entry without frame_seconds, hop_seconds, embedder"),  # KeyError 'frame_seconds' later
    ("{not json", "'meta' entry that is not valid JSON"),
])
def test_a_bad_meta_entry_is_one_sentence(table_path, meta, says):
    _rewrite(table_path, meta=np.array(meta if isinstance(meta, str) else json.dumps(meta)))
    with pytest.raises(TableError) as err:
        load_table(table_path)
    assert str(err.value).startswith(str(table_path)) and says in str(err.value)


def test_a_table_given_twice_is_said_so_wherever_it_repeats(tmp_path):
    """`--table train valid valid` trained on valid twice: each table was compared only with the first."""
    synthetic_table(n_per_genre=1, dim=4, seed=0).save(tmp_path / "train.npz")
    valid = synthetic_table(n_per_genre=1, dim=4, seed=1)
    valid.track_id = np.char.add(valid.track_id, "v")
    valid.save(tmp_path / "valid.npz")
    valid.save(tmp_path / "copy.npz")
    with pytest.raises(TableError, match=r"valid.npz is given twice\.$"):
        load_tables([tmp_path / "train.npz", tmp_path / "valid.npz", tmp_path / "valid.npz"])
    with pytest.raises(TableError, match=r"train.npz is given twice\.$"):  # not "train.npz repeats ... train.npz"
        load_tables([tmp_path / "train.npz", tmp_path / "train.npz"])
    with pytest.raises(TableError, match=r"copy.npz repeats 10 tracks of .*valid.npz"):  # same tracks, other file
        load_tables([tmp_path / "train.npz", tmp_path / "valid.npz", tmp_path / "copy.npz"])
