"""Streamlit glue: the cached engine and this browser session's tracks and selections.

This is the ONE place the engine is wrapped in `st.cache_resource`. Pages never build an `Engine`
themselves; they call `get_engine()` and the session helpers below.

Session layout (all keys live under `st.session_state`, prefixed `gl.`):
  - `gl.session`: this session's random token. It is also the `s` query parameter of the page URL,
    and it keys the session's record in the server-side `SessionStore`, so a reload of the same
    session (same URL, same browser) gets its tracks back. Nothing else of a session is shared.
  - `gl.tracks`: {sha256 of the uploaded bytes: Analysis}, in upload order. The same file uploaded
    twice (even under another name) is found here and not analysed again. Each session holds its own
    copy (`dataclasses.replace`) of the engine's cached result, with the name it uploaded it under.
  - `gl.audio`: {sha256: (bytes, mime type)} so the player works after the upload widget is cleared.
  - `gl.errors`: {upload file id: user-facing sentence} for files that could not be analysed, so a
    bad file is reported once per upload and not re-decoded on every rerun.
  - `gl.uploads`: {uploader key: {file id: (sha256 or None, name)}}: what each uploader held at its
    last run, so removing a file's chip removes its result (unless another chip holds the same bytes).
  - `gl.queue`: {sha256: job} of a batch a page switch interrupted (resumed on the Analyze page).
  - `gl.selected_track`: sha256 of the track shown in detail; `gl.windows`: {sha256: window index}.
  - `gl.version`: the model version picked in the sidebar (None = follow the current one).
  - `threshold`: the sidebar slider (`app.ui.thresholds`); `gl.threshold_of`: the version it follows.

For other pages (feedback, explore): `analysed_tracks()` lists this session's analyses, newest
last; each `Analysis` carries `slice_embeddings`, `model["id"]` and `sha256`, which is what a
correction needs. `get_track(sha)`, `selected_track()` and `selected_window(sha)` give the track
and window the user is looking at on the Analyze page; `session_id()` is the opaque id that
corrections record.
"""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path
from typing import Any

import streamlit as st

from app.analysis import Analysis
from app.engine import Engine
from app.ui.session_store import SessionData, SessionStore, browser_key, is_token, public_id
from app.ui.thresholds import THRESHOLD_KEY, threshold
from models.classifier.bundle import (
    CheckpointError,
    checkpoint_root,
    current_version,
    list_versions,
    read_card,
    resolve_bundle,
)
from models.trust import MAX_THRESHOLD, MIN_THRESHOLD, load_trust, trust_stamp
from utils import settings
from utils.constants import DEFAULT_THRESHOLD
from utils.settings import Settings

log = logging.getLogger("genre_lens.state")
SESSION_PARAM = "s"  # the URL query parameter that carries the session token
XSRF_COOKIE = "_streamlit_xsrf"  # the browser already holds it; its secret binds a record to the browser

_TOKEN, _OWNER = "gl.session", "gl.session_owner"
_TRACKS, _AUDIO, _ERRORS, _UPLOADS = "gl.tracks", "gl.audio", "gl.errors", "gl.uploads"
QUEUE_KEY = "gl.queue"  # {sha256: upload job} of a batch not finished yet (app/ui/upload_jobs.py)
_SELECTED, _WINDOWS, _VERSION = "gl.selected_track", "gl.windows", "gl.version"
UPLOADER_GEN = "gl.uploader_gen"  # bumped by "Clear all": a fresh, empty uploader
_THRESHOLD_OF = "gl.threshold_of"  # the version whose default the threshold was last set to follow
MAX_KEPT_AUDIO_BYTES = 50 * 1024 * 1024  # bigger uploads are analysed but not kept for the player


# ----------------------------------------------------------------------------------- model + engine
def available_versions() -> list[str]:
    """Every bundle version under the checkpoint root, oldest first (read from disk on every call)."""
    return list_versions(checkpoint_root())


def current_model_version() -> str | None:
    """The version CURRENT names right now (a retrain may have promoted another since the last rerun)."""
    return current_version(checkpoint_root())


def active_version() -> str | None:
    """The version this session uses: the sidebar's pick if it still exists, else the current one."""
    picked = st.session_state.get(_VERSION)
    if picked and picked in available_versions():
        return picked
    return current_model_version()


def set_active_version(version: str | None) -> None:
    """Remember a model pick; picking the current version means "follow the current one" (None),
    so a later promotion moves this session to the new model instead of pinning the old one.

    The threshold follows the model when the user left it at the old model's default (each model's
    default is chosen on its own validation tracks); a threshold the user set stays.
    """
    followed = threshold() == default_threshold(active_version())
    st.session_state[_VERSION] = None if version == current_model_version() else version
    if followed:
        st.session_state[THRESHOLD_KEY] = default_threshold(version)
    st.session_state[_THRESHOLD_OF] = active_version()


def _follow_promotion() -> None:
    """A promotion since the last rerun moves a session that follows CURRENT to the new model's threshold.

    Without this a session open before the promotion kept the old model's default (0.05 beside a newcomer's
    0.50), so two users saw different verdicts for one track on one model. A threshold the user set stays.
    """
    now, before = active_version(), st.session_state.get(_THRESHOLD_OF)
    if now != before and before is not None and threshold() == default_threshold(before):
        st.session_state[THRESHOLD_KEY] = default_threshold(now)
    st.session_state[_THRESHOLD_OF] = now


def version_label(version: str, current: str | None) -> str:
    """A version as the pickers show it: the current one says so."""
    return f"{version} (current)" if version == current else version


def version_select(key: str, container: Any = st, **kwargs: Any) -> str | None:
    """A model-version selectbox bound to the session's one model choice (the sidebar's and Metrics').

    The versions and CURRENT are read from disk on every rerun, so a promotion shows at once; the
    widget is set from the session's choice before it renders, and a pick goes back in its callback.
    """
    versions = available_versions()
    if not versions:
        return None
    active = active_version()
    if len(versions) == 1:
        return versions[0]
    current = current_model_version()
    options = list(reversed(versions))  # newest first
    st.session_state[key] = active if active in options else options[0]
    return container.selectbox("Model version", options, key=key, on_change=lambda: set_active_version(
        st.session_state[key]), format_func=lambda v: version_label(v, current), **kwargs)


def bundle_dir(version: str | None = None) -> Path:
    """Folder of a version (default: the active one); raises CheckpointError when there is none."""
    return resolve_bundle(version or active_version(), checkpoint_root())


@st.cache_resource(show_spinner="Loading the model…", max_entries=2)
def _load_engine(folder: str, weights_sha256: str, device: str | None, trust: str = "") -> Engine:
    """Build an engine once per (bundle folder, weights hash, device, trust files' stamp) for the whole server.

    The hash and stamp are in the key only so that a bundle rewritten in place (a retrained model, or
    `app trust` re-choosing its threshold and detector) gets a fresh engine without a restart.
    """
    return Engine(checkpoint=folder, device=device)


def _secrets() -> dict[str, Any] | None:
    """Streamlit secrets as a plain dict (None when there is no readable secrets file)."""
    try:
        return dict(st.secrets)
    except Exception:  # no secrets file, or an unreadable one: "no secrets", said in the log
        log.debug("no Streamlit secrets readable", exc_info=True)
        return None


def app_settings() -> Settings:
    """The dashboard's settings: the environment, then `.streamlit/secrets.toml` (admin token)."""
    return settings.load(secrets=_secrets())


def get_engine(version: str | None = None) -> Engine:
    """The shared engine for a version (default: active); raises CheckpointError if no model exists."""
    folder = bundle_dir(version).resolve()
    card = read_card(folder)
    return _load_engine(str(folder), card.weights_sha256, settings.load().device, trust_stamp(folder))


# --------------------------------------------------------------------------------- session identity
@st.cache_resource(show_spinner=False)
def session_store() -> SessionStore:
    """The server's one store of per-session results (see app/ui/session_store.py)."""
    return SessionStore()


def _browser() -> str:
    """This browser's key (from its XSRF cookie), '' where there is none (tests, XSRF off)."""
    try:
        return browser_key(st.context.cookies.get(XSRF_COOKIE))
    except Exception:  # no browser context (bare script run): no binding
        return ""


def _restore(data: SessionData) -> None:
    """Put a stored session's data back into this (fresh) Streamlit session."""
    st.session_state[_TRACKS] = dict(data.tracks)
    st.session_state[_AUDIO] = dict(data.audio)
    st.session_state[_WINDOWS] = dict(data.windows)
    st.session_state[_SELECTED] = data.selected


def _start_session() -> None:
    """Adopt the URL's token when the server holds it for this browser, else start a new one.

    A token from the URL that the store does not know (expired, made up, another browser's) is
    never adopted: the session gets a fresh one, so nobody can plant a token and read what follows.
    """
    owner = _browser()
    given = st.query_params.get(SESSION_PARAM)
    saved = session_store().load(given, owner) if is_token(given) else None
    if saved is not None:
        _restore(saved)
        st.session_state[_TOKEN] = given
    else:
        st.session_state[_TOKEN] = session_store().create(owner)
    st.session_state[_OWNER] = owner


def init_session() -> None:
    """Create the session keys once, resume a reloaded session, keep the token in the URL; every rerun."""
    defaults = {_TRACKS: {}, _AUDIO: {}, _ERRORS: {}, _UPLOADS: {}, _SELECTED: None, _WINDOWS: {},
                _VERSION: None, UPLOADER_GEN: 0}
    for key, value in defaults.items():
        st.session_state.setdefault(key, value)
    if THRESHOLD_KEY not in st.session_state:  # read the model's trust.json once per model, not every rerun
        st.session_state[THRESHOLD_KEY] = default_threshold()
        st.session_state[_THRESHOLD_OF] = current_model_version()
    else:
        _follow_promotion()
    if not is_token(st.session_state.get(_TOKEN)):
        _start_session()
    token = st.session_state[_TOKEN]
    if st.query_params.get(SESSION_PARAM) != token:  # page switches drop query parameters
        st.query_params[SESSION_PARAM] = token
    if not session_store().touch(token):  # expired while the tab stayed open: store it again
        _persist()


def session_id() -> str:
    """This session's opaque public id (what a stored correction records; not the URL token)."""
    token = st.session_state.get(_TOKEN)
    return public_id(token) if is_token(token) else ""


def _persist() -> None:
    """Write this session's tracks through to the server store (after every change)."""
    token = st.session_state.get(_TOKEN)
    if not is_token(token):
        return
    data = SessionData(dict(st.session_state.get(_TRACKS, {})), dict(st.session_state.get(_AUDIO, {})),
                       st.session_state.get(_SELECTED), dict(st.session_state.get(_WINDOWS, {})))
    try:
        session_store().save(token, data, st.session_state.get(_OWNER, ""))
    except (PermissionError, ValueError):  # cannot happen for a token this session got; never fatal
        log.warning("session results could not be kept for reload", exc_info=True)


# --------------------------------------------------------------------------------- session helpers
def default_threshold(version: str | None = None) -> float:
    """A model's decision threshold (default: the current one's), chosen on validation tracks (models/trust.py)."""
    try:
        t = load_trust(bundle_dir(version or current_version(checkpoint_root()))).threshold
        return min(max(t, MIN_THRESHOLD), MAX_THRESHOLD)  # the slider's range (a CLI test may use 0.99)
    except (CheckpointError, OSError):
        return DEFAULT_THRESHOLD


def analysed_tracks() -> list[Analysis]:
    """This session's analyses in upload order (oldest first); empty before the first upload."""
    return list(st.session_state.get(_TRACKS, {}).values())


def get_track(sha256: str) -> Analysis | None:
    """The session's analysis of the file with this sha256, if it was analysed."""
    return st.session_state.get(_TRACKS, {}).get(sha256)


def add_track(analysis: Analysis, audio: bytes | None = None, mime: str = "audio/wav") -> bool:
    """Store an analysis (and its audio for the player); False when it was already there.

    A track analysed again (another model) keeps the name this session first gave it.
    """
    tracks = st.session_state.setdefault(_TRACKS, {})
    known = tracks.get(analysis.sha256)
    if known is not None and known.name != analysis.name:
        analysis = dataclasses.replace(analysis, name=known.name)
    tracks[analysis.sha256] = analysis
    if audio is not None and len(audio) <= MAX_KEPT_AUDIO_BYTES:
        st.session_state.setdefault(_AUDIO, {})[analysis.sha256] = (audio, mime)
    if known is None:
        select_track(analysis.sha256)
    _persist()
    return known is None


def track_audio(sha256: str) -> tuple[bytes, str] | None:
    """(bytes, mime type) of a track's upload, if it was small enough to keep."""
    return st.session_state.get(_AUDIO, {}).get(sha256)


def remove_track(sha256: str) -> None:
    """Forget one track (analysis, audio and selection)."""
    for key in (_TRACKS, _AUDIO, _WINDOWS):
        st.session_state.get(key, {}).pop(sha256, None)
    if st.session_state.get(_SELECTED) == sha256:
        remaining = analysed_tracks()
        st.session_state[_SELECTED] = remaining[-1].sha256 if remaining else None
    _persist()


def clear_tracks() -> None:
    """Forget every track and upload error of this session, and empty the uploaders."""
    for key in (_TRACKS, _AUDIO, _ERRORS, _WINDOWS, _UPLOADS, QUEUE_KEY):
        st.session_state[key] = {}
    st.session_state[_SELECTED] = None
    st.session_state[UPLOADER_GEN] = int(st.session_state.get(UPLOADER_GEN, 0)) + 1
    _persist()


def uploader_key(base: str) -> str:
    """Widget key of an uploader; changes after "Clear all" so the widget comes back empty."""
    return f"{base}.{int(st.session_state.get(UPLOADER_GEN, 0))}"


def note_uploads(key: str, held: dict[str, tuple[str | None, str]]) -> None:
    """Record what an uploader holds this run: {file id: (sha256 or None when it failed, name)}."""
    st.session_state.setdefault(_UPLOADS, {})[key] = dict(held)


def uploads_held(key: str) -> dict[str, tuple[str | None, str]]:
    """What an uploader held at its last run, as `note_uploads` recorded it."""
    return dict(st.session_state.get(_UPLOADS, {}).get(key, {}))


def uploads_changed(key: str, file_ids: set[str]) -> None:
    """The user changed an uploader (its on_change): results of removed chips go too.

    Only called from the widget's callback, so an uploader emptied by a page switch or a reload
    (no user action) keeps the results; "Clear all" and "Forget" remove those.
    """
    uploads = st.session_state.setdefault(_UPLOADS, {})
    before = uploads.get(key, {})
    kept = {fid: v for fid, v in before.items() if fid in file_ids}
    uploads[key] = kept
    held = {sha: name for held_by in uploads.values() for sha, name in held_by.values() if sha}
    for fid, (sha, _name) in before.items():
        if fid in file_ids:
            continue
        st.session_state.get(_ERRORS, {}).pop(fid, None)
        if sha and sha not in held:
            st.session_state.get(QUEUE_KEY, {}).pop(sha, None)  # a removed chip's file is not analysed later
            remove_track(sha)
        elif sha and (track := get_track(sha)) is not None and track.name != held[sha]:
            st.session_state[_TRACKS][sha] = dataclasses.replace(track, name=held[sha])  # the chip left
    _persist()


def in_uploader(sha256: str) -> bool:
    """Whether a chip in some uploader holds this track (so the chip's × is how to remove it)."""
    return any(sha == sha256 for held in st.session_state.get(_UPLOADS, {}).values() for sha, _ in held.values())


def upload_error(file_id: str) -> str | None:
    """The sentence recorded for an upload that failed, if it did."""
    return st.session_state.get(_ERRORS, {}).get(file_id)


def record_upload_error(file_id: str, message: str) -> None:
    """Remember that an upload failed, and why, so it is not retried on every rerun."""
    st.session_state.setdefault(_ERRORS, {})[file_id] = message


def selected_track() -> Analysis | None:
    """The track shown in detail: the user's pick, else the newest, else None."""
    tracks = st.session_state.get(_TRACKS, {})
    sha = st.session_state.get(_SELECTED)
    if sha in tracks:
        return tracks[sha]
    return next(reversed(tracks.values()), None) if tracks else None


def select_track(sha256: str) -> None:
    """Show this track in detail."""
    st.session_state[_SELECTED] = sha256
    _persist()


def selected_window(sha256: str) -> int:
    """Index of the window selected for a track; by default its most confident window."""
    windows = st.session_state.get(_WINDOWS, {})
    if sha256 in windows:
        return windows[sha256]
    track = get_track(sha256)
    if track is None or not track.windows:
        return 0
    return int(track.window_probabilities.max(axis=1).argmax())


def select_window(sha256: str, index: int) -> None:
    """Remember the window selected for a track (survives page switches and reloads)."""
    windows = st.session_state.setdefault(_WINDOWS, {})
    if windows.get(sha256) != int(index):
        windows[sha256] = int(index)
        _persist()
