"""Embedding tables as a folder of Parquet shards, for collections too big for one `.npz`.

Why shards: a distributed embed job writes many files in parallel and a re-run only has to add
new ones, and any Parquet reader (pandas, Spark, DuckDB) can read the folder.

Format: `<folder>/*.parquet`, one row per frame with columns `track_id` (string), `genre` (string,
empty when unknown), `frame_start_s` (float32) and `vector` (fixed-size list<float32>[dim]); the
table's meta JSON (embedder, frame_seconds, hop_seconds, dim) sits in each shard's schema metadata
under `genre_lens.meta`. A track's rows live in one shard, contiguous and in time order. Shards are
read in file-name order; names starting with `.` or `_` (temporary files, `_failures.json`) are not
shards. Needs pyarrow (a dependency of streamlit and of Ray Data).
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from utils.atomic import atomic_path
from utils.tables.core import EmbeddingTable, TableError

META_KEY = b"genre_lens.meta"
COLUMNS = ("track_id", "genre", "frame_start_s", "vector")


def _pa() -> Any:
    """pyarrow, imported lazily so `utils.tables` users never pay for it."""
    try:
        import pyarrow as pa
        import pyarrow.parquet  # registers pa.parquet
    except ModuleNotFoundError as exc:  # pragma: no cover - pyarrow ships with streamlit
        raise TableError("Parquet embedding tables need pyarrow: pip install pyarrow.") from exc
    return pa


def shard_schema(meta: dict[str, Any]) -> Any:
    """Arrow schema of a shard for this table meta (the vector width is meta['dim'])."""
    pa = _pa()
    return pa.schema(
        [
            ("track_id", pa.string()),
            ("genre", pa.string()),
            ("frame_start_s", pa.float32()),
            ("vector", pa.list_(pa.float32(), int(meta["dim"]))),
        ],
        metadata={META_KEY: json.dumps(meta).encode()},
    )


def to_arrow(table: EmbeddingTable) -> Any:
    """The frame rows of `table` as an Arrow table with the shard schema."""
    pa = _pa()
    meta = dict(table.meta, dim=int(table.vectors.shape[1]))
    vectors = np.ascontiguousarray(table.vectors, dtype=np.float32)
    flat = pa.array(vectors.reshape(-1), pa.float32())
    columns = [
        pa.array(table.track_id.astype(str).tolist(), pa.string()),
        pa.array(table.genre.astype(str).tolist(), pa.string()),
        pa.array(table.frame_start_s.astype(np.float32), pa.float32()),
        pa.FixedSizeListArray.from_arrays(flat, vectors.shape[1]),
    ]
    return pa.Table.from_arrays(columns, schema=shard_schema(meta))


def write_shard(path: str | os.PathLike, table: EmbeddingTable) -> Path:
    """Write one shard atomically: a crash leaves no half shard that a re-run would trust."""
    pa = _pa()
    with atomic_path(path, suffix=".tmp") as tmp:
        pa.parquet.write_table(to_arrow(table), tmp, compression="zstd")
    return Path(path)


def shard_paths(folder: str | os.PathLike) -> list[Path]:
    """The shards of a folder, in the order their rows belong to the table."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.glob("*.parquet") if p.is_file() and not p.name.startswith((".", "_")))


def is_shard_folder(path: str | os.PathLike) -> bool:
    """True for a folder holding at least one Parquet shard."""
    return bool(shard_paths(path))


def shard_meta(path: str | os.PathLike) -> dict[str, Any]:
    """The table meta stored in a shard's schema (without reading its rows)."""
    pa = _pa()
    try:
        schema = pa.parquet.read_schema(path)
    except (OSError, pa.ArrowException) as exc:
        raise TableError(f"Could not read Parquet shard {path}: {exc}") from exc
    raw = (schema.metadata or {}).get(META_KEY)
    if raw is None:
        raise TableError(f"{path} has no '{META_KEY.decode()}' schema metadata; it was not written as a table shard.")
    return json.loads(raw)


def shard_track_ids(path: str | os.PathLike) -> list[str]:
    """Track ids of a shard in row order, reading only that column (cheap resume checks)."""
    pa = _pa()
    try:
        column = pa.parquet.read_table(path, columns=["track_id"]).column("track_id")
    except (OSError, pa.ArrowException) as exc:
        raise TableError(f"Could not read Parquet shard {path}: {exc}") from exc
    ids = column.to_pylist()
    return [ids[i] for i in sorted(np.unique(ids, return_index=True)[1])] if ids else []


def shard_track_genres(path: str | os.PathLike) -> dict[str, str]:
    """Track id -> genre of a shard, reading only those two columns (what a resume compares names by)."""
    pa = _pa()
    try:
        table = pa.parquet.read_table(path, columns=["track_id", "genre"])
    except (OSError, pa.ArrowException) as exc:
        raise TableError(f"Could not read Parquet shard {path}: {exc}") from exc
    return dict(zip(table.column("track_id").to_pylist(), table.column("genre").to_pylist(), strict=True))


def _normalised(table: EmbeddingTable, where: Path) -> EmbeddingTable:
    """Rows of each track contiguous and in time order (first-appearance track order), or TableError."""
    if len(table.track_id) == 0:
        return table
    _, first, inverse = np.unique(table.track_id, return_index=True, return_inverse=True)
    rank = np.argsort(np.argsort(first))[inverse]  # track position by first appearance
    order = np.lexsort((table.frame_start_s, rank))
    if not np.array_equal(order, np.arange(len(order))):
        table = EmbeddingTable(table.vectors[order], table.track_id[order], table.genre[order],
                               table.frame_start_s[order], table.meta)
        rank = rank[order]
    same_track = rank[1:] == rank[:-1]
    if np.any(same_track & (np.diff(table.frame_start_s) <= 0)):
        bad = str(table.track_id[1:][same_track & (np.diff(table.frame_start_s) <= 0)][0])
        raise TableError(f"{where}: track {bad} has two frames with the same start time (written twice?).")
    return table


def read_shard(
    path: str | os.PathLike, track_ids: set[str] | None = None, with_vectors: bool = True,
) -> EmbeddingTable:
    """One shard as an EmbeddingTable (only the given tracks when `track_ids` is set).

    `with_vectors=False` skips the big column (vectors come back with width 0) for cheap passes.
    """
    pa = _pa()
    path = Path(path)
    meta = shard_meta(path)
    try:
        data = pa.parquet.read_table(path, columns=list(COLUMNS if with_vectors else COLUMNS[:3]))
    except (OSError, pa.ArrowException, KeyError) as exc:
        raise TableError(f"Could not read Parquet shard {path}: {exc}") from exc
    track_id = np.asarray(data.column("track_id").to_pylist(), dtype=str)
    genre = np.asarray(data.column("genre").to_pylist(), dtype=str)
    starts = data.column("frame_start_s").to_numpy().astype(np.float32)
    if with_vectors:
        dim = int(meta["dim"])
        chunks = [c.flatten().to_numpy(zero_copy_only=False) for c in data.column("vector").chunks]
        flat = np.concatenate(chunks) if chunks else np.zeros(0, np.float32)
        vectors = flat.astype(np.float32, copy=False).reshape(-1, dim)
    else:
        vectors = np.zeros((len(track_id), 0), np.float32)
    table = EmbeddingTable(vectors, track_id, genre, starts, meta)
    if track_ids is not None:
        table = table.subset(track_ids)
    return _normalised(table, path)


def iter_shards(
    paths: Iterable[Path], track_ids: set[str] | None = None, with_vectors: bool = True,
) -> Iterator[EmbeddingTable]:
    """Shards one at a time (memory of one shard), checking that no track spans two shards."""
    seen: dict[str, Path] = {}
    embedder_id = None
    for path in paths:
        part = read_shard(path, track_ids, with_vectors)
        if embedder_id is None:
            embedder_id = part.embedder_id
        elif part.embedder_id != embedder_id:
            raise TableError(f"{path} holds {part.embedder_id} embeddings, the other shards {embedder_id}.")
        for tid in part.track_ids():
            if tid in seen:
                raise TableError(f"Track {tid} is in two shards, {seen[tid].name} and {path.name}.")
            seen[tid] = path
        yield part


def read_parquet_table(folder: str | os.PathLike, track_ids: set[str] | None = None) -> EmbeddingTable:
    """A whole shard folder as one EmbeddingTable (rows of a track contiguous, in time order)."""
    paths = shard_paths(folder)
    if not paths:
        raise TableError(f"No Parquet shards (*.parquet) in {folder}.")
    parts = list(iter_shards(paths, track_ids))
    return EmbeddingTable.concat(parts, parts[0].meta)


def write_parquet_table(table: EmbeddingTable, folder: str | os.PathLike, tracks_per_shard: int = 256) -> list[Path]:
    """Write a table as shards of whole tracks (`part-00000.parquet`, ...), e.g. to convert an .npz."""
    tracks = table.track_ids()
    out = []
    for k, a in enumerate(range(0, max(len(tracks), 1), tracks_per_shard)):
        part = table.subset(set(tracks[a : a + tracks_per_shard]))
        out.append(write_shard(Path(folder) / f"part-{k:05d}.parquet", part))
    return out



def shards_fingerprint(paths: list[Path], track_ids: set[str] | None = None) -> str:
    """`EmbeddingTable.fingerprint()` of the folder's table, streamed shard by shard (bounded memory)."""
    h = hashlib.sha256()
    for part in iter_shards(paths, track_ids):
        h.update(np.ascontiguousarray(part.vectors.astype(np.float32)).tobytes())
    for column in ("frame_start_s", "track_id", "genre"):
        first = True
        for part in iter_shards(paths, track_ids, with_vectors=False):
            values = getattr(part, column)
            if column == "frame_start_s":
                h.update(np.ascontiguousarray(values.astype(np.float32)).tobytes())
            elif len(values):
                h.update((("" if first else "\n") + "\n".join(values.tolist())).encode())
                first = False
    return h.hexdigest()
