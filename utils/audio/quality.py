"""Cheap quality indicators of a decoded signal, shown beside predictions so users can judge them.

They are measured on the mono signal at its source rate (before resampling), so they describe the
upload rather than what the resampler made of it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from utils.audio.peaks import PeakStats

DB_FLOOR = -120.0  # what "minus infinity" dB is reported as
CLIP_LEVEL = 0.999  # |x| at or above this counts as clipped
TRUE_PEAK_LIMIT = 10.0 ** (0.1 / 20.0)  # +0.1 dBTP: above it the waveform between samples clips
SILENCE_DB = -60.0  # frames whose RMS is below this (dBFS) count as silent
ALMOST_SILENT_SHARE = 0.9  # of frames below SILENCE_DB: "almost silent" (the warning, and feedback's refusal)
FRAME_S = 0.05  # analysis frame length, rounded to a power of two in samples
MAX_SPECTRAL_FRAMES = 512  # frames the SNR estimate looks at, evenly spread; bounds the cost
_CHUNK_FRAMES = 4096  # frames per chunk when computing frame energies, to bound temporary memory


@dataclass(frozen=True)
class AudioQuality:
    """Quality indicators of one decoded upload (see `measure_quality` for the definitions)."""

    peak: float  # max |x| of the decoded (pre-resample) samples, any channel, 0..1+
    rms_db: float  # RMS in dBFS, floored at DB_FLOOR
    clipping_ratio: float  # fraction of samples with |x| >= CLIP_LEVEL
    snr_db: float  # estimated signal-to-noise ratio, 0..120 dB
    silence_ratio: float  # fraction of ~50 ms frames below SILENCE_DB
    true_peak: float = 0.0  # max |x| between samples too (4x oversampled); > 1.0 distorts on playback
    overs_ratio: float = 0.0  # fraction of channel samples beyond full scale (|x| > 1.0), as decoded


def to_db(power: float) -> float:
    """Power ratio to dB, with DB_FLOOR standing in for -inf so the value stays JSON-friendly."""
    if not power > 0.0:
        return DB_FLOOR
    return max(DB_FLOOR, 10.0 * math.log10(power))


def frame_length(sr: int) -> int:
    """~FRAME_S seconds as a power of two (>= 256), so FFTs are fast at every rate."""
    return max(256, 1 << round(math.log2(max(1.0, FRAME_S * sr))))


def frame_powers(x: np.ndarray, n: int) -> np.ndarray:
    """Mean square of each complete n-sample frame (one frame for shorter signals)."""
    n_frames = x.size // n
    if n_frames == 0:
        return np.array([float(np.mean(np.square(x, dtype=np.float64)))]) if x.size else np.zeros(1)
    frames = x[: n_frames * n].reshape(n_frames, n)
    out = np.empty(n_frames)
    for i in range(0, n_frames, _CHUNK_FRAMES):
        block = frames[i : i + _CHUNK_FRAMES].astype(np.float64)
        out[i : i + _CHUNK_FRAMES] = np.einsum("ij,ij->i", block, block) / n
    return out


def _noise_powers(x: np.ndarray, n: int, powers: np.ndarray) -> np.ndarray:
    """Per-frame noise power estimated from the spectral floor of (a sample of) the frames.

    The median bin power of a frame tracks broadband noise but ignores tones and harmonics, which
    occupy few bins; scaled by the bin count it bounds the frame's noise power from above.
    """
    n_frames = powers.size
    if x.size < n:
        return powers.copy()
    idx = np.unique(np.linspace(0, n_frames - 1, min(n_frames, MAX_SPECTRAL_FRAMES)).astype(np.int64))
    frames = x[: n_frames * n].reshape(n_frames, n)[idx].astype(np.float64)
    spec = np.abs(np.fft.rfft(frames * np.hanning(n), axis=1)[:, 1:-1]) ** 2
    total = spec.sum(axis=1)
    # The median of a chi-square(2) bin is ln 2 times its mean.
    floor = np.median(spec, axis=1) / math.log(2.0) * spec.shape[1]
    frac = np.ones_like(total)
    np.divide(floor, total, out=frac, where=total > 0)
    return np.clip(frac, 0.0, 1.0) * powers[idx]


def snr_from_frames(powers: np.ndarray, noise: np.ndarray) -> float:
    """Loud-frame power (95th percentile) over the noise floor (10th percentile of frame noise).

    Gaps between notes pull the floor down through the frame energies, and a steady tone does
    through the spectral estimate, so both clean cases read high while hiss under music reads low.
    """
    loud = float(np.percentile(powers, 95))
    if not loud > 0.0:
        return 0.0
    floor = max(float(np.percentile(noise, 10)), loud * 1e-12)
    return float(np.clip(10.0 * math.log10(loud / floor), 0.0, 120.0))


def measure_quality(x: np.ndarray, sr: int, clipping_ratio: float | None = None,
                    peaks: PeakStats | None = None) -> AudioQuality:
    """Quality indicators of a finite mono float signal at its own rate `sr`.

    `clipping_ratio` and `peaks` may be passed in when they were measured on the channels before
    downmixing, where clipping actually happens (averaging channels hides it).
    """
    if x.size == 0:
        return AudioQuality(0.0, DB_FLOOR, 0.0, 0.0, 1.0)
    peak = float(np.max(np.abs(x)))
    if peaks is not None:
        peak = max(peak, peaks.sample_peak)
    true = max(peak, peaks.true_peak) if peaks is not None else peak
    n = frame_length(sr)
    powers = frame_powers(x, n)
    mean_square = float(np.mean(np.square(x, dtype=np.float64)))
    if clipping_ratio is None:
        clipping_ratio = float(np.count_nonzero(np.abs(x) >= CLIP_LEVEL)) / x.size
    silent = powers < 10.0 ** (SILENCE_DB / 10.0)
    return AudioQuality(
        peak=peak,
        rms_db=to_db(mean_square),
        clipping_ratio=float(clipping_ratio),
        snr_db=snr_from_frames(powers, _noise_powers(x, n, powers)),
        silence_ratio=float(np.mean(silent)),
        true_peak=true,
        overs_ratio=peaks.overs_ratio if peaks is not None else float(np.count_nonzero(np.abs(x) > 1.0)) / x.size,
    )


BROKEN_SCALE_PEAK = 1e3  # +60 dBFS: beyond this a float file's scale is broken, not merely clipped


def _share(ratio: float) -> str:
    """'0.06 %'-style share that never reads 0.00 % for something that is there."""
    return f"{ratio:.2%}" if ratio >= 0.0001 or ratio == 0 else "under 0.01%"


def quality_warnings(q: AudioQuality) -> list[str]:
    """User-facing sentences for indicators that make predictions less trustworthy."""
    out: list[str] = []
    if q.peak > BROKEN_SCALE_PEAK:
        return [
            f"The samples reach {q.peak:.3g} times full scale, which no real recording does (float samples "
            "belong within ±1; integer values stored as float are a common cause). They were scaled down to full "
            "scale for the analysis, which reads the shape of the sound, not its level."
        ]
    if q.peak == 0.0:
        out.append("The audio is completely silent, so any genre prediction for it is meaningless.")
    elif q.silence_ratio >= ALMOST_SILENT_SHARE or q.rms_db < SILENCE_DB:
        out.append(f"The audio is almost silent (average level {q.rms_db:.0f} dBFS); predictions may be unreliable.")
    elif q.silence_ratio >= 0.5:
        out.append(f"{q.silence_ratio:.0%} of the audio is silence; predictions rest on the rest of it.")
    if q.overs_ratio > 0.0:
        out.append(
            f"The audio goes beyond full scale (peak {q.peak:.3g}, true peak {to_db(q.true_peak ** 2):+.1f} dBTP; "
            f"{_share(q.clipping_ratio)} of the samples at or over full scale): it clips when played or converted, "
            "typical of a loud master through a lossy codec; predictions may be less reliable."
        )
    elif q.true_peak > TRUE_PEAK_LIMIT:  # every sample within full scale: only the waveform between them is over
        out.append(
            f"The audio goes beyond full scale between its samples (true peak {to_db(q.true_peak ** 2):+.1f} dBTP, "
            f"though every sample stays within it): it can clip when played or converted, as loud masters "
            "often do; predictions may be less reliable."
        )
    elif q.clipping_ratio >= 0.01:
        out.append(
            f"{q.clipping_ratio:.1%} of the samples are clipped (distorted at full scale); "
            "predictions may be less reliable."
        )
    return out
