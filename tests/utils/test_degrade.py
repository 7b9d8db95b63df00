"""The robustness benchmark's degradations (utils/degrade.py) do what their names say."""

from __future__ import annotations

import io

import numpy as np
import pytest
import soundfile as sf

from tests.helpers.data import synth_music
from utils.audio.ffmpeg import ffmpeg_path
from utils.degrade import DEGRADATIONS, SPEED_CHANGES, limit, with_noise

SR = 22050


@pytest.fixture(scope="module")
def clip() -> np.ndarray:
    return synth_music(seconds=12.0, sr=SR) * 3.0  # peaks near 0.6


def decode(data: bytes) -> tuple[np.ndarray, int]:
    y, sr = sf.read(io.BytesIO(data), dtype="float32")
    return y, sr


def rms_db(y: np.ndarray) -> float:
    return 10 * np.log10(np.mean(np.square(y, dtype=np.float64)))


def band_share(y: np.ndarray, sr: int, lo: float, hi: float) -> float:
    """Share of the energy between lo and hi Hz."""
    spec = np.abs(np.fft.rfft(y)) ** 2
    f = np.fft.rfftfreq(len(y), 1 / sr)
    return float(spec[(f >= lo) & (f < hi)].sum() / spec.sum())


def test_the_set_is_the_issues_list() -> None:
    assert set(DEGRADATIONS) == {"mp3_64k", "aac_96k", "gain_-20dB", "gain_+12dB_limited", "lowpass_4k",
                                 "phone_300-3400", "pink_noise_20dB", "pitch_+1", "pitch_-1", "tempo_+6%",
                                 "tempo_-6%", "mono_8k_round_trip", "first_10s"}


def test_gain_and_limiter(clip: np.ndarray) -> None:
    quiet, _ = decode(DEGRADATIONS["gain_-20dB"](clip, SR))
    assert rms_db(quiet) - rms_db(clip) == pytest.approx(-20.0, abs=0.1)
    loud, _ = decode(DEGRADATIONS["gain_+12dB_limited"](clip, SR))
    assert np.max(np.abs(loud)) <= 0.981 and rms_db(loud) > rms_db(clip) + 6.0
    spike = np.zeros(SR, np.float32)
    spike[SR // 2] = 4.0
    assert np.max(np.abs(limit(spike, SR))) <= 0.98 + 1e-6


def test_filters_remove_their_bands(clip: np.ndarray) -> None:
    low, _ = decode(DEGRADATIONS["lowpass_4k"](clip, SR))
    assert band_share(low, SR, 5000, SR / 2) < 1e-3 < band_share(clip, SR, 5000, SR / 2)
    phone, _ = decode(DEGRADATIONS["phone_300-3400"](clip, SR))
    assert band_share(phone, SR, 0, 150) < 1e-3 and band_share(phone, SR, 5000, SR / 2) < 1e-3


def test_noise_is_at_the_stated_snr(clip: np.ndarray) -> None:
    noisy = with_noise(clip, SR, 20.0)
    assert rms_db(clip) - rms_db(noisy - clip) == pytest.approx(20.0, abs=0.5)


def test_time_and_rate_changes(clip: np.ndarray) -> None:
    for name, factor in (("tempo_+6%", 1 / 1.06), ("tempo_-6%", 1 / 0.94)):
        y, _ = decode(DEGRADATIONS[name](clip, SR))
        assert len(y) == pytest.approx(len(clip) * factor, rel=0.01)
    shifted, _ = decode(DEGRADATIONS["pitch_+1"](clip, SR))
    assert len(shifted) == len(clip)
    y, sr = decode(DEGRADATIONS["mono_8k_round_trip"](clip, SR))
    assert sr == 8000 and y.ndim == 1 and len(y) == pytest.approx(len(clip) * 8000 / SR, abs=2)
    first, _ = decode(DEGRADATIONS["first_10s"](clip, SR))
    assert len(first) == 10 * SR


@pytest.mark.skipif(ffmpeg_path() is None, reason="needs ffmpeg (Debian package ffmpeg) for the codecs")
@pytest.mark.parametrize("name", ["mp3_64k", "aac_96k"])
def test_codecs_make_real_files_the_loader_reads(clip: np.ndarray, name: str) -> None:
    from utils.audio import load_audio

    data = DEGRADATIONS[name](clip, SR)
    decoded = load_audio(data, 16000, filename=f"x.{'mp3' if name.startswith('mp3') else 'm4a'}")
    assert decoded.duration_s == pytest.approx(12.0, abs=0.2)
    assert decoded.source_format.startswith("MP3" if name.startswith("mp3") else "M4A")


def test_speed_changes_scale_pitch_and_tempo_together() -> None:
    t = np.arange(4 * SR) / SR
    tone = (0.5 * np.sin(2 * np.pi * 440.0 * t)).astype(np.float32)
    for name, factor in (("speed_+6%", 1.06), ("speed_-6%", 0.94)):
        y, sr = decode(SPEED_CHANGES[name](tone, SR))
        assert sr == SR and len(y) == pytest.approx(len(tone) / factor, rel=0.002)  # tempo
        spectrum = np.abs(np.fft.rfft(y * np.hanning(len(y))))
        peak = np.fft.rfftfreq(len(y), 1 / SR)[spectrum.argmax()]
        assert peak == pytest.approx(440.0 * factor, abs=1.0)  # pitch, by the same factor
    assert not set(SPEED_CHANGES) & set(DEGRADATIONS)  # context rows, never in the benchmark's mean
