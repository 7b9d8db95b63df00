"""The engine's MusiCNN embedder: sliding patches over the log-mel, in batches, on CPU or GPU.

Outputs `taggram` (50 MSD tags), `penultimate` (200-d) or `pool` (753-d, the shared pooled table's
features); see `models.embedders.musicnn.pool`.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from models.embedders.base import Embedder, EmbedderError, register
from models.embedders.musicnn import int8
from models.embedders.musicnn.frontend import (
    FRAME_SECONDS,
    HOP_SECONDS,
    MAX_PATCHES_CPU,
    MAX_PATCHES_CUDA,
    MIN_SAMPLES,
    PATCH_FRAMES,
    PATCH_HOP_FRAMES,
    SR,
    LogMel,
    n_logmel_frames,
    n_patches,
)
from models.embedders.musicnn.network import MusiCNN
from models.embedders.musicnn.pool import POOL_BLOCK_PATCHES, POOL_DIM, pool_blocks
from models.embedders.musicnn.weights import load_msd_musicnn
from models.precision import autocast
from utils import settings as app_settings

# fmt: on
OUTPUT_DIMS = {"taggram": 50, "penultimate": 200, "pool": POOL_DIM}


def _run_sliding(
    model: MusiCNN,
    mel: torch.Tensor,
    keys: tuple[str, ...],
    length: int = PATCH_FRAMES,
    step: int = PATCH_HOP_FRAMES,
    max_patches: int | None = None,
) -> dict[str, torch.Tensor]:
    """`model.sliding_features` of (B, T, 96) log-mels, float32, rows slice-major (B * P).

    One forward when the B * P patches fit in `max_patches`; otherwise groups of whole slices, or
    runs of patches within one long log-mel (patches only see their own frames, so this is exact).
    """
    if max_patches is None:
        max_patches = MAX_PATCHES_CUDA if mel.device.type == "cuda" else MAX_PATCHES_CPU
    n = n_patches(mel.shape[1], length, step)
    per_forward = max(1, max_patches // max(n, 1))  # slices per forward
    span = max(1, min(n, max_patches))  # patches per forward within a slice
    chunks: dict[str, list[torch.Tensor]] = {key: [] for key in keys}
    with torch.inference_mode(), autocast(mel.device):
        for b in range(0, mel.shape[0], per_forward):
            for k in range(0, n, span):
                frames = slice(k * step, (min(n, k + span) - 1) * step + length)
                out = model.sliding_features(mel[b : b + per_forward, frames], length, step)
                for key in keys:
                    chunks[key].append(out[key].float())
    return {key: torch.cat(parts) for key, parts in chunks.items()}


class MusiCNNEmbedder(Embedder):
    """MSD-MusiCNN taggram (50-d), penultimate (200-d) or pool (753-d) per 3 s patch, one every 61 frames.

    Slices shorter than one patch (< 2.98 s) are zero-padded at the end, in the audio, to one patch:
    the network only ever sees the input geometry it was trained on. `pool` tables use the published
    pooled features' own grid instead (`track_frames`: 5.984 s blocks of two back-to-back patches).
    """

    name = "musicnn-msd"
    sample_rate = SR
    frame_seconds = FRAME_SECONDS
    hop_seconds = HOP_SECONDS

    def __init__(
        self, device: str | torch.device = "cpu", output: str = "taggram", precision: str | None = None
    ) -> None:
        super().__init__(device)
        if output not in OUTPUT_DIMS:
            raise EmbedderError(f"Unknown MusiCNN output {output!r}; choose one of {', '.join(OUTPUT_DIMS)}.")
        self.output = output
        self.dim = OUTPUT_DIMS[output]
        if precision is None:  # the setting (GENRE_LENS_PRECISION) only concerns CPUs; GPUs use fp16 autocast
            precision = app_settings.load().precision if self.device.type == "cpu" else "fp32"
        self.precision = int8.check_precision(precision, self.device)
        self._int8_tag = ""
        if self.precision == "int8":
            self.model, self._int8_tag = int8.load_msd_musicnn_int8()
        else:
            self.model = load_msd_musicnn(self.device)
        self.frontend = LogMel().to(self.device)

    @property
    def id(self) -> str:
        """fp32: the float port's id; int8 adds '+int8-<calibration hash>' (caches and tables never mix them)."""
        base = f"musicnn-msd/{self.output}/v1"
        return f"{base}+int8-{self._int8_tag}" if self.precision == "int8" else base

    @property
    def settings(self) -> dict[str, Any]:
        return {**super().settings, "output": self.output, "precision": self.precision}

    def n_frames(self, n_samples: int) -> int:
        return n_patches(n_logmel_frames(max(n_samples, MIN_SAMPLES)))

    @property
    def track_frame_seconds(self) -> float:
        return POOL_BLOCK_PATCHES * FRAME_SECONDS if self.output == "pool" else self.frame_seconds

    @property
    def track_hop_seconds(self) -> float:
        return self.track_frame_seconds if self.output == "pool" else self.hop_seconds

    def _patch_vectors(self, slices: np.ndarray, step: int) -> torch.Tensor:
        """(B * P, dim) vectors of every patch, patches `step` log-mel frames apart, rows slice-major."""
        with torch.inference_mode():
            mel = self.frontend(torch.from_numpy(slices).to(self.device))  # (B, T, 96), float32
            return _run_sliding(self.model, mel, (self.output,), step=step)[self.output]

    def _checked(self, slices: np.ndarray) -> np.ndarray:
        """float32 (B, n) audio, at least one patch long."""
        slices = np.asarray(slices, dtype=np.float32)
        if slices.ndim != 2:
            raise ValueError(f"embed expects (batch, samples) audio, got shape {slices.shape}")
        if slices.shape[1] < MIN_SAMPLES:
            slices = np.pad(slices, ((0, 0), (0, MIN_SAMPLES - slices.shape[1])))
        return slices

    def embed(self, slices: np.ndarray) -> np.ndarray:
        slices = self._checked(slices)
        batch = slices.shape[0]
        if batch == 0:
            return np.zeros((0, self.n_frames(slices.shape[1]), self.dim), dtype=np.float32)
        out = self._patch_vectors(slices, PATCH_HOP_FRAMES)
        return out.reshape(batch, -1, self.dim).cpu().numpy()

    def track_frames(self, samples: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """`pool`: back-to-back patches averaged in pairs, exactly the published pooled tables' rows."""
        if self.output != "pool":
            return super().track_frames(samples)
        patches = self._patch_vectors(self._checked(np.asarray(samples)[None, :]), PATCH_FRAMES).cpu().numpy()
        blocks = pool_blocks(patches)
        return blocks, np.arange(len(blocks), dtype=np.float64) * self.track_hop_seconds


@register("musicnn-msd")
def _factory(
    device: str | torch.device = "cpu", output: str = "taggram", precision: str | None = None
) -> MusiCNNEmbedder:
    return MusiCNNEmbedder(device=device, output=output, precision=precision)
