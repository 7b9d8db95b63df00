"""Evaluate a bundle on an embedding table or an audio folder in this process (`evaluate --engine local`).

The Ray twin (`app.jobs.ray_evaluate`) returns the same report for the same input; the CLI writes,
records and prints either one the same way.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from models.classifier.bundle import load_bundle, read_card
from models.training.evaluation import audio_folder_items, evaluate_analyses, evaluate_table
from utils.audio import AudioError
from utils.tables import EmbeddingTable, load_table, require_genres
from utils.tables.parquet import is_shard_folder

Progress = Callable[[int, int], None]


def is_audio_folder(source: Path) -> bool:
    """A folder of genre sub-folders (not a Parquet shard folder)."""
    return source.is_dir() and not is_shard_folder(source)


def evaluate_source(
    source: Path,
    bundle: Path,
    *,
    train_table: EmbeddingTable | None = None,
    wanted: set[str] | None = None,
    list_name: str | None = None,
    device: str | None = None,
    seed: int = 0,
    progress: Progress | None = None,
) -> dict[str, Any]:
    """Metrics of `bundle` on `source` (only the track ids in `wanted`, named `list_name`), baseline included."""
    if not source.exists():
        raise FileNotFoundError(f"{source} does not exist.")
    if is_audio_folder(source):
        report = _evaluate_audio(source, bundle, train_table, wanted, device, seed, progress, list_name)
        report["source"] = {"kind": "audio", "folder": source.name, "list": list_name}
        card = read_card(bundle)
    else:
        table = load_table(source)
        if not len(table.vectors):
            raise ValueError(f"{source} holds no tracks to evaluate.")
        if wanted is not None:
            ids = table.track_ids()
            table = table.subset(wanted)
            if not len(table.vectors):
                raise ValueError(_matched_nothing(wanted, list_name, source, ids))
        require_genres(table, source)  # scoring needs the truth: "x not in tuple" said nothing of the table
        model, card = load_bundle(bundle)
        card.check_table(table, str(source))
        report = evaluate_table(model, table, train_table, seed)
    report["model"] = {"version": card.version, "weights_sha256": card.weights_sha256}
    return report


def _evaluate_audio(source: Path, bundle: Path, train_table: EmbeddingTable | None, wanted: set[str] | None,
                    device: str | None, seed: int, progress: Progress | None,
                    list_name: str | None = None) -> dict[str, Any]:
    """Every file through the real engine (decode, loudness, windows, embedder, head), as users get it."""
    from app.engine import Engine

    unreadable: list[tuple[str, str]] = []
    every = audio_folder_items(source, unreadable=unreadable)
    if not every:
        raise ValueError(f"{source} has no audio files in genre sub-folders ({source}/<genre>/<file>)" +
                         (f"; {unreadable[0][0]} {unreadable[0][1]}." if unreadable else "."))
    items = [(p, g) for p, g in every if wanted is None or p.stem in wanted]
    if not items:
        raise ValueError(_matched_nothing(wanted or set(), list_name, source, [p.stem for p, _ in every]))
    engine = Engine(checkpoint=bundle, device=device)
    rows, failed = [], list(unreadable)
    for i, (path, genre) in enumerate(items):
        try:
            rows.append((path.stem, genre, engine.analyze(path)))
        except AudioError as exc:
            failed.append((str(path), str(exc)))
        if progress is not None:
            progress(i + 1, len(items))
    if not rows:
        raise ValueError(f"none of the {len(items)} files in {source} could be evaluated "
                         f"(first: {failed[0][0]}: {failed[0][1]}).")
    report = evaluate_analyses(rows, train_table, seed)
    report["failed"] = failed
    return report


def _matched_nothing(wanted: set[str], list_name: str | None, source: Path, ids: list[str]) -> str:
    """Why a split list selected no track, with an id from each side to compare by eye."""
    if not wanted:
        return f"{list_name or 'the list'} names no tracks."
    return (f"none of the {len(wanted)} track ids in {list_name or 'the list'} is in {source} "
            f"(the list has e.g. {sorted(wanted)[0]!r}, {source.name} e.g. {ids[0]!r}).")
