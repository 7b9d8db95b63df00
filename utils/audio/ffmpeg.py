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
from collections.abc import Callable
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
    """What ffmpeg decoded (the samples went to the caller's `consume`, block by block)."""

    frames: int  # decoded frames handed over, at most the cap plus one
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


def _stream_capped(proc: subprocess.Popen[bytes], cap_s: float, max_channels: int,
                   consume: Callable[[np.ndarray, int], None]) -> tuple[int, int, int]:
    """Hand ffmpeg's stdout to `consume(block, rate)` in (frames, channels) float32 blocks, refusing too many channels
    early and stopping at the cap; returns (channels, sample_rate, frames). Never holds more than a block."""
    assert proc.stdout is not None
    head = bytearray()
    while len(head) < _HEADER_BYTES and (chunk := proc.stdout.read(_HEADER_BYTES - len(head))):
        head += chunk
    channels, sr, offset = _wav_layout(bytes(head))
    if not 1 <= channels <= max_channels:
        raise FfmpegError(f"The audio has {channels} channels; at most {max_channels} are supported.")
    frame_bytes = 4 * channels
    # The caller rejects rates above 384 kHz; this only bounds the work.
    left = (int(cap_s * min(max(sr, 1), 384_000)) + 1) * frame_bytes
    pending, frames = bytes(head[offset:]), 0
    while left > 0:
        usable = min(len(pending) // frame_bytes * frame_bytes, left)
        if usable:
            consume(np.frombuffer(pending[:usable], dtype="<f4").reshape(-1, channels), sr)
            frames, left, pending = frames + usable // frame_bytes, left - usable, pending[usable:]
        chunk = proc.stdout.read(_READ_CHUNK) if left > 0 else b""
        if not chunk:
            break
        pending += chunk
    return channels, sr, frames


def decode_file(
    path: str | Path,
    max_duration_s: float,
    *,
    input_format: str | None = None,
    max_channels: int = 32,
    timeout_s: float | None = None,
    consume: Callable[[np.ndarray, int], None],
) -> FfmpegAudio:
    """Decode the first audio stream of a local file, at most `max_duration_s` (plus a little, so the
    caller can tell the file was longer), into `consume(block, rate)` block by block: memory stays one block, not
    channels x rate x duration. `input_format` forces the demuxer (e.g. "mov"), so an upload is never
    probed into a playlist or concat script that would open other files."""
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
            channels, sr, frames = _stream_capped(proc, cap_s, max_channels, consume)
        except FfmpegError:
            if timed_out.is_set():  # killed mid-header: the time-out is the reason, said below
                channels = sr = frames = 0
            else:
                raise
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
    if frames <= 0:
        raise FfmpegError("ffmpeg found no decodable audio in this file.")
    m = _DURATION_RE.search(stderr)
    duration = int(m[1]) * 3600 + int(m[2]) * 60 + float(m[3]) if m else None
    return FfmpegAudio(frames, sr, channels, duration)
