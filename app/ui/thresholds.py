"""The session's decision threshold: the sidebar slider's value, and analyses judged at it.

Kept apart from `app.ui.state` (which decides *which* threshold a session follows: its model's default,
or the user's own) so that module stays one job. A widget key, so it has no `gl.` prefix.
"""

from __future__ import annotations

import dataclasses

import streamlit as st

from app.analysis import Analysis
from utils.constants import DEFAULT_THRESHOLD

THRESHOLD_KEY = "threshold"


def threshold() -> float:
    """The multi-label decision threshold chosen in the sidebar."""
    return float(st.session_state.get(THRESHOLD_KEY, DEFAULT_THRESHOLD))


def with_threshold(analysis: Analysis, value: float | None = None) -> Analysis:
    """A shallow copy of an analysis judged at the sidebar threshold (the cached one is shared, never mutated)."""
    value = threshold() if value is None else value
    return analysis if analysis.threshold == value else dataclasses.replace(analysis, threshold=value)
