"""Where a track sits among the music the model knows: track embeddings, a 2-D map, nearest tracks.

Streamlit-free maths for the Explore page. A track's embedding is the mean of its frame vectors
(for an upload: every frame of every unique 5 s slice). Vectors are standardised with the
reference (test) tracks' statistics, so no single tag dominates distances.

- PCA: fitted on the reference tracks; uploads are projected with the same transform (exact).
- t-SNE has no transform. Re-fitting it with the uploads would move every point whenever a file
  is added and cost a fit per upload set; instead the reference map is fitted once (cacheable by
  table fingerprint + method) and each upload is placed at the similarity-weighted mean position of
  its k nearest reference tracks (cosine, standardised) -- the same neighbours the "Nearest
  tracks" table lists. The placement says "it sits among these", not a t-SNE optimum.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from sklearn.decomposition import PCA
from sklearn.manifold import TSNE

from utils.constants import DEAD_SCALE, DEAD_STD
from utils.tables import EmbeddingTable

METHODS = ("PCA", "t-SNE")
PLACE_NEIGHBOURS = 5


@dataclass(frozen=True)
class TrackVectors:
    """One embedding per track: the mean of its frames."""

    track_ids: np.ndarray  # (T,) str
    genres: np.ndarray  # (T,) str
    vectors: np.ndarray  # (T, D) float64


def track_means(table: EmbeddingTable) -> TrackVectors:
    """Per-track mean of a table's frame vectors, tracks in table order."""
    tracks = table.tracks()
    if not tracks:
        raise ValueError("the embedding table has no tracks")
    return TrackVectors(
        np.array([t.track_id for t in tracks]),
        np.array([t.genre for t in tracks]),
        np.stack([t.vectors.astype(np.float64).mean(axis=0) for t in tracks]),
    )


def slice_embeddings_mean(slice_embeddings: np.ndarray) -> np.ndarray:
    """An upload's track vector from its (S, F, D) slice embeddings (every frame counts once)."""
    x = np.asarray(slice_embeddings, dtype=np.float64)
    if x.ndim != 3 or x.shape[0] * x.shape[1] == 0:
        raise ValueError(f"expected (slices, frames, dim) embeddings, got shape {x.shape}")
    return x.reshape(-1, x.shape[-1]).mean(axis=0)


def _unit(x: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length (zero rows stay zero)."""
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


@dataclass(frozen=True)
class EmbeddingMap:
    """Reference tracks laid out in 2-D, plus what is needed to place and compare new tracks."""

    method: str
    track_ids: np.ndarray  # (T,)
    genres: np.ndarray  # (T,)
    coords: np.ndarray  # (T, 2)
    mean: np.ndarray  # (D,) standardisation
    std: np.ndarray  # (D,)
    components: np.ndarray | None  # (2, D) PCA axes in standardised space; None for t-SNE
    explained: np.ndarray | None  # (2,) PCA explained variance ratio
    reference: np.ndarray  # (T, D) standardised reference vectors at unit length, for cosine similarity

    def standardise(self, vectors: np.ndarray) -> np.ndarray:
        """(N, D) raw track vectors -> standardised with the reference statistics."""
        v = np.atleast_2d(np.asarray(vectors, dtype=np.float64))
        if v.shape[1] != len(self.mean):
            raise ValueError(f"vectors have {v.shape[1]} dimensions, the map was built on {len(self.mean)}")
        return (v - self.mean) / self.std

    def place(self, vectors: np.ndarray, k: int = PLACE_NEIGHBOURS) -> np.ndarray:
        """2-D positions (N, 2) of new track vectors: PCA transform, or k-NN placement for t-SNE."""
        z = self.standardise(vectors)
        if self.components is not None:
            return z @ self.components.T
        index, sims = nearest_standardised(z, self.reference, k)
        weights = np.clip(sims, 0.0, None) + 1e-6
        weights /= weights.sum(axis=1, keepdims=True)
        return np.einsum("nk,nkd->nd", weights, self.coords[index])

    def nearest(self, vectors: np.ndarray, k: int = 10) -> tuple[np.ndarray, np.ndarray]:
        """Indices (N, k) of the most similar reference tracks and their cosine similarities (N, k)."""
        return nearest_standardised(self.standardise(vectors), self.reference, k)


def nearest_standardised(queries: np.ndarray, reference_unit: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Top-k cosine neighbours of standardised queries among unit-length reference rows, best first."""
    sims = _unit(np.atleast_2d(queries)) @ reference_unit.T  # (N, T)
    k = max(1, min(int(k), sims.shape[1]))
    top = np.argpartition(-sims, k - 1, axis=1)[:, :k]
    order = np.argsort(-np.take_along_axis(sims, top, axis=1), axis=1, kind="stable")
    index = np.take_along_axis(top, order, axis=1)
    return index, np.take_along_axis(sims, index, axis=1)


def build_map(tracks: TrackVectors, method: str = "PCA", seed: int = 0) -> EmbeddingMap:
    """Fit the 2-D map of reference tracks with PCA or t-SNE (deterministic for a given seed)."""
    if method not in METHODS:
        raise ValueError(f"unknown map method {method!r}; choose one of {', '.join(METHODS)}")
    x = np.asarray(tracks.vectors, dtype=np.float64)
    if len(x) < 3:
        raise ValueError("a map needs at least 3 reference tracks")
    mean, std = x.mean(axis=0), x.std(axis=0)
    std = np.where(std < DEAD_STD, DEAD_SCALE, std)  # constant columns must not amplify float noise
    z = (x - mean) / std
    components = explained = None
    if method == "PCA":
        pca = PCA(n_components=2, random_state=seed).fit(z)
        coords, components, explained = z @ pca.components_.T, pca.components_, pca.explained_variance_ratio_
    else:
        perplexity = float(min(30.0, max(2.0, (len(z) - 1) / 3)))
        tsne = TSNE(n_components=2, perplexity=perplexity, init="pca", metric="cosine", random_state=seed)
        coords = tsne.fit_transform(z)
    return EmbeddingMap(method, tracks.track_ids, tracks.genres, np.asarray(coords, dtype=np.float64),
                        mean, std, components, explained, _unit(z))
