"""Feedback: correct a prediction, browse / delete / export corrections, retrain the model with them.

Thin by design: `utils.feedback.FeedbackStore` stores, `models.training.retrain.retrain` retrains (as a
background job: app/ui/retrain_views.py queues it and shows its progress), and this file wires widgets
to them. Everything a user typed or uploaded (notes, file names) is shown as
plain text or in dataframe cells, never as markdown or HTML. Errors end as a friendly message.

Roles (`app.ui.admin_view`): everyone may submit corrections, each recorded with this session's opaque
id. With an admin token set, only an unlocked admin sees every correction, deletes any, retrains and
promotes; others see the corrections of their own session and may delete those no model has trained on.
Without a token, the local user does all.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd
import streamlit as st

from app.analysis import Analysis
from app.ui import admin_view, state, thresholds
from app.ui.feedback_views import browse, store
from app.ui.upload_jobs import (
    ACCEPTED,
    Job,
    analyse_one,
    job_done,
    kept_track_job,
    known_audio_note,
    left_note,
    public_progress,
    queue_batch,
    show_upload_error,
    upload_job,
)
from models.classifier.bundle import CheckpointError, ModelCard, current_version, read_card
from models.embedders.base import EmbedderError
from models.trust import load_trust
from utils.audio import AudioError
from utils.constants import GENRES, NOT_MUSIC_LABEL
from utils.feedback import MAX_NOTE_CHARS, FeedbackError, trainable
from utils.tables import TableError
from utils.text import md_escape, plural

log = logging.getLogger("genre_lens.feedback")
UPLOADER = "gl.fb.upload"


def md(text: Any) -> str:
    """Escape markdown so dynamic text in st.success/st.error/labels shows literally."""
    return md_escape(text)


# ------------------------------------------------------------------------------------ correcting
def _on_upload_change(key: str) -> None:
    """The chip was removed or replaced: its result leaves the session (unless another chip holds it)."""
    f = st.session_state.get(key)
    state.uploads_changed(key, {f.file_id} if f is not None else set())


def upload_track() -> None:
    """Analyse a file dropped here (once per file) and add it to the session's tracks."""
    key = state.uploader_key(UPLOADER)
    f = st.file_uploader("Analyse a file to correct", type=ACCEPTED, key=key, on_change=_on_upload_change,
                         args=(key,))
    todo: list[Job] = []
    if f is None:
        state.note_uploads(key, {})
    elif (failed := state.upload_error(f.file_id)) is not None:  # recorded once: not decoded again on every rerun
        state.note_uploads(key, {f.file_id: (None, f.name)})
        show_upload_error(f.name, failed)
    else:
        data = f.getvalue()
        sha = hashlib.sha256(data).hexdigest()
        state.note_uploads(key, {f.file_id: (sha, f.name)})
        if (known := state.get_track(sha)) is None:
            todo.append(upload_job(f, data, sha))
        elif (note := known_audio_note(f.name, known.name)) is not None:  # else the new name appears nowhere
            st.info(md(note), icon=":material/content_copy:")
    run_queued(todo)


def run_queued(todo: list[Job], text: str = "Analysing") -> None:
    """Analyse `todo` and whatever an interrupted run left in the session's queue (`gl.queue`, shared with the
    Analyze page): a page switch in the middle of an analysis came back to an empty uploader, the file lost."""
    if not todo and not st.session_state.get(state.QUEUE_KEY):
        return
    try:
        engine = state.get_engine()
    except (CheckpointError, EmbedderError) as exc:
        st.error(md(exc))
        return
    batch, left, _ = queue_batch(todo, engine)
    notice = st.empty()
    if left:
        notice.info(left_note(left, done=False), icon=":material/resume:")
    bar = st.progress(0.0, text=text)
    for i, job in enumerate(batch):
        analyse_one(engine, job, lambda x, m, i=i: bar.progress(min(1.0, (i + x) / len(batch)),
                                                                text=md(public_progress(m))))
        job_done(job)
    bar.empty()
    if left:
        notice.info(left_note(left, done=True), icon=":material/resume:")
    for job in batch:
        if (failed := state.upload_error(job.error_key)) is not None:
            show_upload_error(job.name, failed)


PICK_KEY = "gl.fb.pick_track"


def pick_track() -> Analysis | None:
    """The session track to correct (the one selected on the Analyze page by default).

    Keyed and bound to the session's selection like the Analyze page's picker, so every pick shows
    at once and the two pages agree on the track.
    """
    tracks = state.analysed_tracks()
    if not tracks:
        st.info("No analysed track in this session yet: drop a file above, or analyse one on the Analyze page.")
        return None
    by_sha = {a.sha256: thresholds.with_threshold(a) for a in reversed(tracks)}  # newest first, at the sidebar's
    # threshold: Analyze may say "Sounds like rock" where the engine's default would say "Not sure"
    chosen = state.selected_track()
    st.session_state[PICK_KEY] = chosen.sha256 if chosen is not None and chosen.sha256 in by_sha else next(iter(by_sha))
    sha = st.selectbox("Track", list(by_sha), key=PICK_KEY,
                       on_change=lambda: state.select_track(st.session_state[PICK_KEY]),
                       format_func=lambda s: f"{by_sha[s].name} ({by_sha[s].verdict.text})")
    return by_sha[sha]


def up_to_date(a: Analysis) -> Analysis:
    """The track as the current model sees it. After a promotion the session's analysis is another model's,
    and a correction would record what that model said; only the Analyze page used to refresh it."""
    try:
        engine = state.get_engine()
    except (CheckpointError, EmbedderError):
        return a  # the page says why elsewhere; the stored analysis is still worth correcting
    if a.model.get("id") == engine.model_id:
        return a
    if (failed := state.upload_error(a.sha256)) is not None:  # tried once: not decoded again on every rerun
        show_upload_error(a.name, failed)
        return a
    audio = state.track_audio(a.sha256)
    if audio is None:  # too large to keep in the session
        st.caption(f"Analysed with {md(a.model.get('version'))}; the current model is {md(engine.card.version)}. "
                   "Upload the file again to see the current model's answer.")
        return a
    run_queued([kept_track_job(a, audio)], text=f"Analysing again with {md(engine.card.version)}, the current model")
    fresh = state.get_track(a.sha256)
    return thresholds.with_threshold(fresh) if fresh is not None and fresh.model.get("id") == engine.model_id else a


def show_prediction(a: Analysis) -> None:
    """The file name (as text) and the model's top genres (forced picks, when its verdict names none)."""
    st.text(f"File: {a.name}\nModel: {a.model.get('version')}\nVerdict: {a.verdict.text}")
    top = pd.DataFrame([{"genre": g, "probability": round(p, 3)} for g, p in a.ranking[:5]])
    st.dataframe(top, hide_index=True, width="content")
    if a.verdict.kind != "genre":
        st.caption("The model named no genre for this track; the table shows its closest genres all the same.")


def embedder_geometry(a: Analysis) -> tuple[float, float]:
    """(hop, frame) seconds of the embedder that produced this analysis, from its model card."""
    try:
        settings = read_card(state.bundle_dir(str(a.model.get("version")))).embedder["settings"]
        return float(settings["hop_seconds"]), float(settings["frame_seconds"])
    except (CheckpointError, KeyError, TypeError):
        engine = state.get_engine()
        if engine.embedder.id != a.model.get("embedder"):
            raise FeedbackError("The model that analysed this track is gone; analyse the track again.") from None
        return engine.embedder.hop_seconds, engine.embedder.frame_seconds


def correction_form(a: Analysis) -> None:
    """Genres, window and note; submitting twice (double click, rerun) stores one correction."""
    windows = {None: "the whole track"} | {w.start_s: f"window {w.index + 1}: {w.start_s:g}–{w.end_s:g} s"
                                           for w in a.windows}
    with st.form(f"gl.fb.form.{a.sha256[:16]}"):
        genres = st.multiselect("Correct genre(s)", list(GENRES), placeholder="Choose one or more genres")
        not_music = st.checkbox("Not music (noise, speech, a test tone…)",
                                help="Kept as a correction for the admin; a retrain learns genres only, so it "
                                     "skips these.")
        start = st.selectbox("The correction is about", list(windows), format_func=windows.get)
        note = st.text_area("Note (optional)", max_chars=MAX_NOTE_CHARS,
                            placeholder="e.g. the intro is jazz, the rest is blues")
        submitted = st.form_submit_button("Submit correction", type="primary")
    if not submitted:
        return
    if not_music and genres:
        st.warning("Choose genres or tick 'Not music', not both.")
        return
    if not genres and not not_music:
        st.warning("Choose at least one genre, or tick 'Not music'.")
        return
    if not_music:
        genres = [NOT_MUSIC_LABEL]
    hop, frame = embedder_geometry(a)
    result = store().add_analysis(a, genres, hop_seconds=hop, frame_seconds=frame, note=note, window_start_s=start,
                                  session_id=state.session_id() or None)  # the key includes the session
    c = result.correction
    st.success(f"Stored correction #{c.id}.")  # a double click's second rerun must not hide this
    if not result.created:
        st.info(f"This correction was already stored as #{c.id}; nothing was added.")
    st.dataframe(pd.DataFrame({"field": ["file", "corrected to", "model said", "about", "note", "model version"],
                               "value": [c.file_name, c.label, c.predicted, windows.get(start, ""),
                                         c.note or "", c.model_version]}), hide_index=True)


# ------------------------------------------------------------------------------------ retraining
def not_music_answers(folder: Path, card: ModelCard) -> None:
    """For the admin: how many "not music" answers the current model's detector agrees with (they never train)."""
    from app.jobs.trust import answers_flagged

    detector = load_trust(folder).detector
    if detector is None:
        return
    try:
        flagged, measured, total = answers_flagged(detector, store(), str(card.embedder.get("id")))
    except (FeedbackError, ValueError, OSError):  # an unreadable stored embedding: a figure, not worth a failure
        log.warning("not-music answers could not be measured", exc_info=True)
        return
    if total:
        rest = "" if measured == total else " (the rest have no embeddings from its embedder)"
        st.caption(f"Users answered \"not music\" for {plural(total, 'audio')}; this model's not-music detector "
                   f"flags {flagged} of {'them' if measured == total else f'the {measured} it can measure'}{rest}. "
                   "Answers it misses are where the detector could learn more; a retrain learns genres only.")


def retrain_section() -> None:
    """Counts, the guard margin, 'Retrain now' (a background job, app/ui/retrain_views.py) and its live status."""
    from app.jobs.retrain import retrain_params
    from app.ui import retrain_views
    from models.training.retrain import default_tables

    root = state.checkpoint_root()
    version = current_version(root)  # read on every rerun: a promotion shows at once
    if version is None:
        st.info("There is no model to retrain yet.")
        return
    if not admin_view.is_admin():
        st.text(f"Current model: {version}.")
        st.caption("Retraining and promoting a new version change the model for everyone, so they are for "
                   "the admin (unlock above).")
        return
    card = read_card(root / version)
    usable = trainable(store().list(), str(card.embedder.get("id")))
    used = store().usage()
    new = [c for c in usable if c.id not in used]
    st.text(f"Current model: {version}. {plural(len(usable), 'correction applies', 'corrections apply')} to it; "
            f"{len(new)} not used by any version yet.")
    not_music_answers(root / version, card)
    train_paths, valid_path = default_tables(card)
    if not all(p.is_file() for p in [*train_paths, *([valid_path] if valid_path else [])]):
        st.warning("The base training tables are not on this machine, so retraining runs from the command line: "
                   "`python -m app retrain --table TRAIN.npz [--valid VALID.npz]`.")
        return
    st.caption("A new version is judged on " + ("the validation tracks the current model never trained on"
               if valid_path else "held-out corrections (the newest quarter, kept out of its training)")
               + ", with no genre allowed to lose more than 10 points of recall on "
               + ("them" if valid_path else "the base tracks (which it trains on too, so this check is lenient)")
               + ". The test split is only for the numbers reported on the Metrics page; it never decides a promotion.")
    judged = "validation" if valid_path else "held-out correction"
    margin = st.number_input(f"Promote when {judged} accuracy drops by at most (points)", 0.0, 20.0, 1.0, 0.5)
    force = st.checkbox("Retrain even without new corrections") if not new else False
    retrain_views.job_panel(retrain_params(root, margin=margin, force=force), can_start=bool(new or force))


# ------------------------------------------------------------------------------------ page
USER_ERRORS = (FeedbackError, CheckpointError, EmbedderError, TableError, AudioError, ValueError)


def section(title: str, body: Callable[[], None]) -> None:
    """One page section; a problem the user can fix is shown in place and the rest of the page still renders."""
    st.subheader(title)
    try:
        body()
    except USER_ERRORS as exc:
        st.error(md(exc))


def correct() -> None:
    """Pick or upload a track, see its prediction, submit a correction."""
    upload_track()
    track = pick_track()
    if track is not None:
        track = up_to_date(track)
        show_prediction(track)
        correction_form(track)


def page() -> None:
    """The whole page."""
    state.init_session()
    st.title("Feedback")
    st.caption("Tell the model when it is wrong. Corrections are stored with the track's embeddings and "
               "used to train a new version, which replaces the current one only when it is not worse.")
    try:
        store()
    except FeedbackError as exc:
        st.error(md(exc))
        return
    admin_view.admin_panel()
    section("Correct a prediction", correct)
    section("Stored corrections", browse)
    section("Retrain", retrain_section)


try:
    page()
except Exception:
    log.exception("feedback page failed")
    st.error("Something went wrong on this page. The problem was logged; please reload the page and try again.")
