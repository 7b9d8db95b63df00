"""Decode what libsndfile cannot (M4A/AAC, WebM, WMA, odd MP3s) with the ffmpeg binary, bounded in time.
"""

from __future__ import annotations

import os
import tempfile

import numpy as np

import utils.audio.ffmpeg as ffmpeg
from utils.audio.sniff import _check_layout
from utils.audio.types import FFMPEG_FORMATS, MAX_CHANNELS, AudioError, _Accumulator, _Raw, _Source


def _decode_ffmpeg(src: _Source, fmt: str, max_s: float) -> _Raw:
    label = f"{fmt} (ffmpeg)"
    if ffmpeg.ffmpeg_path() is None:
        raise AudioError(
            f"This looks like {fmt} audio, which this server can only read with ffmpeg, and ffmpeg is not "
            "installed. Please convert it to WAV, FLAC, OGG/Opus or MP3 and upload it again."
        )
    tmp = None
    kept: list[_Accumulator] = []  # made by the first block, which brings the rate and channel count

    def consume(block: np.ndarray, rate: int) -> None:
        if not kept:
            _check_layout(rate, block.shape[1])
            kept.append(_Accumulator(rate))
        acc = kept[0]
        if (room := max(1, int(max_s * rate)) - acc.frames) > 0:
            acc.add(block[:room])

    try:
        path = src.path
        if path is None:
            src.file.seek(0)
            with tempfile.NamedTemporaryFile(prefix="genre-lens-", suffix=".bin", delete=False) as tmp:
                while chunk := src.file.read(1 << 20):
                    tmp.write(chunk)
            path = tmp.name
        out = ffmpeg.decode_file(path, max_s, input_format=FFMPEG_FORMATS[fmt], max_channels=MAX_CHANNELS,
                                 consume=consume)
    except ffmpeg.FfmpegError as exc:
        raise AudioError(f"This {fmt} file could not be decoded: {exc}") from exc
    finally:
        if tmp is not None:
            os.unlink(tmp.name)
    acc = kept[0]  # decode_file raises when no frame came
    return _Raw(
        acc.mono(), acc.rate, out.channels, label, out.source_duration_s, out.frames > acc.frames,
        acc.clipped / max(1, acc.values), [], acc.meter.stats(), source_sr=out.sample_rate,
    )  # fmt: skip
