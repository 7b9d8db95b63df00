"""Streamlit glue for the linked player and its static fallback, called by the Analyze page.

`render_linked` draws the player (or says it cannot, so the page draws today's static charts),
`render_static_strip` is the slice strip for that fallback, and `play_window_button` is "Play this
window" beside the window details in either mode. Window picks from the player, the strip and the
page's slider all land in one place (`select`), so the rest of the page follows any of them.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import streamlit as st

from app.analysis import Analysis
from app.ui import explain_views, state
from app.ui.player import available, linked_player
from app.ui.player.payload import Overlay, PlayRequest, player_args
from app.ui.slices import slice_strip
from app.ui.track_charts import slice_strip_figure

log = logging.getLogger("genre_lens.player")
STATIC_KEY = "gl.static_charts"  # the user's "Static charts" switch (for a browser that cannot show the player)
PLAY_KEY = "gl.play_request"  # {sha256: PlayRequest} of the last "Play this window" click
STATIC_PLAY_KEY = "gl.static_play"  # {sha256: window index} for the fallback's window player
_FAILED = "gl.player_failed"  # set when the component raised this session


def slider_key(a: Analysis) -> str:
    """The page's window slider key (pages/analyze.py `pick_window`)."""
    return f"window-{a.sha256[:16]}"


def select(a: Analysis, index: int) -> None:
    """Select a window before the rerun draws anything: the slider and the session follow."""
    index = min(max(int(index), 0), len(a.windows) - 1)
    st.session_state[slider_key(a)] = index
    state.select_window(a.sha256, index)


def use_player() -> bool:
    """Whether this run draws the linked player (setting, front-end files, the user's switch, no failure)."""
    return available() and not st.session_state.get(STATIC_KEY) and not st.session_state.get(_FAILED)


def _on_player_click(a: Analysis, key: str) -> None:
    """The player reported a click: select the window it names."""
    value = st.session_state.get(key)
    if isinstance(value, dict) and isinstance(value.get("window"), int | float):
        select(a, int(value["window"]))


def _static_switch() -> None:
    """'Static charts': for a browser that blocks the player's frame (or a user who prefers plotly)."""
    if available() and not st.session_state.get(_FAILED):
        st.toggle("Static charts", key=STATIC_KEY,
                  help="Show the plain charts instead of the linked player, e.g. when the player does not "
                       "appear in your browser.")


def render_linked(a: Analysis, index: int, genres: Sequence[str] | None, stacked: bool) -> bool:
    """Draw the linked player for a track; False when the page must draw the static charts instead."""
    _static_switch()
    if not use_player():
        return False
    shown = explain_views.shown_saliency(a, index)
    overlay = None if shown is None else Overlay(shown[0].map, shown[0].spectrogram, shown[0].genre, shown[1],
                                                 shown[2])
    audio = state.track_audio(a.sha256)
    play = st.session_state.get(PLAY_KEY, {}).get(a.sha256)
    key = f"player-{a.sha256[:16]}"
    try:
        meta, data = player_args(a, index, genres, stacked, overlay, play, audio[1] if audio else None)
        linked_player(meta, data, audio[0] if audio else None, key=key,
                      on_change=lambda: _on_player_click(a, key))
    except Exception:  # the component could not be drawn: say so once, and fall back for this session
        log.exception("the linked player failed; falling back to the static charts")
        st.session_state[_FAILED] = True
        st.caption("The linked player could not be shown, so the static charts are drawn instead.")
        if audio:
            st.audio(audio[0], format=audio[1])
        return False
    st.caption("One time axis: genre confidence per window, the mel spectrogram"
               + (f" with the saliency for {shown[0].genre}" if shown else "")
               + ", every 5 s slice's top genre (averaged over the windows holding it) and the attention "
                 "each slice got. Grey attention bars: the mean over windows; orange: the selected window.")
    return True


def _on_strip_click(a: Analysis, chart_key: str) -> None:
    """A click on the static slice strip selects that slice's window."""
    points = (st.session_state.get(chart_key) or {}).get("selection", {}).get("points", [])
    if points and points[0].get("customdata") is not None:
        custom = points[0]["customdata"]
        select(a, int(custom[0] if isinstance(custom, list | tuple) else custom))


def render_static_strip(a: Analysis, index: int) -> None:
    """The slice strip as a plotly chart, aligned with the static timeline and spectrogram."""
    key = f"strip-{a.sha256[:16]}"
    st.plotly_chart(slice_strip_figure(a, slice_strip(a), index), key=key, selection_mode="points",
                    on_select=lambda: _on_strip_click(a, key))


def _request_play(a: Analysis, index: int) -> None:
    """'Play this window' was clicked: ask the player (or the fallback) to play it."""
    w = a.windows[index]
    requests = st.session_state.setdefault(PLAY_KEY, {})
    previous = requests.get(a.sha256)
    requests[a.sha256] = PlayRequest((previous.id + 1) if previous else 1, float(w.start_s), float(w.end_s))
    st.session_state.setdefault(STATIC_PLAY_KEY, {})[a.sha256] = index


def play_window_button(a: Analysis, index: int) -> None:
    """'Play this window': the linked player plays the window and stops at its end; without the
    player, an audio element cued to the window appears under the button."""
    audio = state.track_audio(a.sha256)
    w = a.windows[index]
    st.button("Play this window", icon=":material/play_arrow:", key=f"play-window-{a.sha256[:16]}",
              on_click=_request_play, args=(a, index), disabled=audio is None,
              help=f"Listen to {w.start_s:.0f}–{w.end_s:.0f} s" if audio else "This upload was too large to keep.")
    if audio and not use_player() and st.session_state.get(STATIC_PLAY_KEY, {}).get(a.sha256) == index:
        st.audio(audio[0], format=audio[1], start_time=float(w.start_s), end_time=float(w.end_s), autoplay=True)
