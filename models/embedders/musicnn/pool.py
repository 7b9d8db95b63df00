"""The pooled MSD-MusiCNN features of `../shared/data/gtzan_musicnn_pool`, rebuilt from activations.

The published recipe (see that folder's README): per 3 s patch, `concat(mean_pool, max_pool)` of the
753-channel mid-end output (1506 values), then the mean of every 2 x 2 block of the (patches, 1506)
matrix: two consecutive back-to-back patches times two neighbouring columns. The column half of that
mean is linear and acts on each patch alone, so it is applied per patch here (`patch_pool_vectors`);
the engine then averages the patches of a 5 s slice, and tables average patch pairs (`pool_blocks`),
which is the published row exactly. Column pair 376 mixes the last mean and the first max value: it is
kept, because the published rows have it.
"""

from __future__ import annotations

import numpy as np
import torch

MIDEND_DIM = 753  # front-end (561) + three mid-end layers (3 x 64)
POOL_DIM = MIDEND_DIM  # 1506 pooled values, halved by the column-pair mean
POOL_BLOCK_PATCHES = 2  # one table row = the mean of two back-to-back patches (5.984 s)


def patch_pool_vectors(mean_pool: torch.Tensor, max_pool: torch.Tensor) -> torch.Tensor:
    """(P, 753) per-patch vectors: the column-pair mean of concat(mean_pool, max_pool)."""
    if mean_pool.shape != max_pool.shape or mean_pool.shape[-1] != MIDEND_DIM:
        raise ValueError(f"mean/max pools must both be (P, {MIDEND_DIM}), got {tuple(mean_pool.shape)} "
                         f"and {tuple(max_pool.shape)}")
    both = torch.cat([mean_pool, max_pool], dim=-1)  # (P, 1506), mean first, as published
    return both.reshape(*both.shape[:-1], POOL_DIM, 2).mean(dim=-1)


def pool_blocks(patch_vectors: np.ndarray) -> np.ndarray:
    """(P // 2, 753) table rows from back-to-back patch vectors: the mean of each pair of patches.

    The published tables zero-pad an odd patch count and then drop the half-empty last block, which
    is the same as ignoring the unpaired last patch.
    """
    n = (len(patch_vectors) // POOL_BLOCK_PATCHES) * POOL_BLOCK_PATCHES
    if n == 0:  # shorter than two patches: one block from what there is, rather than no row at all
        return np.asarray(patch_vectors[:1], dtype=np.float32)
    pairs = np.asarray(patch_vectors[:n], dtype=np.float32).reshape(-1, POOL_BLOCK_PATCHES, POOL_DIM)
    return pairs.mean(axis=1)
