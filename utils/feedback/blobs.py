"""Slice embeddings as database blobs: .npy bytes (no pickle), checked against their recorded shape."""

from __future__ import annotations

import io

import numpy as np

from utils.feedback.records import FeedbackError, SliceEmbeddings


def to_npy(array: np.ndarray) -> bytes:
    """Array as .npy bytes (shape and dtype travel in the header; no pickle)."""
    buf = io.BytesIO()
    np.save(buf, np.ascontiguousarray(array), allow_pickle=False)
    return buf.getvalue()


def from_npy(blob: bytes, shape: list[int], dtype: str) -> np.ndarray:
    """Array from .npy bytes, checked against the stored shape and dtype."""
    array = np.load(io.BytesIO(blob), allow_pickle=False)
    if list(array.shape) != list(shape) or str(array.dtype) != dtype:
        raise FeedbackError("Stored embeddings do not match their recorded shape/dtype; the row is corrupt.")
    return array


def check_embeddings(e: SliceEmbeddings) -> SliceEmbeddings:
    """Embeddings fit to store: (S, F, D) finite float32 with S slice starts."""
    x = np.asarray(e.embeddings, dtype=np.float32)
    starts = np.asarray(e.slice_starts, dtype=np.float64).reshape(-1)
    if x.ndim != 3 or x.shape[0] == 0 or x.shape[0] != len(starts):
        raise FeedbackError(f"Slice embeddings must be (slices, frames, dim) with one start per slice; "
                            f"got {x.shape} and {len(starts)} starts.")
    if not (np.isfinite(x).all() and np.isfinite(starts).all()):
        raise FeedbackError("Slice embeddings contain NaN or infinite values.")
    if not (e.hop_seconds > 0 and e.frame_seconds > 0):
        raise FeedbackError("Embedder hop and frame lengths must be positive.")
    return SliceEmbeddings(e.audio_sha256, e.embedder_id, x, starts, float(e.hop_seconds), float(e.frame_seconds))
