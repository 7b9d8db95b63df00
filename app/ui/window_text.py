"""The sentence under a window's charts on the Analyze page: which slice mattered, and what it heard.

The sentence follows the track's verdict (models/verdict.py): a not-music track's window gets no genre
and no percentage (a tone's "classical 100%" would read as confidence), and an uncertain track's window
names its closest genre as closest, never as a verdict.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from app.analysis import WindowResult
from models.verdict import GENRE, NOT_MUSIC, UNCERTAIN
from utils.constants import SLICE_S

EQUAL_ATTENTION = 0.02  # attention spread (max - min) below which a window's slices count as equally weighted


def equal_attention(window: WindowResult) -> bool:
    """Whether the head weighed the window's slices alike (the linear heads of v3-v5 always do)."""
    return float(np.ptp(window.attention)) <= EQUAL_ATTENTION


def window_call(window: WindowResult, labels: Sequence[str], kind: str = GENRE,
                threshold: float | None = None) -> str:
    """How the sentence names the window's top genre: a verdict only when the track has one and the window
    reaches the threshold; otherwise its closest genre, said to be under the threshold or not sure."""
    top = int(np.argmax(window.probabilities))
    p = float(window.probabilities[top])
    if kind == UNCERTAIN:
        return f"the window's closest genre, {labels[top]} ({p:.0%}; the model is not sure of this track)"
    if threshold is not None and p < threshold:
        return f"the window's closest genre, {labels[top]} ({p:.0%}, under the {threshold:.0%} threshold)"
    return f"the window's verdict of {labels[top]} ({p:.0%})"


def explain_not_music(window: WindowResult, labels: Sequence[str]) -> str:
    """A not-music window: no genre and no percentages, only the forced pick and which slice was weighed most."""
    forced = labels[int(np.argmax(window.probabilities))]
    text = (f"This track is not music, so this window has no genre: forced to choose, the model would pick {forced}. "
            "The genre numbers in the charts are that forced pick, not confidence.")
    if equal_attention(window):
        return text + f" The model weighs the window's {len(window.attention)} slices equally."
    j = int(np.argmax(window.attention))
    start = float(window.slice_starts_s[j])
    return text + f" The {start:.0f}–{start + SLICE_S:.0f} s slice got the most attention ({window.attention[j]:.0%})."


def explain_window(window: WindowResult, labels: Sequence[str], kind: str = GENRE,
                   threshold: float | None = None) -> str:
    """One sentence naming the 5 s slice that drove a window's decision and what it heard.

    A head with uniform attention (the linear heads of v3-v5) gives every slice the same weight, so no slice
    "drove" the window: the sentence says so and names the slice that sounds most like the window's top genre.
    `kind` is the track's verdict and `threshold` its decision threshold: see `window_call`.
    """
    if kind == NOT_MUSIC:
        return explain_not_music(window, labels)
    window_top = int(np.argmax(window.probabilities))
    call = window_call(window, labels, kind, threshold)
    attention = np.asarray(window.attention, dtype=float)
    if equal_attention(window):
        j = int(np.argmax(np.asarray(window.slice_probabilities)[:, window_top]))
        start = float(window.slice_starts_s[j])
        return (
            f"This model weighs the window's {len(attention)} slices equally ({attention[j]:.0%} each). "
            f"The {start:.0f}–{start + SLICE_S:.0f} s slice sounds most like {call}: "
            f"{window.slice_probabilities[j][window_top]:.0%} on its own."
        )
    j = int(np.argmax(attention))
    start = float(window.slice_starts_s[j])
    slice_top = int(np.argmax(window.slice_probabilities[j]))
    agree = "agreeing with" if slice_top == window_top else "against"
    return (
        f"The {start:.0f}–{start + SLICE_S:.0f} s slice drove this window: it got {attention[j]:.0%} of the "
        f"attention and on its own sounds like {labels[slice_top]} "
        f"({window.slice_probabilities[j][slice_top]:.0%}), {agree} {call}."
    )
