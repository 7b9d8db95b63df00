"""The OpenL3 network (openl3 0.4.2) in PyTorch: `OpenL3Net` (the conv net) and `OpenL3Model`
(front-end + net + openl3's pooling), without TensorFlow.

Numerics follow openl3 0.4.2 closely enough to pass the goldens in ../shared/golden/openl3.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from tqdm import tqdm

from models.embedders.openl3.frontend import (
    FRAME_LEN,
    OpenL3Error,
    build_frontend,
)
from models.embedders.openl3.weights import (
    CONV_CHANNELS,
    LoadedWeights,
)
from models.precision import autocast

VALID_CONTENT_TYPES = ("music", "env")


VALID_EMBEDDING_SIZES = (6144, 512)


CPU_MAX_BATCH = 8  # 8 frames of mel256 already need ~100 MB per activation; larger is slower on CPU


# openl3.models.AUDIO_POOLING_SIZES: 'same' max-pool of the (n_mels/8, 24, 512) map.
POOL_SIZES = {"mel128": {6144: (4, 8), 512: (16, 24)}, "mel256": {6144: (8, 8), 512: (32, 24)}}


class OpenL3Net(nn.Module):
    """Keras' audio network: BN, 3 x ([Conv3x3-BN-ReLU] x 2, MaxPool 2), Conv-BN-ReLU, Conv.

    Input (B, 1, n_mels, 199) dB spectrogram; output the `audio_embedding_layer` map (B, 512, n_mels/8, 24).
    BN eps is Keras' 1e-3, not PyTorch's 1e-5.
    """

    def __init__(self) -> None:
        super().__init__()
        self.bn0 = nn.BatchNorm2d(1, eps=1e-3)
        self.convs = nn.ModuleList(nn.Conv2d(cin, cout, 3, padding=1) for cin, cout in CONV_CHANNELS)
        self.bns = nn.ModuleList(nn.BatchNorm2d(cout, eps=1e-3) for _, cout in CONV_CHANNELS[:-1])

    def forward(self, spec: torch.Tensor) -> torch.Tensor:
        """Spectrogram → unpooled embedding map."""
        x = self.bn0(spec)
        for i, bn in enumerate(self.bns):
            x = F.relu(bn(self.convs[i](x)))
            if i in (1, 3, 5):
                x = F.max_pool2d(x, 2)  # Keras 'valid' pooling floors 199 → 99 → 49 → 24
        return self.convs[-1](x)


def max_pool_same(x: torch.Tensor, kernel: tuple[int, int]) -> torch.Tensor:
    """Keras `MaxPooling2D(pool_size=kernel, padding='same')` (stride = kernel, -inf padding)."""
    (h, w), (kh, kw) = x.shape[-2:], kernel
    ph = max((-(-h // kh) - 1) * kh + kh - h, 0)
    pw = max((-(-w // kw) - 1) * kw + kw - w, 0)
    if ph or pw:
        x = F.pad(x, (pw // 2, pw - pw // 2, ph // 2, ph - ph // 2), value=float("-inf"))
    return F.max_pool2d(x, kernel)


class OpenL3Model(nn.Module):
    """Front-end + network + pooling: 1-s frames (B, 48000) at 48 kHz → embeddings (B, 512|6144).

    `dtype` is the network's precision (float64 only to prove fidelity); the front-end runs in
    `frontend_dtype` (float64 by default: it is cheap, and kapre's 80 dB range amplifies float32 FFT
    noise in quiet bins). On CUDA, a float32 network runs under float16 autocast when `amp` is set.
    """

    def __init__(
        self,
        input_repr: str = "mel256",
        embedding_size: int = 6144,
        frontend: str = "kapre",
        *,
        content_type: str | None = None,
        dtype: torch.dtype = torch.float32,
        frontend_dtype: torch.dtype = torch.float64,
        pad_mode: str = "constant",
        amp: bool = True,
    ) -> None:
        super().__init__()
        if embedding_size not in VALID_EMBEDDING_SIZES:
            raise OpenL3Error(f"Invalid embedding size {embedding_size}. Must be one of {VALID_EMBEDDING_SIZES}")
        self.frontend_layer = build_frontend(frontend, input_repr, frontend_dtype, pad_mode)
        self.input_repr = input_repr
        self.embedding_size = embedding_size
        self.frontend = frontend
        self.content_type = content_type
        self.dtype = dtype
        self.amp = amp
        self.weights_sha256: str | None = None
        self.net = OpenL3Net().to(dtype)
        if self._channels_last:
            self.net.to(memory_format=torch.channels_last)
        self.eval()

    @property
    def _channels_last(self) -> bool:
        """NHWC makes the float32 convs faster on CPU (oneDNN) and lets CUDA use tensor cores."""
        return self.dtype != torch.float64

    @property
    def device(self) -> torch.device:
        """Where the network's parameters live; frames are moved there batch by batch."""
        return self.net.bn0.weight.device

    def load_weights(self, weights: LoadedWeights | dict[str, torch.Tensor]) -> OpenL3Model:
        """Load a converted state dict (see `models.embedders.openl3.weights`) into the network."""
        state = weights.state_dict if isinstance(weights, LoadedWeights) else weights
        self.net.load_state_dict({k: v.to(self.dtype) if v.is_floating_point() else v for k, v in state.items()})
        self.weights_sha256 = weights.sha256 if isinstance(weights, LoadedWeights) else None
        return self

    def spectrogram(self, frames: torch.Tensor) -> torch.Tensor:
        """Frames (B, 48000) or (B, 1, 48000) → the network input (B, 1, n_mels, 199)."""
        return self.frontend_layer(frames.reshape(frames.shape[0], FRAME_LEN))

    def unpooled(self, spec: torch.Tensor) -> torch.Tensor:
        """Network on a spectrogram (B, 1, n_mels, 199) → (B, 512, n_mels/8, 24) in float32 or `dtype`."""
        spec = spec.to(device=self.device, dtype=self.dtype)
        if self._channels_last:
            spec = spec.contiguous(memory_format=torch.channels_last)
        if self.amp and self.dtype == torch.float32:  # autocast is a no-op off CUDA
            with autocast(spec.device):
                return self.net(spec).float()
        return self.net(spec)

    def pool(self, unpooled: torch.Tensor, embedding_size: int | None = None) -> torch.Tensor:
        """openl3's final max-pool, flattened in Keras' (H, W, C) order."""
        kernel = POOL_SIZES[self.input_repr][embedding_size or self.embedding_size]
        pooled = max_pool_same(unpooled, kernel)
        return pooled.permute(0, 2, 3, 1).reshape(pooled.shape[0], -1)

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        """Frames → embeddings (B, embedding_size)."""
        return self.pool(self.unpooled(self.spectrogram(frames.to(self.device))))

    @torch.inference_mode()
    def embed_frames(
        self, frames: np.ndarray | torch.Tensor, batch_size: int = 32, verbose: bool = False
    ) -> np.ndarray:
        """Embed many frames (N, 48000), `batch_size` at a time on the model's device."""
        n = frames.shape[0]
        out = np.empty((n, self.embedding_size), dtype=np.float64 if self.dtype == torch.float64 else np.float32)
        if self.device.type == "cpu":  # same results; big CPU batches only cost page faults
            batch_size = min(batch_size, CPU_MAX_BATCH)
        for start in tqdm(range(0, n, batch_size), disable=not verbose, desc="openl3", unit="batch"):
            batch = frames[start : start + batch_size]
            if isinstance(batch, np.ndarray):
                batch = torch.from_numpy(np.ascontiguousarray(batch))
            batch = batch.to(self.device)
            out[start : start + batch.shape[0]] = self(batch).cpu().numpy()
        return out
