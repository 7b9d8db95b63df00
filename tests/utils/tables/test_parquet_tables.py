"""Parquet shard folders: round trip with the .npz table, ordering, and clear errors (no Ray needed)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from tests.helpers.data import synthetic_table
from utils.tables import EmbeddingTable, TableError, load_table

pa = pytest.importorskip("pyarrow", reason="Parquet tables need pyarrow (installed with streamlit)")
pq = pytest.importorskip("pyarrow.parquet")

from utils.tables.parquet import (  # noqa: E402
    META_KEY,
    read_parquet_table,
    read_shard,
    shard_meta,
    shard_paths,
    shard_track_ids,
    shards_fingerprint,
    to_arrow,
    write_parquet_table,
    write_shard,
)


def assert_same(a: EmbeddingTable, b: EmbeddingTable) -> None:
    """Identical rows, dtypes and meta."""
    np.testing.assert_array_equal(a.vectors, b.vectors)
    np.testing.assert_array_equal(a.track_id, b.track_id)
    np.testing.assert_array_equal(a.genre, b.genre)
    np.testing.assert_array_equal(a.frame_start_s, b.frame_start_s)
    assert a.vectors.dtype == b.vectors.dtype == np.float32 and a.frame_start_s.dtype == np.float32
    assert a.meta == b.meta and a.fingerprint() == b.fingerprint()


def test_round_trip_matches_npz(tmp_path):
    table = synthetic_table(n_per_genre=3, dim=8)
    table.save(tmp_path / "t.npz")
    paths = write_parquet_table(table, tmp_path / "shards", tracks_per_shard=7)
    assert [p.name for p in paths] == [f"part-{k:05d}.parquet" for k in range(5)]
    back = read_parquet_table(tmp_path / "shards")
    assert_same(back, load_table(tmp_path / "t.npz"))
    assert_same(load_table(tmp_path / "shards"), back)
    assert shard_track_ids(paths[0]) == table.track_ids()[:7]


def test_schema_is_plain_parquet(tmp_path):
    table = synthetic_table(n_per_genre=1, dim=4)
    path = write_shard(tmp_path / "a.parquet", table)
    schema = pq.read_schema(path)
    assert schema.field("vector").type == pa.list_(pa.float32(), 4)
    assert schema.field("frame_start_s").type == pa.float32()
    assert json.loads(schema.metadata[META_KEY]) == table.meta == shard_meta(path)
    assert pq.read_table(path).num_rows == len(table.vectors)


def test_rows_are_put_back_in_track_and_time_order(tmp_path):
    table = synthetic_table(n_per_genre=1, dim=4)
    rng = np.random.default_rng(0)
    shuffled = to_arrow(table).take(pa.array(rng.permutation(len(table.vectors))))
    pq.write_table(shuffled, tmp_path / "x.parquet")
    back = read_shard(tmp_path / "x.parquet")
    assert sorted(back.track_ids()) == sorted(table.track_ids())
    for t in back.tracks():
        ref = table.subset({t.track_id})
        np.testing.assert_array_equal(t.vectors, ref.vectors)
        assert np.all(np.diff(t.frame_start_s) > 0)


def test_subset_and_streamed_fingerprint(tmp_path):
    table = synthetic_table(n_per_genre=2, dim=6)
    write_parquet_table(table, tmp_path, tracks_per_shard=3)
    wanted = set(table.track_ids()[2:9])
    assert_same(read_parquet_table(tmp_path, wanted), table.subset(wanted))
    assert shards_fingerprint(shard_paths(tmp_path)) == table.fingerprint()
    assert shards_fingerprint(shard_paths(tmp_path), wanted) == table.subset(wanted).fingerprint()


def test_temporary_and_side_files_are_not_shards(tmp_path):
    write_parquet_table(synthetic_table(n_per_genre=1, dim=4), tmp_path)
    (tmp_path / ".part-1.parquet.123.tmp").write_bytes(b"half")
    (tmp_path / "_failures.json").write_text("[]")
    (tmp_path / ".hidden.parquet").write_bytes(b"half")
    assert [p.name for p in shard_paths(tmp_path)] == ["part-00000.parquet"]


def test_errors_are_table_errors(tmp_path):
    with pytest.raises(TableError, match="No Parquet shards"):
        read_parquet_table(tmp_path)
    table = synthetic_table(n_per_genre=1, dim=4)
    write_shard(tmp_path / "a.parquet", table)
    write_shard(tmp_path / "b.parquet", table.subset(set(table.track_ids()[:1])))
    with pytest.raises(TableError, match="in two shards"):
        read_parquet_table(tmp_path)
    other = EmbeddingTable(table.vectors, table.track_id, table.genre, table.frame_start_s,
                           dict(table.meta, embedder={"name": "x", "id": "x/1", "options": {}}))
    (tmp_path / "b.parquet").unlink()
    write_shard(tmp_path / "c.parquet", EmbeddingTable.concat([other.subset({"rock.00000"})], other.meta))
    with pytest.raises(TableError, match="x/1 embeddings"):
        read_parquet_table(tmp_path)
    twice = EmbeddingTable.concat([table.subset({"blues.00000"})] * 2, table.meta)
    write_shard(tmp_path / "twice" / "d.parquet", twice)
    with pytest.raises(TableError, match="same start time"):
        read_parquet_table(tmp_path / "twice")
    (tmp_path / "plain").mkdir()
    pq.write_table(pa.table({"track_id": ["a"]}), tmp_path / "plain" / "e.parquet")
    with pytest.raises(TableError, match="schema metadata"):
        read_parquet_table(tmp_path / "plain")


def test_load_table_reads_a_shard_folder_and_local_evaluate_accepts_it(tmp_path):
    """`load_table` dispatches folders to the Parquet reader; the CLI evaluates a shard folder locally."""
    from app.cli.main import main
    from models.classifier.bundle import ModelCard, save_bundle
    from models.classifier.parallel_cnn import ClassifierConfig, ParallelCNN
    from tests.helpers.data import synthetic_table
    from utils.constants import GENRES
    from utils.tables import load_table
    from utils.tables.parquet import write_parquet_table

    table = synthetic_table(n_per_genre=1, dim=6)
    write_parquet_table(table, tmp_path / "shards", tracks_per_shard=3)
    back = load_table(tmp_path / "shards")
    assert back.fingerprint() == table.fingerprint()
    card = ModelCard("p", list(GENRES), {"name": "synthetic", "id": "synthetic/6"}, {})
    save_bundle(ParallelCNN(ClassifierConfig(input_dim=6, channels=4, hidden=8)), card, tmp_path / "ck")
    out = tmp_path / "m.json"
    bundle = str(tmp_path / "ck" / "p")
    assert main(["evaluate", str(tmp_path / "shards"), "--checkpoint", bundle, "--out", str(out)]) == 0
    assert out.exists()
