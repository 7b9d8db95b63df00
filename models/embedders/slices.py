"""The engine's input path from decoded samples to slice embeddings, in one place.

The engine and the nuisance measurement (`app/jobs/nuisance.py`) both call this, so the shifts the
model learns to ignore are measured on exactly what the engine feeds the embedder: loudness
normalised samples, cut into the window plan's 5 s slices, embedded in batches.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from models.embedders.base import Embedder
from utils.loudness import model_input
from utils.windows import WindowPlan, cut_slices

Report = Callable[[float, str], None]


def embed_slices(
    embedder: Embedder, samples: np.ndarray, sample_rate: int, plan: WindowPlan, *, normalise_loudness: bool = True,
    batch: int = 32, report: Report | None = None,
) -> tuple[np.ndarray, float]:
    """(S, F, D) embeddings of the plan's slices and the loudness gain applied, in dB.

    `report` gets the fraction of slices done (0-1) and a message; the caller maps it onto its own bar.
    """
    level_input, gain_db = model_input(samples, sample_rate, normalise_loudness)
    slices = cut_slices(level_input, sample_rate, plan.slice_starts)
    chunks = []
    for a in range(0, len(slices), batch):
        if report is not None:
            report(a / len(slices), f"Embedding slices {a + 1}-{min(a + batch, len(slices))} of {len(slices)}")
        chunks.append(embedder.embed(slices[a : a + batch]))
    return np.concatenate(chunks), gain_db
