"""Embedding many tracks with N worker processes (`python -m app embed --workers N`).

Why processes: decoding, resampling and the glue between convolutions run on one thread, so N
processes with cores / N torch threads each can overlap them where one process cannot; whether that
wins on a given CPU is what bench/bench_batch.py measures. Results come back in input order, so a
table built with N workers equals the one built with one.
"""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from models.embedders.base import Embedder

EmbedderSpec = tuple[str, str, dict[str, Any]]  # (registry name, device, constructor options)
TrackResult = tuple[np.ndarray, np.ndarray, str] | Exception  # embed_track's result, or the user error it raised

_worker_embedder: Embedder | None = None


def _init(spec: EmbedderSpec, expected_id: str, threads: int) -> None:
    """Per worker: its own torch threads and its own embedder, checked to be the parent's."""
    global _worker_embedder
    import torch

    from models.embedders.base import build_embedder

    torch.set_num_threads(threads)
    name, device, options = spec
    _worker_embedder = build_embedder(name, device=device, **options)
    if _worker_embedder.id != expected_id:
        raise RuntimeError(f"worker built {_worker_embedder.id}, the parent {expected_id}: environments differ")


def _one(embedder: Embedder, path: Path) -> TrackResult:
    """embed_track, with the per-file errors build_table reports returned rather than raised."""
    from app.jobs.track import embed_track
    from utils.audio import AudioError

    try:
        return embed_track(embedder, path)
    except (AudioError, OSError) as exc:
        return exc


def _work(path: Path) -> TrackResult:
    assert _worker_embedder is not None, "worker not initialised"
    return _one(_worker_embedder, path)


def embed_paths(
    embedder: Embedder, paths: list[Path], workers: int = 1, spec: EmbedderSpec | None = None
) -> Iterator[TrackResult]:
    """Each path's embed_track result (or its AudioError / OSError), in the order of `paths`.

    workers > 1 needs `spec` to rebuild the embedder in each process ('spawn': a forked torch
    whose OpenMP pool already ran can hang). Each worker gets cores // workers threads.
    """
    if workers <= 1 or len(paths) <= 1:
        for path in paths:
            yield _one(embedder, path)
        return
    if spec is None:
        raise ValueError("embedding with several workers needs the embedder's spec (name, device, options).")
    threads = max(1, (os.cpu_count() or 1) // workers)
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(workers, mp_context=context, initializer=_init,
                             initargs=(spec, embedder.id, threads)) as pool:
        yield from pool.map(_work, paths)
