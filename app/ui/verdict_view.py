"""The verdict line at the top of the Analysis: what the model concludes, before any chart."""

from __future__ import annotations

import streamlit as st

from app.analysis import Analysis
from models.verdict import GENRE, NOT_MUSIC

NOT_MUSIC_HELP = ("It is farther from the music the model was trained on than almost every GTZAN track it has "
                  "not seen: noise, tones, speech, room tone or clicks, or a kind of audio it knows nothing about. "
                  "The genre bars below are what the model would say if forced, not a verdict.")
UNCERTAIN_HELP = ("No genre reaches the decision threshold ({t:.0%}, set in the sidebar). The closest genres are "
                  "named, not claimed.")


def render_verdict(a: Analysis) -> None:
    """The verdict as the first heading of the Analysis, with a note that says why when it is no genre."""
    v = a.verdict
    st.markdown(f"#### {v.text.replace(': ', ' · ', 1) if v.kind != GENRE else v.text}")
    if v.kind == NOT_MUSIC:
        st.warning(NOT_MUSIC_HELP, icon=":material/block:")
    elif v.kind != GENRE:
        st.info(UNCERTAIN_HELP.format(t=v.threshold), icon=":material/help:")
