"""The everyday changes the model learns to ignore (utils/everyday.py) do what their names say."""

from __future__ import annotations

import io

import numpy as np
import pytest
import soundfile as sf

from tests.helpers.data import synth_music
from utils.audio.ffmpeg import ffmpeg_path
from utils.degrade import DEGRADATIONS
from utils.everyday import CHANGES

SR = 22050


@pytest.fixture(scope="module")
def clip() -> np.ndarray:
    return synth_music(seconds=8.0, sr=SR) * 3.0


def _decode(data: bytes) -> tuple[np.ndarray, int]:
    y, sr = sf.read(io.BytesIO(data), dtype="float32")
    return y, sr


def _share_above(y: np.ndarray, sr: int, hz: float) -> float:
    spec = np.abs(np.fft.rfft(y)) ** 2
    return float(spec[np.fft.rfftfreq(len(y), 1 / sr) >= hz].sum() / spec.sum())


def test_training_changes_never_use_the_benchmarks_amounts() -> None:
    """The bench judges generalisation to new amounts, so no change may be one of its conditions."""
    assert not set(CHANGES) & set(DEGRADATIONS)
    assert {name.split("_")[0] for name in CHANGES} >= {"mp3", "aac", "gain", "lowpass", "band", "pink", "pitch",
                                                       "tempo", "rate"}


@pytest.mark.parametrize("name", [n for n in CHANGES if not n.startswith(("mp3", "aac"))])
def test_each_change_gives_a_decodable_file_of_the_right_shape(clip: np.ndarray, name: str) -> None:
    y, sr = _decode(CHANGES[name](clip, SR))
    assert np.isfinite(y).all() and np.abs(y).max() <= 1.0 and y.ndim == 1
    seconds = len(y) / sr
    if name.startswith("tempo"):
        rate = 1 + float(name.split("_")[1].rstrip("%")) / 100
        assert seconds == pytest.approx(8.0 / rate, rel=0.01)
    else:
        assert seconds == pytest.approx(8.0, rel=0.01)
    if name in ("lowpass_2.5k", "band_400-3000"):
        assert _share_above(y, sr, 4000.0) < 0.1 * _share_above(clip, SR, 4000.0)
    if name == "rate_11k":
        assert sr == 11025


@pytest.mark.skipif(ffmpeg_path() is None, reason="ffmpeg is not installed (the codec changes need it)")
@pytest.mark.parametrize("name", ["mp3_128k", "mp3_48k", "aac_64k"])
def test_codec_changes_decode(clip: np.ndarray, name: str) -> None:
    from utils.audio import load_audio

    decoded = load_audio(CHANGES[name](clip, SR), SR, filename=f"x.{'m4a' if 'aac' in name else 'mp3'}")
    assert decoded.source_duration_s == pytest.approx(8.0, abs=0.15)
