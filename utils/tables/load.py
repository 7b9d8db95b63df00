"""Reading embedding tables: one `.npz` file, a folder of Parquet shards, or several at once.

Kept apart from the table type so that the Parquet reader can use the type without a cycle.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from utils.constants import AUDIO_EXTENSIONS
from utils.tables.core import _PUBLISHED_BY_DIM, EmbeddingTable, TableError
from utils.tables.parquet import is_shard_folder, read_parquet_table

_AUDIO_SUFFIXES = AUDIO_EXTENSIONS | {".au"}  # what a split list's paths may end in: GTZAN's originals are .au
_ZIP_MAGIC = (b"PK\x03\x04", b"PK\x05\x06")  # an .npz is a zip archive (the second: an empty one)


def load_table(path: str | os.PathLike) -> EmbeddingTable:
    """Read a table (ours or a published MusiCNN taggram table) with clear errors."""
    path = Path(path)
    if path.is_dir():  # a folder of Parquet shards written by `embed --engine ray`
        if is_shard_folder(path):
            return read_parquet_table(path)
        raise TableError(f"{path} is a folder without embedding shards (*.parquet).")
    if not path.is_file():
        raise TableError(f"No embedding table at {path}.")
    _check_is_npz(path)
    try:
        with np.load(path, allow_pickle=False) as data:
            key = "vectors" if "vectors" in data.files else "taggram" if "taggram" in data.files else None
            if key is None:
                raise TableError(f"{path} has no 'vectors' (or 'taggram') array.")
            meta = json.loads(str(data["meta"])) if "meta" in data.files else _published_meta(path, data[key])
            table = EmbeddingTable(
                data[key].astype(np.float32),
                data["track_id"].astype(str),
                data["genre"].astype(str) if "genre" in data.files else np.full(len(data[key]), "", dtype=str),
                data["frame_start_s"].astype(np.float32),
                meta,
            )
    except (OSError, ValueError, KeyError) as exc:
        if isinstance(exc, TableError):
            raise
        raise TableError(f"Could not read embedding table {path}: {exc}") from exc
    n = len(table.vectors)
    if not (len(table.track_id) == len(table.genre) == len(table.frame_start_s) == n):
        raise TableError(f"{path}: columns have different lengths.")
    claimed = meta.get("dim")
    if table.vectors.ndim != 2 or (claimed is not None and int(claimed) != table.vectors.shape[1]):
        raise TableError(f"{path} holds {table.vectors.shape[-1]}-dimensional vectors, but its embedder "
                         f"{table.embedder_id} makes {claimed}-dimensional ones.")
    return table


def _check_is_npz(path: Path) -> None:
    """Refuse what is not an .npz archive (a CSV, a .npy) with a clear error, not numpy's pickle advice."""
    try:
        with open(path, "rb") as f:
            head = f.read(4)
    except OSError as exc:
        raise TableError(f"Could not read embedding table {path}: {exc.strerror or exc}") from exc
    if head not in _ZIP_MAGIC:
        hint = ("; a CSV of path,label rows is what `python -m app embed` reads to make one"
                if path.suffix.lower() == ".csv" else "")
        raise TableError(f"{path} is not an embedding table (an .npz file or a folder of Parquet shards){hint}.")


def _published_meta(path: Path, vectors: np.ndarray) -> dict[str, Any]:
    """A table without `meta` is one of the published MusiCNN tables, told apart by its dimension."""
    dim = vectors.shape[1] if vectors.ndim == 2 else -1
    if dim not in _PUBLISHED_BY_DIM:
        raise TableError(f"{path} has no 'meta' and {dim}-dimensional vectors; only the published MusiCNN "
                         "taggram (50-d) and pooled (753-d) tables may omit it.")
    return json.loads(json.dumps(_PUBLISHED_BY_DIM[dim]))  # a deep copy: callers may edit it


def load_tables(paths: list[str | os.PathLike]) -> EmbeddingTable:
    """One table from several (train + valid for the final fit); they must share an embedder and not overlap."""
    tables = [load_table(p) for p in paths]
    first = tables[0]
    for path, t in zip(paths[1:], tables[1:], strict=True):
        if t.embedder_id != first.embedder_id:
            raise TableError(f"{path} holds {t.embedder_id} embeddings, but {paths[0]} holds {first.embedder_id}.")
        shared = set(t.track_ids()) & set(first.track_ids())
        if shared:
            raise TableError(f"{path} repeats {len(shared)} tracks of {paths[0]} (e.g. {sorted(shared)[0]}).")
    return EmbeddingTable.concat(tables, first.meta) if len(tables) > 1 else first


def read_id_list(path: Path) -> list[str]:
    """Track ids of a split list (one path or id per line; blank lines skipped), in file order.

    A path's id is its file name without the audio suffix; a bare id keeps its dots, since GTZAN
    ids (`blues.00012`) look like a name with a suffix and lists are often copied from a table.
    """
    ids = []
    for line in Path(path).read_text(encoding="utf-8").splitlines():
        name = Path(line.strip()).name
        if name:
            ids.append(name[: -len(Path(name).suffix)] if Path(name).suffix.lower() in _AUDIO_SUFFIXES else name)
    return ids
