"""Constants shared by every stage: the label set and the window geometry.

Kept in one place so training, the engine and the UI can never disagree about them.
"""

from __future__ import annotations

from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = PROJECT_ROOT.parent / "shared" / "data"  # the team's tables, beside the checkout

GENRES: tuple[str, ...] = (
    "blues",
    "classical",
    "country",
    "disco",
    "hiphop",
    "jazz",
    "metal",
    "pop",
    "reggae",
    "rock",
)
N_GENRES = len(GENRES)

SLICE_S = 5.0  # one slice of audio the embedder sees as a unit
SLICES_PER_WINDOW = 3
WINDOW_S = SLICE_S * SLICES_PER_WINDOW  # 15 s: the classifier's input
WINDOW_HOP_S = 5.0  # windows start every 5 s, so neighbours share two slices
MIN_TAIL_S = 2.5  # an uncovered tail at least this long gets one extra end-aligned window

DEFAULT_THRESHOLD = 0.5  # multi-label decision threshold on calibrated probabilities
NOT_MUSIC_LABEL = "not_music"  # a correction's answer for noise, speech or tones: stored alone, never trained on

# Feature columns whose training spread is below DEAD_STD are constant (470 of MusiCNN's 753 pooled
# values on GTZAN); every standardisation divides them by DEAD_SCALE, i.e. maps them to ~0, instead of
# turning their last-bit float noise on new audio into huge inputs.
DEAD_STD = 1e-4
DEAD_SCALE = 1e6
# The files a folder given as audio stands for (evaluate, embed, analyze) and a split list's suffixes
AUDIO_EXTENSIONS = {".wav", ".flac", ".ogg", ".opus", ".mp3", ".m4a", ".aac", ".aiff", ".aif"}
