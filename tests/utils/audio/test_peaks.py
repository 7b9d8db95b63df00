"""Clipping as a listener meets it (#15): decoded overs and inter-sample peaks count, not just samples at ±1.0."""

from __future__ import annotations

import re
import shutil
import subprocess

import numpy as np
import pytest

from tests.helpers.data import synth_music, wav_bytes
from utils.audio import load_audio
from utils.audio.peaks import PeakMeter, true_peak
from utils.audio.quality import TRUE_PEAK_LIMIT

SR = 44100


def quarter_rate_sine(amplitude: float, seconds: float = 3.0) -> np.ndarray:
    """A sine at fs/4 sampled 45° off its crests: every sample is amplitude/√2, the waveform reaches amplitude."""
    n = np.arange(int(seconds * SR))
    return (amplitude * np.sin(np.pi / 2 * n + np.pi / 4)).astype(np.float32)


def over_warning(warnings: list[str]) -> str | None:
    return next((w for w in warnings if "beyond full scale" in w), None)


def test_true_peak_finds_the_crest_between_samples() -> None:
    y = quarter_rate_sine(1.0)[:, None]
    assert np.max(np.abs(y)) == pytest.approx(2 ** -0.5, abs=1e-6)
    assert true_peak(y) == pytest.approx(1.0, abs=0.02)  # within the filter's stated ~0.1 dB


def test_meter_counts_overs_in_any_channel() -> None:
    meter = PeakMeter()
    block = np.zeros((1000, 6), np.float32)
    block[::100, 4] = 1.19  # one channel of six: a downmix would average it to 0.2
    meter.add(block)
    stats = meter.stats()
    assert stats.sample_peak == pytest.approx(1.19) and stats.overs_ratio == pytest.approx(10 / 6000)


def test_intersample_overs_are_reported_though_no_sample_clips() -> None:
    decoded = load_audio(wav_bytes(quarter_rate_sine(1.1), SR, subtype="FLOAT"), 16000, filename="isp.wav")
    q = decoded.quality
    assert q.peak < 0.8 and q.overs_ratio == 0.0 and q.true_peak > TRUE_PEAK_LIMIT
    warning = over_warning(decoded.warnings)
    assert warning is not None
    dbtp = float(re.search(r"true peak ([+-][\d.]+) dBTP", warning).group(1))
    assert dbtp == pytest.approx(20 * np.log10(1.1), abs=0.2)  # +0.83 dBTP, within the meter's accuracy
    # it said "0.00% of the samples at or over full scale: it clips", which read as a contradiction
    assert "every sample stays within it" in warning and "0.00%" not in warning and "lossy codec" not in warning


def test_decoded_overs_are_reported() -> None:
    y = synth_music(seconds=5.0, sr=SR) * 6.0  # peaks near 1.2: a float file keeps them
    decoded = load_audio(wav_bytes(y, SR, subtype="FLOAT"), 16000, filename="hot.wav")
    assert decoded.quality.peak > 1.0 and decoded.quality.overs_ratio > 0.0
    assert over_warning(decoded.warnings) is not None


def test_a_clean_master_has_no_clipping_warning() -> None:
    decoded = load_audio(wav_bytes(synth_music(seconds=5.0, sr=SR) * 2.5, SR), 16000, filename="clean.wav")
    assert decoded.quality.true_peak <= TRUE_PEAK_LIMIT
    assert not any("clip" in w or "full scale" in w for w in decoded.warnings)


@pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="needs ffmpeg (Debian package ffmpeg) to make an MP3")
def test_a_loud_mp3_is_not_called_clean(tmp_path) -> None:
    """The issue's case: a loud master through MP3 decodes with peaks above 1.0 and few samples at full scale."""
    y = np.clip(synth_music(seconds=8.0, sr=SR) * 5.5, -0.999, 0.999)  # mastered right up to full scale
    src = tmp_path / "loud.wav"
    src.write_bytes(wav_bytes(y, SR))
    mp3 = tmp_path / "loud.mp3"
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-i", str(src), "-c:a", "libmp3lame", "-b:a", "128k", str(mp3)],
                   check=True)
    decoded = load_audio(mp3.read_bytes(), 16000, filename="loud.mp3")
    assert decoded.quality.peak > 1.0 or decoded.quality.true_peak > TRUE_PEAK_LIMIT
    assert over_warning(decoded.warnings) is not None, decoded.warnings
