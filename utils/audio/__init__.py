"""Audio in: sniff the container, decode (libsndfile or ffmpeg) in bounded blocks, resample, measure quality.

`sniff` (magic bytes, header checks), `decode_soundfile`, `decode_ffmpeg` (with `ffmpeg`, the binary's
runner), `load` (`load_audio`: the one entry point), `quality` (clipping, silence, DC), `types` (errors,
results, limits). Import the public names from here; the submodules import each other directly.
"""

from utils.audio.load import load_audio
from utils.audio.quality import AudioQuality
from utils.audio.sniff import sniff_format
from utils.audio.types import (
    ACCEPTED,
    MAX_CHANNELS,
    MAX_SAMPLE_RATE,
    MIN_SAMPLE_RATE,
    AudioError,
    DecodedAudio,
)

__all__ = ["ACCEPTED", "MAX_CHANNELS", "MAX_SAMPLE_RATE", "MIN_SAMPLE_RATE", "AudioError", "AudioQuality",
           "DecodedAudio", "load_audio", "sniff_format"]
