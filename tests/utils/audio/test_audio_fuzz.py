"""Fuzz the loader: whatever bytes arrive, `load_audio` returns a DecodedAudio or raises AudioError, fast.

Arbitrary bytes mostly stop at sniffing, so two more strategies get past it: random bytes after a
valid magic prefix, and random edits to small valid files (which reach the decoders proper).
Set FUZZ_EXAMPLES=5000 for a deeper local run.
"""

from __future__ import annotations

import os
from functools import cache

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.helpers.data import synth_music, wav_bytes
from utils.audio import AudioError, DecodedAudio, load_audio

SR = 8000
EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "120"))
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=3000,  # ms per example; a hang or a runaway decode fails loudly
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


@cache
def seeds() -> tuple[bytes, ...]:
    """Small valid files, one per container soundfile decodes."""
    y = synth_music(1.5, sr=SR)
    stereo = np.stack([y, y[::-1]], axis=1)
    return (
        wav_bytes(y, SR),
        wav_bytes(stereo, SR, subtype="FLOAT"),
        wav_bytes(y, SR, fmt="FLAC"),
        wav_bytes(y, SR, subtype="VORBIS", fmt="OGG"),
        wav_bytes(y, SR, subtype="OPUS", fmt="OGG"),
        wav_bytes(y, SR, subtype="MPEG_LAYER_III", fmt="MP3"),
        wav_bytes(y, SR, fmt="AIFF"),
        wav_bytes(stereo, SR, fmt="RF64"),
    )


PREFIXES = [
    b"RIFF\x00\x00\x00\x00WAVE",
    b"RIFF\xff\xff\xff\xffWAVEfmt ",
    b"RF64\xff\xff\xff\xffWAVEds64",
    b"FORM\x00\x00\x00\x00AIFF",
    b"fLaC",
    b"fLaC\x00\x00\x00\x22",
    b"OggS\x00\x02",
    b"ID3\x03\x00\x00\x00\x00\x00\x00",
    b"\xff\xfb\x90\x00",
    b"\xff\xf3\x88\xc4",
    b"\xff\xf1\x50\x80",
    b"\x00\x00\x00\x20ftypM4A ",
]


def check(data: bytes) -> None:
    """The whole contract: a valid DecodedAudio, or an AudioError with a sentence for the user."""
    try:
        out = load_audio(data, 16000, filename="fuzz.wav", min_duration_s=0.0, max_duration_s=5.0, pad_to_s=1.0)
    except AudioError as exc:
        assert str(exc).strip(), "AudioError without a message"
        return
    assert isinstance(out, DecodedAudio)
    assert out.samples.dtype == np.float32 and out.samples.ndim == 1
    assert out.samples.size >= 16000 and np.isfinite(out.samples).all()
    assert out.duration_s <= 5.0 + 1e-6 and 0 <= out.quality.silence_ratio <= 1


@FUZZ
@given(st.binary(max_size=4096))
def test_arbitrary_bytes(data: bytes):
    check(data)


@FUZZ
@given(st.sampled_from(PREFIXES), st.binary(max_size=4096))
def test_arbitrary_bytes_after_a_magic_prefix(prefix: bytes, tail: bytes):
    check(prefix + tail)


@FUZZ
@given(
    st.integers(0, 7),
    st.lists(st.tuples(st.floats(0, 1, exclude_max=True), st.integers(0, 255)), max_size=12),
    st.one_of(st.none(), st.floats(0, 1)),
)
def test_mutated_valid_files(which: int, edits: list[tuple[float, int]], cut: float | None):
    data = bytearray(seeds()[which])
    for pos, value in edits:
        # Most edits land in the first 256 bytes, where the headers are.
        index = int(pos * min(len(data), 256)) if value % 2 else int(pos * len(data))
        data[index] = value
    if cut is not None:
        data = data[: int(cut * len(data))]
    check(bytes(data))
