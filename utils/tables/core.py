"""The embedding table type: frame embeddings of many tracks, and the published tables' metas.

Format (documented in README): one row per frame, rows of a track contiguous and in time order.
- `vectors` (N, D) float32 — the frame embeddings (`taggram` is read as an alias, which is how the
  published MSD-MusiCNN GTZAN tables name it)
- `track_id` (N,) str, `genre` (N,) str (empty when unknown), `frame_start_s` (N,) float32
- `meta` () str — JSON: embedder name, id, options, frame_seconds, hop_seconds, dim
Plain arrays only, so `np.load` needs no pickle.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from utils.atomic import atomic_path

MUSICNN_FRAME_S = 187 * 256 / 16000
MUSICNN_HOP_S = 61 * 256 / 16000
PUBLISHED_MUSICNN_META: dict[str, Any] = {
    "embedder": {"name": "musicnn-msd", "id": "musicnn-msd/taggram/v1", "options": {"output": "taggram"}},
    "frame_seconds": MUSICNN_FRAME_S,
    "hop_seconds": MUSICNN_HOP_S,
    "dim": 50,
}


PUBLISHED_POOL_META: dict[str, Any] = {  # ../shared/data/gtzan_musicnn_pool: blocks of two back-to-back patches
    "embedder": {"name": "musicnn-msd", "id": "musicnn-msd/pool/v1", "options": {"output": "pool"}},
    "frame_seconds": 2 * MUSICNN_FRAME_S,
    "hop_seconds": 2 * MUSICNN_FRAME_S,
    "dim": 753,
}
_PUBLISHED_BY_DIM = {50: PUBLISHED_MUSICNN_META, 753: PUBLISHED_POOL_META}


class TableError(ValueError):
    """An embedding table is missing, malformed or inconsistent."""


@dataclass
class TrackFrames:
    """The frames of one track."""

    track_id: str
    genre: str
    vectors: np.ndarray  # (F, D)
    frame_start_s: np.ndarray  # (F,)


@dataclass
class EmbeddingTable:
    """Frame rows of many tracks plus the embedder that produced them."""

    vectors: np.ndarray
    track_id: np.ndarray
    genre: np.ndarray
    frame_start_s: np.ndarray
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def frame_seconds(self) -> float:
        """Length of audio one frame covers."""
        return float(self.meta["frame_seconds"])

    @property
    def embedder_id(self) -> str:
        """Identifier of the embedder the vectors come from."""
        return str(self.meta.get("embedder", {}).get("id", "unknown"))

    @property
    def dim(self) -> int:
        """Embedding size."""
        return int(self.vectors.shape[1])

    def track_ids(self) -> list[str]:
        """Track ids in first-appearance order."""
        _, first = np.unique(self.track_id, return_index=True)
        return [str(self.track_id[i]) for i in sorted(first)]

    def tracks(self) -> list[TrackFrames]:
        """Split rows into tracks (rows of a track are contiguous)."""
        out = []
        bounds = np.flatnonzero(self.track_id[1:] != self.track_id[:-1]) + 1
        for a, b in zip(np.r_[0, bounds], np.r_[bounds, len(self.track_id)], strict=True):
            out.append(
                TrackFrames(str(self.track_id[a]), str(self.genre[a]), self.vectors[a:b], self.frame_start_s[a:b])
            )
        return out

    def subset(self, track_ids: list[str] | set[str]) -> EmbeddingTable:
        """Rows of the given tracks only."""
        keep = np.isin(self.track_id, list(track_ids))
        return EmbeddingTable(
            self.vectors[keep], self.track_id[keep], self.genre[keep], self.frame_start_s[keep], dict(self.meta)
        )

    def fingerprint(self) -> str:
        """sha256 of the table's content: identifies the training data in a model card."""
        h = hashlib.sha256()
        for arr in (self.vectors, self.frame_start_s):
            h.update(np.ascontiguousarray(arr).tobytes())
        h.update("\n".join(self.track_id.tolist()).encode())
        h.update("\n".join(self.genre.tolist()).encode())
        return h.hexdigest()

    def save(self, path: str | os.PathLike) -> None:
        """Write atomically as .npz (readers never see half a table)."""
        with atomic_path(path, suffix=".npz") as tmp:
            np.savez(
                tmp,
                vectors=self.vectors.astype(np.float32),
                track_id=self.track_id.astype(str),
                genre=self.genre.astype(str),
                frame_start_s=self.frame_start_s.astype(np.float32),
                meta=np.array(json.dumps(self.meta)),
            )

    @classmethod
    def concat(cls, tables: list[EmbeddingTable], meta: dict[str, Any]) -> EmbeddingTable:
        """Stack tables with the same embedder."""
        if not tables:
            return cls.empty(meta)
        return cls(
            np.concatenate([t.vectors for t in tables]),
            np.concatenate([t.track_id for t in tables]),
            np.concatenate([t.genre for t in tables]),
            np.concatenate([t.frame_start_s for t in tables]),
            meta,
        )

    @classmethod
    def empty(cls, meta: dict[str, Any]) -> EmbeddingTable:
        """A table with no rows."""
        dim = int(meta.get("dim", 0))
        return cls(
            np.zeros((0, dim), np.float32), np.array([], dtype=str), np.array([], dtype=str),
            np.zeros(0, np.float32), meta,
        )
