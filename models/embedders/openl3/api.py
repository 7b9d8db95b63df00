"""openl3's own public functions (`get_audio_embedding`, `load_audio_embedding_model_from_path`, ...),
so that openl3 users switch by changing an import.
"""

from __future__ import annotations

from numbers import Real
from pathlib import Path
from typing import Any

import numpy as np
import torch

from models.embedders.openl3.frontend import (
    FRONTENDS,
    INPUT_REPRS,
    OpenL3Error,
    build_frontend,
    frame_audio,
    hop_samples,
    prepare_audio,
)
from models.embedders.openl3.network import VALID_CONTENT_TYPES, VALID_EMBEDDING_SIZES, OpenL3Model
from models.embedders.openl3.weights import (
    load_weights_file,
    resolve_weights,
)


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
