"""Bookkeeping beside an embedding table: the lock two runs take turns on, and the record of its audio.

A track's id is its file name without suffix (GTZAN's `blues.00012`), so a later run can only tell
"already in" from "another file of the same name" by genre and audio: `.<table>.sources.json` beside
the table records the audio sha256 of each track a run embedded (tables keep their format), and
`.<table>.lock` makes two runs on one table (or one shard folder) take turns instead of dropping each
other's tracks. Hidden files: bookkeeping, not data.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from models.classifier.bundle import sha256_file
from utils.atomic import atomic_write_text
from utils.tables import EmbeddingTable

try:
    import fcntl
except ImportError:  # Windows: no advisory locks; runs on one table must not overlap there
    fcntl = None  # type: ignore[assignment]


def _sidecar(out: Path, kind: str) -> Path:
    """`.<table name>.<kind>` beside the table (hidden: bookkeeping, not data)."""
    return out.with_name(f".{out.name}.{kind}")


@contextmanager
def table_lock(out: Path, log: Callable[[str], None] | None = None) -> Iterator[float | None]:
    """Hold an exclusive lock on `out` from reading it to its last save; yields the seconds waited (None: none).

    Without it two runs each read the table, add their tracks and save: the later save drops the other's.
    """
    if fcntl is None:
        yield None
        return
    lock = _sidecar(out, "lock")
    lock.parent.mkdir(parents=True, exist_ok=True)
    with open(lock, "a") as handle:
        waited = None
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            if log is not None:
                log(f"waiting for another embed run to finish writing {out} ...")
            start = time.monotonic()
            fcntl.flock(handle, fcntl.LOCK_EX)
            waited = time.monotonic() - start
        try:
            yield waited
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def save_table(table: EmbeddingTable, out: Path, shas: dict[str, str]) -> None:
    """Write the table, then the audio hashes of its tracks (tied to this exact table by its fingerprint)."""
    table.save(out)
    sources = {"table_sha256": table.fingerprint(), "audio_sha256": shas}
    atomic_write_text(_sidecar(out, "sources.json"), json.dumps(sources, indent=0, sort_keys=True))


def read_sources(out: Path, table: EmbeddingTable) -> dict[str, str]:
    """Track id -> audio sha256 recorded with this very table; empty for older tables or a stale record."""
    try:
        sources = json.loads(_sidecar(out, "sources.json").read_text(encoding="utf-8"))
        if sources.get("table_sha256") == table.fingerprint():
            return {str(k): str(v) for k, v in sources["audio_sha256"].items()}
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        pass  # no record, or one that cannot be trusted: genres alone tell tracks apart
    return {}


def name_clash(out: Path, tid: str, path: Path, genre: str, old_genre: str, shas: dict[str, str],
                known_audio: set[str]) -> str | None:
    """Why a file whose id is already in the table is another track (None: it is the same one, skip it)."""
    if shas:
        try:
            audio = sha256_file(path)  # the same hash `load_audio` gives the audio (and the cache uses)
        except OSError as exc:
            return f"could not read the file: {exc.strerror or exc}"
        if audio in known_audio:  # this very audio is in the table (under this id or another)
            return None
    fix = "rename the file or write to another --out"
    if genre and old_genre and genre != old_genre:
        return f"{out.name} already holds another track named {tid!r} (genre {old_genre}, not {genre}); {fix}"
    if tid in shas:
        return f"{out.name} already holds a track named {tid!r} with different audio; {fix}"
    return None

