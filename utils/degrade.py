"""Everyday degradations of a music clip, for the robustness benchmark (bench/bench_robustness.py).

Each turns (mono float32 samples, rate) into the bytes of a file a user could upload: lossy codecs
through ffmpeg (MP3 64 kbps, AAC 96 kbps), gain changes (-20 dB; +12 dB into a look-ahead limiter),
filters (a 4 kHz low-pass, a 300-3400 Hz phone band), pink noise at 20 dB SNR, pitch and tempo
changes (librosa), an 8 kHz mono round trip, and the first 10 s only. Everything else is 16-bit WAV.

`SPEED_CHANGES` are context, not degradations the benchmark averages: the same clip played 6 % faster
or slower by resampling (pitch and tempo change together, as on a turntable), with none of the phase
vocoder's smearing that librosa's pitch and tempo changes add. The two side by side tell how much of a
pitch or tempo row's loss is the change itself and how much is the vocoder.
"""

from __future__ import annotations

import subprocess
import tempfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import soxr
from scipy.ndimage import minimum_filter1d, uniform_filter1d
from scipy.signal import butter, sosfiltfilt

from utils.audio.ffmpeg import ffmpeg_path
from utils.nonmusic import coloured_noise, wav_bytes

LIMITER_CEILING = 0.98
LIMITER_WINDOW_S = 0.005  # look-ahead and smoothing window of the limiter


def encode(samples: np.ndarray, sr: int, codec: list[str], suffix: str) -> bytes:
    """Encode with ffmpeg (argument list, no shell) and return the file's bytes."""
    exe = ffmpeg_path()
    if exe is None:
        raise RuntimeError("ffmpeg is not installed: the codec degradations need it")
    with tempfile.TemporaryDirectory() as tmp:
        src, dst = Path(tmp) / "in.wav", Path(tmp) / f"out{suffix}"
        src.write_bytes(wav_bytes(samples, sr))
        subprocess.run([exe, "-nostdin", "-loglevel", "error", "-y", "-i", str(src), *codec, str(dst)],
                       check=True, timeout=120)
        return dst.read_bytes()


def limit(samples: np.ndarray, sr: int, ceiling: float = LIMITER_CEILING) -> np.ndarray:
    """A look-ahead brick-wall limiter: no sample exceeds the ceiling, gain changes are smoothed.

    The gain each sample needs is min-filtered over a window and then averaged over the same window,
    so the smoothed gain at every sample is at most what that sample needs (no overs) without clicks.
    """
    need = np.minimum(1.0, ceiling / np.maximum(np.abs(samples), 1e-9))
    w = max(1, int(LIMITER_WINDOW_S * sr))
    gain = uniform_filter1d(minimum_filter1d(need, size=w, mode="nearest"), size=w, mode="nearest")
    return np.clip(samples * gain, -ceiling, ceiling).astype(np.float32)


def butter_filter(samples: np.ndarray, sr: int, kind: str, freq: float | tuple[float, float], order: int) -> np.ndarray:
    """Zero-phase Butterworth filter."""
    sos = butter(order, freq, btype=kind, fs=sr, output="sos")
    return sosfiltfilt(sos, samples).astype(np.float32)


def with_noise(samples: np.ndarray, sr: int, snr_db: float, seed: int = 0) -> np.ndarray:
    """Pink noise added at snr_db below the signal's RMS."""
    noise = coloured_noise("pink", len(samples) / sr, np.random.default_rng(seed), sr)[: len(samples)]
    rms = float(np.sqrt(np.mean(np.square(samples, dtype=np.float64))))
    return np.clip(samples + noise * rms * 10 ** (-snr_db / 20), -1, 1).astype(np.float32)


def pitch(samples: np.ndarray, sr: int, semitones: float) -> np.ndarray:
    """librosa's pitch shift (time-stretch + resample), same duration."""
    import librosa

    return librosa.effects.pitch_shift(samples, sr=sr, n_steps=semitones).astype(np.float32)


def tempo(samples: np.ndarray, sr: int, rate: float) -> np.ndarray:
    """librosa's phase-vocoder time stretch: rate > 1 is faster (shorter)."""
    import librosa

    return librosa.effects.time_stretch(samples, rate=rate).astype(np.float32)


def resampled(rate: int) -> Callable[[np.ndarray, int], bytes]:
    """A mono 16-bit WAV of the clip at `rate`: the engine resamples it back up, so the top band is gone."""
    return lambda y, sr: wav_bytes(np.clip(soxr.resample(y, sr, rate), -1.0, 1.0).astype(np.float32), rate)


def as_wav(fn: Callable[[np.ndarray, int], np.ndarray]) -> Callable[[np.ndarray, int], bytes]:
    """A samples -> samples degradation as a samples -> WAV bytes one (16-bit, clipped like a real file)."""
    return lambda y, sr: wav_bytes(np.clip(fn(y, sr), -1.0, 1.0), sr)


DEGRADATIONS: dict[str, Callable[[np.ndarray, int], bytes]] = {
    "mp3_64k": lambda y, sr: encode(y, sr, ["-c:a", "libmp3lame", "-b:a", "64k"], ".mp3"),
    "aac_96k": lambda y, sr: encode(y, sr, ["-c:a", "aac", "-b:a", "96k"], ".m4a"),
    "gain_-20dB": as_wav(lambda y, sr: y * 0.1),
    "gain_+12dB_limited": as_wav(lambda y, sr: limit(y * 10 ** (12 / 20), sr)),
    "lowpass_4k": as_wav(lambda y, sr: butter_filter(y, sr, "lowpass", 4000.0, 8)),
    "phone_300-3400": as_wav(lambda y, sr: butter_filter(y, sr, "bandpass", (300.0, 3400.0), 4)),
    "pink_noise_20dB": as_wav(lambda y, sr: with_noise(y, sr, 20.0)),
    "pitch_+1": as_wav(lambda y, sr: pitch(y, sr, 1.0)),
    "pitch_-1": as_wav(lambda y, sr: pitch(y, sr, -1.0)),
    "tempo_+6%": as_wav(lambda y, sr: tempo(y, sr, 1.06)),
    "tempo_-6%": as_wav(lambda y, sr: tempo(y, sr, 0.94)),
    "mono_8k_round_trip": resampled(8000),
    "first_10s": as_wav(lambda y, sr: y[: 10 * sr]),
}


def speed(factor: float) -> Callable[[np.ndarray, int], bytes]:
    """The clip played `factor` times as fast, by resampling: pitch and tempo both scale by `factor`."""
    return as_wav(lambda y, sr: soxr.resample(y, sr * factor, sr).astype(np.float32))


SPEED_CHANGES: dict[str, Callable[[np.ndarray, int], bytes]] = {
    "speed_+6%": speed(1.06),  # about +1 semitone and +6 % tempo: the bench's pitch and tempo rows, together
    "speed_-6%": speed(0.94),
}
