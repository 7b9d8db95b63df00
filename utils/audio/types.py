"""What loading audio returns or raises, and the limits every decoder enforces.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from typing import BinaryIO

import numpy as np
import soxr

from utils.audio.peaks import PeakMeter, PeakStats
from utils.audio.quality import CLIP_LEVEL, AudioQuality

log = logging.getLogger(__name__)


MIN_SAMPLE_RATE = 4_000


MAX_SAMPLE_RATE = 384_000


MAX_CHANNELS = 32


RESAMPLE_QUALITY = "soxr_hq"  # librosa 0.11's default res_type, so features match librosa.load
MAX_KEPT_RATE = 48_000  # decoders keep mono at most at this rate (peaks are measured before, at the source rate)


SOUNDFILE_FORMATS = frozenset({"WAV", "RF64", "W64", "AIFF", "CAF", "FLAC", "OGG", "MP3"})


# Sniffed format -> the ffmpeg demuxer to force, so ffmpeg never probes (and never follows a
# playlist or reference inside) an upload on its own.
FFMPEG_FORMATS = {"M4A": "mov", "AAC": "aac", "WEBM": "matroska", "WMA": "asf", "MP3": "mp3"}


ACCEPTED = "WAV, FLAC, AIFF, OGG/Opus, MP3, or M4A/AAC with ffmpeg installed"


class AudioError(Exception):
    """The one exception the loader raises; its message is a sentence a user can act on."""


@dataclass
class DecodedAudio:
    """Decoded, validated audio plus what the UI needs to explain what was done to it."""

    samples: np.ndarray  # float32 mono at `sample_rate`, finite, after padding
    sample_rate: int  # the requested target rate
    source_sample_rate: int
    source_channels: int
    source_format: str  # e.g. "WAV", "FLAC", "OGG", "MP3", "M4A (ffmpeg)"
    duration_s: float  # decoded audio before padding (after truncation)
    source_duration_s: float  # header's claim (or measured), before truncation
    truncated: bool
    padded: bool
    sha256: str  # of the original input bytes: identifies the upload
    quality: AudioQuality
    warnings: list[str] = field(default_factory=list)  # user-facing sentences


@dataclass
class _Raw:
    """Mono signal at the source rate, as decoded, before checks that are format-independent."""

    mono: np.ndarray
    sr: int
    channels: int
    fmt: str
    claimed_s: float | None  # what the header (or an MP3 frame scan) says, None when unknown
    truncated: bool
    clipping_ratio: float
    warnings: list[str]
    peaks: PeakStats | None = None  # decoded overs and true peak over the channels (utils/audio/peaks.py)
    source_sr: int | None = None  # the file's rate when `sr` (the mono's) is lower (see _Accumulator)


@dataclass
class _Source:
    file: BinaryIO
    size: int
    sha256: str
    path: str | None  # only for path sources (handed to ffmpeg); never shown to users


def _unreadable() -> AudioError:
    return AudioError(f"This doesn't look like an audio file we can read ({ACCEPTED}).")


def _damaged(fmt: str) -> AudioError:
    return AudioError(f"This {fmt} file could not be decoded; it may be damaged or cut short.")


def _fmt_duration(s: float) -> str:
    """Human duration: '3.0 s', '4 min 5 s', '6 h 12 min' (rounded down, so limits read honestly); '45 ms',
    '0.045 ms' below a tenth of a second, where '0.0 s' said nothing."""
    if s < 0.001:
        return f"{s * 1000:.2g} ms"
    if s < 0.1:
        return f"{math.floor(s * 1000)} ms"
    if s < 60:
        return f"{math.floor(s * 10) / 10:.1f} s"
    m, sec = int(s // 60), int(s % 60)
    if m < 60:
        return f"{m} min {sec} s" if sec else f"{m} min"
    return f"{m // 60} h {m % 60} min" if m % 60 else f"{m // 60} h"


def _fmt_bytes(n: float) -> str:
    for unit in ("bytes", "KB", "MB"):
        if n < 1024:
            return f"{n:.0f} {unit}"
        n /= 1024
    return f"{n:.1f} GB"


class _Accumulator:
    """Collects decoded blocks as mono, checking finiteness and counting clipped channel samples.

    Peaks and clipping are measured on every channel at the source rate, block by block; only the
    mono mix is kept, and above `MAX_KEPT_RATE` it is resampled as it streams in, so a 384 kHz or
    32-channel upload costs what a 48 kHz mono one does.
    """

    def __init__(self, source_rate: int) -> None:
        self.parts: list[np.ndarray] = []
        self.frames = 0  # source frames taken in
        self.clipped = 0
        self.values = 0
        self.meter = PeakMeter()
        self.rate = min(source_rate, MAX_KEPT_RATE)  # the rate of `mono()`
        self._stream = (soxr.ResampleStream(source_rate, self.rate, 1, dtype="float32", quality=RESAMPLE_QUALITY)
                        if self.rate != source_rate else None)

    def add(self, block: np.ndarray) -> None:
        if not np.isfinite(block).all():
            raise AudioError("The file contains invalid samples (NaN or infinity); it may be corrupt.")
        self.clipped += int(np.count_nonzero(np.abs(block) >= CLIP_LEVEL))
        self.meter.add(block)
        self.values += block.size
        mono = block.mean(axis=1, dtype=np.float32) if block.shape[1] > 1 else block[:, 0].copy()
        self.parts.append(mono if self._stream is None else self._stream.resample_chunk(mono))
        self.frames += block.shape[0]

    def mono(self) -> np.ndarray:
        if self._stream is not None:
            self.parts.append(self._stream.resample_chunk(np.zeros(0, np.float32), last=True))
            self._stream = None
        return np.concatenate(self.parts) if self.parts else np.zeros(0, np.float32)


_BLOCK_SAMPLES = 1 << 20  # samples (frames x channels) decoded per block: 4 MiB of float32
