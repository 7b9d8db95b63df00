"""Building embedding tables from audio: resumable, cached, and tolerant of bad files.

Each track's rows lie on its embedder's track-level grid (`Embedder.track_frames`), the same grid
as the published MSD-MusiCNN tables (taggrams: frame k starts at k * 0.976 s; pooled features:
block k at k * 5.984 s). Per-track results are cached by
(audio sha256, embedder id), so an interrupted run resumes where it stopped.
"""

from __future__ import annotations

import csv
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from app.jobs.embed_pool import EmbedderSpec, embed_paths
from models.embedders.base import Embedder
from models.training.evaluation import audio_folder_items
from utils.audio import AudioError
from utils.constants import GENRES
from utils.tables import EmbeddingTable, load_table


@dataclass
class EmbedReport:
    """What an embed run did."""

    embedded: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)  # already in the table
    cached: list[str] = field(default_factory=list)  # found in the per-track cache
    failed: list[tuple[str, str]] = field(default_factory=list)  # (source, reason)


def list_source(source: Path) -> list[tuple[str, Path, str]]:
    """(track id, path, genre) from a folder of genre sub-folders or a CSV of path,label."""
    source = Path(source)
    if source.is_dir():
        items = [(p.stem, p, g) for p, g in audio_folder_items(source)]
    elif source.suffix.lower() == ".csv":
        items = []
        with open(source, newline="", encoding="utf-8") as f:
            for row in csv.reader(f):
                if not row or row[0].strip().lower() in {"path", "file", "filename"}:
                    continue
                path = Path(row[0].strip())
                path = path if path.is_absolute() else source.parent / path
                label = row[1].strip().lower() if len(row) > 1 else ""
                items.append((path.stem, path, label))
    else:
        raise ValueError(f"{source} is neither a folder of genre sub-folders nor a .csv of path,label rows.")
    seen: dict[str, int] = {}
    out = []
    for tid, path, genre in items:  # keep ids unique when two files share a stem
        n = seen.get(tid, 0)
        seen[tid] = n + 1
        out.append((tid if n == 0 else f"{tid}~{n}", path, genre))
    return out


def table_meta(embedder: Embedder) -> dict:
    """The meta block of a table written by this embedder."""
    return {
        "embedder": {"name": embedder.name, "id": embedder.id, "options": getattr(embedder, "options", {})},
        "frame_seconds": embedder.track_frame_seconds,
        "hop_seconds": embedder.track_hop_seconds,
        "dim": embedder.dim,
    }


def build_table(
    embedder: Embedder,
    source: Path,
    out: Path,
    progress: Callable[[int, int, str], None] | None = None,
    save_every: int = 20,
    workers: int = 1,
    spec: EmbedderSpec | None = None,
) -> EmbedReport:
    """Embed every track of `source` into `out`, skipping tracks already there; never fatal per file.

    workers > 1 embeds in that many processes (`app.jobs.embed_pool`; `spec` rebuilds the embedder
    there); rows are added in source order either way, so the table is the same.
    """
    items = list_source(source)
    meta = table_meta(embedder)
    table = load_table(out) if Path(out).exists() else EmbeddingTable.empty(meta)
    if len(table.vectors) and table.embedder_id != embedder.id:
        raise ValueError(f"{out} holds {table.embedder_id} embeddings, not {embedder.id}; choose another --out.")
    done = set(table.track_ids())
    report = EmbedReport()
    parts = [table]
    todo = []
    for tid, path, genre in items:
        if tid in done:
            report.skipped.append(tid)
        elif genre and genre not in GENRES:
            report.failed.append((str(path), f"unknown genre {genre!r}"))
        else:
            todo.append((tid, path, genre))
    results = embed_paths(embedder, [path for _, path, _ in todo], workers, spec)
    for i, ((tid, path, genre), result) in enumerate(zip(todo, results, strict=True)):
        if progress:
            progress(i, len(todo), tid)
        if isinstance(result, AudioError):
            report.failed.append((str(path), str(result)))
            continue
        if isinstance(result, OSError):
            report.failed.append((str(path), f"could not read the file: {result.strerror or result}"))
            continue
        vectors, starts, _ = result
        n = len(vectors)
        parts.append(EmbeddingTable(vectors, np.full(n, tid), np.full(n, genre), starts, meta))
        report.embedded.append(tid)
        if len(report.embedded) % save_every == 0:
            EmbeddingTable.concat(parts, meta).save(out)
    EmbeddingTable.concat(parts, meta).save(out)
    if progress:
        progress(len(todo), len(todo), "done")
    return report
