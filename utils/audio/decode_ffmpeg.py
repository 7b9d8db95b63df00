"""Decode what libsndfile cannot (M4A/AAC, WebM, WMA, odd MP3s) with the ffmpeg binary, bounded in time.
"""

from __future__ import annotations

import os
import tempfile

import utils.audio.ffmpeg as ffmpeg
from utils.audio.sniff import _check_layout
from utils.audio.types import _BLOCK_SAMPLES, FFMPEG_FORMATS, MAX_CHANNELS, AudioError, _Accumulator, _Raw, _Source


def _decode_ffmpeg(src: _Source, fmt: str, max_s: float) -> _Raw:
    label = f"{fmt} (ffmpeg)"
    if ffmpeg.ffmpeg_path() is None:
        raise AudioError(
            f"This looks like {fmt} audio, which this server can only read with ffmpeg, and ffmpeg is not "
            "installed. Please convert it to WAV, FLAC, OGG/Opus or MP3 and upload it again."
        )
    tmp = None
    try:
        path = src.path
        if path is None:
            src.file.seek(0)
            with tempfile.NamedTemporaryFile(prefix="genre-lens-", suffix=".bin", delete=False) as tmp:
                while chunk := src.file.read(1 << 20):
                    tmp.write(chunk)
            path = tmp.name
        out = ffmpeg.decode_file(path, max_s, input_format=FFMPEG_FORMATS[fmt], max_channels=MAX_CHANNELS)
    except ffmpeg.FfmpegError as exc:
        raise AudioError(f"This {fmt} file could not be decoded: {exc}") from exc
    finally:
        if tmp is not None:
            os.unlink(tmp.name)
    _check_layout(out.sample_rate, out.channels)
    max_frames = max(1, int(max_s * out.sample_rate))
    acc = _Accumulator()
    step = max(1, _BLOCK_SAMPLES // out.channels)
    for i in range(0, min(max_frames, len(out.samples)), step):
        acc.add(out.samples[i : min(i + step, max_frames)])
    claimed = out.source_duration_s
    return _Raw(
        acc.mono(), out.sample_rate, out.channels, label, claimed, len(out.samples) > max_frames,
        acc.clipped / max(1, acc.values), [], acc.meter.stats(),
    )  # fmt: skip
