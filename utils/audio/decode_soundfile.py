"""Decode with libsndfile in bounded blocks (at most `max_s` seconds, never the whole claimed length).

Reads straight into a preallocated float32 buffer through libsndfile's C API when soundfile exposes
it (`_snd`/`_ffi`, private but stable since 0.10), else through `SoundFile.read`.
"""

from __future__ import annotations

import numpy as np
import soundfile as sf

import utils.audio.ffmpeg as ffmpeg
from utils.audio.decode_ffmpeg import _decode_ffmpeg
from utils.audio.sniff import _check_layout, _head, _id3_size, _mpeg_scan, _mpeg_tag_samples, _wav_claimed_frames
from utils.audio.types import _BLOCK_SAMPLES, AudioError, _Accumulator, _damaged, _fmt_duration, _Raw, _Source, log

# soundfile's read()/buffer_read_into() re-seek after every read, which fails on FLAC streams whose
# header over-states their length; libsndfile's own sf_readf_float just stops at the real end.
_SND = getattr(sf, "_snd", None)


_FFI = getattr(sf, "_ffi", None)


def _read_block(f: sf.SoundFile, out: np.ndarray) -> int:
    if _SND is not None and _FFI is not None:
        ptr = _FFI.cast("float *", _FFI.from_buffer(out))
        return int(_SND.sf_readf_float(f._file, ptr, out.shape[0]))
    return f.buffer_read_into(out, "float32")  # pragma: no cover - older/newer soundfile


def _cut_short(promised_s: float, read_s: float) -> str:
    return (
        f"The file seems to be cut short: its header promises {_fmt_duration(promised_s)} of audio "
        f"but only {_fmt_duration(read_s)} could be read, so that part was used."
    )


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
        acc = _Accumulator(sr)
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
        promised = _mpeg_tag_samples(src.file, start)
        held = max(scanned, acc.frames)
        if not truncated and promised is not None and promised - held > max(4 * 1152, promised // 100):
            warnings.append(_cut_short(promised / sr, acc.frames / sr))
        claimed = max(scanned, sf_frames)
    elif claimed is None and sf_frames < 1 << 62:  # libsndfile's "unknown" is a huge count
        claimed = sf_frames
    if not truncated and claimed is not None and claimed - acc.frames > max(16, claimed // 200):
        if fmt != "MP3":
            warnings.append(_cut_short(claimed / sr, acc.frames / sr))
        claimed = acc.frames
    if present is not None and claimed is not None:
        claimed = min(claimed, present)  # a PCM header cannot promise more than the bytes hold
    return _Raw(
        acc.mono(), acc.rate, channels, fmt, None if claimed is None else claimed / sr, truncated,
        acc.clipped / acc.values, warnings, acc.meter.stats(), source_sr=sr,
    )  # fmt: skip
