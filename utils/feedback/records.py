"""What a correction is, and the checks every field passes before it reaches the database.

A correction names the audio (sha256 and a sanitised display name that is never used as a path),
the model that was wrong and what it predicted, the right genre(s), optionally the 15 s window it
is about, and a note. Notes are stored verbatim and are only ever data: callers render them as
plain text. Every submission carries an idempotency key, so a double click or a rerun stores one row.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import unicodedata
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np

from utils.constants import GENRES, NOT_MUSIC_LABEL, WINDOW_S


class FeedbackError(ValueError):
    """A correction or a feedback-database request a user can fix; the message says how."""


MAX_NOTE_CHARS = 1000
MAX_KEY_CHARS = 200
SHA256 = re.compile(r"^[0-9a-f]{64}$")


@dataclass(frozen=True)
class SliceEmbeddings:
    """The embeddings of every unique 5 s slice of one audio, as the engine computed them."""

    audio_sha256: str
    embedder_id: str
    embeddings: np.ndarray  # (S, F, D) float32
    slice_starts: np.ndarray  # (S,) seconds
    hop_seconds: float
    frame_seconds: float


@dataclass(frozen=True)
class Correction:
    """One stored correction."""

    id: int
    idempotency_key: str
    audio_sha256: str
    file_name: str
    model_id: str
    model_version: str
    embedder_id: str
    probabilities: dict[str, float]
    genres: tuple[str, ...]
    window_start_s: float | None
    window_end_s: float | None
    note: str | None
    created_at: datetime
    session_id: str | None = None  # opaque id of the browser session that submitted it; None: CLI / before v3

    @property
    def not_music(self) -> bool:
        """The user said this is not music (noise, speech, a tone): no genre for a head to learn."""
        return self.genres == (NOT_MUSIC_LABEL,)

    @property
    def label(self) -> str:
        """What the user corrected it to, in words ("jazz + blues", "not music")."""
        return "not music" if self.not_music else " + ".join(self.genres)

    @property
    def predicted(self) -> str:
        """The genre the model ranked first."""
        return max(self.probabilities, key=self.probabilities.get) if self.probabilities else ""

    def row(self) -> dict[str, Any]:
        """Flat form for tables, JSON and CSV."""
        return {
            "id": self.id, "created_at": self.created_at.isoformat(timespec="seconds"),
            "file_name": self.file_name, "genres": "|".join(self.genres), "predicted": self.predicted,
            "window_start_s": self.window_start_s, "window_end_s": self.window_end_s, "note": self.note,
            "model_version": self.model_version, "model_id": self.model_id, "embedder_id": self.embedder_id,
            "audio_sha256": self.audio_sha256, "probabilities": json.dumps(self.probabilities),
            "idempotency_key": self.idempotency_key, "session_id": self.session_id,
        }


@dataclass(frozen=True)
class AddResult:
    """The stored correction and whether this call created it (False: an identical one existed)."""

    correction: Correction
    created: bool


def trainable(corrections: Iterable[Correction], embedder_id: str) -> list[Correction]:
    """The corrections a model on this embedder can learn from: made with it, and naming genres (a "not music"
    answer names none). Retraining, its request check and the Feedback page's counts all use this one rule."""
    return [c for c in corrections if c.embedder_id == embedder_id and not c.not_music]


# ------------------------------------------------------------------------------------ validation
def validate_genres(genres: Iterable[str] | str) -> tuple[str, ...]:
    """Corrected genres from the label set, deduplicated, in label order; or `NOT_MUSIC_LABEL` alone.

    Anything else is rejected ("not music" and "not_music" are the same answer).
    """
    items = [genres] if isinstance(genres, str) else list(genres or [])
    chosen = set()
    for g in items:
        for part in str(g).split("|"):
            name = part.strip().lower().replace(" ", "_")
            if name not in GENRES and name != NOT_MUSIC_LABEL:
                raise FeedbackError(f"Unknown genre {part.strip()[:40]!r}; choose from: {', '.join(GENRES)} "
                                    f"(or {NOT_MUSIC_LABEL}).")
            chosen.add(name)
    if not chosen:
        raise FeedbackError("Choose at least one genre for the correction.")
    if NOT_MUSIC_LABEL in chosen:
        if len(chosen) > 1:
            raise FeedbackError("A correction says either genres or 'not music', not both.")
        return (NOT_MUSIC_LABEL,)
    return tuple(g for g in GENRES if g in chosen)


_BIDI_CONTROLS = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")


def validate_note(note: str | None) -> str | None:
    """The note as given (verbatim), or None when empty; over-long, control-character or direction-override
    notes are rejected (right-to-left text itself, and the plain marks U+200E/U+200F, are fine)."""
    if note is None or not str(note).strip():
        return None
    note = str(note)
    if len(note) > MAX_NOTE_CHARS:
        raise FeedbackError(f"The note is {len(note)} characters long; keep it to {MAX_NOTE_CHARS} or fewer.")
    if any(unicodedata.category(c) == "Cc" and c not in "\n\r\t" for c in note):
        raise FeedbackError("The note contains control characters; only text, line breaks and tabs are allowed.")
    if any(unicodedata.category(c) == "Cs" for c in note):  # bytes that were not UTF-8 (a shell's stray \xff)
        raise FeedbackError("The note is not valid text (it holds bytes that are not UTF-8); retype it.")
    if any(c in _BIDI_CONTROLS for c in note):  # they reorder what others read ("RTL" drawn as "LTR")
        raise FeedbackError("The note contains invisible text-direction controls (U+202A-U+202E, U+2066-U+2069); "
                            "retype it without them.")
    return note


def validate_window(start: float | None, end: float | None = None) -> tuple[float | None, float | None]:
    """The window (start, end) in seconds, end defaulting to start + 15 s; (None, None) for the whole track."""
    if start is None:
        if end is not None:
            raise FeedbackError("A window end needs a window start.")
        return None, None
    start = float(start)
    end = start + WINDOW_S if end is None else float(end)
    if not (math.isfinite(start) and math.isfinite(end)) or start < 0 or end <= start:
        raise FeedbackError(f"Invalid window {start:g}-{end:g} s: it must start at 0 s or later and end after it.")
    return round(start, 3), round(end, 3)


def validate_probabilities(probabilities: Mapping[str, float] | Sequence[float] | np.ndarray) -> dict[str, float]:
    """{genre: probability} for all ten genres, finite and within [0, 1]."""
    if isinstance(probabilities, Mapping):
        if set(probabilities) != set(GENRES):
            raise FeedbackError("Predicted probabilities must name exactly the ten genres.")
        values = [probabilities[g] for g in GENRES]
    else:
        values = list(np.asarray(probabilities, dtype=np.float64).reshape(-1))
        if len(values) != len(GENRES):
            raise FeedbackError(f"Expected {len(GENRES)} predicted probabilities, got {len(values)}.")
    out = {g: round(float(v), 6) for g, v in zip(GENRES, values, strict=True)}
    if not all(math.isfinite(v) and 0.0 <= v <= 1.0 for v in out.values()):
        raise FeedbackError("Predicted probabilities must be finite numbers between 0 and 1.")
    return out


def short_text(value: str, what: str, limit: int = 200) -> str:
    """A required identifier (model id, version, key) of at most `limit` characters."""
    value = str(value or "").strip()
    if not value or len(value) > limit:
        raise FeedbackError(f"The {what} must be 1-{limit} characters long.")
    if any(unicodedata.category(c) in ("Cc", "Cs") for c in value):  # PostgreSQL text cannot even hold a NUL
        raise FeedbackError(f"The {what} contains control characters or bytes that are not UTF-8.")
    return value


def idempotency_key(audio_sha256: str, genres: Iterable[str], note: str | None, window_start_s: float | None,
                    session_id: str | None = None) -> str:
    """Key of a submission: the same audio, genres, note and window give the same key (one stored row).

    With a session, the session is part of the key: two users sending the same correction get a row
    each, and neither is told about (or shown) the other's.
    """
    start = None if window_start_s is None else round(float(window_start_s), 3)
    fields: list[Any] = [audio_sha256, sorted(validate_genres(genres)), validate_note(note), start]
    if session_id:
        fields.append(session_id)
    return "auto-" + hashlib.sha256(json.dumps(fields).encode()).hexdigest()


def validate_session(session_id: str | None) -> str | None:
    """An opaque session id (1-64 characters of [A-Za-z0-9_-]) or None."""
    if session_id is None or session_id == "":
        return None
    if not re.fullmatch(r"[A-Za-z0-9_-]{1,64}", str(session_id)):
        raise FeedbackError("A session id must be 1-64 letters, digits, '-' or '_'.")
    return str(session_id)
