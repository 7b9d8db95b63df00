"""Reading embedding tables: one `.npz` file, a folder of Parquet shards, or several at once.

Kept apart from the table type so that the Parquet reader can use the type without a cycle.
"""

from __future__ import annotations

import json
import os
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from utils.constants import AUDIO_EXTENSIONS, GENRES
from utils.tables.core import _PUBLISHED_BY_DIM, EmbeddingTable, TableError
from utils.tables.parquet import is_shard_folder, read_parquet_table
from utils.text import plural

_AUDIO_SUFFIXES = AUDIO_EXTENSIONS | {".au"}  # what a split list's paths may end in: GTZAN's originals are .au
_ZIP_MAGIC = (b"PK\x03\x04", b"PK\x05\x06")  # an .npz is a zip archive (the second: an empty one)


def load_table(path: str | os.PathLike) -> EmbeddingTable:
    """Read a table (ours or a published MusiCNN taggram table) with clear errors."""
    path = Path(path)
    if path.is_dir():  # a folder of Parquet shards written by `embed --engine ray`
        if is_shard_folder(path):
            return _check_finite(path, read_parquet_table(path))
        raise TableError(f"{path} is a folder without embedding shards (*.parquet).")
    if not path.is_file():
        raise TableError(f"No embedding table at {path}.")
    _check_is_npz(path)
    try:
        with np.load(path, allow_pickle=False) as data:
            key = "vectors" if "vectors" in data.files else "taggram" if "taggram" in data.files else None
            if key is None:
                raise TableError(f"{path} has no 'vectors' (or 'taggram') array.")
            meta = _read_meta(path, data["meta"]) if "meta" in data.files else _published_meta(path, data[key])
            table = EmbeddingTable(
                data[key].astype(np.float32),
                data["track_id"].astype(str),
                data["genre"].astype(str) if "genre" in data.files else np.full(len(data[key]), "", dtype=str),
                data["frame_start_s"].astype(np.float32),
                meta,
            )
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as exc:  # a truncated or damaged archive
        if isinstance(exc, TableError):
            raise
        raise TableError(f"Could not read embedding table {path}: {exc or type(exc).__name__}.") from exc
    n = len(table.vectors)
    if not (len(table.track_id) == len(table.genre) == len(table.frame_start_s) == n):
        raise TableError(f"{path}: columns have different lengths.")
    claimed = meta.get("dim")
    if table.vectors.ndim != 2 or (claimed is not None and int(claimed) != table.vectors.shape[1]):
        raise TableError(f"{path} holds {table.vectors.shape[-1]}-dimensional vectors, but its embedder "
                         f"{table.embedder_id} makes {claimed}-dimensional ones.")
    return _check_finite(path, table)


_META_NUMBERS = ("frame_seconds", "hop_seconds")


def _read_meta(path: Path, raw: np.ndarray) -> dict[str, Any]:
    """A table's `meta`: a JSON object naming its embedder and frame grid, else one sentence naming the file.

    A list or an empty object used to fail later with an AttributeError or a KeyError traceback.
    """
    try:
        meta = json.loads(str(raw))
    except ValueError:
        raise TableError(f"{path} has a 'meta' entry that is not valid JSON.") from None
    if not isinstance(meta, dict):
        raise TableError(f"{path} has a 'meta' entry that is a {type(meta).__name__}, not a JSON object.")
    missing = [k for k in (*_META_NUMBERS, "embedder") if k not in meta]
    if missing:
        raise TableError(f"{path} has a 'meta' entry without {', '.join(missing)}; re-embed the audio "
                         "(python -m app embed) to make a complete table.")
    for key in _META_NUMBERS:
        value = meta[key]
        if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value < float("inf"):
            raise TableError(f"{path} has a 'meta' {key} of {value!r}, not a positive number of seconds.")
    if not isinstance(meta["embedder"], dict) or not isinstance(meta["embedder"].get("id"), str):
        raise TableError(f"{path} has a 'meta' embedder that does not name its id.")
    return meta


def _check_finite(path: Path, table: EmbeddingTable) -> EmbeddingTable:
    """Refuse NaN or inf in the vectors: NaN trained a garbage model without a word, inf failed deep in sklearn."""
    bad = ~np.isfinite(table.vectors)
    if bad.any():
        rows = bad.reshape(len(bad), -1).any(axis=1)
        tracks = list(dict.fromkeys(table.track_id[rows].tolist()))
        shown = ", ".join(tracks[:3]) + (f" and {len(tracks) - 3} more" if len(tracks) > 3 else "")
        raise TableError(f"{path} has {plural(int(bad.sum()), 'non-finite value')} (NaN or inf) in its vectors "
                         f"({'track' if len(tracks) == 1 else 'tracks'} {shown}).")
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
    resolved = [Path(p).resolve() for p in paths]
    for i, path in enumerate(paths):
        if resolved[i] in resolved[:i]:  # before loading: "t.npz repeats 442 tracks of t.npz" said it twice
            raise TableError(f"{path} is given twice.")
    tables = [load_table(p) for p in paths]
    first = tables[0]
    ids = [set(t.track_ids()) for t in tables]
    for i in range(1, len(tables)):  # each against every earlier one, not only the first
        path, t = paths[i], tables[i]
        if t.embedder_id != first.embedder_id:
            raise TableError(f"{path} holds {t.embedder_id} embeddings, but {paths[0]} holds {first.embedder_id}.")
        for earlier, earlier_ids in zip(paths[:i], ids[:i], strict=True):
            if shared := ids[i] & earlier_ids:
                raise TableError(f"{path} repeats {len(shared)} tracks of {earlier} (e.g. {sorted(shared)[0]}).")
    return EmbeddingTable.concat(tables, first.meta) if len(tables) > 1 else first


def read_id_list(path: Path) -> list[str]:
    """Track ids of a split list (one path or id per line; blank lines skipped), in file order.

    A path's id is its file name without the audio suffix; a bare id keeps its dots, since GTZAN
    ids (`blues.00012`) look like a name with a suffix and lists are often copied from a table.
    """
    try:
        text = Path(path).read_text(encoding="utf-8")
    except UnicodeDecodeError:  # a binary file: Python's message named the codec, not the file
        raise TableError(f"{path} is not a text file of track ids (one id or file name per line).") from None
    ids = []
    for line in text.splitlines():
        name = Path(line.strip()).name
        if name:
            ids.append(name[: -len(Path(name).suffix)] if Path(name).suffix.lower() in _AUDIO_SUFFIXES else name)
    return ids


def require_genres(table: EmbeddingTable, name: str | os.PathLike) -> None:
    """Training and scoring need a GTZAN genre for every track; say which part is missing in one sentence.

    A table without a genre column said "labels outside the GTZAN genres: ." (training) or
    "tuple.index(x): x not in tuple" (evaluate).
    """
    genres = set(table.genre.tolist())
    if genres <= {""}:
        raise TableError(f"{name} has no genre labels; training and evaluation need a GTZAN genre for every track.")
    if "" in genres:
        unlabelled = sorted({t for t, g in zip(table.track_id.tolist(), table.genre.tolist(), strict=True) if not g})
        raise TableError(f"{name} has {plural(len(unlabelled), 'track')} without a genre label "
                         f"(e.g. {unlabelled[0]}).")
    unknown = sorted(genres - set(GENRES))
    if unknown:
        raise TableError(f"{name} has labels outside the GTZAN genres: {', '.join(unknown)}.")
