"""Audio side of the OpenL3 port: openl3 0.4.2's resampling, framing and both spectrogram front-ends.

Everything here copies openl3's numerics on purpose (including its float32 roundings), because the
network was trained on exactly these spectrograms and the golden tests compare against openl3 itself.
"""

from __future__ import annotations

import warnings
from functools import lru_cache
from numbers import Real

import numpy as np
import scipy.signal
import torch
import torch.nn.functional as F
from torch import nn

TARGET_SR = 48000  # openl3 resamples everything to 48 kHz
FRAME_LEN = TARGET_SR  # one network frame is 1 s of audio
N_FFT = 2048
HOP_LENGTH = 242  # STFT hop inside a frame: 199 spectrogram columns per second
N_COLUMNS = 199
INPUT_REPRS = ("mel128", "mel256")
N_MELS = {"mel128": 128, "mel256": 256}
FRONTENDS = ("kapre", "librosa")


class OpenL3Error(Exception):
    """openl3's exception type, so code catching `openl3.OpenL3Error` keeps working after the switch."""


class OpenL3Warning(UserWarning):
    """openl3's warning type (all-zero audio, audio shorter than one frame)."""


# ---------------------------------------------------------------------------------------------------
# Resampling: resampy 0.2.2 'kaiser_best', which is what openl3 0.4.2 pins (resampy<0.3).
# resampy >= 0.3 ships a different table and time grid (differences up to 6e-4), so we rebuild the
# 0.2.2 table (it regenerates to 2e-16) and its accumulate-the-time-register loop here.
# ---------------------------------------------------------------------------------------------------

_KAISER_BEST = {"num_zeros": 64, "precision": 9, "beta": 14.769656459379492, "rolloff": 0.9475937167399596}


@lru_cache(maxsize=1)
def _kaiser_best_table() -> np.ndarray:
    """Right wing of resampy 0.2.2's kaiser_best interpolation filter (32769 taps at 512 per zero)."""
    p = _KAISER_BEST
    n = (2 ** p["precision"]) * p["num_zeros"]
    sinc = p["rolloff"] * np.sinc(p["rolloff"] * np.linspace(0, p["num_zeros"], num=n + 1, endpoint=True))
    taper = scipy.signal.windows.kaiser(2 * n + 1, p["beta"])[n:]
    return taper * sinc


def resample_kaiser_best(x: np.ndarray, sr_orig: float, sr_new: float, chunk: int = 1024) -> np.ndarray:
    """Band-limited resampling of a 1-D signal, numerically equal to `resampy==0.2.2` kaiser_best.

    Vectorised over output samples (resampy loops in numba); only the summation order differs.
    """
    x = np.asarray(x, dtype=np.float64)
    ratio = float(sr_new) / sr_orig
    n_out = int(x.shape[0] * ratio)
    if n_out < 1:
        raise ValueError(f"Input signal length={x.shape[0]} is too small to resample {sr_orig}->{sr_new}")
    win = _kaiser_best_table() * (ratio if ratio < 1 else 1.0)
    delta = np.zeros_like(win)
    delta[:-1] = np.diff(win)
    num_table = 2 ** _KAISER_BEST["precision"]
    scale = min(1.0, ratio)
    step = int(scale * num_table)
    n_taps = win.shape[0] // step + 1
    # resampy reads tap index i only while i <= len(win) - step; zeros beyond make every wing the same
    # length, and zero-padding the signal stands in for its checks at both ends.
    usable = win.shape[0] - step + 1
    win_z, delta_z = np.zeros((2, (n_taps + 1) * step + 1))
    win_z[:usable], delta_z[:usable] = win[:usable], delta[:usable]
    # resampy's time register is a running sum, not t * increment: reproduce its rounding drift.
    t_reg = np.zeros(n_out)
    t_reg[1:] = np.cumsum(np.full(n_out - 1, 1.0 / ratio))
    pad = n_taps + 1
    xp = np.concatenate([np.zeros(pad), x, np.zeros(pad)])
    taps = np.arange(n_taps)
    y = np.empty(n_out)
    for start in range(0, n_out, chunk):
        tr = t_reg[start : start + chunk]
        n = tr.astype(np.int64)
        frac = scale * (tr - n)
        total = np.zeros(tr.shape[0])
        for wing_frac, sign, shift in ((frac, -1, 0), (scale - frac, 1, 1)):
            index_frac = wing_frac * num_table
            offset = index_frac.astype(np.int64)
            idx = offset[:, None] + taps[None, :] * step
            weight = win_z[idx] + (index_frac - offset)[:, None] * delta_z[idx]
            samples = xp[pad + n[:, None] + sign * (taps[None, :] + shift)]
            total += np.einsum("ij,ij->i", weight, samples)
        y[start : start + chunk] = total
    return y


# ---------------------------------------------------------------------------------------------------
# Validation and framing (openl3.core._preprocess_audio_batch)
# ---------------------------------------------------------------------------------------------------


def hop_samples(hop_size: float) -> int:
    """openl3's hop in samples: `int(hop_size * 48000)` (truncation included)."""
    return int(hop_size * TARGET_SR)


def n_frames_for(n_samples: int, hop_len: int, center: bool) -> int:
    """Frames openl3 cuts from `n_samples` of 48 kHz audio: end-padded so every sample is seen."""
    length = n_samples + (FRAME_LEN // 2 if center else 0)
    if length <= FRAME_LEN:
        return 1
    return 1 + -(-(length - FRAME_LEN) // hop_len)


def prepare_audio(audio: np.ndarray, sr: float, hop_size: float = 0.1, center: bool = True) -> np.ndarray:
    """Validate, downmix, resample to 48 kHz, centre and pad like openl3; returns float64 (L,).

    Frame i of the result is `[i*hop_len, i*hop_len + 48000)`; see `frame_audio`.
    """
    audio = np.asarray(audio)
    if audio.size == 0:
        raise OpenL3Error("Got empty audio")
    if np.all(audio == 0):
        warnings.warn("Provided audio is all zeros", OpenL3Warning, stacklevel=3)
    if audio.ndim > 2:
        raise OpenL3Error("Audio array can only be be 1D or 2D")
    audio = audio.astype(np.float64)
    if audio.ndim == 2:
        audio = np.mean(audio, axis=1)
    if isinstance(sr, bool) or not isinstance(sr, Real) or sr <= 0:
        raise OpenL3Error(f"Invalid sample rate {sr}")
    if isinstance(hop_size, bool) or not isinstance(hop_size, Real) or hop_size <= 0:
        raise OpenL3Error(f"Invalid hop size {hop_size}")
    if center not in (True, False):
        raise OpenL3Error(f"Invalid center value {center}")
    hop_len = hop_samples(hop_size)
    if hop_len < 1:
        raise OpenL3Error(f"Invalid hop size {hop_size}")
    if sr != TARGET_SR:
        audio = resample_kaiser_best(audio, sr, TARGET_SR)
    if audio.size < FRAME_LEN:
        warnings.warn(
            "Duration of provided audio is shorter than window size (1 second). Audio will be padded.",
            OpenL3Warning,
            stacklevel=3,
        )
    if center:
        audio = np.pad(audio, (FRAME_LEN // 2, 0))
    n_frames = n_frames_for(audio.size, hop_len, center=False)
    return np.pad(audio, (0, (n_frames - 1) * hop_len + FRAME_LEN - audio.size))


def frame_audio(audio: np.ndarray | torch.Tensor, hop_len: int) -> np.ndarray | torch.Tensor:
    """(..., L) → (..., n_frames, 48000) strided view; `audio` must already be padded."""
    n_frames = 1 + (audio.shape[-1] - FRAME_LEN) // hop_len
    if isinstance(audio, torch.Tensor):
        return audio.unfold(-1, FRAME_LEN, hop_len)[..., :n_frames, :]
    return np.lib.stride_tricks.sliding_window_view(audio, FRAME_LEN, axis=-1)[..., ::hop_len, :][..., :n_frames, :]


# ---------------------------------------------------------------------------------------------------
# Spectrogram front-ends: frames (B, 48000) → dB mel spectrogram (B, 1, n_mels, 199)
# ---------------------------------------------------------------------------------------------------


@lru_cache(maxsize=4)
def _mel_basis(n_mels: int) -> np.ndarray:
    """librosa's slaney mel filterbank in float32, as both kapre and librosa build it."""
    import librosa

    return librosa.filters.mel(
        sr=TARGET_SR, n_fft=N_FFT, n_mels=n_mels, fmin=0.0, fmax=None, htk=False, norm="slaney", dtype=np.float32
    )


class _MelFrontend(nn.Module):
    """Shared state: periodic Hann window and float32 mel basis, both kept in float64 buffers."""

    def __init__(self, n_mels: int, dtype: torch.dtype = torch.float64) -> None:
        super().__init__()
        self.n_mels = n_mels
        self.compute_dtype = dtype
        n = torch.arange(N_FFT, dtype=torch.float64)
        self.register_buffer("window", (0.5 - 0.5 * torch.cos(2 * torch.pi * n / N_FFT)).to(dtype), persistent=False)
        mel = torch.from_numpy(_mel_basis(n_mels).astype(np.float64))
        self.register_buffer("mel", mel.to(dtype), persistent=False)

    def _mel_magnitude(self, padded: torch.Tensor) -> torch.Tensor:
        """|STFT| (no centring, hop 242) of already padded frames, projected on the mel basis."""
        spec = torch.stft(padded, N_FFT, HOP_LENGTH, window=self.window, center=False, return_complex=True)
        return torch.matmul(self.mel, spec.abs())  # (B, n_mels, 199)


class KapreFrontend(_MelFrontend):
    """kapre 0.3.5 as wired by openl3: float32 input, end-padded STFT, 10*log10(|X|), 80 dB range."""

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        """Keras' `Input(dtype='float32')` rounds the audio first; the rest runs in `compute_dtype`."""
        x = frames.reshape(-1, frames.shape[-1]).to(torch.float32).to(self.compute_dtype)
        x = F.pad(x, (0, (N_COLUMNS - 1) * HOP_LENGTH + N_FFT - x.shape[-1]))  # tf.signal.stft pad_end
        db = 10.0 * torch.log10(self._mel_magnitude(x).clamp_min(1e-10))
        db = db - db.amax(dim=(-2, -1), keepdim=True)
        return db.clamp_min(-80.0).unsqueeze(1)


class LibrosaFrontend(_MelFrontend):
    """openl3's `_librosa_mel_frontend`: centred STFT (zero pad; 'reflect' = librosa < 0.9), power_to_db.

    The spectrogram is rounded to float32 at the end because that is the Keras model's input dtype.
    """

    def __init__(self, n_mels: int, dtype: torch.dtype = torch.float64, pad_mode: str = "constant") -> None:
        super().__init__(n_mels, dtype)
        if pad_mode not in ("constant", "reflect"):
            raise ValueError(f"pad_mode must be 'constant' or 'reflect', not {pad_mode!r}")
        self.pad_mode = pad_mode

    def spectrogram(self, frames: torch.Tensor) -> torch.Tensor:
        """`openl3.preprocess_audio(..., input_repr)` per frame, unrounded: (B, 1, n_mels, 199)."""
        x = frames.reshape(-1, frames.shape[-1]).to(self.compute_dtype)
        x = F.pad(x.unsqueeze(1), (N_FFT // 2, N_FFT // 2), mode=self.pad_mode).squeeze(1)
        db = 10.0 * torch.log10(self._mel_magnitude(x).clamp_min(1e-10))
        peak = db.amax(dim=(-2, -1), keepdim=True)
        db = torch.maximum(db, peak - 80.0) - peak  # power_to_db(top_db=80), then S -= S.max()
        return db.unsqueeze(1)

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        """The spectrogram as the network sees it: rounded to float32 by the Keras input layer."""
        return self.spectrogram(frames).to(torch.float32).to(self.compute_dtype)


def build_frontend(
    frontend: str, input_repr: str, dtype: torch.dtype = torch.float64, pad_mode: str = "constant"
) -> _MelFrontend:
    """Front-end module by openl3 name; `pad_mode` only applies to 'librosa'."""
    if input_repr not in INPUT_REPRS:
        raise OpenL3Error(f'Invalid input representation "{input_repr}". Must be one of {INPUT_REPRS}')
    if frontend == "kapre":
        return KapreFrontend(N_MELS[input_repr], dtype)
    if frontend == "librosa":
        return LibrosaFrontend(N_MELS[input_repr], dtype, pad_mode)
    raise OpenL3Error(f'Invalid frontend "{frontend}". Must be one of {FRONTENDS}')
