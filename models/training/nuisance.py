"""Nuisance shifts: how everyday changes (a codec, a band limit, a pitch or tempo change) move a
track's mean embedding, and the scatter that teaches shrinkage LDA to ignore those directions.

A shift is `track_mean(changed) - track_mean(clean)` for one training clip and one change of
`utils/everyday.py`, measured through the engine's own path (`app/jobs/nuisance.py`). Adding the
shifts' second moment to LDA's pooled within-genre covariance (`fit_lda_weights(nuisance=...)`)
says "tracks differ this way without changing genre", so the discriminant directions turn away
from what a phone speaker or a phase vocoder does to the features. It is the uncentred moment
E[d d^T], not the covariance: a change that moves every track the same way (everything duller
under a low-pass) is a direction to ignore too. The file lives in the repository, so a bundle
trained with it reproduces.
"""

from __future__ import annotations

import hashlib
import io
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from models.embedders.base import base_id
from utils.constants import PROJECT_ROOT


@dataclass(frozen=True)
class NuisanceShifts:
    """(N, D) shift vectors with the clip and change each came from."""

    shifts: np.ndarray  # (N, D) float32: changed track mean minus clean track mean
    clips: np.ndarray  # (N,) clip ids
    changes: np.ndarray  # (N,) change names (utils/everyday.py)
    embedder_id: str
    command: str = ""
    sha256: str = ""

    @property
    def dim(self) -> int:
        """Embedding dimension."""
        return int(self.shifts.shape[1])

    def save(self, path: str | os.PathLike) -> None:
        """Write the shifts as a compressed .npz (no pickles)."""
        np.savez_compressed(path, shifts=self.shifts.astype(np.float32), clips=self.clips.astype(str),
                            changes=self.changes.astype(str), embedder_id=np.str_(self.embedder_id),
                            command=np.str_(self.command))

    def card_entry(self, path: str) -> dict:
        """What a model card records: which file, which bytes, how many shifts of which changes."""
        return {"path": path, "sha256": self.sha256, "shifts": int(len(self.shifts)),
                "clips": int(len(set(self.clips.tolist()))), "changes": sorted(set(self.changes.tolist()))}


def _resolve(path: str | os.PathLike) -> Path:
    """A config's shift file: absolute, or relative to the repository root (recipes stay portable)."""
    p = Path(path)
    return p if p.is_absolute() else PROJECT_ROOT / p


def load_shifts(path: str | os.PathLike, embedder_id: str | None = None, dim: int | None = None) -> NuisanceShifts:
    """Read a shift file and check it fits the table it will train with; ValueError says why not."""
    p = _resolve(path)
    if not p.is_file():
        raise ValueError(f"Nuisance shift file {p} does not exist: make it with `python -m app nuisance`.")
    try:
        data = p.read_bytes()  # read once: parsed and hashed from the same bytes
        with np.load(io.BytesIO(data), allow_pickle=False) as f:
            out = NuisanceShifts(f["shifts"].astype(np.float64), f["clips"], f["changes"], str(f["embedder_id"]),
                                 str(f["command"]), hashlib.sha256(data).hexdigest())
    except (OSError, KeyError, ValueError) as exc:
        why = "it holds pickled objects" if "pickle" in str(exc) else str(exc)  # not numpy's "load it unsafely"
        raise ValueError(f"{p.name} is not a nuisance shift file ({why}); "
                         "make one with `python -m app nuisance`.") from exc
    if out.shifts.ndim != 2 or len(out.shifts) == 0 or not np.isfinite(out.shifts).all():
        raise ValueError(f"{p.name} holds no usable shifts (need a finite (N, D) array with N > 0).")
    if dim is not None and out.dim != dim:
        raise ValueError(f"{p.name} holds {out.dim}-d shifts, but the table's embeddings are {dim}-d.")
    if embedder_id is not None and base_id(out.embedder_id) != base_id(embedder_id):
        raise ValueError(f"{p.name} was measured with {out.embedder_id}, but the table comes from {embedder_id}.")
    return out


def scatter(standardised: np.ndarray) -> np.ndarray:
    """(D, D) uncentred second moment E[d d^T] of (N, D) standardised shifts."""
    d = np.asarray(standardised, dtype=np.float64)
    return d.T @ d / max(len(d), 1)
