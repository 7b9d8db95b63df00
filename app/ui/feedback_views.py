"""The Feedback page's shared pieces: the feedback store handle and the stored-corrections browser.

Split out of pages/feedback.py to keep the page short. What a session may see follows its role
(`app.ui.admin_view`): the admin (or the local user when no token is set) sees and deletes every
correction; anyone else sees only the corrections their own session made, and may delete those until a
model has trained on them. Text is shown in dataframe cells and plain text, never as markup.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta

import pandas as pd
import streamlit as st

from app.ui import admin_view, state
from utils.constants import GENRES, NOT_MUSIC_LABEL
from utils.feedback import Correction, FeedbackError, FeedbackStore
from utils.feedback.db import default_url

_PENDING_DELETE = "gl.fb.pending_delete"
_DELETE_ERROR = "gl.fb.delete_error"  # shown once on the rerun after a refused delete


@st.cache_resource(show_spinner=False)
def _open_store(url: str) -> FeedbackStore:
    """One store (connection pool, schema checked once) per database for the whole server."""
    return FeedbackStore(url)


def store() -> FeedbackStore:
    """The feedback store of the configured database ($GENRE_LENS_DB_URL or data/feedback.sqlite3)."""
    return _open_store(default_url())


# ------------------------------------------------------------------------------------ browsing
def _date_bounds(items: list[Correction]) -> tuple[date, date]:
    """First and last day (UTC) with corrections."""
    days = [c.created_at.date() for c in items]
    return min(days), max(days)


def visible_session() -> str | None:
    """Whose corrections this session may see: None = everyone's (an unlocked admin), else its own session id.

    Without an admin token the page still lists only this session's corrections: a `make run` shared
    by mistake must not show one visitor another's file names. The CLI (`feedback list`) lists them all.
    """
    return None if admin_view.enabled() and admin_view.is_admin() else state.session_id()


def filtered_corrections(items: list[Correction]) -> list[Correction]:
    """Filter widgets (genre, model version, date range) and the matching corrections."""
    c1, c2, c3 = st.columns(3)
    genre = c1.selectbox("Genre", ["all", *GENRES, NOT_MUSIC_LABEL],
                         format_func=lambda g: "not music" if g == NOT_MUSIC_LABEL else g)
    versions = sorted({c.model_version for c in items})
    version = c2.selectbox("Model version", ["all", *versions])
    first, last = _date_bounds(items)
    picked = c3.date_input("Date range (UTC)", value=(first, last))
    days = list(picked) if isinstance(picked, tuple | list) else [picked]
    since = datetime.combine(days[0], time.min, UTC) if days else None
    until = datetime.combine(days[-1] + timedelta(days=1), time.min, UTC) if days else None
    return store().list(genre=None if genre == "all" else genre, model_version=None if version == "all" else version,
                        since=since, until=until, session_id=visible_session())


def corrections_table(items: list[Correction], usage: dict[int, list[str]]) -> None:
    """The corrections as dataframe cells (text, never markup); the admin also sees each one's session."""
    with_session = admin_view.enabled() and admin_view.is_admin()
    rows = [{"id": c.id, "file": c.file_name, "corrected to": c.label, "model said": c.predicted,  # what a narrow
             "used by": ", ".join(usage.get(c.id, [])),  # screen shows first; "used by" says why Delete is not offered
             "window (s)": "" if c.window_start_s is None else f"{c.window_start_s:g}–{c.window_end_s:g}",
             "note": c.note or "", "created (UTC)": c.created_at.strftime("%Y-%m-%d %H:%M"),
             "model version": c.model_version}
            | ({"session": (c.session_id or "local")[:8]} if with_session else {})
            for c in items]
    st.dataframe(pd.DataFrame(rows), hide_index=True)


def delete_controls(items: list[Correction], own: str | None = None) -> None:
    """Pick a correction, then confirm, to delete it; `own`: a user's session, who may delete only its own.

    A pending confirmation is only for a correction still offered here: one picked while unlocked, then
    locked, or deleted meanwhile by another admin, is dropped instead of asking about it.
    """
    by_id = {c.id: c for c in items}
    if (failed := st.session_state.pop(_DELETE_ERROR, None)) is not None:
        st.error(failed)
    c1, c2 = st.columns([3, 1], vertical_alignment="bottom")
    picked = c1.selectbox("Delete a correction", [None, *by_id], key="gl.fb.delete_pick",
                          format_func=lambda i: "—" if i is None else f"#{i} {by_id[i].file_name}")
    if c2.button("Delete…", disabled=picked is None):
        st.session_state[_PENDING_DELETE] = picked
    pending = st.session_state.get(_PENDING_DELETE)
    if pending is not None and pending not in by_id:
        st.session_state.pop(_PENDING_DELETE, None)
        pending = None
    if pending is None:
        return
    st.warning(f"Delete correction #{int(pending)}? This cannot be undone.")
    yes, no = st.columns(2)
    if yes.button("Yes, delete it", type="primary"):
        st.session_state.pop(_PENDING_DELETE, None)
        if own is None and not admin_view.is_admin():  # locked since the confirmation was asked for
            st.rerun()
        try:  # the store checks the session again: the page's list is not the authority
            gone = store().delete(int(pending), session_id=own)
            st.toast(f"Deleted correction #{gone.id}.")
        except FeedbackError as exc:  # deleted by someone else meanwhile, or no longer this user's
            st.session_state[_DELETE_ERROR] = str(exc)
        st.rerun()
    if no.button("Cancel"):
        st.session_state.pop(_PENDING_DELETE, None)
        st.rerun()


def browse() -> None:
    """Stored corrections with filters and CSV export; deletion for the admin, and of their own for others."""
    items = store().list(session_id=visible_session())
    if not items:
        st.caption("No corrections stored yet." if visible_session() is None
                   else "You have not stored a correction in this session yet.")
        return
    if visible_session() is not None:
        st.caption("These are the corrections made in this browser session; "
                   + ("the admin sees everyone's." if admin_view.enabled() else
                      "`python -m app feedback list` lists every session's (no admin token is set)."))
    shown = filtered_corrections(items)
    usage = store().usage()
    corrections_table(shown, usage)
    st.download_button(f"Export {len(shown)} as CSV", data=store().to_csv(shown),
                       file_name="genre-lens-corrections.csv", mime="text/csv")
    if admin_view.is_admin():
        delete_controls(shown)
        return
    unused = [c for c in shown if not usage.get(c.id)]  # a trained model's record of what it learned stays whole
    if unused:
        delete_controls(unused, own=state.session_id())
    if len(unused) < len(shown):
        st.caption("A correction that has trained a model (see \"used by\") can be deleted by the admin only.")
