"""Streamlit views for explanations, shared by pages: the saliency overlay, nearest tracks, and the
cached reference data (test-table track vectors, 2-D maps) behind the Explore page.

Like `app.ui.state`, this is Streamlit glue: the maths is in `models.classifier.saliency` and
`utils.embedding_map`, the figures in `app.ui.explain_charts`. Render functions return what they
showed, so callers (and tests) can use it.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import streamlit as st

from app import explain
from app.analysis import Analysis
from app.engine import Engine
from app.ui import explain_charts, state
from models.classifier.bundle import CheckpointError, read_card
from models.classifier.saliency import SaliencyError
from models.embedders.base import EmbedderError
from models.verdict import NOT_MUSIC, UNCERTAIN
from utils.audio import AudioError
from utils.embedding_map import EmbeddingMap, TrackVectors, build_map, slice_embeddings_mean, track_means
from utils.settings import REFERENCE_ENV
from utils.tables import TableError, load_table

log = logging.getLogger("genre_lens.explain")
NEAREST_K = 10
NEAREST_NOT_MUSIC = ("This is not music, so even the nearest test tracks are far from it: they are the least "
                     "unlike it, not tracks that sound like it.")
NEAREST_UNCERTAIN = "The model is not sure of this track's genre: these are its nearest test tracks, not an answer."


# ------------------------------------------------------------------------------ reference data
@dataclass(frozen=True)
class Reference:
    """The test tracks of the active model: their vectors, where they came from, their predictions."""

    tracks: TrackVectors
    fingerprint: str
    embedder_id: str
    predictions: dict[str, dict[str, Any]]  # track id -> metrics.json row; empty when they do not match
    note: str | None  # a sentence for the user when something is partial


@st.cache_data(show_spinner="Reading the test tracks…", max_entries=4)
def _table_vectors(path: str, mtime_ns: int, size: int) -> tuple[TrackVectors, str, str]:
    """Track means, fingerprint and embedder id of a table (re-read when the file changes)."""
    table = load_table(path)
    return track_means(table), table.fingerprint(), table.embedder_id


@st.cache_data(show_spinner="Laying out the map…", max_entries=8)
def _map(fingerprint: str, method: str, _tracks: TrackVectors) -> EmbeddingMap:
    """The 2-D map, keyed by the table's content fingerprint and the method (the tracks follow from it)."""
    return build_map(_tracks, method)


def load_reference() -> tuple[Reference | None, str | None]:
    """The active model's reference tracks, or None and a sentence saying what is missing and what to do."""
    try:
        folder = state.bundle_dir()
        card = read_card(folder)
    except CheckpointError:
        return None, "No trained model is installed, so there are no test tracks to map."
    path = explain.reference_table_path(card)
    if not path.is_file():
        return None, (f"The test embeddings of model {card.version} are not here (expected `{path}`). "
                      f"Put the test table there, or point ${REFERENCE_ENV} at it.")
    try:
        stat = path.stat()
        tracks, fingerprint, embedder_id = _table_vectors(str(path), stat.st_mtime_ns, stat.st_size)
    except (TableError, ValueError, OSError) as exc:
        log.warning("reference table %s unusable: %s", path, exc)
        return None, f"The test table `{path.name}` could not be read: {exc}"
    predictions, predicted_on = explain.reference_predictions(folder)
    note = None
    if not predictions:
        note = "This model has no test metrics yet, so hover shows no predictions."
    elif predicted_on is not None and predicted_on != fingerprint:
        predictions, note = {}, "The model's test metrics were computed on another table; predictions are hidden."
    if embedder_id != card.embedder.get("id"):
        note = (f"The test table holds {embedder_id} embeddings but the model uses {card.embedder.get('id')}; "
                "uploads cannot be placed on this map.")
    return Reference(tracks, fingerprint, embedder_id, predictions, note), None


def embedding_map(reference: Reference, method: str) -> EmbeddingMap:
    """The cached 2-D map of the reference tracks."""
    return _map(reference.fingerprint, method, reference.tracks)


def upload_vectors(reference: Reference, tracks: list[Analysis]) -> tuple[list[Analysis], np.ndarray, int]:
    """Uploads whose embeddings live in the reference space, their track vectors, and how many were left out."""
    kept = [a for a in tracks if a.slice_embeddings is not None and a.model.get("embedder") == reference.embedder_id
            and a.slice_embeddings.shape[-1] == reference.tracks.vectors.shape[1]]
    vectors = np.stack([slice_embeddings_mean(a.slice_embeddings) for a in kept]) if kept else np.zeros((0, 1))
    return kept, vectors, len(tracks) - len(kept)


def nearest_table(emap: EmbeddingMap, reference: Reference, vector: np.ndarray, k: int = NEAREST_K,
                  exclude: str | None = None) -> pd.DataFrame:
    """The k most similar test tracks to one track vector: id, genre, similarity, the model's prediction."""
    index, sims = emap.nearest(vector[None, :], k + (exclude is not None))
    rows = []
    for i, s in zip(index[0], sims[0], strict=True):
        tid = str(emap.track_ids[i])
        if tid == exclude:
            continue
        pred = reference.predictions.get(tid, {})
        rows.append({"track": tid, "genre": str(emap.genres[i]), "similarity": float(s),
                     "predicted": pred.get("predicted", "")})
    return pd.DataFrame(rows[:k])


def show_nearest(table: pd.DataFrame, key: str) -> None:
    """The nearest-tracks table with a similarity bar."""
    st.dataframe(table, hide_index=True, key=key, column_config={
        "genre": st.column_config.TextColumn("genre", width="small"),
        "similarity": st.column_config.ProgressColumn("similarity", format="%.2f", min_value=0, max_value=1,
                                                      width="small",
                                                      help="Cosine similarity of standardised track embeddings"),
        "predicted": st.column_config.TextColumn("predicted", width="small",
                                                 help="What the model predicts for that test track"),
    })


def render_nearest(analysis: Analysis, k: int = 5) -> pd.DataFrame | None:
    """"Sounds closest to" table for one analysed track (for the Analyze page); None when unavailable."""
    reference, message = load_reference()
    if reference is None:
        st.caption(message)
        return None
    kept, vectors, _ = upload_vectors(reference, [analysis])
    if not kept:
        st.caption("This track was embedded differently from the test tracks, so it cannot be compared to them.")
        return None
    table = nearest_table(embedding_map(reference, "PCA"), reference, vectors[0], k)
    st.markdown("#### Closest test tracks")
    key = f"nearest-{analysis.sha256[:16]}"
    kind = analysis.verdict.kind
    if kind == NOT_MUSIC:  # every test track is far from it: "nearest" must not read as "sounds like"
        st.caption(NEAREST_NOT_MUSIC)
        with st.expander("Show the nearest anyway"):
            show_nearest(table, key=key)
        return table
    if kind == UNCERTAIN:
        st.caption(NEAREST_UNCERTAIN)
    show_nearest(table, key=key)
    return table


# ------------------------------------------------------------------------------------- saliency
@st.cache_data(show_spinner=False, max_entries=24)
def _saliency(model_id: str, sha256: str, genre: str, window: int | None, _engine: Engine, _analysis: Analysis,
              _audio: bytes) -> explain.Saliency:
    """Saliency keyed by (model, audio, genre, window); the engine, analysis and bytes follow from the key."""
    return explain.explain(_engine, _analysis, genre, _audio, window)


def shown_saliency(analysis: Analysis, window: int | None = None) -> tuple[explain.Saliency, str, float] | None:
    """The saliency `render_saliency` shows with the controls as the user left them (their widget
    values from the last run), as (saliency, part, opacity); None when it is off or unavailable.

    For views drawn above the controls (the linked player): the same cache key, so no extra work.
    """
    sha = analysis.sha256[:16]
    audio = state.track_audio(analysis.sha256)
    if not st.session_state.get(f"sal-on-{sha}") or audio is None:
        return None
    genre = st.session_state.get(f"sal-genre-{sha}") or analysis.top_genre
    scope = st.session_state.get(f"sal-scope-{sha}") or "track"
    part = st.session_state.get(f"sal-part-{sha}") or "for"
    opacity = float(st.session_state.get(f"sal-opacity-{sha}", 0.8))
    chosen = window if scope == "window" and window is not None else None
    try:
        engine = state.get_engine()
        with st.spinner(f"Tracing {genre} back to the spectrogram…"):
            sal = _saliency(engine.model_id, analysis.sha256, genre, chosen, engine, analysis, audio[0])
    except (SaliencyError, AudioError, CheckpointError, EmbedderError):
        return None  # render_saliency, below, says why
    return sal, part, opacity


def render_saliency(analysis: Analysis, window: int | None = None) -> explain.Saliency | None:
    """"What the model listened to": the saliency overlay with its controls (genre, scope, evidence,
    opacity), computed on request. `window`: the window selected on the page, offered as a scope."""
    sha = analysis.sha256[:16]
    st.markdown("#### What the model listened to")
    if not st.toggle("Show the saliency map", key=f"sal-on-{sha}",
                     help="Gradient × input through the whole model: which time-frequency regions of the "
                          "spectrogram raised (or lowered) the genre's probability."):
        estimate = max(1.0, 2 * analysis.timings_s.get("total", 0.0))
        st.caption("Highlights the parts of the spectrogram that drove the decision; computing it takes "
                   f"about {estimate:.0f} s for this track (up to twice its analysis time).")
        return None
    c1, c2, c3, c4 = st.columns([2, 2, 2, 3])
    labels = list(analysis.labels)
    genre = c1.selectbox("Genre", labels, index=labels.index(analysis.top_genre), key=f"sal-genre-{sha}")
    scopes = ["track"] if window is None else ["track", "window"]
    scope = c2.segmented_control("Explain", scopes, default="track", key=f"sal-scope-{sha}") or "track"
    part = c3.segmented_control("Evidence", list(explain_charts.PARTS), default="for", key=f"sal-part-{sha}",
                                help="for: raised the probability; against: lowered it") or "for"
    opacity = c4.slider("Overlay opacity", 0.0, 1.0, 0.8, 0.05, key=f"sal-opacity-{sha}")
    audio = state.track_audio(analysis.sha256)
    if audio is None:
        st.info("This upload was too large to keep, so its saliency cannot be computed.", icon=":material/info:")
        return None
    chosen = window if scope == "window" else None
    try:
        engine = state.get_engine()
        with st.spinner(f"Tracing {genre} back to the spectrogram…"):
            sal = _saliency(engine.model_id, analysis.sha256, genre, chosen, engine, analysis, audio[0])
    except (SaliencyError, AudioError) as exc:
        st.warning(str(exc), icon=":material/warning:")
        return None
    except (CheckpointError, EmbedderError):
        log.exception("no engine for saliency")
        st.warning("The model could not be loaded, so the saliency map is unavailable.", icon=":material/warning:")
        return None
    span = None
    if chosen is not None:
        w = analysis.windows[chosen]
        span = (w.start_s, w.end_s)
    st.plotly_chart(explain_charts.saliency_overlay(sal, opacity, part, analysis.duration_s, span),
                    key=f"sal-fig-{sha}")
    forced = " · not music: this traces a forced pick, not evidence of a genre" if (
        analysis.verdict.kind == NOT_MUSIC) else ""
    st.caption(f"{explain_charts.saliency_sentence(sal, part)} · {sal.label}{forced}")
    return sal
