"""OpenL3 audio embeddings (openl3 0.4.2) in PyTorch, without TensorFlow.

Three layers: `OpenL3Net` (the conv net), `OpenL3Model` (front-end + net + openl3's pooling), and
openl3's own functions (`get_audio_embedding`, `load_audio_embedding_model_from_path`, ...) so that
openl3 users switch by changing an import. `OpenL3Embedder` plugs the model into the project engine.
Numerics follow openl3 0.4.2 closely enough to pass the goldens in ../shared/golden/openl3.
"""

from __future__ import annotations

from numbers import Real
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from tqdm import tqdm

from models.embedder import Embedder, EmbedderError, register
from models.openl3_frontend import (
    FRAME_LEN,
    FRONTENDS,
    INPUT_REPRS,
    TARGET_SR,
    OpenL3Error,
    OpenL3Warning,
    build_frontend,
    frame_audio,
    hop_samples,
    prepare_audio,
)
from models.openl3_weights import (
    CONV_CHANNELS,
    LoadedWeights,
    OpenL3WeightsError,
    load_weights_file,
    resolve_weights,
)

__all__ = [
    "OpenL3Embedder",
    "OpenL3Error",
    "OpenL3Model",
    "OpenL3Net",
    "OpenL3Warning",
    "OpenL3WeightsError",
    "get_audio_embedding",
    "load_audio_embedding_model",
    "load_audio_embedding_model_from_path",
    "preprocess_audio",
]

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
        """Load a converted state dict (see `models.openl3_weights`) into the network."""
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
        if self.amp and spec.device.type == "cuda" and self.dtype == torch.float32:
            with torch.autocast("cuda", dtype=torch.float16):
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


# ---------------------------------------------------------------------------------------------------
# openl3's public functions
# ---------------------------------------------------------------------------------------------------


def _validate(frontend: str, input_repr: str | None, model: OpenL3Model | None) -> tuple[str, str]:
    """openl3's `_validate_audio_frontend`; `None` means the model's representation, else mel256."""
    if frontend not in FRONTENDS:
        raise OpenL3Error(f'Invalid frontend "{frontend}". Must be one of {FRONTENDS}')
    if model is not None and model.frontend != frontend:
        raise OpenL3Error(f'The model was built for the "{model.frontend}" front-end, not "{frontend}".')
    if input_repr is None:
        input_repr = model.input_repr if model is not None else "mel256"
    if input_repr == "linear":
        raise OpenL3Error('input_repr "linear" is not supported by this port; use "mel128" or "mel256".')
    if str(input_repr) not in INPUT_REPRS:
        raise OpenL3Error(f'Invalid input representation "{input_repr}". Must be one of {INPUT_REPRS}')
    if model is not None and frontend == "librosa" and input_repr != model.input_repr:
        raise OpenL3Error(f'input_repr "{input_repr}" does not match the model\'s "{model.input_repr}".')
    return frontend, input_repr


def load_audio_embedding_model_from_path(
    model_path: str | Path,
    input_repr: str,
    embedding_size: int,
    frontend: str = "kapre",
    *,
    device: str | torch.device = "cpu",
    dtype: torch.dtype = torch.float32,
    pad_mode: str = "constant",
) -> OpenL3Model:
    """openl3's loader: weights from an openl3 `.h5` (or a converted `.pt`) file.

    Extra keywords: `device`, `dtype` (network precision), `pad_mode` ('reflect' = librosa < 0.9).
    """
    frontend, input_repr = _validate(frontend, input_repr, None)
    model = OpenL3Model(
        input_repr, embedding_size, frontend, dtype=dtype, pad_mode=pad_mode, frontend_dtype=_frontend_dtype(device)
    )
    return model.load_weights(load_weights_file(model_path)).to(device)


def load_audio_embedding_model(
    input_repr: str,
    content_type: str,
    embedding_size: int,
    frontend: str = "kapre",
    *,
    weights: str | Path | None = None,
    device: str | torch.device = "cpu",
    dtype: torch.dtype = torch.float32,
) -> OpenL3Model:
    """openl3's loader by name: weights from `weights`, $GENRE_LENS_OPENL3_WEIGHTS, the cache or a download."""
    frontend, input_repr = _validate(frontend, input_repr, None)
    if content_type not in VALID_CONTENT_TYPES:
        raise OpenL3Error(f'Invalid content type "{content_type}"')
    model = OpenL3Model(
        input_repr,
        embedding_size,
        frontend,
        content_type=content_type,
        dtype=dtype,
        frontend_dtype=_frontend_dtype(device),
    )
    return model.load_weights(resolve_weights(input_repr, content_type, weights)).to(device)


def _frontend_dtype(device: str | torch.device) -> torch.dtype:
    """float64 front-end everywhere except MPS, which has no float64."""
    return torch.float32 if torch.device(device).type == "mps" else torch.float64


def preprocess_audio(
    audio: np.ndarray,
    sr: float,
    hop_size: float = 0.1,
    input_repr: str | None = None,
    center: bool = True,
    *,
    pad_mode: str = "constant",
) -> np.ndarray:
    """openl3's `preprocess_audio`: frames (N, 1, 48000), or librosa spectrograms (N, n_mels, 199, 1)."""
    frames = np.ascontiguousarray(frame_audio(prepare_audio(audio, sr, hop_size, center), hop_samples(hop_size)))
    if not input_repr:
        return frames[:, None, :]
    _, input_repr = _validate("librosa", input_repr, None)
    layer = build_frontend("librosa", input_repr, torch.float64, pad_mode)
    spec = layer.spectrogram(torch.from_numpy(frames))  # (N, 1, n_mels, 199)
    return spec.permute(0, 2, 3, 1).numpy()


def get_audio_embedding(
    audio: np.ndarray | list[np.ndarray],
    sr: float | list[float],
    model: OpenL3Model | None = None,
    input_repr: str | None = None,
    content_type: str = "music",
    embedding_size: int = 6144,
    center: bool = True,
    hop_size: float = 0.1,
    batch_size: int = 32,
    frontend: str = "kapre",
    verbose: bool = True,
) -> tuple[Any, Any]:
    """openl3's `get_audio_embedding`: (embedding (T, D), timestamps (T,)), or lists for list input.

    Timestamp i is the centre of frame i when `center` (its start otherwise), in seconds.
    """
    if model is not None and not isinstance(model, OpenL3Model):
        raise OpenL3Error(f"Invalid model provided. Must be of type OpenL3Model but got {type(model)}")
    frontend, input_repr = _validate(frontend, input_repr, model)
    if str(content_type) not in VALID_CONTENT_TYPES:
        raise OpenL3Error(f'Invalid content type "{content_type}"')
    if embedding_size not in VALID_EMBEDDING_SIZES:
        raise OpenL3Error(f'Invalid embedding size "{embedding_size}"')
    if verbose not in (0, 1):
        raise OpenL3Error(f"Invalid verbosity level {verbose}")
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise OpenL3Error(f"Invalid batch size {batch_size}")
    if isinstance(audio, np.ndarray):
        audio_list, list_input = [audio], False
    elif isinstance(audio, list):
        audio_list, list_input = audio, True
    else:
        raise OpenL3Error(f"audio must be type list[np.ndarray] or np.ndarray. Got {type(audio)}")
    if isinstance(sr, Real):
        sr_list = [sr] * len(audio_list)
    elif isinstance(sr, list):
        sr_list = sr
    else:
        raise OpenL3Error(f"sr must be type list[numbers.Real] or numbers.Real. Got {type(sr)}")
    if len(audio_list) != len(sr_list):
        raise OpenL3Error(
            f"Mismatch between number of audio inputs ({len(audio_list)}) and number of sample rates ({len(sr_list)})"
        )

    frames = [
        frame_audio(prepare_audio(x, s, hop_size, center), hop_samples(hop_size))
        for x, s in zip(audio_list, sr_list, strict=True)
    ]
    if model is None:
        model = load_audio_embedding_model(input_repr, content_type, embedding_size, frontend)
    if not frames:
        return [], []
    counts = [f.shape[0] for f in frames]
    emb = model.embed_frames(np.concatenate(frames), batch_size, verbose=bool(verbose))
    embeddings = np.split(emb, np.cumsum(counts)[:-1])
    timestamps = [np.arange(n) * hop_size for n in counts]
    if not list_input:
        return embeddings[0], timestamps[0]
    return embeddings, timestamps


# ---------------------------------------------------------------------------------------------------
# Engine embedder
# ---------------------------------------------------------------------------------------------------


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
