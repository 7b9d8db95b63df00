"""Everyday changes a track goes through before a user uploads it, used to *teach* invariance.

These are the changes whose effect on the embedding the model learns to ignore (see
`models/training/nuisance.py`). They are the same kinds of change as the robustness benchmark's
(`utils/degrade.py`: codecs, gain into a limiter, band limits, noise, pitch and tempo, a low sample
rate) but deliberately never the same amounts, so the benchmark measures generalisation to new
amounts rather than recall of the training ones. Each maps (mono float32 samples, rate) to the bytes
of a file, like the benchmark's.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from utils.degrade import as_wav, butter_filter, encode, limit, pitch, resampled, tempo, with_noise

CHANGES: dict[str, Callable[[np.ndarray, int], bytes]] = {
    "mp3_128k": lambda y, sr: encode(y, sr, ["-c:a", "libmp3lame", "-b:a", "128k"], ".mp3"),
    "mp3_48k": lambda y, sr: encode(y, sr, ["-c:a", "libmp3lame", "-b:a", "48k"], ".mp3"),
    "aac_64k": lambda y, sr: encode(y, sr, ["-c:a", "aac", "-b:a", "64k"], ".m4a"),
    "gain_+8dB_limited": as_wav(lambda y, sr: limit(y * 10 ** (8 / 20), sr)),
    "lowpass_6k": as_wav(lambda y, sr: butter_filter(y, sr, "lowpass", 6000.0, 8)),
    "lowpass_2.5k": as_wav(lambda y, sr: butter_filter(y, sr, "lowpass", 2500.0, 8)),
    "band_200-5000": as_wav(lambda y, sr: butter_filter(y, sr, "bandpass", (200.0, 5000.0), 4)),
    "band_400-3000": as_wav(lambda y, sr: butter_filter(y, sr, "bandpass", (400.0, 3000.0), 4)),
    "highpass_150": as_wav(lambda y, sr: butter_filter(y, sr, "highpass", 150.0, 4)),
    "pink_noise_25dB": as_wav(lambda y, sr: with_noise(y, sr, 25.0, seed=3)),
    "pink_noise_15dB": as_wav(lambda y, sr: with_noise(y, sr, 15.0, seed=4)),
    "pitch_+0.5": as_wav(lambda y, sr: pitch(y, sr, 0.5)),
    "pitch_-0.5": as_wav(lambda y, sr: pitch(y, sr, -0.5)),
    "pitch_+2": as_wav(lambda y, sr: pitch(y, sr, 2.0)),
    "pitch_-2": as_wav(lambda y, sr: pitch(y, sr, -2.0)),
    "tempo_+4%": as_wav(lambda y, sr: tempo(y, sr, 1.04)),
    "tempo_-4%": as_wav(lambda y, sr: tempo(y, sr, 0.96)),
    "tempo_+10%": as_wav(lambda y, sr: tempo(y, sr, 1.10)),
    "tempo_-10%": as_wav(lambda y, sr: tempo(y, sr, 0.90)),
    "rate_11k": resampled(11025),
}
