"""Inputs of `train` (and `evaluate`) checked before any work: labels, the validation list, the other tables.

Each used to fail (or be ignored) only after training, or to train something no one asked for: a
one-genre model with validation accuracy 1.000, a card claiming validation tracks that matched nothing,
a --test of the wrong dimension that failed after the bundle was saved.
"""

from __future__ import annotations

from pathlib import Path

from models.classifier.bundle import read_card
from utils.tables import EmbeddingTable, load_table, read_id_list, require_genres


def check_training_labels(table: EmbeddingTable, names: str) -> None:
    """Every track has a GTZAN genre, and there are at least two genres to tell apart."""
    require_genres(table, names)
    genres = sorted(set(table.genre.tolist()))
    if len(genres) < 2:
        raise ValueError(f"{names} holds only {genres[0]} tracks; training needs at least 2 genres.")


def validation_ids(val_list: Path, table: EmbeddingTable, names: str) -> list[str]:
    """The ids of `--val-list` that are training tracks; refuse a list that matches none or every one."""
    listed = read_id_list(val_list)
    if not listed:
        raise ValueError(f"--val-list {val_list} names no tracks (one track id or file name per line).")
    known = set(table.track_ids())
    matched = {i for i in listed if i in known}
    if not matched:
        raise ValueError(f"none of the {len(set(listed))} track ids in --val-list {val_list} is in {names}; "
                         "nothing would be validated.")
    if matched == known:
        raise ValueError(f"--val-list {val_list} names every track of {names}; leave some to train on "
                         "(or use --no-validation).")
    return listed


def load_test_table(path: Path, table: EmbeddingTable, first: Path) -> EmbeddingTable:
    """`--test`, loaded and matched against the training tables now, not after the bundle is saved."""
    test = load_table(path)
    if not len(test.vectors):
        raise ValueError(f"--test {path} holds no tracks.")
    if test.embedder_id != table.embedder_id or test.dim != table.dim:
        raise ValueError(f"--test {path} holds {test.dim}-dimensional {test.embedder_id} vectors, but {first} "
                         f"holds {table.dim}-dimensional {table.embedder_id} ones.")
    require_genres(test, f"--test {path}")
    return test


def check_baseline_table(path: Path, table: EmbeddingTable, bundle: Path) -> None:
    """`evaluate --train-table`: vectors of the size the evaluated bundle takes (the baseline sees the same ones)."""
    read_card(bundle).check_table(table, f"--train-table {path}")
