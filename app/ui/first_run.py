"""First-run help on the Analyze page: what Genre Lens does, in two lines, and an example to try.

The example is `utils.example_audio`'s synthesised drum-and-bass-line loop (code-made, so the
project may ship it; never GTZAN or anyone's recording), rendered once into the user cache.
"""

from __future__ import annotations

import logging

import streamlit as st

from models.embedders.base import cache_root
from utils.example_audio import EXAMPLE_NAME, example_bytes, example_wav

log = logging.getLogger("genre_lens.first_run")
ERROR_KEY = "gl.example"  # where a failed example analysis records its sentence (state.record_upload_error)
BUTTON_KEY = "gl.try_example"


def example_audio() -> tuple[str, bytes]:
    """(file name, WAV bytes) of the example, from the cache (written at first use) or made in memory."""
    try:
        return EXAMPLE_NAME, example_wav(cache_root() / "example").read_bytes()
    except OSError:  # a read-only home: make it in memory instead
        log.warning("the example could not be cached; synthesising it in memory", exc_info=True)
        return EXAMPLE_NAME, example_bytes()


def render_help(max_minutes: float) -> bool:
    """The two-line welcome and the "Analyse an example" button; True when the button was pressed."""
    with st.container(border=True):
        st.markdown(
            "**New here?** Drop a song above and Genre Lens tells which of ten genres it sounds like, window "
            "by window.  \n"
            "Then click any moment on the spectrogram to hear it and see which 5 seconds swayed the model "
            f"(files up to {max_minutes:.0f} minutes are analysed)."
        )
        return st.button("Analyse an example", icon=":material/play_circle:", key=BUTTON_KEY, type="primary",
                         help="A 30 s reggae-style loop (drums, bass line, off-beat chords) made by code "
                              "for this demo; no real recording.")
