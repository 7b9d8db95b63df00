"""MusiCNN's front-end: the log-mel spectrogram and patch geometry the MSD network was trained with.

Values from musicnn/configuration.py; `logmel` matches the original's librosa front-end in float32.
"""

from __future__ import annotations

import functools

import librosa
import numpy as np
import torch
from torch import nn

# Front-end and patching: the values the network was trained with (musicnn/configuration.py).
SR = 16000


N_FFT = 512


HOP = 256


N_MELS = 96


PATCH_FRAMES = 187  # librosa.time_to_frames(3 s) + 1


PATCH_HOP_FRAMES = 61  # librosa.time_to_frames(1 s): the original's `input_overlap=1`


FRAME_SECONDS = PATCH_FRAMES * HOP / SR


HOP_SECONDS = PATCH_HOP_FRAMES * HOP / SR


MIN_SAMPLES = (PATCH_FRAMES - 1) * HOP  # shortest audio whose centred STFT has one full patch


# Patches per forward: ~20 MB of activations each on CPU (conv im2col + output), so cap the peak at
# ~1.3 GB there; throughput stops growing well before the cap. GPUs take far bigger batches.
MAX_PATCHES_CPU = 64


MAX_PATCHES_CUDA = 1024


class LogMel(nn.Module):
    """librosa's melspectrogram (power 2, Slaney, centred, zero-padded) + log10(10000 x + 1), in torch.

    torch.stft is ~6-40x faster than librosa on CPU for 5-30 s inputs and runs on the engine's device;
    the filterbank is librosa's own, so results agree to ~5e-6 (float32 rounding).
    """

    def __init__(self) -> None:
        super().__init__()
        fb = librosa.filters.mel(sr=SR, n_fft=N_FFT, n_mels=N_MELS)  # float32, Slaney
        self.register_buffer("fb", torch.from_numpy(fb), persistent=False)
        self.register_buffer("window", torch.hann_window(N_FFT, periodic=True), persistent=False)

    def forward(self, audio: torch.Tensor) -> torch.Tensor:
        """(B, n) or (n,) float audio at 16 kHz -> (B, frames, 96) or (frames, 96) log-mel, float32."""
        spec = torch.stft(
            audio.float(),
            N_FFT,
            HOP,
            window=self.window,
            center=True,
            pad_mode="constant",
            return_complex=True,
        )
        power = spec.real.square() + spec.imag.square()
        mel = torch.matmul(self.fb, power).transpose(-1, -2)
        return torch.log10(10000.0 * mel + 1.0)


@functools.lru_cache(maxsize=1)
def _cpu_logmel() -> LogMel:
    return LogMel()


def logmel(audio16k: np.ndarray) -> np.ndarray:
    """Log-mel (frames, 96) float32 of mono 16 kHz audio, as the network was trained on it."""
    with torch.inference_mode():
        return _cpu_logmel()(torch.from_numpy(np.ascontiguousarray(audio16k, dtype=np.float32))).numpy()


def n_logmel_frames(n_samples: int) -> int:
    """Frames of a centred STFT: one per hop, plus one."""
    return 1 + n_samples // HOP


def n_patches(n_frames: int, length: int = PATCH_FRAMES, step: int = PATCH_HOP_FRAMES) -> int:
    """Patches [step*k, step*k + length) that fit in `n_frames` log-mel frames."""
    return 0 if n_frames < length else (n_frames - length) // step + 1
