"""Load user audio (uploads or paths) into float32 mono at the model's rate, or fail with one clear error.

Uploads are untrusted: the container is identified from its magic bytes (the file name is only a
hint), header values are checked before any samples are decoded, at most `max_duration_s` is
decoded in bounded blocks (a header claiming hours allocates nothing), and every failure surfaces as
an `AudioError` whose message a user can act on and which never names a server path.
"""

from __future__ import annotations

import hashlib
import io
import logging
import math
import os
import stat
import struct
import tempfile
import unicodedata
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import BinaryIO

import numpy as np
import soundfile as sf
import soxr

from utils import ffmpeg
from utils.audio_quality import CLIP_LEVEL, AudioQuality, measure_quality, quality_warnings

__all__ = ["AudioError", "AudioQuality", "DecodedAudio", "load_audio", "safe_display_name", "sniff_format"]

log = logging.getLogger(__name__)

MIN_SAMPLE_RATE = 4_000
MAX_SAMPLE_RATE = 384_000
MAX_CHANNELS = 32
RESAMPLE_QUALITY = "soxr_hq"  # librosa 0.11's default res_type, so features match librosa.load
SOUNDFILE_FORMATS = frozenset({"WAV", "RF64", "W64", "AIFF", "CAF", "FLAC", "OGG", "MP3"})
# Sniffed format -> the ffmpeg demuxer to force, so ffmpeg never probes (and never follows a
# playlist or reference inside) an upload on its own.
FFMPEG_FORMATS = {"M4A": "mov", "AAC": "aac", "WEBM": "matroska", "WMA": "asf", "MP3": "mp3"}
ACCEPTED = "WAV, FLAC, OGG/Opus, MP3, or M4A with ffmpeg installed"
_HEAD = 4096
_BLOCK_SAMPLES = 1 << 20  # samples (frames x channels) decoded per block: 4 MiB of float32
_W64_GUID = bytes.fromhex("726966662e91cf11a5d628db04c10000")  # "riff" + GUID
_ASF_GUID = bytes.fromhex("3026b2758e66cf11a6d900aa0062ce6c")
# MPEG audio: kbps per bitrate index for (MPEG-1?, layer); sample rates per version.
_MPEG_KBPS = {
    (True, 1): (0, 32, 64, 96, 128, 160, 192, 224, 256, 288, 320, 352, 384, 416, 448),
    (True, 2): (0, 32, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320, 384),
    (True, 3): (0, 32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320),
    (False, 1): (0, 32, 48, 56, 64, 80, 96, 112, 128, 144, 160, 176, 192, 224, 256),
    (False, 2): (0, 8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160),
}
_MPEG_RATES = {3: (44100, 48000, 32000), 2: (22050, 24000, 16000), 0: (11025, 12000, 8000)}

# soundfile's read()/buffer_read_into() re-seek after every read, which fails on FLAC streams whose
# header over-states their length; libsndfile's own sf_readf_float just stops at the real end.
_SND = getattr(sf, "_snd", None)
_FFI = getattr(sf, "_ffi", None)


class AudioError(Exception):
    """The one exception the loader raises; its message is a sentence a user can act on."""


@dataclass
class DecodedAudio:
    """Decoded, validated audio plus what the UI needs to explain what was done to it."""

    samples: np.ndarray  # float32 mono at `sample_rate`, finite, after padding
    sample_rate: int  # the requested target rate
    source_sample_rate: int
    source_channels: int
    source_format: str  # e.g. "WAV", "FLAC", "OGG", "MP3", "M4A (ffmpeg)"
    duration_s: float  # decoded audio before padding (after truncation)
    source_duration_s: float  # header's claim (or measured), before truncation
    truncated: bool
    padded: bool
    sha256: str  # of the original input bytes: identifies the upload
    quality: AudioQuality
    warnings: list[str] = field(default_factory=list)  # user-facing sentences


@dataclass
class _Raw:
    """Mono signal at the source rate, as decoded, before checks that are format-independent."""

    mono: np.ndarray
    sr: int
    channels: int
    fmt: str
    claimed_s: float | None  # what the header (or an MP3 frame scan) says, None when unknown
    truncated: bool
    clipping_ratio: float
    warnings: list[str]


@dataclass
class _Source:
    file: BinaryIO
    size: int
    sha256: str
    path: str | None  # only for path sources (handed to ffmpeg); never shown to users


def _unreadable() -> AudioError:
    return AudioError(f"This doesn't look like an audio file we can read ({ACCEPTED}).")


def _damaged(fmt: str) -> AudioError:
    return AudioError(f"This {fmt} file could not be decoded; it may be damaged or cut short.")


def _fmt_duration(s: float) -> str:
    """Human duration: '3.0 s', '4 min 5 s', '6 h 12 min' (rounded down, so limits read honestly)."""
    if s < 60:
        return f"{math.floor(s * 10) / 10:.1f} s"
    m, sec = int(s // 60), int(s % 60)
    if m < 60:
        return f"{m} min {sec} s" if sec else f"{m} min"
    return f"{m // 60} h {m % 60} min" if m % 60 else f"{m // 60} h"


def _fmt_bytes(n: float) -> str:
    for unit in ("bytes", "KB", "MB"):
        if n < 1024:
            return f"{n:.0f} {unit}"
        n /= 1024
    return f"{n:.1f} GB"


def safe_display_name(name: str | None, max_len: int = 120) -> str:
    """File name fit for display/storage: basename only, control chars/path separators stripped;
    never used as a path (the UI renders it as text, so markup characters are kept)."""
    text = unicodedata.normalize("NFC", str(name or ""))
    text = text.replace("\\", "/").rsplit("/", 1)[-1]
    text = "".join(c for c in text if unicodedata.category(c)[0] != "C").strip().lstrip(".").strip()
    if not text:
        return "upload"
    if len(text) > max_len:
        stem, dot, ext = text.rpartition(".")
        keep = f".{ext}" if dot and stem and len(ext) <= min(10, max_len // 2) else ""
        text = text[: max(1, max_len - len(keep))] + keep
    return text


def _mpeg_frame(h: bytes, pos: int = 0) -> tuple[int, int, int] | None:
    """(frame bytes, samples per frame, sample rate) of a valid MPEG audio frame header at `pos`."""
    if pos + 4 > len(h) or h[pos] != 0xFF or (h[pos + 1] & 0xE0) != 0xE0:
        return None
    version, layer = (h[pos + 1] >> 3) & 3, 4 - ((h[pos + 1] >> 1) & 3)
    rate_idx, br_idx, pad = (h[pos + 2] >> 2) & 3, h[pos + 2] >> 4, (h[pos + 2] >> 1) & 1
    if version == 1 or layer == 4 or rate_idx == 3 or br_idx in (0, 15):
        return None
    v1 = version == 3
    kbps = _MPEG_KBPS[(v1, layer if v1 or layer == 1 else 2)][br_idx]
    rate = _MPEG_RATES[version][rate_idx]
    if layer == 1:
        return (12000 * kbps // rate + pad) * 4, 384, rate
    spf = 1152 if layer == 2 or v1 else 576
    return spf // 8 * 1000 * kbps // rate + pad, spf, rate


def _id3_size(h: bytes) -> int:
    """Bytes taken by a leading ID3v2 tag (0 when there is none)."""
    if len(h) < 10 or h[:3] != b"ID3" or any(b & 0x80 for b in h[6:10]):
        return 0
    size = (h[6] << 21) | (h[7] << 14) | (h[8] << 7) | h[9]
    return 10 + size + (10 if h[5] & 0x10 else 0)


def sniff_format(head: bytes) -> str | None:
    """Identify the container from magic bytes (RIFF/WAVE, RF64, fLaC, OggS, ID3/MPEG frame sync,
    ftyp (m4a/mp4), AIFF...), because upload names and extensions are only hints."""
    h = bytes(head[:_HEAD])
    tag = _id3_size(h)
    if tag:  # ID3 usually precedes MP3, sometimes AAC or (non-standard) FLAC
        inner = sniff_format(h[tag:]) if tag + 4 <= len(h) else None
        return inner if inner in ("FLAC", "AAC") else "MP3"
    magic4, form = h[:4], h[8:12]
    if magic4 == b"RIFF" and form == b"WAVE":
        return "WAV"
    if magic4 in (b"RF64", b"BW64") and form == b"WAVE":
        return "RF64"
    if h[:16] == _W64_GUID:
        return "W64"
    if magic4 == b"FORM" and form in (b"AIFF", b"AIFC"):
        return "AIFF"
    simple = {b"fLaC": "FLAC", b"OggS": "OGG", b"caff": "CAF", b"\x1aE\xdf\xa3": "WEBM"}
    if magic4 in simple:
        return simple[magic4]
    if h[4:8] == b"ftyp":
        return "M4A"
    if h[:16] == _ASF_GUID:
        return "WMA"
    if len(h) >= 7 and h[0] == 0xFF and (h[1] & 0xF6) == 0xF0 and ((h[2] >> 2) & 15) < 13:
        return "AAC"  # ADTS: MPEG sync word with layer bits 00
    frame = _mpeg_frame(h)
    if frame is not None:
        nxt = _mpeg_frame(h, frame[0])
        # Demand a second frame header where the first one ends, when the head reaches that far.
        if (nxt is not None and nxt[2] == frame[2]) or frame[0] + 4 > len(h):
            return "MP3"
    return None


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


def _check_size(size: int, max_bytes: int) -> None:
    if size == 0:
        raise AudioError("This file is empty (0 bytes).")
    if size > max_bytes:
        raise AudioError(f"This file is {_fmt_bytes(size)}; files up to {_fmt_bytes(max_bytes)} are accepted.")


def _check_layout(sr: float, channels: int) -> None:
    """Refuse rates and channel counts no music file has; they signal damage or a crafted header."""
    if channels < 1:
        raise AudioError(f"The file's header says it has {channels} audio channels; the file is damaged.")
    if channels > MAX_CHANNELS:
        raise AudioError(f"The audio has {channels} channels; at most {MAX_CHANNELS} are supported.")
    if not MIN_SAMPLE_RATE <= sr <= MAX_SAMPLE_RATE:
        raise AudioError(
            f"The file's header gives a sample rate of {sr:,.0f} Hz, which is not plausible for music "
            f"(we support {MIN_SAMPLE_RATE // 1000} kHz to {MAX_SAMPLE_RATE // 1000} kHz); the file is damaged."
        )


def _wav_claimed_frames(f: BinaryIO, size: int) -> tuple[int | None, int | None]:
    """Validate a RIFF/RF64 header before libsndfile sees it; return (claimed, present) PCM frames.

    Both are None for non-PCM codecs, whose frame count the bytes don't give directly.
    """
    f.seek(0)
    head = f.read(12)
    rf64 = head[:4] != b"RIFF"
    pos, fmt, ds64 = 12, None, None
    for _ in range(1000):  # chunk walk; bounded so a crafted chain of tiny chunks cannot spin
        f.seek(pos)
        hdr = f.read(8)
        if len(hdr) < 8:
            break
        cid, csize = hdr[:4], struct.unpack("<I", hdr[4:])[0]
        if cid == b"ds64":
            body = f.read(16)
            ds64 = struct.unpack_from("<Q", body, 8)[0] if len(body) == 16 else None
        elif cid == b"fmt ":
            body = f.read(min(csize, 40))
            if len(body) < 16:
                break
            tag, channels, rate, _, align, _ = struct.unpack_from("<HHIIHH", body)
            if tag == 0xFFFE and len(body) >= 26:  # WAVE_FORMAT_EXTENSIBLE: real codec in the GUID
                tag = struct.unpack_from("<H", body, 24)[0]
            _check_layout(rate, channels)
            if align == 0:
                raise AudioError("The file's header is damaged (it gives a frame size of 0 bytes).")
            fmt = (tag, align)
        elif cid == b"data":
            if fmt is None:
                break
            claimed = ds64 if rf64 and csize == 0xFFFFFFFF and ds64 is not None else csize
            if fmt[0] not in (1, 3):
                return None, None
            return claimed // fmt[1], max(0, size - pos - 8) // fmt[1]
        pos += 8 + csize + (csize & 1)
    raise AudioError("The file is cut short or damaged: its WAV header is incomplete.")


def _mpeg_scan(f: BinaryIO, start: int, size: int, limit: int) -> int:
    """Samples in the MPEG frame chain from `start` (up to about `limit`): exact even for VBR files
    without a length header, whose length libsndfile only estimates (and then stops at)."""
    total, pos, rate = 0, start, None
    while total <= limit and pos + 4 <= size:
        f.seek(pos)
        frame = _mpeg_frame(f.read(4))
        if frame is None or (rate is not None and frame[2] != rate):
            break
        rate = frame[2]
        total += frame[1]
        pos += frame[0]
    return total


class _Accumulator:
    """Collects decoded blocks as mono, checking finiteness and counting clipped channel samples."""

    def __init__(self) -> None:
        self.parts: list[np.ndarray] = []
        self.frames = 0
        self.clipped = 0
        self.values = 0

    def add(self, block: np.ndarray) -> None:
        if not np.isfinite(block).all():
            raise AudioError("The file contains invalid samples (NaN or infinity); it may be corrupt.")
        self.clipped += int(np.count_nonzero(np.abs(block) >= CLIP_LEVEL))
        self.values += block.size
        self.parts.append(block.mean(axis=1, dtype=np.float32) if block.shape[1] > 1 else block[:, 0].copy())
        self.frames += block.shape[0]

    def mono(self) -> np.ndarray:
        return np.concatenate(self.parts) if self.parts else np.zeros(0, np.float32)


def _read_block(f: sf.SoundFile, out: np.ndarray) -> int:
    if _SND is not None and _FFI is not None:
        ptr = _FFI.cast("float *", _FFI.from_buffer(out))
        return int(_SND.sf_readf_float(f._file, ptr, out.shape[0]))
    return f.buffer_read_into(out, "float32")  # pragma: no cover - older/newer soundfile


def _decode_soundfile(src: _Source, fmt: str, max_s: float) -> _Raw:
    claimed = present = None
    if fmt in ("WAV", "RF64"):
        claimed, present = _wav_claimed_frames(src.file, src.size)
    src.file.seek(0)
    try:
        sfile = sf.SoundFile(src.file)
    except (sf.LibsndfileError, RuntimeError, ValueError, TypeError) as exc:
        raise _damaged(fmt) from exc
    with sfile as f:
        sr, channels, sf_frames = f.samplerate, f.channels, f.frames
        _check_layout(sr, channels)
        max_frames = max(1, int(max_s * sr))
        buf = np.empty((max(1, _BLOCK_SAMPLES // channels), channels), np.float32)
        acc = _Accumulator()
        while acc.frames < max_frames:
            n = _read_block(f, buf[: min(len(buf), max_frames - acc.frames)])
            if n <= 0:
                break
            acc.add(buf[:n])
        truncated = acc.frames >= max_frames and _read_block(f, buf[:1]) > 0
    if acc.frames == 0:
        raise AudioError(f"No audio could be decoded from this {fmt} file; it may be empty or damaged.")
    warnings: list[str] = []
    if fmt == "MP3":
        start = _id3_size(_head(src.file, 0))
        scanned = _mpeg_scan(src.file, start, src.size, max_frames + 4 * 1152)
        if not truncated and scanned - acc.frames > max(4 * 1152, scanned // 100):
            if ffmpeg.ffmpeg_path() is not None:
                try:
                    return _decode_ffmpeg(src, "MP3", max_s)
                except AudioError:
                    log.info("ffmpeg could not re-decode an MP3 libsndfile under-read", exc_info=True)
            warnings.append(
                f"Only the first {_fmt_duration(acc.frames / sr)} of this MP3 (about "
                f"{_fmt_duration(scanned / sr)} long) could be decoded, because its length header is "
                "missing or wrong; the rest was skipped."
            )
        claimed = max(scanned, sf_frames)
    elif claimed is None and sf_frames < 1 << 62:  # libsndfile's "unknown" is a huge count
        claimed = sf_frames
    if not truncated and claimed is not None and claimed - acc.frames > max(16, claimed // 200):
        if fmt != "MP3":
            warnings.append(
                f"The file seems to be cut short: its header promises {_fmt_duration(claimed / sr)} of audio "
                f"but only {_fmt_duration(acc.frames / sr)} could be read, so that part was used."
            )
        claimed = acc.frames
    if present is not None and claimed is not None:
        claimed = min(claimed, present)  # a PCM header cannot promise more than the bytes hold
    return _Raw(
        acc.mono(), sr, channels, fmt, None if claimed is None else claimed / sr, truncated,
        acc.clipped / acc.values, warnings,
    )  # fmt: skip


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
        acc.clipped / max(1, acc.values), [],
    )  # fmt: skip


def _head(f: BinaryIO, pos: int) -> bytes:
    f.seek(pos)
    return f.read(_HEAD)


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
    quality = measure_quality(raw.mono, raw.sr, clipping_ratio=raw.clipping_ratio)
    warnings += quality_warnings(quality)
    y = raw.mono
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
        samples=y, sample_rate=target_sr, source_sample_rate=raw.sr, source_channels=raw.channels,
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
