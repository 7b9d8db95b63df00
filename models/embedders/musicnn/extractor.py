"""A drop-in for `musicnn.extractor.extractor` (MSD_musicnn), without TensorFlow.

Kept so that users of the original package (and bench_reference) can compare like with like.
"""

from __future__ import annotations

import functools
from pathlib import Path

import librosa
import numpy as np
import torch

from models.embedders.musicnn.embedder import _run_sliding
from models.embedders.musicnn.frontend import HOP, N_FFT, SR, logmel
from models.embedders.musicnn.network import MSD_LABELS, MusiCNN
from models.embedders.musicnn.weights import load_msd_musicnn


@functools.lru_cache(maxsize=2)
def _shared_model(device: str, precision: str = "fp32") -> MusiCNN:
    if precision == "int8":
        from models.embedders.musicnn.int8 import check_precision, load_msd_musicnn_int8

        check_precision(precision, torch.device(device))
        return load_msd_musicnn_int8()[0]
    return load_msd_musicnn(device)


def extractor(
    file_name: str | Path,
    model: str = "MSD_musicnn",
    input_length: float = 3,
    input_overlap: float | bool = False,
    extract_features: bool = True,
    device: str = "cpu",
    batch_size: int | None = None,
    precision: str = "fp32",
) -> tuple[np.ndarray, list[str], dict[str, np.ndarray]] | tuple[np.ndarray, list[str]]:
    """Drop-in for `musicnn.extractor.extractor` (MSD_musicnn only), without TensorFlow.

    Same semantics as the original: patches are `time_to_frames(input_length) + 1` frames long and
    start every `time_to_frames(input_overlap)` frames -- despite its name, `input_overlap` is the
    hop (1 s -> 61 frames); a falsy value means back-to-back patches. Returns (taggram (P, 50),
    tags, features) or (taggram, tags) when `extract_features` is False. Features: 'mean_pool' and
    'max_pool' (P, 753), 'penultimate' (P, 200, after its batch norm, as the original), and
    'timbral', 'temporal', 'cnn1', 'cnn2', 'cnn3' stacked over patches as (P * frames, channels).
    Unlike the original, audio shorter than one patch is zero-padded to one patch, the log-mel is
    float32 (the original's float16 overflows on loud audio), and every batch's features are its own.
    `precision="int8"` runs the opt-in int8 CPU network (`models.embedders.musicnn.int8`).
    """
    if model != "MSD_musicnn":
        raise ValueError(f"Only model='MSD_musicnn' is ported (got {model!r}).")
    length = int(librosa.time_to_frames(input_length, sr=SR, n_fft=N_FFT, hop_length=HOP)) + 1
    step = (
        length
        if not input_overlap
        else int(librosa.time_to_frames(input_overlap, sr=SR, n_fft=N_FFT, hop_length=HOP))
    )
    if length < 1 or step < 1:
        raise ValueError(
            f"input_length={input_length} / input_overlap={input_overlap} give no usable patches."
        )
    audio, _ = librosa.load(file_name, sr=SR)
    audio = np.pad(audio, (0, max(0, (length - 1) * HOP - audio.size)))
    mel = torch.from_numpy(logmel(audio)).to(device)

    keys = ("taggram",) + (
        ("timbral", "temporal", "cnn1", "cnn2", "cnn3", "mean_pool", "max_pool", "penultimate_bn")
        if extract_features
        else ()
    )
    net = _shared_model(device, precision)
    out = _run_sliding(net, mel[None], keys, length, step, batch_size)
    out = {key: value.cpu().numpy() for key, value in out.items()}
    taggram, tags = out.pop("taggram"), list(MSD_LABELS)
    if not extract_features:
        return taggram, tags
    features = {
        key: value.reshape(-1, value.shape[-1]) if value.ndim == 3 else value for key, value in out.items()
    }
    features["penultimate"] = features.pop("penultimate_bn")
    return taggram, tags, features
