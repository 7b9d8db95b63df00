"""Decode containers libsndfile cannot read (M4A/AAC, WebM, WMA) with an `ffmpeg` subprocess.

ffmpeg is optional: nothing here runs unless it is on PATH. It is called with an argument list
(never a shell), reads only local files, stops after a duration cap and a wall-clock time-out, and
writes float32 WAV to a pipe, so memory stays bounded by the cap rather than by the input.
"""

from __future__ import annotations

import logging
import re
import shutil
import struct
import subprocess
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)

TIMEOUT_S = 120.0  # wall-clock limit of one decode; a module global so tests and deployments can lower it
_READ_CHUNK = 1 << 20
_HEADER_BYTES = 4096  # ffmpeg's WAV header (fmt + data chunk ids) always fits in this
_DURATION_RE = re.compile(rb"Duration: (\d+):(\d\d):(\d\d(?:\.\d+)?)")


class FfmpegError(Exception):
    """ffmpeg is missing, failed, timed out, or produced something unusable (message is user-facing)."""


@dataclass
class FfmpegAudio:
    """What ffmpeg decoded: interleaved float32 frames at the source rate."""

    samples: np.ndarray  # (frames, channels) float32
    sample_rate: int
    channels: int
    source_duration_s: float | None  # from ffmpeg's "Duration:" line, None when it has none


def ffmpeg_path() -> str | None:
    """Absolute path of the ffmpeg executable, or None when it is not installed."""
    return shutil.which("ffmpeg")


def _wav_layout(head: bytes) -> tuple[int, int, int]:
    """(channels, sample_rate, data_offset) of ffmpeg's streamed WAV; its sizes are placeholders."""
    if len(head) < 12 or head[:4] != b"RIFF" or head[8:12] != b"WAVE":
        raise FfmpegError("ffmpeg produced no audio for this file.")
    pos, fmt = 12, None
    while pos + 8 <= len(head):
        cid, size = head[pos : pos + 4], struct.unpack_from("<I", head, pos + 4)[0]
        if cid == b"fmt " and pos + 24 <= len(head):
            fmt = struct.unpack_from("<HHI", head, pos + 8)
        elif cid == b"data":
            if fmt is None:
                break
            return fmt[1], fmt[2], pos + 8
        pos += 8 + size + (size & 1)
    raise FfmpegError("ffmpeg produced no audio for this file.")


def _read_capped(proc: subprocess.Popen[bytes], cap_s: float, max_channels: int) -> bytearray:
    """Read ffmpeg's stdout, refusing too many channels early and never keeping more than the cap."""
    assert proc.stdout is not None
    out = bytearray()
    limit: int | None = None
    while True:
        chunk = proc.stdout.read(_READ_CHUNK)
        if not chunk:
            return out
        out += chunk
        if limit is None and len(out) >= _HEADER_BYTES:
            channels, sr, offset = _wav_layout(bytes(out[:_HEADER_BYTES]))
            if not 1 <= channels <= max_channels:
                raise FfmpegError(f"The audio has {channels} channels; at most {max_channels} are supported.")
            # The caller rejects rates above 384 kHz; this only bounds memory.
            limit = offset + (int(cap_s * min(max(sr, 1), 384_000)) + 1) * channels * 4
        if limit is not None and len(out) >= limit:
            del out[limit:]
            return out


def decode_file(
    path: str | Path,
    max_duration_s: float,
    *,
    input_format: str | None = None,
    max_channels: int = 32,
    timeout_s: float | None = None,
) -> FfmpegAudio:
    """Decode the first audio stream of a local file, at most `max_duration_s` (plus a little, so the
    caller can tell the file was longer). `input_format` forces the demuxer (e.g. "mov"), so an
    upload is never probed into a playlist or concat script that would open other files."""
    exe = ffmpeg_path()
    if exe is None:
        raise FfmpegError("ffmpeg is not installed.")
    timeout = TIMEOUT_S if timeout_s is None else timeout_s
    # A little over the cap, so that a longer file shows up as longer than the cap.
    cap_s = max_duration_s + 0.25
    cmd = [
        exe, "-nostdin", "-hide_banner", "-nostats",
        "-protocol_whitelist", "file",
        *(["-f", input_format] if input_format else []),
        "-i", f"file:{Path(path).resolve()}",
        "-map", "0:a:0", "-vn", "-sn", "-dn",
        "-t", f"{cap_s:.3f}",
        "-map_metadata", "-1", "-fflags", "+bitexact",
        "-c:a", "pcm_f32le", "-f", "wav", "pipe:1",
    ]  # fmt: skip
    with tempfile.TemporaryFile() as err:
        proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=err)
        timed_out = threading.Event()

        def kill() -> None:
            timed_out.set()
            proc.kill()

        timer = threading.Timer(timeout, kill)
        timer.start()
        try:
            data = _read_capped(proc, cap_s, max_channels)
        finally:
            timer.cancel()
            if proc.poll() is None:
                proc.kill()
            proc.wait()
            assert proc.stdout is not None
            proc.stdout.close()
        err.seek(0)
        stderr = err.read(1 << 16)
    if timed_out.is_set():
        raise FfmpegError(f"Decoding took longer than {timeout:g} s and was stopped.")
    log.debug("ffmpeg exited with %s: %s", proc.returncode, stderr[-2000:].decode(errors="replace"))
    channels, sr, offset = _wav_layout(bytes(data[:_HEADER_BYTES]))
    if not 1 <= channels <= max_channels:
        raise FfmpegError(f"The audio has {channels} channels; at most {max_channels} are supported.")
    usable = (len(data) - offset) // (4 * channels) * 4 * channels
    if usable <= 0:
        raise FfmpegError("ffmpeg found no decodable audio in this file.")
    samples = np.frombuffer(bytes(data[offset : offset + usable]), dtype="<f4").reshape(-1, channels)
    m = _DURATION_RE.search(stderr)
    duration = int(m[1]) * 3600 + int(m[2]) * 60 + float(m[3]) if m else None
    return FfmpegAudio(samples.astype(np.float32, copy=False), sr, channels, duration)
