"""Roles on the Feedback page: the admin unlock panel and `is_admin()` (Streamlit glue over utils/admin.py).

The token comes from $GENRE_LENS_ADMIN_TOKEN, else `admin_token` in `.streamlit/secrets.toml`.
With one set, deleting others' corrections, retraining and promoting need this session to unlock
(anyone may delete their own until a model trains on it); with
none (the local `make run` default) the one local user may do everything, and the page says so.
The unlock lasts for this browser session only (a reload asks again) and ends if the token changes.
"""

from __future__ import annotations

import hashlib
import logging

import streamlit as st

from app.ui import state
from utils.admin import AdminGate
from utils.settings import ADMIN_SECRET_KEY, ADMIN_TOKEN_ENV
from utils.text import plural

log = logging.getLogger("genre_lens.admin")
_UNLOCKED = "gl.admin"  # the fingerprint of the token this session unlocked with


def configured_token() -> str | None:
    """The admin token: the environment first, then Streamlit secrets (absent secrets file = none)."""
    return state.app_settings().admin_token


def _fingerprint(token: str | None) -> str:
    """A short digest naming a token without keeping it in session state."""
    return hashlib.sha256((token or "").encode()).hexdigest()[:16] if token else ""


@st.cache_resource(show_spinner=False, max_entries=4)
def _gate(fingerprint: str, _token: str | None) -> AdminGate:
    """One gate (and so one set of failure counters) per configured token for the whole server."""
    return AdminGate(_token)


def gate() -> AdminGate:
    """The gate for the token configured right now."""
    token = configured_token()
    return _gate(_fingerprint(token), token)


def is_admin() -> bool:
    """Whether this session may delete corrections, retrain and promote."""
    token = configured_token()
    if token is None:
        return True
    return st.session_state.get(_UNLOCKED) == _fingerprint(token)


def enabled() -> bool:
    """Whether roles are on (an admin token is configured)."""
    return configured_token() is not None


def admin_panel() -> None:
    """Who may do what, and the unlock form when a token is set."""
    g = gate()
    if not g.enabled:
        st.caption(f"No admin token is set (${ADMIN_TOKEN_ENV} or `{ADMIN_SECRET_KEY}` in the secrets), so this is a "
                   "single-user local setup: you may delete your corrections, retrain and promote. Set a token "
                   "before you share this app.")
        return
    if is_admin():
        left, right = st.columns([4, 1], vertical_alignment="center")
        left.success("Admin unlocked for this browser session: you may delete corrections, retrain and promote.",
                     icon=":material/lock_open:")
        if right.button("Lock", key="gl.admin.lock"):
            st.session_state.pop(_UNLOCKED, None)
            st.rerun()
        if g.weak:  # said to the admin only: a hint for guessers otherwise
            st.warning("The admin token is short, so wrong guesses from any session can lock you out for a few "
                       "minutes; a token of 20 or more random characters avoids that.", icon=":material/key:")
        return
    st.caption("Anyone may submit corrections, and delete their own until a model has trained on them. Deleting "
               "others', retraining and promoting are for the admin; you see only the corrections made in this "
               "browser session.")
    wait = g.retry_after(state.session_id())
    with st.form("gl.admin.unlock", clear_on_submit=True):
        typed = st.text_input("Admin token", type="password", disabled=wait > 0)
        submitted = st.form_submit_button("Unlock", disabled=wait > 0)
    if wait > 0:
        st.warning(f"Too many wrong tokens; unlocking is paused for {plural(round(wait / 60) or 1, 'minute')}.",
                   icon=":material/lock_clock:")
        return
    if submitted:
        result = g.attempt(state.session_id(), typed)
        if result.granted:
            st.session_state[_UNLOCKED] = _fingerprint(configured_token())
            st.rerun()
        st.error(result.message, icon=":material/lock:")
