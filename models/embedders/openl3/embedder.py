"""The engine's OpenL3 embedder: 1-s frames every hop, from the start of each slice.
"""

from __future__ import annotations

from numbers import Real
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from models.embedders.base import Embedder, EmbedderError, register
from models.embedders.openl3.api import _frontend_dtype, _validate
from models.embedders.openl3.frontend import (
    FRAME_LEN,
    TARGET_SR,
    OpenL3Error,
    frame_audio,
)
from models.embedders.openl3.network import CPU_MAX_BATCH, VALID_CONTENT_TYPES, OpenL3Model
from models.embedders.openl3.weights import (
    LoadedWeights,
    resolve_weights,
)


class OpenL3Embedder(Embedder):
    """OpenL3 for the engine: 1-s frames every hop, starting at the slice start (no centring).

    Only whole frames are returned (like the MusiCNN embedder's whole patches), so a slice's frames
    are exactly the track table's frames that lie inside it; a slice shorter than 1 s is zero-padded
    to one frame, as openl3 pads short audio.
    """

    name = "openl3"
    sample_rate = TARGET_SR
    frame_seconds = 1.0

    def __init__(
        self,
        device: str | torch.device = "cpu",
        input_repr: str = "mel256",
        content_type: str = "music",
        embedding_size: int = 512,
        hop_seconds: float = 0.1,
        frontend: str = "kapre",
        weights: str | Path | LoadedWeights | None = None,
        batch_size: int | None = None,
    ) -> None:
        super().__init__(device)
        _validate(frontend, input_repr, None)
        if content_type not in VALID_CONTENT_TYPES:
            raise OpenL3Error(f'Invalid content type "{content_type}"')
        if not isinstance(hop_seconds, Real) or round(hop_seconds * TARGET_SR) < 1:
            raise OpenL3Error(f"Invalid hop size {hop_seconds}")
        if not isinstance(weights, LoadedWeights):
            weights = resolve_weights(input_repr, content_type, weights)
        self.model = OpenL3Model(
            input_repr, embedding_size, frontend, content_type=content_type, frontend_dtype=_frontend_dtype(self.device)
        ).load_weights(weights)
        self.model.to(self.device)
        self.weights_sha256 = weights.sha256  # keep the hash, not a second copy of the state dict
        self.hop_len = round(hop_seconds * TARGET_SR)
        self.hop_seconds = self.hop_len / TARGET_SR
        self.dim = embedding_size
        self.batch_size = batch_size or (64 if self.device.type == "cuda" else CPU_MAX_BATCH)

    @property
    def id(self) -> str:
        """Every setting that changes the numbers, plus a short hash of the weights file."""
        m = self.model
        return (
            f"openl3-{m.input_repr}-{m.content_type}-{m.embedding_size}-{m.frontend}"
            f"-hop{self.hop_seconds:g}-w{self.weights_sha256[:10]}"
        )

    @property
    def options(self) -> dict[str, Any]:
        """Factory keywords that rebuild this embedder elsewhere (weights are found there; `id` pins them)."""
        m = self.model
        return {
            "input_repr": m.input_repr,
            "content_type": m.content_type,
            "embedding_size": m.embedding_size,
            "hop_seconds": self.hop_seconds,
            "frontend": m.frontend,
        }

    @property
    def settings(self) -> dict[str, Any]:
        """Base settings plus the OpenL3 options and the weights hash."""
        return {**super().settings, **self.options, "weights_sha256": self.weights_sha256}

    def n_frames(self, n_samples: int) -> int:
        """1 frame up to 1 s, then one more per whole hop."""
        return 1 + max(n_samples - FRAME_LEN, 0) // self.hop_len

    def embed(self, slices: np.ndarray) -> np.ndarray:
        """(B, n) float32 at 48 kHz → (B, frames, dim); all frames of the batch go through together."""
        x = torch.as_tensor(np.ascontiguousarray(slices, dtype=np.float32))
        if x.ndim != 2:
            raise ValueError(f"slices must be (B, n_samples), got shape {tuple(x.shape)}")
        b, n = x.shape
        n_frames = self.n_frames(n)
        x = F.pad(x, (0, max(FRAME_LEN - n, 0)))
        frames = frame_audio(x, self.hop_len).reshape(b * n_frames, FRAME_LEN)
        return self.model.embed_frames(frames, self.batch_size).reshape(b, n_frames, self.dim)


@register("openl3")
def _factory(**options: Any) -> OpenL3Embedder:
    """Build the engine embedder; any OpenL3 problem (missing weights included) is an EmbedderError."""
    try:
        return OpenL3Embedder(**options)
    except EmbedderError:
        raise
    except OpenL3Error as exc:
        raise EmbedderError(str(exc)) from exc
