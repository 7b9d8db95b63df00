"""Analyze (home page): upload audio, see its genres, and why the model thinks so.

Thin by design: the engine does the work (`app.ui.state.get_engine()`), `app.ui.charts` draws, and this
file only wires widgets to them. Each widget helper returns the value it collected.
"""

from __future__ import annotations

import hashlib
import logging
import math

import numpy as np
import pandas as pd
import streamlit as st
from streamlit.runtime.uploaded_file_manager import UploadedFile

from app.analysis import Analysis
from app.engine import Engine
from app.ui import charts, explain_views, first_run, state, thresholds, verdict_view, window_charts, window_text
from app.ui.compare_table import compare_html
from app.ui.player import view as player_view
from app.ui.upload_jobs import (
    ACCEPTED,
    Job,
    analyse_one,
    dismiss_failures,
    job_done,
    kept_track_job,
    left_note,
    loose_failures,
    public_progress,
    queue_batch,
    remember_failure,
    same_audio_notes,
    show_upload_error,
    upload_job,
)
from models.classifier.bundle import CheckpointError
from models.embedders.base import EmbedderError
from models.verdict import NOT_MUSIC
from utils.text import heading_html, md_escape, plural

log = logging.getLogger("genre_lens.analyze")


def load_engine() -> Engine | None:
    """The shared engine, or None after telling the user why there is none and what to do."""
    try:
        return state.get_engine()
    except ValueError as exc:  # a setting the engine refuses in one sentence (GENRE_LENS_DEVICE=cuda:7, ...)
        log.warning("the engine refused its settings: %s", exc)
        st.error(md_escape(exc), icon=":material/error:")
        return None
    except (CheckpointError, EmbedderError):
        if state.available_versions():  # a bundle exists but is broken or its embedder is missing
            log.exception("the model could not be loaded")
            st.error(f"The model {state.active_version()} could not be loaded (details are in the server log).",
                     icon=":material/error:")
            st.markdown("**What to do:** pick another version in the sidebar, or re-install the model bundle.")
            return None
        st.error("No trained model is installed yet, so there is nothing to analyse with.",
                 icon=":material/model_training:")
        st.markdown(
            "**What to do:** train one with `python -m app train --table <embeddings.npz>` (see the README), "
            "or copy a model bundle (a folder with `card.json` and `model.pt`) into `models/checkpoints/`, "
            "then reload this page."
        )
        return None


UPLOADER = "gl.uploader"


def _on_upload_change(key: str) -> None:
    """A chip was added or removed (a user action): results of removed chips leave the session too."""
    state.uploads_changed(key, {f.file_id for f in st.session_state.get(key) or []})


def upload_widget() -> tuple[str, list[UploadedFile]]:
    """The drop zone; returns its widget key and the files currently in it."""
    key = state.uploader_key(UPLOADER)
    files = st.file_uploader(
        "Drop audio files here", type=ACCEPTED, accept_multiple_files=True, key=key,
        on_change=_on_upload_change, args=(key,),
        help="WAV, FLAC, OGG/Opus, MP3, M4A/AAC or AIFF. Each file is analysed in 15 s windows of three 5 s slices. "
             "Removing a file here removes its result.",
    )
    return key, list(files or [])


def session_controls(tracks: list[Analysis]) -> None:
    """How many results this session keeps, and "Clear all" (results outlive the uploader's chips)."""
    left, right = st.columns([4, 1], vertical_alignment="center")
    loose = sum(not state.in_uploader(t.sha256) for t in tracks)
    note = f" · {loose} not in the upload box (the example, or kept from a page switch or reload)" if loose else ""
    left.caption(f"{len(tracks)} track{'s' if len(tracks) != 1 else ''} in this session{note}. Reloading this "
                 "page keeps them for an hour; they are never shown to anyone else.")
    right.button("Clear all", icon=":material/delete_sweep:", on_click=state.clear_tracks, key="gl.clear_all",
                 help="Forget every result of this session and empty the upload box.")


def pending_jobs(engine: Engine, files: list[UploadedFile], key: str = UPLOADER) -> list[Job]:
    """Uploads not analysed yet by this model (duplicates by content skipped), then stale kept tracks.

    Also records which chip holds which track, so removing a chip can remove its result.
    """
    limit = int(st.get_option("server.maxUploadSize")) * 1024 * 1024
    jobs: dict[str, Job] = {}
    held: dict[str, tuple[str | None, str]] = {}
    for f in files:
        held[f.file_id] = (None, f.name)
        if state.upload_error(f.file_id) is None and f.size > limit:
            state.record_upload_error(f.file_id, f"This file is {f.size / 2**20:.0f} MB; files up to "
                                                 f"{limit // 2**20} MB are accepted.")
        if state.upload_error(f.file_id) is not None:
            continue
        data = f.getvalue()
        sha = hashlib.sha256(data).hexdigest()
        held[f.file_id] = (sha, f.name)
        known = state.get_track(sha)
        if sha not in jobs and (known is None or known.model.get("id") != engine.model_id):
            jobs[sha] = upload_job(f, data, sha)
    state.note_uploads(key, held)
    for a in state.analysed_tracks():
        audio = state.track_audio(a.sha256)
        stale = a.model.get("id") != engine.model_id and state.upload_error(a.sha256) is None
        if stale and audio and a.sha256 not in jobs:
            jobs[a.sha256] = kept_track_job(a, audio)
    return list(jobs.values())


def analyse_uploads(
    engine: Engine, files: list[UploadedFile], key: str = UPLOADER,
) -> tuple[list[tuple[str, str]], list[str]]:
    """Analyse every pending file with a progress bar, keep results in the session; returns the (name, error)
    pairs to show and the keys of those whose chip is gone (for `dismiss_button`)."""
    todo, left, unkept = queue_batch(pending_jobs(engine, files, key), engine)
    notice = st.empty()
    if left:  # a page switch interrupted the last batch: its files were kept, not dropped
        notice.info(left_note(left, done=False), icon=":material/resume:")
    if unkept:
        st.caption(f"This batch is large: stay on this page until it finishes, or {plural(unkept, 'file')} "
                   "will need uploading again.")
    if todo:
        with st.status(f"Analysing {len(todo)} file{'s' if len(todo) > 1 else ''}…", expanded=True) as status:
            bar = st.progress(0.0)
            for i, job in enumerate(todo):
                analyse_one(engine, job, lambda frac, msg, i=i, name=job.name: bar.progress(
                    min(1.0, (i + frac) / len(todo)), text=f"{md_escape(name)}: {public_progress(msg)}"))
                remember_failure(job)
                job_done(job)
            failed = sum(state.upload_error(job.error_key) is not None for job in todo)
            label = f"Analysed {len(todo) - failed} of {plural(len(todo), 'file')} with model {engine.card.version}"
            status.update(label=label, state="error" if failed else "complete", expanded=False)
        if left:  # said as done, not as still running
            notice.info(left_note(left, done=True), icon=":material/resume:")
    held = state.uploads_held(key)
    for note in same_audio_notes(held, {fid for fid in held if state.upload_error(fid) is not None}):
        st.info(md_escape(note), icon=":material/content_copy:")
    tracks = state.analysed_tracks()
    kept = [(a.name, msg) for a in tracks if (msg := state.upload_error(a.sha256))]
    resumed = [(j.name, msg) for j in left if (msg := state.upload_error(j.error_key))]  # their chips are gone
    listed = {f.file_id for f in files} | {a.sha256 for a in tracks} | {j.error_key for j in left}
    loose = loose_failures(listed)  # failed before a page switch emptied the upload box: said until dismissed
    errors = [(f.name, msg) for f in files if (msg := state.upload_error(f.file_id))] + kept + resumed
    return errors + [(name, msg) for _, name, msg in loose], [k for k, _, _ in loose]


def dismiss_button(keys: list[str]) -> None:
    """Hides the errors of files no longer in the upload box (removing a chip hides the others)."""
    if keys:
        st.button(f"Dismiss {'this error' if len(keys) == 1 else 'these errors'}", key="gl.dismiss_failures",
                  icon=":material/close:", on_click=dismiss_failures, args=(keys,),
                  help="The files are no longer in the upload box; their errors stay listed until dismissed.")


def analyse_example(engine: Engine) -> None:
    """Analyse the first-run example like an upload, then rerun to show it (a failure stays recorded)."""
    name, data = first_run.example_audio()
    with st.status("Analysing the example…", expanded=True):
        bar = st.progress(0.0)
        analyse_one(engine, Job(name, data, "audio/wav", first_run.ERROR_KEY),
                    lambda frac, msg: bar.progress(min(1.0, frac), text=public_progress(msg)))
    if state.upload_error(first_run.ERROR_KEY) is None:
        st.rerun()


PICK_KEY = "gl.pick_track"
FORCED_CAPTION = ("Not music: the genre lines and slices below show what the model would pick if forced to choose, "
                  "not how sure it is.")


def _on_pick() -> None:
    """The user's pick becomes the session's selection before the rerun renders anything."""
    state.select_track(st.session_state[PICK_KEY])


def pick_track(tracks: list[Analysis]) -> Analysis:
    """Track selector (shown when there are several); returns the chosen analysis.

    The session's selection is the one source of truth: the keyed widget is set from it before it
    renders (so a new upload or a removal moves it) and writes each pick back in its callback.
    An un-keyed selectbox whose `index` follows the selection changes identity on every pick and
    drops every second one.
    """
    current = state.selected_track() or tracks[-1]
    if len(tracks) == 1:
        return current
    shas = [t.sha256 for t in tracks]
    names = {t.sha256: t.name for t in tracks}
    st.session_state[PICK_KEY] = current.sha256
    st.selectbox("Show details for", shas, key=PICK_KEY, format_func=names.__getitem__, on_change=_on_pick)
    return current


def pick_window(a: Analysis) -> int:
    """Window selector (slider over window spans); remembers the pick per track across pages."""
    if len(a.windows) == 1:
        return 0
    key = f"window-{a.sha256[:16]}"
    extra = {} if key in st.session_state else {"value": state.selected_window(a.sha256)}
    index = st.select_slider("Window", options=list(range(len(a.windows))), key=key,
                             format_func=lambda i: f"{i + 1} · {charts.window_label(a.windows[i])}", **extra)
    state.select_window(a.sha256, index)
    return int(index)


def _on_timeline_click(a: Analysis, chart_key: str) -> None:
    """Clicking a timeline point selects the nearest window (updates the slider before it renders)."""
    points = (st.session_state.get(chart_key) or {}).get("selection", {}).get("points", [])
    if points and "x" in points[0]:
        centres = np.array([(w.start_s + w.end_s) / 2 for w in a.windows])
        index = int(np.argmin(np.abs(centres - float(points[0]["x"]))))
        st.session_state[f"window-{a.sha256[:16]}"] = index
        state.select_window(a.sha256, index)


def chips(a: Analysis) -> str:
    """HTML chips, in genre colours, for every genre at or above the threshold."""
    spans = [
        f'<span style="display:inline-block;margin:2px 6px 2px 0;padding:2px 12px;border-radius:999px;'
        f'border:1px solid {charts.genre_color(g)};background:{charts.genre_color(g)}33;font-weight:600">'
        f"{g} {p:.0%}</span>"
        for g, p in a.ranking if g in a.predicted
    ]
    return "".join(spans)


def render_heading(a: Analysis) -> None:
    """The track's file name, exactly as uploaded (HTML-escaped, never markdown), and "Forget" when no chip holds it."""
    left, right = st.columns([5, 1], vertical_alignment="center")
    with left:
        st.html(heading_html(a.name))
    if not state.in_uploader(a.sha256):
        right.button("Forget this track", key=f"forget-{a.sha256[:16]}", on_click=state.remove_track,
                     args=(a.sha256,), help="Remove this result from the session (its file is no longer in the "
                                            "upload box, so there is no chip to remove).")


def render_summary(a: Analysis) -> None:
    """Verdict, chips, confidence bars and the audio's quality notes."""
    left, right = st.columns([3, 2], gap="large")
    with left:
        verdict_view.render_verdict(a)
        st.markdown(chips(a), unsafe_allow_html=True)
        st.plotly_chart(charts.genre_bars(a.labels, a.probabilities, a.threshold,
                                          forced=a.verdict.kind == NOT_MUSIC), key=f"bars-{a.sha256}")
    with right:
        audio = state.track_audio(a.sha256)
        if audio and not player_view.use_player():  # the linked player below has the audio otherwise
            st.audio(audio[0], format=audio[1])
        for sentence in a.warnings:
            st.warning(sentence, icon=":material/warning:")
        if not a.warnings:
            st.success("No quality problems found (silence, clipping, truncation, padding, sample rate).",
                       icon=":material/check:")
        src, q = a.source, a.quality
        st.caption(f"{src.get('format')} · {src.get('sample_rate')} Hz · {src.get('channels')} ch · "
                   f"{src.get('duration_s', a.duration_s):.1f} s · {plural(len(a.windows), 'window')} · "
                   f"model {a.model.get('version')} · {a.timings_s.get('total', 0):.1f} s to analyse")
        snr = f"SNR ≈ {q.get('snr_db', 0):.0f} dB" if q.get("peak", 0) > 0 else "SNR n/a (silent)"
        st.caption(f"Peak {q.get('peak', 0):.3g} · RMS {q.get('rms_db', 0):.0f} dBFS · "
                   f"{snr} · silence {q.get('silence_ratio', 0):.0%} · "
                   f"clipped {q.get('clipping_ratio', 0):.2%}")


def render_timeline(a: Analysis) -> int:
    """Timeline controls and chart; returns the selected window."""
    st.markdown("#### Over time")
    c1, c2 = st.columns([3, 1])
    default = list(dict.fromkeys([*a.predicted, *(g for g, _ in a.ranking[:3])]))
    genres = c1.multiselect("Genres", a.labels, default=default, key=f"genres-{a.sha256[:16]}")
    mode = c2.segmented_control("Show", ["probability", "share"], default="probability",
                                key=f"mode-{a.sha256[:16]}",
                                help="Share stacks each chosen genre's part of all ten genres' total; "
                                     "the grey band is the genres not chosen.")
    index = pick_window(a)
    if a.verdict.kind == NOT_MUSIC:  # the player and the charts below draw genre lines: say what they are
        st.caption(FORCED_CAPTION)
    if player_view.render_linked(a, index, genres or None, mode == "share"):
        return index
    chart_key = f"timeline-{a.sha256[:16]}"
    fig = charts.window_timeline(a, genres or None, index, "share" if mode == "share" else "lines", a.threshold,
                                 forced=a.verdict.kind == NOT_MUSIC)
    st.plotly_chart(fig, key=chart_key, on_select=lambda: _on_timeline_click(a, chart_key), selection_mode="points")
    st.plotly_chart(charts.spectrogram(a, index), key=f"spec-{a.sha256[:16]}")
    player_view.render_static_strip(a, index)
    return index


def render_window(a: Analysis, index: int) -> None:
    """Why the selected window got its verdict: slice attention and what each slice says alone."""
    w = a.windows[index]
    head, play = st.columns([4, 1], vertical_alignment="center")
    head.markdown(f"#### Window {index + 1} · {charts.window_label(w)}")
    with play:
        player_view.play_window_button(a, index)
    kind = a.verdict.kind
    st.info(window_text.explain_window(w, a.labels, kind, a.threshold), icon=":material/lightbulb:")
    if a.source.get("padded") and (real := float(a.source.get("duration_s") or 0.0)) < w.end_s:
        shown = f"{math.floor(real * 10) / 10:.1f} s"  # rounded down, as the audio warnings say it
        st.caption(f"The clip is only {shown} long and was repeated to fill the window: the seconds after "
                   f"{shown} are the clip again, not more of the song.")
    forced = kind == NOT_MUSIC
    left, right = st.columns(2, gap="large")
    left.plotly_chart(window_charts.attention_bars(w, a.labels, forced), key=f"att-{a.sha256[:16]}")
    right.plotly_chart(window_charts.slice_heatmap(w, a.labels, forced), key=f"slices-{a.sha256[:16]}")


def render_downloads(a: Analysis) -> None:
    """Analysis JSON and the per-window CSV."""
    stem = a.name.rsplit(".", 1)[0] or "track"
    c1, c2, _ = st.columns([1, 1, 2])
    c1.download_button("Analysis (JSON)", a.to_json(), f"{stem}.analysis.json", "application/json",
                       icon=":material/download:", key=f"json-{a.sha256[:16]}")
    c2.download_button("Windows (CSV)", pd.DataFrame(a.window_rows()).to_csv(index=False), f"{stem}.windows.csv",
                       "text/csv", icon=":material/table:", key=f"csv-{a.sha256[:16]}")


def render_compare(tracks: list[Analysis]) -> None:
    """Summary of every track analysed in this session."""
    st.markdown(f"#### Compare · {len(tracks)} tracks")
    table = charts.compare_table(tracks, thresholds.threshold())
    with st.container(key="gl-compare-grid"):  # wide screens: the sortable grid
        # whole percentages (the grid's "percent" format shows 82.88%, cut to "82.88" in a narrow column)
        st.dataframe(table.assign(confidence=100 * table["confidence"]), hide_index=True, column_config={
            "track": st.column_config.TextColumn("track", width="medium"),
            "verdict": st.column_config.TextColumn("verdict", width="large"),
            "confidence": st.column_config.ProgressColumn("confidence", format="%.0f%%", min_value=0,
                                                          max_value=100, width="small")})
    with st.container(key="gl-compare-wrap"):  # phones: the same rows, wrapping (app/ui/layout.py switches)
        st.html(compare_html(table))
    st.plotly_chart(charts.compare_heatmap(tracks), key="compare-heatmap")


def page() -> None:
    """The whole page."""
    st.title("Analyze")
    st.caption("Which of the ten GTZAN genres does it sound like, and which 5 seconds made the model think so?")
    engine = load_engine()
    if engine is None:
        return
    key, files = upload_widget()
    errors, loose = analyse_uploads(engine, files, key)
    for name, message in errors:
        show_upload_error(name, message)
    dismiss_button(loose)
    tracks = [thresholds.with_threshold(t) for t in state.analysed_tracks()]
    if not tracks:
        st.info("Upload one or more songs to begin. Longer files are analysed window by window; the first "
                f"{engine.max_duration_s / 60:.0f} minutes of a very long file are used.", icon=":material/upload:")
        if first_run.render_help(engine.max_duration_s / 60):
            analyse_example(engine)
        if message := state.upload_error(first_run.ERROR_KEY):
            st.error(f"The example could not be analysed: {message}", icon=":material/error:")
        return
    session_controls(tracks)
    if len(tracks) > 1:
        render_compare(tracks)
        st.divider()
    a = thresholds.with_threshold(pick_track(tracks))
    render_heading(a)
    render_summary(a)
    index = render_timeline(a)
    render_window(a, index)
    explain_views.render_saliency(a, index)
    explain_views.render_nearest(a)
    render_downloads(a)


try:
    page()
except Exception:  # the page boundary: a friendly sentence, the details in the server log
    log.exception("the Analyze page failed")
    st.error("Something went wrong while showing this page. The problem was logged; reload the page to try again.")
