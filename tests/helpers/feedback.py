"""Submitting corrections to a feedback store in tests."""

from __future__ import annotations

import hashlib

import numpy as np

from tests.helpers.retrain import FRAME, HOP
from utils.feedback import FeedbackStore, SliceEmbeddings

EMBEDDER = "musicnn-msd/taggram/v1"

def sha(text: str) -> str:
    """A deterministic fake audio fingerprint."""
    return hashlib.sha256(text.encode()).hexdigest()

def submit(store: FeedbackStore, audio: str = "a", genres=("jazz",), note: str | None = None,
           name: str = "song.wav", window: float | None = None, key: str | None = None, with_embeddings: bool = True):
    """One correction as the page or the CLI would store it."""
    h = sha(audio)
    emb = None
    if with_embeddings:
        starts = np.arange(6) * 5.0
        vectors = np.random.default_rng(len(audio)).normal(0, 1, (6, 3, 50)).astype(np.float32)
        emb = SliceEmbeddings(h, EMBEDDER, vectors, starts, HOP, FRAME)
    return store.add(audio_sha256=h, file_name=name, model_id="base@0123456789ab", model_version="base",
                     embedder_id=EMBEDDER, probabilities=np.linspace(0.01, 0.9, 10), genres=list(genres), note=note,
                     window_start_s=window, key=key, embeddings=emb)
