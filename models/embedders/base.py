"""The one interface every audio embedder implements, and the registry that builds them by name.

The engine, the training pipeline and the feedback store only ever talk to an `Embedder`, so a
new embedding (OpenL3, MusiCNN features, ...) plugs in without touching them.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from utils import settings


def cache_root() -> Path:
    """Per-user cache of converted weights and per-track embeddings: `$GENRE_LENS_CACHE` or ~/.cache/genre-lens."""
    return settings.load().cache_dir


def base_id(embedder_id: str) -> str:
    """The id of the float model an embedder id approximates: arithmetic variants ('+int8-...') stripped.

    Bundles are matched on it (an int8 engine serves an fp32-trained model); caches and tables keep the
    full id, so int8 and fp32 numbers are never mixed.
    """
    return embedder_id.split("+", 1)[0]


class EmbedderError(RuntimeError):
    """Raised when an embedder cannot be built (missing weights, unknown name, bad settings)."""


class Embedder(ABC):
    """Turns batches of mono audio slices into per-frame embedding sequences.

    Subclasses set the class attributes or properties below and implement `embed`.
    `id` must change whenever the numbers an embedder produces could change (weights, output
    layer, front-end, hop), because it keys every cache and is written into every checkpoint.
    """

    name: str  # registry name, e.g. "musicnn-msd"
    sample_rate: int  # rate the audio must have when given to `embed`
    frame_seconds: float  # length of the audio one frame looks at
    hop_seconds: float  # distance between frame starts
    dim: int  # embedding size per frame

    def __init__(self, device: str | torch.device = "cpu") -> None:
        self.device = torch.device(device)

    @property
    @abstractmethod
    def id(self) -> str:
        """Stable identifier of the embedder and every setting that changes its output."""

    @property
    def settings(self) -> dict[str, Any]:
        """JSON-serialisable settings recorded in tables and checkpoints."""
        return {
            "name": self.name,
            "sample_rate": self.sample_rate,
            "frame_seconds": self.frame_seconds,
            "hop_seconds": self.hop_seconds,
            "dim": self.dim,
        }

    @abstractmethod
    def embed(self, slices: np.ndarray) -> np.ndarray:
        """Embed a batch of equal-length mono slices.

        `slices`: float32 array (B, n_samples) at `sample_rate`.
        Returns float32 (B, frames, dim); frame k starts at `k * hop_seconds` in its slice.
        """

    def frame_starts(self, n_samples: int) -> np.ndarray:
        """Start times (s) of the frames `embed` returns for a slice of `n_samples` samples."""
        n = self.n_frames(n_samples)
        return np.arange(n, dtype=np.float64) * self.hop_seconds

    @abstractmethod
    def n_frames(self, n_samples: int) -> int:
        """Number of frames `embed` returns for a slice of `n_samples` samples."""

    @property
    def track_frame_seconds(self) -> float:
        """Length of one row of a table made by `track_frames` (most embedders: one frame)."""
        return self.frame_seconds

    @property
    def track_hop_seconds(self) -> float:
        """Distance between the rows of a table made by `track_frames`."""
        return self.hop_seconds

    def track_frames(self, samples: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Rows of a whole track on its table grid: (F, dim) vectors and (F,) start times.

        By default the track is embedded as one long slice, so rows lie on the same track-level
        grid as the published tables; an embedder whose tables use another grid overrides this.
        """
        samples = np.asarray(samples, dtype=np.float32)
        vectors = self.embed(samples[None, :])[0]
        return vectors, self.frame_starts(len(samples))[: len(vectors)]


_REGISTRY: dict[str, Callable[..., Embedder]] = {}


def register(name: str) -> Callable[[Callable[..., Embedder]], Callable[..., Embedder]]:
    """Decorator that makes an embedder factory available to `build_embedder(name)`."""

    def wrap(factory: Callable[..., Embedder]) -> Callable[..., Embedder]:
        _REGISTRY[name] = factory
        return factory

    return wrap


def available() -> list[str]:
    """Names accepted by `build_embedder`."""
    _import_builtin()
    return sorted(_REGISTRY)


def build_embedder(name: str, device: str | torch.device = "cpu", **options: Any) -> Embedder:
    """Build a registered embedder on `device` (weights loaded once, eval mode)."""
    _import_builtin()
    if name not in _REGISTRY:
        raise EmbedderError(f"Unknown embedder {name!r}; choose one of {', '.join(sorted(_REGISTRY))}.")
    return _REGISTRY[name](device=device, **options)


def _import_builtin() -> None:
    """Import the built-in embedder modules so their `register` decorators run."""
    import importlib

    for module in ("models.embedders.musicnn.embedder", "models.embedders.openl3.embedder"):
        importlib.import_module(module)
