"""Explore: the test tracks the model knows on a 2-D map, your uploads placed among them.

Thin by design: `app.ui.explain_views` loads and caches the reference data and maps, `app.ui.explain_charts`
draws, `utils.embedding_map` does the maths. Clicking a point shows its probabilities and the test
tracks that sound most like it.
"""

from __future__ import annotations

import logging

import numpy as np
import streamlit as st

from app import explain
from app.analysis import Analysis
from app.ui import charts, explain_charts, explain_views, state, thresholds
from models.verdict import NOT_MUSIC, UNCERTAIN
from utils.embedding_map import METHODS, EmbeddingMap
from utils.text import heading_html, plural

log = logging.getLogger("genre_lens.explore")
MAP_KEY, SELECTED_KEY = "explore-map", "explore.selected"


def _on_click() -> None:
    """Remember the clicked point's key (a test track id or an upload's sha256) before the rerun draws."""
    points = (st.session_state.get(MAP_KEY) or {}).get("selection", {}).get("points", [])
    if points and points[0].get("customdata"):
        st.session_state[SELECTED_KEY] = str(points[0]["customdata"][0])


def pick_method() -> str:
    """PCA or t-SNE; returns the choice."""
    return st.segmented_control(
        "Map", list(METHODS), default="PCA", key="explore-method",
        help="PCA: a linear projection; uploads are projected exactly. t-SNE: keeps neighbourhoods, "
             "not distances; uploads are placed among their 5 nearest test tracks.",
    ) or "PCA"


def placed(emap: EmbeddingMap, uploads: list[Analysis], vectors: np.ndarray) -> list[explain_charts.PlacedTrack]:
    """Uploads with their map positions."""
    if not uploads:
        return []
    xy = emap.place(vectors)
    return [explain_charts.PlacedTrack(a.sha256, a.name, map_label(thresholds.with_threshold(a)),
                                       (float(p[0]), float(p[1]))) for a, p in zip(uploads, xy, strict=True)]


def map_label(a: Analysis) -> str:
    """What an upload's star says it is ("predicted …" on hover, coloured by genre): a genre only when the verdict
    names one; otherwise a label no genre colour matches, so the star is grey."""
    kind = a.verdict.kind
    if kind == NOT_MUSIC:
        return f"not music (forced pick: {a.top_genre})"
    return f"not sure (closest: {a.top_genre})" if kind == UNCERTAIN else a.top_genre


def render_point(key: str, emap: EmbeddingMap, reference: explain_views.Reference, uploads: list[Analysis],
                 vectors: np.ndarray) -> None:
    """The clicked point: its probabilities and its nearest test tracks."""
    shas = [a.sha256 for a in uploads]
    heading = "**Sounds most like**"
    if key in shas:
        a = thresholds.with_threshold(uploads[shas.index(key)])
        st.html(heading_html(a.name, 4))  # the name exactly as uploaded, never markdown
        st.caption(f"Your upload · {a.verdict.text}")
        if audio := state.track_audio(a.sha256):
            st.markdown("**Listen**")
            st.audio(audio[0], format=audio[1])
        st.plotly_chart(charts.genre_bars(a.labels, a.probabilities, a.threshold,
                                          forced=a.verdict.kind == NOT_MUSIC), key="explore-bars")
        vector, exclude = vectors[shas.index(key)], None
        heading = "**Nearest test tracks** (not music: none of them sounds like it)" if (
            a.verdict.kind == NOT_MUSIC) else heading
    else:
        hits = np.flatnonzero(emap.track_ids == key)
        if not hits.size:
            return
        i = int(hits[0])
        row = reference.predictions.get(key, {})
        st.markdown(f"#### {key}")
        verdict = f" · predicted **{row['predicted']}** ({row.get('confidence', 0):.0%})" if row else ""
        st.caption(f"Test track · true genre **{emap.genres[i]}**{verdict}")
        probs = row.get("probabilities")
        if probs:
            labels = list(probs)
            st.plotly_chart(charts.genre_bars(labels, np.array([probs[g] for g in labels]), thresholds.threshold()),
                            key="explore-bars")
        vector, exclude = reference.tracks.vectors[i], key
    st.markdown(heading)
    explain_views.show_nearest(explain_views.nearest_table(emap, reference, vector, exclude=exclude),
                               key="explore-nearest")


def page() -> None:
    """The whole page."""
    st.title("Explore")
    intro = "Where your tracks sit among the test tracks the model was evaluated on, and which ones they sound like."
    reference, message = explain_views.load_reference()
    if reference is None:
        st.caption(intro)
        st.info(message, icon=":material/travel_explore:")
        return
    st.caption(f"{intro} Each point is one track: the mean of its {explain.feature_name(reference.embedder_id)}.")
    if reference.note:
        st.caption(reference.note)
    method = pick_method()
    emap = explain_views.embedding_map(reference, method)
    uploads, vectors, left_out = explain_views.upload_vectors(reference, state.analysed_tracks())
    if left_out:
        st.caption(f"{plural(left_out, 'upload was', 'uploads were')} embedded with another embedder and "
                   f"{'is' if left_out == 1 else 'are'} not shown.")
    shown = placed(emap, uploads, vectors)
    selected = st.session_state.get(SELECTED_KEY) or (uploads[-1].sha256 if uploads else None)
    left, right = st.columns([4, 3], gap="large")
    with left:
        fig = explain_charts.embedding_map(emap, reference.predictions, shown, selected)
        st.plotly_chart(fig, key=MAP_KEY, on_select=_on_click, selection_mode="points")
        st.caption(f"{len(emap.track_ids)} test tracks coloured by their true genre · ● predicted right · "
                   "◆ predicted wrong · ★ your uploads · click a point for details")
    with right:
        if selected is None:
            st.info("Click a point to see its probabilities and nearest tracks, or upload songs on the "
                    "Analyze page to place them on the map.", icon=":material/touch_app:")
        else:
            render_point(selected, emap, reference, uploads, vectors)


try:
    page()
except Exception:  # the page boundary: a friendly sentence, the details in the server log
    log.exception("the Explore page failed")
    st.error("Something went wrong while showing this page. The problem was logged; reload the page to try again.")
