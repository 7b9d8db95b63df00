"""One track's frame embeddings on the track-level grid, cached per audio sha256 and embedder id.

The local embed job, its worker processes and the Ray job's decode step all go through here, so a
track embeds the same wherever it runs.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np

from models.embedders.base import Embedder, cache_root
from utils.atomic import atomic_path
from utils.audio import load_audio

MAX_TRACK_S = 600.0


def cache_dir() -> Path:
    """Per-user cache for per-track embeddings."""
    return cache_root() / "embeddings"


def embed_track(embedder: Embedder, path: Path) -> tuple[np.ndarray, np.ndarray, str]:
    """Frame vectors and start times of one file on the track-level grid, plus the audio sha256."""
    decoded = load_audio(path, embedder.sample_rate, max_duration_s=MAX_TRACK_S, pad_to_s=None)
    audio_sha = decoded.sha256  # load_audio guards the path (FIFOs, size) before hashing it
    key = hashlib.sha256(f"{audio_sha}:{embedder.id}".encode()).hexdigest()
    cached = cache_dir() / f"{key}.npz"
    if cached.is_file():
        with np.load(cached) as d:
            return d["vectors"], d["frame_start_s"], audio_sha
    vectors, starts = embedder.track_frames(decoded.samples)
    vectors, starts = vectors.astype(np.float32), starts.astype(np.float32)
    with atomic_path(cached, suffix=".npz") as tmp:
        np.savez(tmp, vectors=vectors, frame_start_s=starts)
    return vectors, starts, audio_sha
