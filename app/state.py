"""Streamlit glue: the cached engine and this browser session's tracks and selections.

This is the ONE place the engine is wrapped in `st.cache_resource`. Pages never build an `Engine`
themselves; they call `get_engine()` and the session helpers below.

Session layout (all keys live under `st.session_state`, prefixed `gl.`):
  - `gl.tracks`: {sha256 of the uploaded bytes: Analysis}, in upload order. The same file uploaded
    twice (even under another name) is found here and not analysed again.
  - `gl.audio`: {sha256: (bytes, mime type)} so the player works after the upload widget is cleared.
  - `gl.errors`: {upload file id: user-facing sentence} for files that could not be analysed, so a
    bad file is reported once per upload and not re-decoded on every rerun.
  - `gl.selected_track`: sha256 of the track shown in detail; `gl.windows`: {sha256: window index}.
  - `gl.version`: the model version picked in the sidebar (None = the current one).
  - `threshold`: the sidebar slider (a widget key, so it has no prefix).

For other pages (feedback, explore): `analysed_tracks()` lists this session's analyses, newest
last; each `Analysis` carries `slice_embeddings`, `model["id"]` and `sha256`, which is what a
correction needs. `get_track(sha)`, `selected_track()` and `selected_window(sha)` give the track
and window the user is looking at on the Analyze page.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import streamlit as st

from app.analysis import Analysis
from app.engine import Engine
from models.checkpoint import (  # noqa: F401  (CHECKPOINTS_ENV is re-exported for pages and tests)
    CHECKPOINTS_ENV,
    checkpoint_root,
    current_version,
    list_versions,
    read_card,
    resolve_bundle,
)
from utils.constants import DEFAULT_THRESHOLD

DEVICE_ENV = "GENRE_LENS_DEVICE"  # "cpu", "cuda", "cuda:1"; default: CUDA when present

_TRACKS, _AUDIO, _ERRORS = "gl.tracks", "gl.audio", "gl.errors"
_SELECTED, _WINDOWS, _VERSION = "gl.selected_track", "gl.windows", "gl.version"
THRESHOLD_KEY = "threshold"
MAX_KEPT_AUDIO_BYTES = 50 * 1024 * 1024  # bigger uploads are analysed but not kept for the player


# ----------------------------------------------------------------------------------- model + engine
def available_versions() -> list[str]:
    """Every bundle version under the checkpoint root, oldest first."""
    return list_versions(checkpoint_root())


def active_version() -> str | None:
    """The version this session uses: the sidebar's pick if it still exists, else the current one."""
    picked = st.session_state.get(_VERSION)
    if picked and picked in available_versions():
        return picked
    return current_version(checkpoint_root())


def set_active_version(version: str | None) -> None:
    """Remember the sidebar's model pick (None follows the current model)."""
    st.session_state[_VERSION] = version


def bundle_dir(version: str | None = None) -> Path:
    """Folder of a version (default: the active one); raises CheckpointError when there is none."""
    return resolve_bundle(version or active_version(), checkpoint_root())


@st.cache_resource(show_spinner="Loading the model…", max_entries=2)
def _load_engine(folder: str, weights_sha256: str, device: str | None) -> Engine:
    """Build an engine once per (bundle folder, weights hash, device) for the whole server.

    The hash is part of the key only so that a bundle rewritten in place (a promoted or retrained
    model) gets a fresh engine without a restart; `Engine` re-checks it against model.pt anyway.
    """
    return Engine(checkpoint=folder, device=device)


def get_engine(version: str | None = None) -> Engine:
    """The shared engine for a version (default: active); raises CheckpointError if no model exists."""
    folder = bundle_dir(version).resolve()
    card = read_card(folder)
    return _load_engine(str(folder), card.weights_sha256, os.environ.get(DEVICE_ENV) or None)


# --------------------------------------------------------------------------------- session helpers
def init_session() -> None:
    """Create the session keys once; safe to call on every rerun."""
    defaults = {_TRACKS: {}, _AUDIO: {}, _ERRORS: {}, _SELECTED: None, _WINDOWS: {}, _VERSION: None,
                THRESHOLD_KEY: DEFAULT_THRESHOLD}
    for key, value in defaults.items():
        st.session_state.setdefault(key, value)


def threshold() -> float:
    """The multi-label decision threshold chosen in the sidebar."""
    return float(st.session_state.get(THRESHOLD_KEY, DEFAULT_THRESHOLD))


def with_threshold(analysis: Analysis, value: float | None = None) -> Analysis:
    """A shallow copy of an analysis judged at the sidebar threshold (the cached one is shared, never mutated)."""
    value = threshold() if value is None else value
    return analysis if analysis.threshold == value else dataclasses.replace(analysis, threshold=value)


def analysed_tracks() -> list[Analysis]:
    """This session's analyses in upload order (oldest first); empty before the first upload."""
    return list(st.session_state.get(_TRACKS, {}).values())


def get_track(sha256: str) -> Analysis | None:
    """The session's analysis of the file with this sha256, if it was analysed."""
    return st.session_state.get(_TRACKS, {}).get(sha256)


def add_track(analysis: Analysis, audio: bytes | None = None, mime: str = "audio/wav") -> bool:
    """Store an analysis (and its audio for the player); False when it was already there."""
    tracks = st.session_state.setdefault(_TRACKS, {})
    is_new = analysis.sha256 not in tracks
    tracks[analysis.sha256] = analysis
    if audio is not None and len(audio) <= MAX_KEPT_AUDIO_BYTES:
        st.session_state.setdefault(_AUDIO, {})[analysis.sha256] = (audio, mime)
    if is_new:
        select_track(analysis.sha256)
    return is_new


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


def clear_tracks() -> None:
    """Forget every track and upload error of this session."""
    for key in (_TRACKS, _AUDIO, _ERRORS, _WINDOWS):
        st.session_state[key] = {}
    st.session_state[_SELECTED] = None


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
    """Remember the window selected for a track (survives page switches)."""
    st.session_state.setdefault(_WINDOWS, {})[sha256] = int(index)
