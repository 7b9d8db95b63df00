"""Loudness normalisation before the embedder: every input is brought to GTZAN's typical level.

MusiCNN's log-mel front-end is not level-invariant, and the classifier and the not-music detector
only know GTZAN's levels (1990s-2000s CDs and radio, median active level about -16 dBFS). A modern,
brick-walled master at -8 dBFS, or a quiet recording 20 dB down, lands far from every training
track, and the detector would call it "not music". A gain that brings the *active* level (the RMS of
the frames that are not near-silent, so pauses do not count) to `TARGET_ACTIVE_DB` removes that
difference. Only gain: no compression, so the music's own dynamics are untouched; peaks above 1.0
after a boost are allowed (the embedder works in floats, nothing is written back).
"""

from __future__ import annotations

import numpy as np

from utils.audio.quality import frame_length, frame_powers, to_db

# Median active level of the 40 train-list clips of ../shared/data/gtzan_mini (-15.8 dBFS; range -31 to -10);
# `tests/models/test_verdict.py` recomputes it from those clips.
TARGET_ACTIVE_DB = -16.0
ACTIVE_GATE_DB = -50.0  # frames quieter than this are pauses, not part of the level
MAX_BOOST_DB = 30.0  # never amplify near-silence into loud noise beyond this
MAX_CUT_DB = 30.0


def active_level_db(samples: np.ndarray, sr: int) -> float:
    """RMS level in dBFS of the frames above ACTIVE_GATE_DB (the whole signal when none is)."""
    powers = frame_powers(np.asarray(samples, dtype=np.float32), frame_length(sr))
    active = powers[powers > 10 ** (ACTIVE_GATE_DB / 10)]
    return to_db(float(np.mean(active if active.size else powers)))


def normalisation_gain_db(samples: np.ndarray, sr: int, target_db: float = TARGET_ACTIVE_DB) -> float:
    """The gain in dB that brings the active level to target_db, within [-MAX_CUT_DB, MAX_BOOST_DB]."""
    level = active_level_db(samples, sr)
    return float(np.clip(target_db - level, -MAX_CUT_DB, MAX_BOOST_DB))


def normalise_loudness(samples: np.ndarray, sr: int, target_db: float = TARGET_ACTIVE_DB) -> tuple[np.ndarray, float]:
    """(scaled float32 samples, gain in dB applied); digital silence stays silent."""
    gain_db = normalisation_gain_db(samples, sr, target_db)
    return (np.asarray(samples, dtype=np.float32) * np.float32(10 ** (gain_db / 20))), gain_db


def model_input(samples: np.ndarray, sr: int, normalise: bool = True) -> tuple[np.ndarray, float]:
    """What the embedder sees: the engine and saliency both call this, so they explain the same input."""
    if not normalise:
        return samples, 0.0
    return normalise_loudness(samples, sr)
