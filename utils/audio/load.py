"""Load user audio (uploads or paths) into float32 mono at the model's rate, or fail with one clear error.

Uploads are untrusted: the container is identified from its magic bytes (the file name is only a
hint), header values are checked before any samples are decoded, at most `max_duration_s` is
decoded in bounded blocks (a header claiming hours allocates nothing), and every failure surfaces as
an `AudioError` whose message a user can act on and which never names a server path.
"""

from __future__ import annotations

import hashlib
import io
import math
import os
import stat
from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np
import soxr

from utils.audio.decode_ffmpeg import _decode_ffmpeg
from utils.audio.decode_soundfile import _decode_soundfile
from utils.audio.quality import BROKEN_SCALE_PEAK, measure_quality, quality_warnings
from utils.audio.sniff import _check_size, _head, _id3_size, sniff_format
from utils.audio.types import (
    RESAMPLE_QUALITY,
    SOUNDFILE_FORMATS,
    AudioError,
    DecodedAudio,
    _fmt_duration,
    _Raw,
    _Source,
    _unreadable,
    log,
)
from utils.text import safe_display_name


@contextmanager
def _open_source(source: str | os.PathLike[str] | bytes, name: str, max_bytes: int) -> Iterator[_Source]:
    """Open bytes or a path as one seekable binary file, enforcing the size limit and hashing it."""
    if isinstance(source, bytes | bytearray | memoryview):
        data = bytes(source)
        _check_size(len(data), max_bytes)
        yield _Source(io.BytesIO(data), len(data), hashlib.sha256(data).hexdigest(), None)
        return
    path = os.fspath(source)
    try:
        if not stat.S_ISREG(os.stat(path).st_mode):  # opening a FIFO would block; a device never ends
            raise AudioError(f"The path {name} is not a regular file, so it cannot be read as audio.")
        f = open(path, "rb")  # noqa: SIM115 - closed below; a `with` would also swallow the yield
    except OSError as exc:
        reason = exc.strerror or "it cannot be opened"
        raise AudioError(f"The file {name} could not be read ({reason.lower()}).") from exc
    try:
        st = os.fstat(f.fileno())
        _check_size(st.st_size, max_bytes)
        digest = hashlib.sha256()
        while chunk := f.read(1 << 20):
            digest.update(chunk)
        f.seek(0)
        yield _Source(f, st.st_size, digest.hexdigest(), path)
    finally:
        f.close()


def _decode(src: _Source, max_s: float) -> _Raw:
    head = _head(src.file, 0)
    fmt = sniff_format(head)
    tag = _id3_size(head)
    if tag and tag + 4 > len(head):  # a big ID3 tag (cover art): look at what follows it
        inner = sniff_format(_head(src.file, tag))
        fmt = inner if inner in ("FLAC", "AAC") else "MP3"
    if fmt is None:
        raise _unreadable()
    if fmt not in SOUNDFILE_FORMATS:
        return _decode_ffmpeg(src, fmt, max_s)
    return _decode_soundfile(src, fmt, max_s)


def _finish(raw: _Raw, sha: str, target_sr: int, min_s: float, pad_to_s: float | None, max_s: float) -> DecodedAudio:
    duration = raw.mono.size / raw.sr
    if duration < min_s:
        raise AudioError(f"The audio is only {_fmt_duration(duration)} long; at least {min_s:g} s is needed.")
    warnings = list(raw.warnings)
    source_duration = max(duration, raw.claimed_s or 0.0) if raw.truncated else duration
    if raw.truncated:
        known = source_duration > duration + 0.5
        what = f"is {_fmt_duration(source_duration)} long" if known else f"is longer than {_fmt_duration(max_s)}"
        warnings.append(f"The recording {what}; only the first {_fmt_duration(duration)} were analysed.")
    quality = measure_quality(raw.mono, raw.sr, clipping_ratio=raw.clipping_ratio, peaks=raw.peaks)
    warnings += quality_warnings(quality)
    source_sr = raw.source_sr or raw.sr
    if source_sr < target_sr and quality.peak > 0.0:  # a telephone-rate file: the model hears a band it lacks
        warnings.append(
            f"The file's sample rate is {source_sr / 1000:g} kHz, so it holds nothing above {source_sr / 2000:g} kHz, "
            f"while the model listens up to {target_sr / 2000:g} kHz; predictions may be less reliable."
        )
    y = raw.mono
    if quality.peak > BROKEN_SCALE_PEAK:  # float32 sums of squares would overflow downstream and give NaN
        y = (y.astype(np.float64) / quality.peak).astype(np.float32)  # quality_warnings says so
    if raw.sr != target_sr:
        y = soxr.resample(y, raw.sr, target_sr, quality=RESAMPLE_QUALITY)
        n = math.ceil(raw.mono.size * target_sr / raw.sr)  # librosa.resample(fix=True) length
        y = y[:n] if y.size >= n else np.pad(y, (0, n - y.size))
    y = np.ascontiguousarray(y, dtype=np.float32)
    padded = False
    if pad_to_s is not None and y.size < round(pad_to_s * target_sr):
        y = np.resize(y, round(pad_to_s * target_sr))  # repeats the clip cyclically
        padded = True
        warnings.append(
            f"The audio is only {_fmt_duration(duration)} long, so it was repeated to fill {pad_to_s:g} s "
            "for analysis; predictions may be less reliable."
        )
    return DecodedAudio(
        samples=y, sample_rate=target_sr, source_sample_rate=source_sr, source_channels=raw.channels,
        source_format=raw.fmt, duration_s=duration, source_duration_s=source_duration,
        truncated=raw.truncated, padded=padded, sha256=sha, quality=quality, warnings=warnings,
    )  # fmt: skip


def load_audio(
    source: str | os.PathLike[str] | bytes,
    target_sr: int,
    *,
    filename: str | None = None,
    max_duration_s: float = 600.0,
    min_duration_s: float = 1.0,
    pad_to_s: float | None = 15.0,
    max_bytes: int = 1 << 30,
) -> DecodedAudio:
    """Decode a path or uploaded bytes to float32 mono at `target_sr`, or raise `AudioError`.

    Bad *arguments* (a non-positive rate, say) are the caller's bug and raise ValueError/TypeError;
    anything wrong with the *audio* raises AudioError. `filename` is only used for messages.
    """
    if isinstance(target_sr, bool) or not isinstance(target_sr, int | np.integer) or target_sr <= 0:
        raise ValueError(f"target_sr must be a positive integer, not {target_sr!r}")
    if not 0 <= min_duration_s <= max_duration_s or (pad_to_s is not None and pad_to_s <= 0) or max_bytes <= 0:
        raise ValueError("need 0 <= min_duration_s <= max_duration_s, pad_to_s > 0 (or None), max_bytes > 0")
    if not isinstance(source, bytes | bytearray | memoryview | str | os.PathLike):
        raise TypeError(f"source must be a path or bytes, not {type(source).__name__}")
    is_path = isinstance(source, str | os.PathLike)
    name = safe_display_name(filename or (os.path.basename(os.fspath(source)) if is_path else None))
    try:
        with _open_source(source, name, max_bytes) as src:
            raw = _decode(src, max_duration_s)
            return _finish(raw, src.sha256, int(target_sr), min_duration_s, pad_to_s, max_duration_s)
    except AudioError:
        raise
    except MemoryError as exc:
        raise AudioError("This file needs more memory to decode than is available; try a shorter file.") from exc
    except Exception as exc:  # the contract: nothing but AudioError escapes for bad audio
        log.warning("unexpected failure decoding %s", name, exc_info=True)
        raise AudioError(f"{name} could not be decoded; it may be damaged or in an unsupported format.") from exc
