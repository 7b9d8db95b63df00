"""Building embedding tables from audio: resumable, cached, and tolerant of bad files.

Each track's rows lie on its embedder's track-level grid (`Embedder.track_frames`), the same grid
as the published MSD-MusiCNN tables (taggrams: frame k starts at k * 0.976 s; pooled features:
block k at k * 5.984 s). Per-track results are cached by
(audio sha256, embedder id), so an interrupted run resumes where it stopped.

A track's id is its file name without suffix; the lock and the audio record that tell "already in"
from "another file of the same name" live beside the table (`app/jobs/table_files.py`).
"""

from __future__ import annotations

import csv
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from app.jobs.embed_pool import EmbedderSpec, embed_paths
from app.jobs.table_files import name_clash, read_sources, save_table, table_lock
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
    repeated: list[str] = field(default_factory=list)  # inputs listed more than once (embedded once)
    waited_s: float | None = None  # how long another run writing the same table held it

    @classmethod
    def of_listing(cls, repeats: list[tuple[str, str]]) -> EmbedReport:
        """A report that starts with `source_items`' repeats: plain ones noted, unreadable ones failed."""
        return cls(repeated=[p for p, why in repeats if not why], failed=[(p, why) for p, why in repeats if why])


def list_source(source: Path) -> list[tuple[str, Path, str]]:
    """(track id, path, genre) from a folder of genre sub-folders or a CSV of path,label; each file once."""
    return source_items(source)[0]


def source_items(source: Path) -> tuple[list[tuple[str, Path, str]], list[tuple[str, str]]]:
    """list_source's items, and (path, reason) for each repeated input (the first listing wins) or one that
    cannot be read (a locked genre folder, a symlink loop); an empty reason means a plain repeat.

    A file listed twice is one track, not `a` and `a~1`; one listed with two genres is reported.
    """
    source = Path(source)
    repeats: list[tuple[str, str]] = []
    if source.is_dir():
        items = [(p.stem, p, g) for p, g in audio_folder_items(source, unreadable=repeats)]
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
    first: dict[Path, str] = {}  # resolved path -> its genre
    seen: dict[str, int] = {}
    out = []
    for tid, path, genre in items:
        try:
            key = path.resolve()
        except (OSError, RuntimeError) as exc:  # a symlink loop is a RuntimeError on Python 3.11
            repeats.append((str(path), f"could not follow the path ({exc})"))
            continue
        if key in first:
            if first[key] != genre:
                kept = first[key] or "unlabelled"
                repeats.append((str(path), f"listed again as {genre or 'unlabelled'}; kept as {kept}"))
            else:
                repeats.append((str(path), ""))
            continue
        first[key] = genre
        n = seen.get(tid, 0)  # keep ids unique when two files share a stem
        seen[tid] = n + 1
        out.append((tid if n == 0 else f"{tid}~{n}", path, genre))
    if not out:
        unread = [f"{path}: {why}" for path, why in repeats if why]
        raise ValueError(f"nothing in {source} could be read (first: {unread[0]})." if unread
                         else _nothing_listed(source))
    return out, repeats


def _nothing_listed(source: Path) -> str:
    """Why a source gave no audio at all, in the words of its layout."""
    if not source.is_dir():
        return f"{source} lists no audio files (one path,label row per track)."
    others = sorted(p.name for p in source.iterdir() if p.is_dir() and p.name.lower() not in GENRES)
    note = f"; {', '.join(others[:3])} {'is not a genre' if len(others) == 1 else 'are not genres'}" if others else ""
    return (f"{source} has no audio in genre sub-folders: put each file in {source}/<genre>/, "
            f"genre one of {', '.join(GENRES)}{note}.")


def triage(items: list[tuple[str, Path, str]], out: Path, held: dict[str, str], shas: dict[str, str],
           report: EmbedReport) -> list[tuple[int, str, Path, str]]:
    """The listed tracks still to embed, as (listing order, id, path, genre); the rest go into `report`:
    already in `out` (skipped), another track under a name `out` holds, or an unknown genre (failed).

    `held`: id -> genre of what `out` holds; `shas`: id -> audio sha256 where recorded (a shard folder
    records none, so there the genre alone tells tracks apart). Shared by the local and the Ray job.
    """
    known_audio = set(shas.values())
    todo = []
    for order, (tid, path, genre) in enumerate(items):
        if tid in held:
            clash = name_clash(out, tid, path, genre, held[tid], shas, known_audio)
            if clash:
                report.failed.append((str(path), clash))
            else:
                report.skipped.append(tid)
        elif genre and genre not in GENRES:
            report.failed.append((str(path), f"unknown genre {genre!r}"))
        else:
            todo.append((order, tid, path, genre))
    return todo


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
    log: Callable[[str], None] | None = None,
) -> EmbedReport:
    """Embed every track of `source` into `out`, skipping tracks already there; never fatal per file.

    workers > 1 embeds in that many processes (`app.jobs.embed_pool`; `spec` rebuilds the embedder
    there); rows are added in source order either way, so the table is the same. Raises ValueError
    when nothing could be embedded (no table is written then); `log` hears about waiting for the lock.
    """
    out = Path(out)
    items, repeats = source_items(source)
    meta = table_meta(embedder)
    report = EmbedReport.of_listing(repeats)
    with table_lock(out, log) as waited:
        report.waited_s = waited
        existed = out.exists()
        table = load_table(out) if existed else EmbeddingTable.empty(meta)
        if len(table.vectors) and table.embedder_id != embedder.id:
            raise ValueError(f"{out} holds {table.embedder_id} embeddings, not {embedder.id}; choose another --out.")
        shas = read_sources(out, table)
        held = dict(zip(table.track_id.tolist(), table.genre.tolist(), strict=True))
        parts = [table]
        todo = [(tid, path, genre) for _, tid, path, genre in triage(items, out, held, shas, report)]
        owner = {sha: tid for tid, sha in shas.items()}  # audio -> the track that holds it (where recorded)
        genre_of = held | {t: g for t, _, g in todo}
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
            vectors, starts, audio_sha = result
            if (twin := owner.get(audio_sha)) is not None:  # one recording under two ids would sit in train and test
                theirs = genre_of.get(twin, genre)
                clash = f", which is {theirs or 'unlabelled'}, not {genre or 'unlabelled'}" if theirs != genre else ""
                report.failed.append((str(path), f"the same audio as track {twin!r}{clash}; not embedded twice"))
                continue
            owner[audio_sha] = tid
            n = len(vectors)
            parts.append(EmbeddingTable(vectors, np.full(n, tid), np.full(n, genre), starts, meta))
            shas[tid] = audio_sha
            report.embedded.append(tid)
            if len(report.embedded) % save_every == 0:
                save_table(EmbeddingTable.concat(parts, meta), out, shas)
        if report.embedded:  # nothing new: the table stays as it was (and none is created)
            save_table(EmbeddingTable.concat(parts, meta), out, shas)
    if progress:
        progress(len(todo), len(todo), "done")
    if not report.embedded and not report.skipped:
        path, reason = report.failed[0]
        kept = "left as it was" if existed else "not written"
        raise ValueError(f"none of the {len(items)} audio files of {source} could be embedded, so {out} was {kept} "
                         f"(first: {path}: {reason}).")
    return report
