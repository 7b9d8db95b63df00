"""The sentence under a window's charts on the Analyze page: which slice mattered, and what it heard."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from app.analysis import WindowResult
from utils.constants import SLICE_S

EQUAL_ATTENTION = 0.02  # attention spread (max - min) below which a window's slices count as equally weighted


def equal_attention(window: WindowResult) -> bool:
    """Whether the head weighed the window's slices alike (the linear heads of v3-v5 always do)."""
    return float(np.ptp(window.attention)) <= EQUAL_ATTENTION


def explain_window(window: WindowResult, labels: Sequence[str]) -> str:
    """One sentence naming the 5 s slice that drove a window's decision and what it heard.

    A head with uniform attention (the linear heads of v3-v5) gives every slice the same weight, so no slice
    "drove" the window: the sentence says so and names the slice that sounds most like the window's verdict.
    """
    window_top = int(np.argmax(window.probabilities))
    verdict = f"{labels[window_top]} ({window.probabilities[window_top]:.0%})"
    attention = np.asarray(window.attention, dtype=float)
    if equal_attention(window):
        j = int(np.argmax(np.asarray(window.slice_probabilities)[:, window_top]))
        start = float(window.slice_starts_s[j])
        return (
            f"This model weighs the window's {len(attention)} slices equally ({attention[j]:.0%} each). "
            f"The {start:.0f}–{start + SLICE_S:.0f} s slice sounds most like the window's verdict of {verdict}: "
            f"{window.slice_probabilities[j][window_top]:.0%} on its own."
        )
    j = int(np.argmax(attention))
    start = float(window.slice_starts_s[j])
    slice_top = int(np.argmax(window.slice_probabilities[j]))
    agree = "agreeing with" if slice_top == window_top else "against"
    return (
        f"The {start:.0f}–{start + SLICE_S:.0f} s slice drove this window: it got {attention[j]:.0%} of the "
        f"attention and on its own sounds like {labels[slice_top]} "
        f"({window.slice_probabilities[j][slice_top]:.0%}), {agree} the window's verdict of {verdict}."
    )
