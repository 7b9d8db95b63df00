"""The first-run example: a drum-and-bass-line loop made by code, so the project may ship it.

It is a reggae-style one-drop groove (drums, bass line, off-beat chord stabs) at 90 BPM, so the
example has a clear answer to show: the shipped model (v3) calls it reggae.

No recording, sample or GTZAN clip goes into it: every sound is synthesised here from sines and
seeded noise, so the file is the same on every machine and free of anyone's copyright. It is
rendered once into a cache folder at first use (`example_wav`) rather than stored in the repository.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import soundfile as sf

from utils.atomic import atomic_write_bytes

EXAMPLE_NAME = "genre-lens-example-loop.wav"  # the name the user sees
EXAMPLE_VERSION = 2  # bump whenever the synthesis changes, so no cache serves an older loop
EXAMPLE_SECONDS = 30.0  # six 5 s slices, four 15 s windows: enough to show every chart
EXAMPLE_RATE = 22050
BPM = 90.0
SEED = 17
# A minor riff, one note per beat over two bars (Hz): A1 C2 A1 G1 | F1 F1 G1 E1
BASS_LINE = (55.0, 65.41, 55.0, 49.0, 43.65, 43.65, 49.0, 41.2)
CHORDS = ((220.0, 261.63, 329.63), (174.61, 220.0, 261.63))  # Am, F: one per bar


def _envelope(n: int, sr: int, attack_s: float, decay_s: float) -> np.ndarray:
    """A fast attack and an exponential decay over n samples."""
    t = np.arange(n) / sr
    attack = np.clip(t / max(attack_s, 1e-4), 0.0, 1.0)
    return attack * np.exp(-t / decay_s)


def _kick(sr: int) -> np.ndarray:
    """A sine whose pitch falls from 120 to 45 Hz: the classic synthetic kick."""
    n = int(0.35 * sr)
    t = np.arange(n) / sr
    freq = 45.0 + 75.0 * np.exp(-t / 0.04)
    phase = 2 * np.pi * np.cumsum(freq) / sr
    return np.sin(phase) * _envelope(n, sr, 0.002, 0.12)


def _snare(sr: int, rng: np.random.Generator) -> np.ndarray:
    """Noise with a short 180 Hz body, brightened by differencing."""
    n = int(0.2 * sr)
    t = np.arange(n) / sr
    noise = np.diff(rng.standard_normal(n + 1))
    body = np.sin(2 * np.pi * 180.0 * t)
    return 0.45 * noise * _envelope(n, sr, 0.001, 0.05) + 0.5 * body * _envelope(n, sr, 0.001, 0.03)


def _hat(sr: int, rng: np.random.Generator) -> np.ndarray:
    """A closed hi-hat: twice-differenced (high-passed) noise, very short."""
    n = int(0.05 * sr)
    noise = np.diff(rng.standard_normal(n + 2), n=2)
    return 0.12 * noise * _envelope(n, sr, 0.0005, 0.012)


def _bass_note(freq: float, seconds: float, sr: int) -> np.ndarray:
    """A soft saw (six harmonics) with a plucked envelope."""
    n = int(seconds * sr)
    t = np.arange(n) / sr
    tone = sum(np.sin(2 * np.pi * freq * h * t) / h for h in range(1, 7))
    return tone * _envelope(n, sr, 0.005, 0.35)


def _skank(freqs: tuple[float, ...], sr: int) -> np.ndarray:
    """A short off-beat chord stab (three harmonics per note), the reggae 'skank'."""
    n = int(0.12 * sr)
    t = np.arange(n) / sr
    tone = sum(np.sin(2 * np.pi * f * t) + 0.5 * np.sin(4 * np.pi * f * t) + 0.25 * np.sin(6 * np.pi * f * t)
               for f in freqs)
    return tone * np.exp(-t / 0.05)


def _add(out: np.ndarray, sound: np.ndarray, at: int) -> None:
    """Mix a sound into the output at a sample offset, cut at the end."""
    end = min(len(out), at + len(sound))
    if at < end:
        out[at:end] += sound[: end - at]


def synthesize_example(seconds: float = EXAMPLE_SECONDS, sr: int = EXAMPLE_RATE, seed: int = SEED) -> np.ndarray:
    """The loop as mono float32 in [-1, 1]: a one-drop beat (kick and snare together on beat 3 of 4),
    eighth-note hats, a plucked bass line on every beat and a chord stab on every off-beat."""
    if seconds <= 0 or sr <= 0:
        raise ValueError("seconds and sample rate must be positive")
    rng = np.random.default_rng(seed)
    out = np.zeros(int(seconds * sr), dtype=np.float64)
    beat = 60.0 / BPM
    kick, snare = _kick(sr), _snare(sr, rng)
    for b in range(int(np.ceil(seconds / beat))):
        at = int(b * beat * sr)
        if b % 4 == 2:
            _add(out, 0.9 * kick, at)
            _add(out, 0.6 * snare, at)
        for half in (0, 1):
            _add(out, _hat(sr, rng), at + int(half * beat / 2 * sr))
        _add(out, 0.4 * _bass_note(BASS_LINE[b % len(BASS_LINE)], beat * 0.9, sr), at)
        _add(out, 0.15 * _skank(CHORDS[(b // 4) % len(CHORDS)], sr), at + int(beat / 2 * sr))
    peak = float(np.max(np.abs(out))) or 1.0
    return (0.89 * out / peak).astype(np.float32)  # about -1 dBFS


def example_bytes(seconds: float = EXAMPLE_SECONDS, sr: int = EXAMPLE_RATE) -> bytes:
    """The loop encoded as a 16-bit WAV file in memory."""
    buf = io.BytesIO()
    sf.write(buf, synthesize_example(seconds, sr), sr, subtype="PCM_16", format="WAV")
    return buf.getvalue()


def example_wav(folder: Path) -> Path:
    """The example rendered into `folder` (once; written atomically, so readers never see half a file)."""
    folder = Path(folder)
    path = folder / f"{Path(EXAMPLE_NAME).stem}-v{EXAMPLE_VERSION}.wav"
    if path.is_file() and path.stat().st_size > 0:
        return path
    folder.mkdir(parents=True, exist_ok=True)
    return atomic_write_bytes(path, example_bytes())
