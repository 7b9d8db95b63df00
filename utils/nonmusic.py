"""A labelled set of non-music clips that any checkout can regenerate: noise, tones, speech, room tone.

The not-music detector is measured on these (the model card's `not_music` figures, the tests), so they
are made by code with fixed seeds rather than stored as audio: white, pink and brown noise at several
levels, steady tones, a two-tone signal and sweeps, speech synthesised by `espeak-ng` (a Debian package;
its clips are left out, with the reason, where it is absent), room tone, and clicks over silence or
room tone. Every clip is mono float32 at `SAMPLE_RATE`.
"""

from __future__ import annotations

import io
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import soundfile as sf

SAMPLE_RATE = 22050
CLIP_S = 30.0
NOISE_LEVELS_DB = (-40.0, -20.0, -8.0)  # RMS in dBFS: a quiet hiss, a normal level, a loud one
SPEECH_TEXT = (
    "Good morning. This is a short recording of a voice reading plain text, with no music at all. "
    "The weather today will be cloudy in the north, with some sunshine later in the afternoon. "
    "Please remember that the library closes at six o'clock, and that books must be returned on time. "
    "Thank you for listening, and have a pleasant day."
)
SPEECH_VOICES = (("en", 160), ("en+f3", 175), ("en-us+m3", 140), ("de", 150), ("fr", 165))
ESPEAK_TIMEOUT_S = 30.0


@dataclass(frozen=True)
class Clip:
    """One labelled non-music clip: a family (noise, tone, speech, room) and a unique name."""

    name: str
    family: str
    samples: np.ndarray  # (n,) float32 at SAMPLE_RATE


def espeak_path() -> str | None:
    """The espeak-ng binary, or None where it is not installed."""
    return shutil.which("espeak-ng")


def _at_level(y: np.ndarray, rms_db: float) -> np.ndarray:
    """Scale to an RMS level in dBFS, clipped to [-1, 1] like a real recording."""
    rms = float(np.sqrt(np.mean(np.square(y, dtype=np.float64)))) or 1.0
    return np.clip(y * (10 ** (rms_db / 20) / rms), -1.0, 1.0).astype(np.float32)


def coloured_noise(kind: str, seconds: float, rng: np.random.Generator, sr: int = SAMPLE_RATE) -> np.ndarray:
    """White, pink (1/f power) or brown (1/f^2) Gaussian noise, unit RMS, shaped in the frequency domain."""
    n = int(seconds * sr)
    spectrum = np.fft.rfft(rng.standard_normal(n))
    f = np.fft.rfftfreq(n, 1 / sr)
    f[0] = f[1]
    exponent = {"white": 0.0, "pink": 0.5, "brown": 1.0}[kind]
    y = np.fft.irfft(spectrum / f**exponent, n)
    return (y / np.std(y)).astype(np.float32)


def tone(freqs: tuple[float, ...], seconds: float, sr: int = SAMPLE_RATE) -> np.ndarray:
    """Steady sine tone(s) with 20 ms fades."""
    t = np.arange(int(seconds * sr)) / sr
    y = sum(np.sin(2 * np.pi * f * t) for f in freqs)
    fade = np.minimum(1.0, np.minimum(t, t[-1] - t) / 0.02)
    return (y * fade).astype(np.float32)


def sweep(f0: float, f1: float, seconds: float, log: bool, sr: int = SAMPLE_RATE) -> np.ndarray:
    """A linear or logarithmic sine sweep from f0 to f1 Hz."""
    t = np.arange(int(seconds * sr)) / sr
    if log:
        k = np.log(f1 / f0) / seconds
        phase = 2 * np.pi * f0 * (np.exp(k * t) - 1) / k
    else:
        phase = 2 * np.pi * (f0 * t + (f1 - f0) * t**2 / (2 * seconds))
    return np.sin(phase).astype(np.float32)


def room_tone(seconds: float, rng: np.random.Generator, sr: int = SAMPLE_RATE) -> np.ndarray:
    """A quiet room: brown-ish rumble, a faint mains hum (50 Hz and harmonics) and hiss, around -50 dBFS."""
    t = np.arange(int(seconds * sr)) / sr
    hum = sum(np.sin(2 * np.pi * 50 * h * t) / h for h in (1, 2, 3))
    y = coloured_noise("brown", seconds, rng, sr) + 0.3 * coloured_noise("white", seconds, rng, sr) + 0.2 * hum
    return _at_level(y, -50.0)


def clicks(seconds: float, rng: np.random.Generator, bed: np.ndarray | None, regular: bool,
           sr: int = SAMPLE_RATE) -> np.ndarray:
    """Short clicks (vinyl crackle, a ticking clock) over silence or over a bed of room tone."""
    n = int(seconds * sr)
    y = np.zeros(n, np.float32) if bed is None else bed[:n].copy()
    times = np.arange(0.3, seconds, 1.0) if regular else np.sort(rng.uniform(0, seconds, int(3 * seconds)))
    for when in times:
        i = int(when * sr)
        length = min(64, n - i)
        y[i : i + length] += (rng.uniform(0.2, 0.8) * np.exp(-np.arange(length) / 8.0)
                              * np.sign(rng.standard_normal(length)))
    return np.clip(y, -1.0, 1.0).astype(np.float32)


def speech(voice: str, words_per_minute: int, seconds: float, sr: int = SAMPLE_RATE) -> np.ndarray:
    """espeak-ng reading SPEECH_TEXT, resampled to sr and cut (or repeated) to `seconds`."""
    exe = espeak_path()
    if exe is None:
        raise RuntimeError("espeak-ng is not installed (Debian package espeak-ng)")
    wav = subprocess.run([exe, "-v", voice, "-s", str(words_per_minute), "--stdout", SPEECH_TEXT],
                         capture_output=True, check=True, timeout=ESPEAK_TIMEOUT_S).stdout
    y, rate = sf.read(io.BytesIO(wav), dtype="float32", always_2d=False)
    import soxr  # the resampler utils/audio/load.py uses

    y = soxr.resample(y, rate, sr).astype(np.float32)
    n = int(seconds * sr)
    y = np.tile(y, -(-n // len(y)))[:n]
    return _at_level(y, -20.0)


def nonmusic_clips(seconds: float = CLIP_S, seed: int = 0, with_speech: bool = True) -> Iterator[Clip]:
    """Every clip of the set, in a fixed order; speech only where espeak-ng is present."""
    rng = np.random.default_rng(seed)
    for kind in ("white", "pink", "brown"):
        for level in NOISE_LEVELS_DB:
            yield Clip(f"{kind}-noise{level:+.0f}dB", "noise", _at_level(coloured_noise(kind, seconds, rng), level))
    for freqs in ((100.0,), (440.0,), (1000.0,), (3000.0,), (350.0, 440.0)):
        yield Clip("tone-" + "+".join(f"{f:.0f}" for f in freqs) + "Hz", "tone", _at_level(tone(freqs, seconds), -12))
    yield Clip("sweep-linear-20-10000Hz", "tone", _at_level(sweep(20, 10000, seconds, log=False), -12))
    yield Clip("sweep-log-50-8000Hz", "tone", _at_level(sweep(50, 8000, seconds, log=True), -12))
    yield Clip("sweep-log-repeated-2s", "tone", _at_level(np.tile(sweep(100, 4000, 2.0, log=True),
                                                                  int(seconds / 2) + 1)[: int(seconds * SAMPLE_RATE)],
                                                          -12))
    if with_speech and espeak_path() is not None:
        for voice, wpm in SPEECH_VOICES:
            yield Clip(f"speech-{voice}-{wpm}wpm", "speech", speech(voice, wpm, seconds))
    bed = room_tone(seconds, rng)
    yield Clip("room-tone", "room", bed)
    yield Clip("room-tone-loud", "room", _at_level(room_tone(seconds, rng), -30.0))
    yield Clip("clicks-on-silence", "room", clicks(seconds, rng, None, regular=False))
    yield Clip("clock-ticks-on-silence", "room", clicks(seconds, rng, None, regular=True))
    yield Clip("crackle-on-room-tone", "room", clicks(seconds, rng, bed, regular=False))


def wav_bytes(samples: np.ndarray, sr: int = SAMPLE_RATE) -> bytes:
    """A clip as 16-bit WAV bytes, the way a user would upload it."""
    buf = io.BytesIO()
    sf.write(buf, samples, sr, subtype="PCM_16", format="WAV")
    return buf.getvalue()
