"""Small display helpers: the display spectrogram's scale for silence, and plural words in UI sentences."""

import numpy as np

from tests.helpers.data import synth_music
from utils.spectrogram import display_spectrogram
from utils.text import md_escape, plural


def test_silence_is_drawn_at_the_floor_not_as_the_loudest_colour() -> None:
    """Relative to its own peak, an all-zero signal came out at 0 dB everywhere: a solid bright image."""
    silent = display_spectrogram(np.zeros(16000 * 4, np.float32), 16000)
    assert silent.db.size and np.all(silent.db == -80.0)
    hiss = display_spectrogram(np.random.default_rng(0).normal(0, 1e-8, 16000 * 4).astype(np.float32), 16000)
    assert np.all(hiss.db == -80.0)  # far below any audible level: silence too
    music = display_spectrogram(synth_music(4.0, 16000), 16000)
    assert music.db.max() == 0.0 and music.db.min() < -40  # music keeps its own peak-relative scale


def test_plural() -> None:
    assert [plural(n, "window") for n in (0, 1, 2)] == ["0 windows", "1 window", "2 windows"]
    assert plural(1, "upload was", "uploads were") == "1 upload was"
    assert plural(3, "correction applies", "corrections apply") == "3 corrections apply"


def test_md_escape_drops_controls_and_direction_overrides_but_keeps_emoji_joiners() -> None:
    assert md_escape("bad \u202eVAW.exe\x1b[2J\nx") == r"bad VAW\.exe\[2J x"
    family = "\U0001f468\u200d\U0001f469\u200d\U0001f467"
    assert md_escape(family) == family


def test_md_escape_keeps_tabs_and_line_breaks_as_spaces() -> None:
    """Dropping them merged words: 'a\\tb' became 'ab' in card notes and error texts."""
    assert md_escape("a\tb\r\nc\u2028d") == "a b  c d"
