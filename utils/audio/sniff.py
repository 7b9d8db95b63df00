"""Identify a container from its magic bytes and check its header before decoding a sample.

The file name is only a hint; a header that claims hours, odd rates or 300 channels is refused here,
so a hostile upload allocates nothing.
"""

from __future__ import annotations

import struct
from typing import BinaryIO

from utils.audio.types import MAX_CHANNELS, MAX_SAMPLE_RATE, MIN_SAMPLE_RATE, AudioError, _fmt_bytes

_HEAD = 4096


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
            f"The file's header gives a sample rate of {sr:,.0f} Hz, outside the {MIN_SAMPLE_RATE // 1000}-"
            f"{MAX_SAMPLE_RATE // 1000} kHz that music is recorded at; the file is damaged or holds no music audio."
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


def _mpeg_tag_samples(f: BinaryIO, start: int) -> int | None:
    """Samples a Xing/Info or VBRI tag in the first MPEG frame says the file holds (None without one).

    Encoders write the tag after the whole stream, so it still promises the full length when the file
    was cut short in a download; libsndfile then reads what is there without saying so.
    """
    h = _head(f, start)
    frame = _mpeg_frame(h)
    if frame is None:
        return None
    v1, mono = ((h[1] >> 3) & 3) == 3, (h[3] >> 6) == 3
    xing = 4 + (17 if mono else 32) if v1 else 4 + (9 if mono else 17)
    if h[xing : xing + 4] in (b"Xing", b"Info") and len(h) >= xing + 12:
        flags = struct.unpack_from(">I", h, xing + 4)[0]
        return struct.unpack_from(">I", h, xing + 8)[0] * frame[1] if flags & 1 else None
    if h[36:40] == b"VBRI" and len(h) >= 36 + 18:
        return struct.unpack_from(">I", h, 36 + 14)[0] * frame[1]
    return None


def _head(f: BinaryIO, pos: int) -> bytes:
    f.seek(pos)
    return f.read(_HEAD)


_W64_GUID = bytes.fromhex("726966662e91cf11a5d628db04c10000")  # "riff" + GUID
