"""The load benchmark's own arithmetic and helpers (the benchmark itself drives a browser: see bench/bench_load.py)."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import soundfile as sf

from bench.bench_load import long_wavs, percentile, summarise, tree_rss_bytes


def test_percentiles_are_nearest_rank_and_never_interpolate_downwards() -> None:
    times = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 30.0]
    assert percentile(times, 50) == 4.0 and percentile(times, 95) == 30.0  # 8 samples: p95 is the worst one
    assert percentile([2.5], 95) == 2.5 and percentile([], 50) is None
    results = [{"seconds": t, "engine_s": 1.0, "error": None, "saw_queued": t > 5} for t in times]
    results.append({"seconds": None, "engine_s": None, "error": "no verdict", "saw_queued": True})
    s = summarise(results)
    assert (s["p50_s"], s["p95_s"], s["max_s"], s["session_errors"], s["saw_queued"]) == (4.0, 30.0, 30.0, 1, 4)


def test_long_files_differ_and_last_as_long_as_asked(tmp_path: Path) -> None:
    paths = long_wavs(tmp_path, 2, minutes=0.5)
    info = sf.info(paths[0])
    assert (info.samplerate, info.channels, info.subtype) == (44100, 2, "PCM_16") and info.duration == 30.0
    digests = {hashlib.sha256(p.read_bytes()).hexdigest() for p in paths}
    assert len(digests) == 2  # different bytes: the engine's cache cannot make the benchmark look fast


def test_tree_rss_counts_this_process_and_nothing_once_gone() -> None:
    assert 10 * 2**20 < tree_rss_bytes(os.getpid()) < 64 * 2**30
    assert tree_rss_bytes(2**22 + 12345) == 0  # beyond the usual pid range: no such process
