"""Display mel spectrogram: small enough to ship to a browser, labelled in seconds and Hz."""

from __future__ import annotations

from dataclasses import dataclass

import librosa
import numpy as np

SILENT_MEL_POWER = 1e-8  # a mel band's power below this everywhere is digital silence (about -110 dBFS)


@dataclass(frozen=True)
class DisplaySpectrogram:
    """A dB mel spectrogram (mels, frames) with the centre time of each column and frequency of each row."""

    db: np.ndarray  # float32 (n_mels, n_frames), dB relative to the peak, floored at -80
    times_s: np.ndarray  # (n_frames,)
    freqs_hz: np.ndarray  # (n_mels,)

    def to_dict(self, decimals: int = 1) -> dict:
        """JSON-friendly form (rounded to keep analyses small)."""
        return {
            "db": np.round(self.db, decimals).tolist(),
            "times_s": np.round(self.times_s, 3).tolist(),
            "freqs_hz": np.round(self.freqs_hz, 1).tolist(),
        }


def display_spectrogram(
    samples: np.ndarray, sample_rate: int, n_mels: int = 96, max_frames: int = 800
) -> DisplaySpectrogram:
    """Mel spectrogram in dB for display, averaged down to at most `max_frames` columns."""
    n_fft = 2048 if sample_rate > 24000 else 1024
    hop = n_fft // 4
    mel = librosa.feature.melspectrogram(
        y=samples.astype(np.float32), sr=sample_rate, n_fft=n_fft, hop_length=hop, n_mels=n_mels
    )
    n = mel.shape[1]
    factor = max(1, int(np.ceil(n / max_frames)))
    if factor > 1:
        usable = (n // factor) * factor
        mel = mel[:, :usable].reshape(n_mels, -1, factor).mean(axis=2)
    if mel.size == 0 or float(mel.max()) < SILENT_MEL_POWER:  # relative to its own peak, silence drew as the
        db = np.full(mel.shape, -80.0, np.float32)  # loudest colour; it is drawn as the floor instead
    else:
        db = librosa.power_to_db(mel, ref=np.max, top_db=80.0).astype(np.float32)
    times = (np.arange(db.shape[1]) * factor + (factor - 1) / 2) * hop / sample_rate
    freqs = librosa.mel_frequencies(n_mels=n_mels, fmin=0.0, fmax=sample_rate / 2)
    return DisplaySpectrogram(db=db, times_s=times.astype(np.float32), freqs_hz=freqs.astype(np.float32))
