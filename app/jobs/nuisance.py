"""Measure nuisance shifts: how each everyday change moves a training clip's mean embedding.

Every clip is decoded and embedded clean and after each change of `utils/everyday.py`, through the
engine's own path (decode and resample, loudness normalisation, 5 s slices, the embedder), and the
difference of the two track means is one shift. `models/training/nuisance.py` turns the shifts into
the scatter that LDA learns to ignore. Only training clips belong here: a shift measured on a
validation clip would let the model see the clips its robustness is judged on.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import soundfile as sf

from models.embedders.base import Embedder
from models.embedders.slices import embed_slices
from models.novelty import track_mean
from models.training.nuisance import NuisanceShifts
from utils.audio import AudioError, load_audio
from utils.constants import WINDOW_S
from utils.nonmusic import wav_bytes
from utils.windows import plan_windows

Progress = Callable[[int, int, str], None]
Change = Callable[[np.ndarray, int], bytes]


def track_vector(embedder: Embedder, data: bytes, normalise_loudness: bool = True) -> np.ndarray:
    """(D,) mean slice embedding of one file's bytes, as the engine would compute it."""
    decoded = load_audio(data, embedder.sample_rate, pad_to_s=WINDOW_S)
    plan = plan_windows(len(decoded.samples) / decoded.sample_rate)
    embeddings, _ = embed_slices(embedder, decoded.samples, decoded.sample_rate, plan,
                                 normalise_loudness=normalise_loudness)
    return track_mean(embeddings)


def measure_shifts(
    embedder: Embedder, clips: list[tuple[str, Path]], changes: dict[str, Change], *, normalise_loudness: bool = True,
    command: str = "", progress: Progress | None = None,
) -> tuple[NuisanceShifts, list[tuple[str, str]]]:
    """Shifts of every (clip, change) pair, and the (clip, reason) of clips that could not be used.

    A clip that does not decode, or a change that fails on it, is reported and skipped; the others go on.
    """
    if not changes:
        raise ValueError("No changes to measure: name at least one.")
    shifts, ids, names, failed = [], [], [], []
    for i, (clip_id, path) in enumerate(clips):
        try:
            samples, sr = sf.read(path, dtype="float32", always_2d=True)
            samples = samples.mean(axis=1)
            clean = track_vector(embedder, wav_bytes(samples, sr), normalise_loudness)
        except (OSError, RuntimeError, AudioError) as exc:
            failed.append((clip_id, str(exc)))
            continue
        for name, change in changes.items():
            try:
                changed = track_vector(embedder, change(samples, sr), normalise_loudness)
            except (OSError, RuntimeError, AudioError, ValueError) as exc:
                failed.append((clip_id, f"{name}: {exc}"))
                continue
            shifts.append(changed - clean)
            ids.append(clip_id)
            names.append(name)
        if progress is not None:
            progress(i + 1, len(clips), clip_id)
    if not shifts:
        raise ValueError("No shift could be measured: every clip failed to decode or change.")
    result = NuisanceShifts(np.stack(shifts).astype(np.float32), np.array(ids), np.array(names), embedder.id,
                            command)
    return result, failed
