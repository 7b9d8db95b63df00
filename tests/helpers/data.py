"""Generated audio and tables, and the paths to ../shared (skipping with a reason when it is absent)."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from tests.helpers.postgres import db_url, postgres_server, postgres_url  # noqa: F401  (fixtures for every test module)

ROOT = Path(__file__).resolve().parents[2]

SHARED = ROOT.parent / "shared"

def shared_path(*parts: str) -> Path:
    """Path under ../shared, skipping the test with a clear reason when it is absent."""
    path = SHARED.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"needs ../shared/{'/'.join(parts)} (not present beside this checkout)")
    return path

def synth_music(seconds: float = 20.0, sr: int = 22050, seed: int = 0) -> np.ndarray:
    """A deterministic music-like signal: a few harmonic notes, a beat and a little noise."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * sr)) / sr
    y = np.zeros_like(t)
    for k, f0 in enumerate((220.0, 277.2, 329.6, 440.0)):
        gate = (np.floor(t * 2 + k) % 4 < 2).astype(float)
        y += gate * sum(np.sin(2 * np.pi * f0 * h * t) / h for h in (1, 2, 3))
    y += 0.5 * np.exp(-((t * 2) % 1) * 30) * rng.standard_normal(t.size)
    return (0.2 * y / np.max(np.abs(y))).astype(np.float32)

def wav_bytes(y: np.ndarray, sr: int, subtype: str = "PCM_16", fmt: str = "WAV") -> bytes:
    """Encode samples (n,) or (n, ch) into an in-memory audio file."""
    buf = io.BytesIO()
    sf.write(buf, y, sr, subtype=subtype, format=fmt)
    return buf.getvalue()

def synthetic_table(n_per_genre: int = 6, dim: int = 16, seconds: float = 30.0, seed: int = 0, spread: float = 0.6):
    """A separable embedding table on the MusiCNN frame grid: frames drawn around genre-specific means."""
    from utils.constants import GENRES
    from utils.tables import PUBLISHED_MUSICNN_META, EmbeddingTable

    rng = np.random.default_rng(seed)
    hop, frame = PUBLISHED_MUSICNN_META["hop_seconds"], PUBLISHED_MUSICNN_META["frame_seconds"]
    n_frames = int((seconds - frame) // hop) + 1
    means = rng.normal(0, 1, (len(GENRES), dim))
    vec, tid, gen, start = [], [], [], []
    for g, genre in enumerate(GENRES):
        for k in range(n_per_genre):
            vec.append(means[g] + spread * rng.normal(0, 1, (n_frames, dim)))
            tid += [f"{genre}.{k:05d}"] * n_frames
            gen += [genre] * n_frames
            start.append(np.arange(n_frames) * hop)
    meta = dict(PUBLISHED_MUSICNN_META, dim=dim)
    meta["embedder"] = {"name": "synthetic", "id": f"synthetic/{dim}", "options": {}}
    return EmbeddingTable(
        np.concatenate(vec).astype(np.float32),
        np.array(tid),
        np.array(gen),
        np.concatenate(start).astype(np.float32),
        meta,
    )
