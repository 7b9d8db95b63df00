"""Tests for utils.audio: the loader that turns untrusted uploads into model-ready mono audio."""

from __future__ import annotations

import hashlib
import io
import re
import shutil
import struct
import subprocess
import threading
import time
import tracemalloc
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from tests.helpers.data import shared_path, synth_music, wav_bytes
from utils.audio import AudioError, DecodedAudio, ffmpeg, load_audio, sniff_format
from utils.audio.sniff import _mpeg_frame
from utils.text import safe_display_name

SR = 16000
HAS_FFMPEG = shutil.which("ffmpeg") is not None
needs_ffmpeg = pytest.mark.skipif(not HAS_FFMPEG, reason="ffmpeg is not installed (optional decoder for M4A/AAC)")


def tone(freq: float = 1000.0, seconds: float = 3.0, sr: int = SR, amp: float = 0.5) -> np.ndarray:
    t = np.arange(int(seconds * sr)) / sr
    return (amp * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def fft_peak_hz(y: np.ndarray, sr: int) -> float:
    spec = np.abs(np.fft.rfft(y * np.hanning(y.size)))
    return float(np.argmax(spec) * sr / y.size)


def wav_header(
    channels: int, rate: int, n_data: int, *, bits: int = 16, tag: int = 1, data_size: int | None = None
) -> bytes:
    """A hand-made 44-byte RIFF/WAVE header, so tests can state values no encoder would write."""
    align = channels * bits // 8
    size = n_data if data_size is None else data_size
    fmt = struct.pack("<HHIIHH", tag, channels, rate, rate * align, align, bits)
    riff = (4 + 24 + 8 + size) & 0xFFFFFFFF
    return (
        b"RIFF"
        + struct.pack("<I", riff)
        + b"WAVEfmt "
        + struct.pack("<I", 16)
        + fmt
        + b"data"
        + struct.pack("<I", size)
    )


def pcm16(y: np.ndarray) -> bytes:
    return (np.clip(y, -1, 1) * 32767).astype("<i2").tobytes()


def mp3_bytes(y: np.ndarray, sr: int) -> bytes:
    try:
        return wav_bytes(y, sr, subtype="MPEG_LAYER_III", fmt="MP3")
    except (sf.LibsndfileError, ValueError, TypeError) as exc:  # pragma: no cover - depends on libsndfile
        pytest.skip(f"this libsndfile cannot write MP3 ({exc})")


def load(data: bytes | Path | str, **kw) -> DecodedAudio:
    kw.setdefault("target_sr", SR)
    return load_audio(data, **kw)


def assert_audio_error(data: bytes | Path, match: str | None = None, **kw) -> str:
    with pytest.raises(AudioError, match=match) as info:
        load(data, **kw)
    msg = str(info.value)
    assert msg.endswith(".") and msg[0].isupper(), msg  # a sentence for the user
    return msg


def assert_valid(d: DecodedAudio, target_sr: int = SR) -> None:
    assert d.samples.dtype == np.float32 and d.samples.ndim == 1
    assert np.isfinite(d.samples).all()
    assert d.sample_rate == target_sr
    assert len(d.sha256) == 64


# --- invalid input -------------------------------------------------------------------------------


def test_zero_bytes_is_a_clear_error():
    assert assert_audio_error(b"", match="empty") == "This file is empty (0 bytes)."


def test_random_bytes_named_wav_are_rejected_with_the_accepted_formats():
    data = np.random.default_rng(1).bytes(50_000)
    msg = assert_audio_error(data, filename="song.wav")
    assert "WAV, FLAC, AIFF, OGG/Opus, MP3" in msg


def test_text_file_is_rejected(tmp_path: Path):
    path = tmp_path / "notes.mp3"
    path.write_text("just some text, not audio\n" * 100)
    assert_audio_error(path, match="doesn't look like an audio file")


@pytest.mark.parametrize("cut", [4, 12, 20, 30, 40])
def test_wav_with_cut_header_is_an_error(cut: int):
    data = wav_bytes(tone(), SR)[:cut]
    assert_audio_error(data)


def test_wav_with_data_cut_midway_decodes_what_is_there_and_says_so():
    """Decision: a WAV whose data chunk is cut short (interrupted copy/recording) is still usable,
    so we decode the samples present and warn, rather than refuse the whole upload."""
    full = wav_bytes(tone(seconds=6.0), SR)
    d = load(full[: 44 + 2 * SR * 3 + 1])
    assert_valid(d)
    assert d.duration_s == pytest.approx(3.0, abs=1e-3)
    assert not d.truncated
    assert any("cut short" in w for w in d.warnings)


def test_float_wav_with_nan_or_inf_is_an_error():
    for bad in (np.nan, np.inf, -np.inf):
        y = tone()
        y[SR] = bad
        msg = assert_audio_error(wav_bytes(y, SR, subtype="FLOAT"), match="NaN or infinity")
        assert msg == "The file contains invalid samples (NaN or infinity); it may be corrupt."


def test_too_large_input_is_refused_before_decoding():
    assert_audio_error(wav_bytes(tone(), SR), max_bytes=1000, match="files up to 1000 bytes")


def test_missing_path_does_not_leak_the_server_path(tmp_path: Path):
    msg = assert_audio_error(tmp_path / "secret-dir" / "x.wav")
    assert "x.wav" in msg and str(tmp_path) not in msg and "secret-dir" not in msg


def test_directory_is_not_a_file(tmp_path: Path):
    assert_audio_error(tmp_path)


def test_bad_arguments_are_programming_errors():
    with pytest.raises(ValueError):
        load(wav_bytes(tone(), SR), target_sr=0)
    with pytest.raises(ValueError):
        load(wav_bytes(tone(), SR), min_duration_s=5, max_duration_s=2)
    with pytest.raises(TypeError):
        load_audio(None, SR)  # type: ignore[arg-type]


# --- crafted headers -----------------------------------------------------------------------------


@pytest.mark.parametrize("rate", [1, 3999, 384_001, 10_000_000])
def test_absurd_sample_rate_in_header_is_an_error(rate: int):
    data = wav_header(1, rate, 2 * 20000) + pcm16(tone(seconds=20000 / SR))
    assert_audio_error(data, match="sample rate")


def test_absurd_sample_rate_in_a_non_wav_header_is_an_error():
    data = wav_bytes(tone(), SR, fmt="AIFF")
    pos = data.index(b"COMM") + 8 + 8  # COMM: channels(2) frames(4) bits(2) rate(80-bit float)
    bad = data[:pos] + b"\x40\x00\x80" + b"\x00" * 7 + data[pos + 10 :]  # 1 Hz... as extended float
    with pytest.raises(AudioError):
        load(bad)


def test_more_than_32_channels_is_an_error():
    n = SR
    data = wav_header(40, SR, 2 * 40 * n) + pcm16(np.zeros(40 * n))
    assert_audio_error(data, match="40 channels")


def test_zero_channels_is_an_error():
    data = wav_header(0, SR, 2 * SR) + pcm16(tone(seconds=1.0))
    assert_audio_error(data, match="0 audio channels")


def _run_bounded(data: bytes, **kw) -> tuple[DecodedAudio | AudioError, float, int]:
    tracemalloc.start()
    t0 = time.perf_counter()
    try:
        out: DecodedAudio | AudioError = load(data, **kw)
    except AudioError as exc:
        out = exc
    elapsed = time.perf_counter() - t0
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return out, elapsed, peak


def test_wav_header_claiming_hours_returns_quickly_without_big_allocations():
    y = synth_music(20.0, sr=22050)
    data = wav_header(1, 22050, 0, data_size=0xFFFFFFF0) + pcm16(y)  # claims ~27 h
    out, elapsed, peak = _run_bounded(data)
    assert isinstance(out, DecodedAudio)
    assert elapsed < 3 and peak < 64 << 20
    assert out.duration_s == pytest.approx(20.0, abs=1e-3) and out.samples.size == 20 * SR
    assert any("27 h" in w for w in out.warnings)

    out, elapsed, peak = _run_bounded(data, max_duration_s=5)
    assert isinstance(out, DecodedAudio) and out.truncated
    assert out.duration_s == pytest.approx(5.0) and out.source_duration_s == pytest.approx(20.0, abs=0.01)
    assert elapsed < 3 and peak < 64 << 20


def test_rf64_header_claiming_terabytes_is_bounded():
    y = pcm16(synth_music(4.0, sr=SR))
    huge = 1 << 40
    fmt = struct.pack("<HHIIHH", 1, 1, SR, SR * 2, 2, 16)
    ds64 = struct.pack("<QQQI", huge + 80, huge, huge // 2, 0)
    data = (
        b"RF64" + struct.pack("<I", 0xFFFFFFFF) + b"WAVE" + b"ds64" + struct.pack("<I", len(ds64)) + ds64
        + b"fmt " + struct.pack("<I", 16) + fmt + b"data" + struct.pack("<I", 0xFFFFFFFF) + y
    )  # fmt: skip
    assert sniff_format(data) == "RF64"
    out, elapsed, peak = _run_bounded(data, max_duration_s=2)
    assert elapsed < 3 and peak < 64 << 20
    assert isinstance(out, DecodedAudio), out
    assert out.truncated and out.duration_s == pytest.approx(2.0)
    # The header's claim is capped by what the bytes can hold.
    assert out.source_duration_s == pytest.approx(4.0, abs=0.01)


def test_flac_header_claiming_a_huge_length_is_bounded():
    data = bytearray(wav_bytes(synth_music(3.0, sr=SR), SR, fmt="FLAC"))
    off = 8 + 13  # STREAMINFO: total samples are the low 36 bits of bytes 13..17
    v = int.from_bytes(data[off : off + 5], "big") | ((1 << 36) - 1)
    data[off : off + 5] = v.to_bytes(5, "big")
    out, elapsed, peak = _run_bounded(bytes(data))
    assert elapsed < 3 and peak < 64 << 20
    assert isinstance(out, DecodedAudio), out
    assert out.duration_s == pytest.approx(3.0, abs=1e-3)
    assert any("cut short" in w for w in out.warnings)


def test_nasty_inputs_never_hang():
    """Each input must finish well inside a small time-out (a hang fails the test, not the suite)."""
    good = wav_bytes(synth_music(3.0, sr=SR), SR)
    flac = wav_bytes(synth_music(3.0, sr=SR), SR, fmt="FLAC")
    cases = [
        wav_header(1, SR, 0, data_size=0xFFFFFFFF),
        wav_header(2, 44100, 0, data_size=0x7FFFFFFF) + b"\x00" * 1000,
        b"RIFF\xff\xff\xff\xffWAVE" + b"LIST\xff\xff\xff\x7f" * 50,
        b"RIFF\x00\x00\x00\x00WAVE" + b"junk\x00\x00\x00\x00" * 5000,
        b"fLaC" + b"\xff" * 10_000,
        flac[:200] + b"\x00" * 100_000,
        b"OggS" + bytes(range(256)) * 40,
        b"ID3\x03\x00\x00\x7f\x7f\x7f\x7f" + b"\xff\xfb\x90\x00" * 1000,
        good[:44] + np.random.default_rng(3).bytes(100_000),
    ]
    for data in cases:
        box: list[object] = []

        def run(d: bytes = data, box: list[object] = box) -> None:
            try:
                box.append(load(d, min_duration_s=0.0))
            except AudioError as exc:
                box.append(exc)

        worker = threading.Thread(target=run, daemon=True)  # a daemon, so a hang cannot block exit
        worker.start()
        worker.join(timeout=10)
        assert not worker.is_alive(), f"load_audio hung on input starting {data[:16]!r}"
        assert len(box) == 1 and isinstance(box[0], DecodedAudio | AudioError), box
        if isinstance(box[0], DecodedAudio):
            assert np.isfinite(box[0].samples).all()


# --- formats and sniffing ------------------------------------------------------------------------


def test_mp3_renamed_wav_decodes_as_mp3(tmp_path: Path):
    y = tone(440.0, seconds=4.0)
    data = mp3_bytes(y, SR)
    d = load(data, filename="song.wav", pad_to_s=None)
    assert d.source_format == "MP3"
    assert d.duration_s == pytest.approx(4.0, abs=0.1)
    assert fft_peak_hz(d.samples, SR) == pytest.approx(440.0, abs=2.0)
    path = tmp_path / "song.wav"
    path.write_bytes(data)
    assert load(path, pad_to_s=None).source_format == "MP3"


def test_mp3_behind_a_big_id3_tag():
    data = mp3_bytes(tone(440.0, seconds=2.0), SR)
    size = 20_000  # larger than the sniffing window, as with embedded cover art
    syncsafe = bytes([(size >> 21) & 127, (size >> 14) & 127, (size >> 7) & 127, size & 127])
    tagged = b"ID3\x03\x00\x00" + syncsafe + b"\x00" * size + data
    d = load(tagged)
    assert d.source_format == "MP3" and d.duration_s == pytest.approx(2.0, abs=0.1)


def _vbr_mp3_without_length_header() -> tuple[bytes, float]:
    y = synth_music(10.0, sr=SR)
    y[: SR // 2] = np.random.default_rng(0).standard_normal(SR // 2).astype(np.float32) * 0.5  # loud start
    data = mp3_bytes(y, SR)
    return data[data.index(b"\xff", 4) :], 10.0  # drop the first (Xing/Info) frame


def test_vbr_mp3_without_length_header_is_not_silently_cut(monkeypatch: pytest.MonkeyPatch):
    """libsndfile stops at its bitrate-based length estimate; we notice it from the frame chain."""
    data, seconds = _vbr_mp3_without_length_header()
    monkeypatch.setattr(ffmpeg, "ffmpeg_path", lambda: None)
    d = load(data)
    assert d.duration_s > seconds - 0.2 or any("length header" in w for w in d.warnings)


def test_mp3_cut_short_in_a_download_says_so():
    """The Xing/Info tag still promises the whole song; libsndfile alone would read the half silently."""
    data = mp3_bytes(synth_music(10.0, sr=SR), SR)
    whole = load(data, pad_to_s=None)
    assert not any("cut short" in w for w in whole.warnings)
    half = load(data[: len(data) // 2], pad_to_s=None)
    assert half.duration_s == pytest.approx(5.0, abs=0.5)
    note = next(w for w in half.warnings if "cut short" in w)
    said = re.search(r"promises ([\d.]+) s of audio but only ([\d.]+) s", note)
    assert said and float(said[1]) == 10.0 and 0 <= half.duration_s - float(said[2]) < 0.1  # rounded down


def test_mp3_without_a_length_tag_is_not_called_cut_short():
    data, _ = _vbr_mp3_without_length_header()
    assert not any("cut short" in w for w in load(data[: len(data) // 2], pad_to_s=None).warnings)


@needs_ffmpeg
def test_vbr_mp3_without_length_header_falls_back_to_ffmpeg():
    data, seconds = _vbr_mp3_without_length_header()
    d = load(data)
    assert d.duration_s == pytest.approx(seconds, abs=0.2)


@pytest.mark.parametrize(
    ("fmt", "subtype", "sr"),
    [
        ("WAV", "PCM_16", SR), ("WAV", "FLOAT", SR), ("RF64", "PCM_16", SR), ("W64", "PCM_16", SR),
        ("AIFF", "PCM_16", SR), ("FLAC", "PCM_16", SR), ("OGG", "VORBIS", SR), ("OGG", "OPUS", 48000),
        ("MP3", "MPEG_LAYER_III", SR),
    ],
)  # fmt: skip
def test_sniff_real_files(fmt: str, subtype: str, sr: int):
    data = mp3_bytes(tone(sr=sr), sr) if fmt == "MP3" else wav_bytes(tone(sr=sr), sr, subtype=subtype, fmt=fmt)
    expected = {"OGG": "OGG", "W64": "W64"}.get(fmt, fmt)
    assert sniff_format(data[:4096]) == expected
    assert load(data).source_format == expected


@pytest.mark.parametrize(
    ("head", "expected"),
    [
        (b"RIFF\x24\x00\x00\x00WAVEfmt ", "WAV"),
        (b"RF64\xff\xff\xff\xffWAVEds64", "RF64"),
        (b"FORM\x00\x00\x10\x00AIFFCOMM", "AIFF"),
        (b"FORM\x00\x00\x10\x00AIFCFVER", "AIFF"),
        (b"fLaC\x00\x00\x00\x22", "FLAC"),
        (b"OggS\x00\x02" + b"\x00" * 22 + b"OpusHead", "OGG"),
        (b"ID3\x04\x00\x00\x00\x00\x00\x10" + b"\x00" * 16, "MP3"),
        (b"ID3\x04\x00\x00\x00\x00\x00\x00fLaC\x00\x00\x00\x22", "FLAC"),
        (b"\x00\x00\x00\x20ftypM4A \x00\x00\x02\x00M4A isom", "M4A"),
        (b"\x00\x00\x00\x18ftypmp42\x00\x00\x00\x00mp42", "M4A"),
        (b"\xff\xf1\x50\x80\x02\x1f\xfc", "AAC"),
        (b"\x1aE\xdf\xa3\x9fB\x86\x81\x01", "WEBM"),
        (bytes.fromhex("3026b2758e66cf11a6d900aa0062ce6c"), "WMA"),
        (b"caff\x00\x01\x00\x00desc", "CAF"),
        (b"", None),
        (b"RIFF", None),
        (b"RIFF\x24\x00\x00\x00AVI LIST", None),
        (b"<html><body>hello</body></html>", None),
        (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", None),
        (b"%PDF-1.7\n", None),
        (b"\xff\xd8\xff\xe0\x00\x10JFIF", None),
        (b"PK\x03\x04\x14\x00\x00\x00", None),
    ],
)
def test_sniff_magic_bytes(head: bytes, expected: str | None):
    assert sniff_format(head) == expected


def test_mpeg_sniff_needs_a_second_frame_where_the_first_ends():
    frame = _first_mpeg_frame()
    assert sniff_format(frame + frame[:4] + b"\x00" * 100) == "MP3"
    assert sniff_format(frame + b"\x00" * 104) is None  # a lone sync word is not enough


def _first_mpeg_frame() -> bytes:
    data = mp3_bytes(tone(seconds=1.0), SR)
    length = _mpeg_frame(data)
    assert length is not None
    return data[: length[0]]


def test_flac_round_trip():
    y = synth_music(5.0, sr=SR)
    d = load(wav_bytes(y, SR, fmt="FLAC"), pad_to_s=None)
    assert d.source_format == "FLAC" and d.source_sample_rate == SR and not d.warnings
    np.testing.assert_allclose(d.samples, y, atol=1 / 32768 + 1e-6)


@pytest.mark.parametrize(("subtype", "sr"), [("VORBIS", SR), ("OPUS", 48000)])
def test_ogg_round_trip(subtype: str, sr: int):
    y = synth_music(5.0, sr=sr)
    d = load(wav_bytes(y, sr, subtype=subtype, fmt="OGG"), pad_to_s=None)
    assert d.source_format == "OGG" and d.source_sample_rate == sr
    assert d.duration_s == pytest.approx(5.0, abs=0.05)
    ref = load(wav_bytes(y, sr, subtype="FLOAT"), pad_to_s=None).samples
    n = min(ref.size, d.samples.size)
    assert np.corrcoef(ref[:n], d.samples[:n])[0, 1] > 0.95  # lossy, but the same music


def test_path_and_bytes_give_the_same_result_and_hash(music_wav: Path):
    data = music_wav.read_bytes()
    a, b = load(music_wav), load(data)
    np.testing.assert_array_equal(a.samples, b.samples)
    assert a.sha256 == b.sha256 == hashlib.sha256(data).hexdigest()
    assert load(data).sha256 == a.sha256  # duplicates are detectable by the caller


@pytest.mark.slow  # importing librosa takes seconds
def test_matches_librosa_load(music_wav: Path):
    """The model was trained on librosa.load output; the loader must produce the same numbers."""
    librosa = pytest.importorskip("librosa")
    ref, _ = librosa.load(music_wav, sr=SR)
    d = load(music_wav, pad_to_s=None)
    assert d.samples.shape == ref.shape
    np.testing.assert_allclose(d.samples, ref, atol=1e-6)


# --- rates, channels, durations ------------------------------------------------------------------


@pytest.mark.parametrize(("sr", "subtype"), [(8000, "PCM_16"), (44100, "PCM_16"), (96000, "PCM_24")])
def test_resampling_keeps_length_and_pitch(sr: int, subtype: str):
    seconds = 3.0
    d = load(wav_bytes(tone(1000.0, seconds, sr), sr, subtype=subtype), pad_to_s=None)
    assert d.source_sample_rate == sr and d.sample_rate == SR
    assert d.samples.size == int(np.ceil(int(seconds * sr) * SR / sr))
    assert fft_peak_hz(d.samples, SR) == pytest.approx(1000.0, abs=1.0)
    mid = d.samples[SR // 2 : -SR // 2]
    assert np.sqrt(np.mean(mid**2)) == pytest.approx(0.5 / np.sqrt(2), rel=0.02)


def test_six_channels_are_downmixed_by_mean():
    rng = np.random.default_rng(0)
    y = (rng.standard_normal((3 * SR, 6)) * 0.1).astype(np.float32)
    d = load(wav_bytes(y, SR, subtype="FLOAT"), pad_to_s=None)
    assert d.source_channels == 6
    np.testing.assert_allclose(d.samples, y.mean(axis=1), atol=1e-6)


def test_half_second_is_too_short():
    msg = assert_audio_error(wav_bytes(tone(seconds=0.5), SR))
    assert msg == "The audio is only 0.5 s long; at least 1 s is needed."


def test_a_few_samples_are_said_in_milliseconds():
    """'only 0.0 s long' said nothing."""
    assert assert_audio_error(wav_bytes(tone(seconds=0.05), SR)).startswith("The audio is only 50 ms long")
    one_sample = f"The audio is only {1000 / SR:.2g} ms long"
    assert assert_audio_error(wav_bytes(tone(seconds=1 / SR), SR)).startswith(one_sample)


def test_an_implausible_rate_is_not_called_damage_alone():
    msg = assert_audio_error(wav_bytes(tone(seconds=3.0, sr=1000), 1000))
    assert "1,000 Hz, outside the 4-384 kHz that music is recorded at" in msg and "no music audio" in msg


def test_three_seconds_are_repeat_padded_to_fifteen():
    y = tone(seconds=3.0)
    d = load(wav_bytes(y, SR, subtype="FLOAT"))
    assert d.padded and d.samples.size == 15 * SR
    assert d.duration_s == pytest.approx(3.0)
    np.testing.assert_allclose(d.samples, np.tile(y, 5), atol=1e-6)
    assert any("repeated" in w and "15 s" in w for w in d.warnings)
    plain = load(wav_bytes(y, SR, subtype="FLOAT"), pad_to_s=None)
    assert not plain.padded and plain.samples.size == 3 * SR


def test_duration_cap_truncates_and_warns():
    data = wav_bytes(synth_music(20.0, sr=22050), 22050)
    d = load(data, max_duration_s=5, pad_to_s=None)
    assert d.truncated and d.duration_s == pytest.approx(5.0)
    assert d.source_duration_s == pytest.approx(20.0)
    assert d.samples.size == 5 * SR
    assert any("20.0 s" in w and "5.0 s" in w for w in d.warnings)


def test_display_name_with_path_and_markup(tmp_path: Path):
    name = "../../x<script>.wav"
    assert safe_display_name(name) == "x<script>.wav"
    d = load(wav_bytes(tone(), SR), filename=name)
    assert_valid(d)
    msg = assert_audio_error(b"not audio at all", filename=name)
    assert ".." not in msg


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        (None, "upload"),
        ("", "upload"),
        ("..", "upload"),
        ("/etc/passwd", "passwd"),
        ("C:\\Users\\me\\song.mp3", "song.mp3"),
        ("\\\\server\\share\\song.mp3", "song.mp3"),
        ("..\\..\\windows\\evil.wav", "evil.wav"),
        ("AC\\DC - Thunderstruck.mp3", "AC\\DC - Thunderstruck.mp3"),  # a backslash is a letter outside Windows
        ("a\x00b\r\nc\u202egnp.wav", "abcgnp.wav"),
        ("  .hidden.flac ", "hidden.flac"),
    ],
)
def test_safe_display_name(name: str | None, expected: str):
    assert safe_display_name(name) == expected


def test_safe_display_name_truncates_but_keeps_the_extension():
    out = safe_display_name("a" * 500 + ".flac", max_len=40)
    assert len(out) == 40 and out.endswith("a….flac"), "the cut is marked"
    assert safe_display_name("b" * 40 + ".flac", max_len=45) == "b" * 40 + ".flac", "a name that fits is whole"


def test_browser_escaped_upload_names_read_as_typed():
    from utils.text import browser_file_name

    assert browser_file_name('say %22hi%22 & go.mp3') == 'say "hi" & go.mp3'
    assert safe_display_name(browser_file_name("a%0Ab.mp3")) == "ab.mp3"


# --- quality indicators --------------------------------------------------------------------------


def test_all_zero_audio_is_a_warning_not_an_error():
    d = load(wav_bytes(np.zeros(3 * SR, np.float32), SR))
    assert d.quality.peak == 0.0 and d.quality.silence_ratio == pytest.approx(1.0)
    assert d.quality.rms_db == -120.0
    assert any("silent" in w for w in d.warnings)


def test_near_silence_is_a_warning():
    y = (np.random.default_rng(0).standard_normal(3 * SR) * 1e-4).astype(np.float32)
    d = load(wav_bytes(y, SR, subtype="FLOAT"))
    assert d.quality.silence_ratio > 0.9
    assert any("almost silent" in w for w in d.warnings)


def test_clipped_square_wave_has_high_clipping_ratio():
    y = np.clip(4.0 * tone(100.0, 3.0), -1.0, 1.0)
    d = load(wav_bytes(y, SR, subtype="FLOAT"))
    assert d.quality.clipping_ratio > 0.5 and d.quality.peak == pytest.approx(1.0)
    assert any("clipped" in w for w in d.warnings)
    assert load(wav_bytes(tone(), SR)).quality.clipping_ratio == 0.0


def test_snr_orders_clean_and_noisy_tones():
    rng = np.random.default_rng(0)
    clean = tone(440.0, 5.0)
    noise = rng.standard_normal(clean.size).astype(np.float32)
    signal_power = float(np.mean(clean**2))
    snrs = []
    for snr_db in (20.0, 0.0):
        y = clean + noise * np.sqrt(signal_power / 10 ** (snr_db / 10))
        snrs.append(load(wav_bytes(y / 2, SR, subtype="FLOAT")).quality.snr_db)
    clean_snr = load(wav_bytes(clean, SR, subtype="FLOAT")).quality.snr_db
    assert clean_snr > snrs[0] > snrs[1]
    assert clean_snr > 60
    assert snrs[0] == pytest.approx(20.0, abs=3.0)  # (S+N)/N of a 20 dB mix


@pytest.mark.shared
def test_real_gtzan_flac_loads_with_sensible_quality():
    path = shared_path("data", "gtzan_mini", "blues", "blues.00000.flac")
    d = load(path)
    assert_valid(d)
    assert d.source_format == "FLAC" and d.source_sample_rate == 22050 and d.source_channels == 1
    assert 29.9 < d.duration_s < 30.5 and not d.truncated and not d.padded and not d.warnings
    q = d.quality
    assert 0.1 < q.peak <= 1.0 and -40 < q.rms_db < -3
    assert q.clipping_ratio < 0.01 and q.silence_ratio < 0.1 and 10 < q.snr_db <= 120
    assert d.samples.size == pytest.approx(d.duration_s * SR, abs=1)


# --- ffmpeg --------------------------------------------------------------------------------------

M4A_HEAD = b"\x00\x00\x00\x20ftypM4A \x00\x00\x02\x00M4A isomiso2" + b"\x00" * 2000


def test_m4a_without_ffmpeg_names_the_accepted_formats(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(ffmpeg, "ffmpeg_path", lambda: None)
    msg = assert_audio_error(M4A_HEAD, filename="song.m4a", match="ffmpeg")
    assert "WAV, FLAC, OGG/Opus or MP3" in msg


@pytest.fixture(scope="module")
def m4a_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 20 s stereo AAC-in-M4A file, made once per module (encoding takes a second)."""
    if not HAS_FFMPEG:
        pytest.skip("ffmpeg is not installed (optional decoder for M4A/AAC)")
    tmp_path = tmp_path_factory.mktemp("m4a")
    wav, out = tmp_path / "in.wav", tmp_path / "song.m4a"
    sf.write(wav, np.stack([synth_music(20.0, 44100), synth_music(20.0, 44100, seed=1)], axis=1), 44100)
    subprocess.run(["ffmpeg", "-y", "-loglevel", "error", "-i", str(wav), "-c:a", "aac", str(out)], check=True)
    return out


@needs_ffmpeg
def test_m4a_decodes_through_ffmpeg(m4a_file: Path):
    data = m4a_file.read_bytes()
    assert sniff_format(data) == "M4A"
    d = load(data, filename="song.m4a")
    assert_valid(d)
    assert d.source_format == "M4A (ffmpeg)" and d.source_channels == 2 and d.source_sample_rate == 44100
    assert d.duration_s == pytest.approx(20.0, abs=0.1)
    ref = synth_music(20.0, SR)
    assert np.corrcoef(ref[: 10 * SR], d.samples[: 10 * SR] * 2)[0, 1] > 0.5


@needs_ffmpeg
def test_ffmpeg_respects_the_duration_cap(m4a_file: Path):
    d = load(m4a_file, max_duration_s=5, pad_to_s=None)
    assert d.truncated and d.duration_s == pytest.approx(5.0) and d.samples.size == 5 * SR
    assert d.source_duration_s == pytest.approx(20.0, abs=0.1)


@needs_ffmpeg
def test_ffmpeg_time_out_is_an_audio_error(m4a_file: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(ffmpeg, "TIMEOUT_S", 0.001)
    assert_audio_error(m4a_file, match="longer than")


@needs_ffmpeg
def test_corrupt_m4a_upload_is_an_error_without_paths():
    msg = assert_audio_error(M4A_HEAD + np.random.default_rng(0).bytes(5000), filename="song.m4a")
    assert "/" not in msg and "tmp" not in msg.lower()


def test_a_high_rate_many_channel_file_keeps_only_a_bounded_rate_mono_mix():
    """A 384 kHz FLAC kept its mono mix at the source rate (a 0.9 MB file of silence reached 2.8 GB)."""
    t = np.arange(20 * 384_000) / 384_000
    y = np.repeat((0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)[:, None], 8, axis=1)
    y[1000, 3] = 1.5  # one over on one channel: still measured at the source rate, before the mix
    buf = io.BytesIO()
    sf.write(buf, y, 384_000, format="FLAC", subtype="PCM_24")
    del y, t
    out, _, peak = _run_bounded(buf.getvalue())
    assert isinstance(out, DecodedAudio), out
    assert (out.source_sample_rate, out.source_channels) == (384_000, 8)
    assert out.duration_s == pytest.approx(20.0, abs=0.01) and fft_peak_hz(out.samples, SR) == pytest.approx(440, abs=2)
    assert out.quality.clipping_ratio > 0  # PCM_24 clamps the over to full scale: a clipped sample
    assert peak < 32 << 20  # the source-rate mono alone would be 31 MB, and twice that while joined


@needs_ffmpeg
def test_ffmpeg_streams_a_16_channel_file_instead_of_holding_every_channel(tmp_path):
    """ffmpeg's output was read whole (frames x 16 channels), then copied twice: gigabytes for minutes of audio."""
    path = tmp_path / "many.webm"
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i", "sine=f=330:r=48000", "-t", "30",
                    "-af", "pan=hexadecagonal|" + "|".join(f"c{i}=c0" for i in range(16)),
                    "-c:a", "libopus", "-mapping_family", "255", "-b:a", "96k", str(path)], check=True)
    out, _, peak = _run_bounded(path.read_bytes())
    assert isinstance(out, DecodedAudio), out
    assert out.source_channels == 16 and out.duration_s == pytest.approx(30.0, abs=0.1)
    assert fft_peak_hz(out.samples, SR) == pytest.approx(330, abs=2)
    assert peak < 40 << 20  # every channel at once would be 92 MB, before the copies


def test_a_telephone_rate_file_is_flagged_and_a_full_rate_one_is_not():
    """An 8 kHz file read "No quality problems found", though it holds nothing above 4 kHz (the bench's
    8 kHz round trip costs the model 6 points)."""
    music = synth_music(16.0, sr=8000)
    narrow = load(wav_bytes(music, 8000))
    assert narrow.source_sample_rate == 8000
    assert any("sample rate is 8 kHz" in w and "nothing above 4 kHz" in w for w in narrow.warnings), narrow.warnings
    assert not any("sample rate" in w for w in load(wav_bytes(synth_music(16.0, sr=22050), 22050)).warnings)
    assert not any("sample rate" in w for w in load(wav_bytes(np.zeros(8000 * 3, np.float32), 8000)).warnings)
