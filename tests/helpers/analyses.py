"""Analysis objects made without audio or a model, for chart, player and session tests."""

from __future__ import annotations

import numpy as np

from app.analysis import Analysis, WindowResult
from utils.constants import GENRES
from utils.spectrogram import DisplaySpectrogram, display_spectrogram

C = len(GENRES)


def fake_analysis(duration: float = 30.0, seed: int = 0, name: str = "song.wav") -> Analysis:
    """A small, hand-made Analysis (no engine): windows every 5 s, probabilities from a seeded RNG."""
    rng = np.random.default_rng(seed)
    starts = np.arange(0.0, duration - 15.0 + 1e-6, 5.0)
    windows = []
    for i, s in enumerate(starts):
        att = rng.dirichlet(np.ones(3))
        windows.append(WindowResult(index=i, start_s=float(s), end_s=float(s) + 15.0,
                                    probabilities=rng.uniform(size=C), attention=att,
                                    slice_starts_s=s + np.array([0.0, 5.0, 10.0]),
                                    slice_probabilities=rng.uniform(size=(3, C))))
    frames = 120
    spec = DisplaySpectrogram(db=rng.uniform(-80, 0, size=(96, frames)).astype(np.float32),
                              times_s=np.linspace(0, duration, frames, dtype=np.float32),
                              freqs_hz=np.linspace(0, 8000, 96, dtype=np.float32))
    return Analysis(name=name, sha256=f"{seed:064x}", labels=list(GENRES), probabilities=rng.uniform(size=C),
                    threshold=0.5, windows=windows, slice_starts_s=np.arange(0.0, duration - 4.999, 5.0),
                    spectrogram=spec, duration_s=duration, source={"duration_s": duration}, quality={},
                    warnings=[], timings_s={}, model={"id": "test"})


def upload_from_table_track(track, embedder_id: str) -> Analysis:
    """An Analysis whose slice embeddings are exactly a table track's frames (so it must match that track)."""
    frames = track.vectors  # every frame (one per slice), whatever the table's grid
    spec = display_spectrogram(np.zeros(16000, np.float32), 16000)
    return Analysis(name="copy.wav", sha256="f" * 64, labels=["blues", "classical", "country", "disco", "hiphop",
                    "jazz", "metal", "pop", "reggae", "rock"], probabilities=np.full(10, 0.1), threshold=0.5,
                    windows=[], slice_starts_s=np.zeros(len(frames)), spectrogram=spec, duration_s=30.0, source={},
                    quality={}, warnings=[], timings_s={}, model={"embedder": embedder_id},
                    slice_embeddings=frames[:, None, :])
