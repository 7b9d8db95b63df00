"""Each browser session's results, kept on the server so that a reload of the same session finds them.

Streamlit forgets a session's state when its page reloads. This store keeps what one session
analysed (its analyses, with the names it uploaded them under, its audio, its selections) under a
random token only that session knows: the token travels in the page URL, and optionally the record
is bound to the browser (a digest of a cookie the browser already holds), so a copied link alone
does not open it. Nothing is keyed by audio hash, so knowing a file's hash never reveals who uploaded
it, under which name, or what they saw. Records expire after an idle time; the store is capped in
records and bytes (the longest idle go first). Analyses are stored as given and never mutated:
they may share arrays with the engine's cache. No Streamlit here.
"""

from __future__ import annotations

import binascii
import hashlib
import re
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from app.analysis import Analysis

TOKEN_RE = re.compile(r"^[A-Za-z0-9_-]{32,64}$")
DEFAULT_TTL_S = 3600.0  # an hour without a rerun and the session's results are gone
DEFAULT_MAX_SESSIONS = 500
DEFAULT_MAX_BYTES = 1 << 30  # all sessions together
DEFAULT_MAX_SESSION_BYTES = 256 << 20  # one session; audio goes first, then the oldest tracks


@dataclass
class SessionData:
    """What one session keeps: tracks in upload order, their audio, the selected track and windows."""

    tracks: dict[str, Analysis] = field(default_factory=dict)
    audio: dict[str, tuple[bytes, str]] = field(default_factory=dict)
    selected: str | None = None
    windows: dict[str, int] = field(default_factory=dict)

    def copy(self) -> SessionData:
        """Shallow copy: new dicts, the same (never mutated) analyses and bytes."""
        return SessionData(dict(self.tracks), dict(self.audio), self.selected, dict(self.windows))

    @property
    def nbytes(self) -> int:
        """Approximate memory held: audio bytes plus the analyses' big arrays."""
        total = sum(len(data) for data, _ in self.audio.values())
        for a in self.tracks.values():
            total += int(getattr(a.slice_embeddings, "nbytes", 0) or 0) + int(a.spectrogram.db.nbytes)
        return total


@dataclass
class _Record:
    owner: str
    data: SessionData
    last_seen: float


def new_token() -> str:
    """An unguessable session token (192 random bits, URL-safe)."""
    return secrets.token_urlsafe(24)


def is_token(value: object) -> bool:
    """Whether a value looks like a token this store issues (anything else is ignored, never adopted)."""
    return isinstance(value, str) and bool(TOKEN_RE.match(value))


def browser_key(xsrf_cookie: str | None) -> str:
    """A digest of the secret inside Streamlit's XSRF cookie ('' when absent or unreadable).

    The cookie's text is re-masked on every page load (`2|mask|masked token|time`) but the token
    under the mask stays for the life of the browser's cookie, so it identifies this browser
    without storing the cookie itself.
    """
    if not xsrf_cookie:
        return ""
    parts = xsrf_cookie.split("|")
    try:
        if len(parts) == 4 and parts[0] == "2":
            mask, masked = binascii.unhexlify(parts[1]), binascii.unhexlify(parts[2])
            if not mask:
                return ""
            token = bytes(b ^ mask[i % len(mask)] for i, b in enumerate(masked))
        elif len(parts) == 1:
            token = binascii.unhexlify(parts[0])
        else:
            return ""
    except (binascii.Error, ValueError):
        return ""
    return hashlib.sha256(b"genre-lens/browser/" + token).hexdigest() if token else ""


def public_id(token: str) -> str:
    """An opaque, stable id of a session for records others may read (feedback rows): not the token."""
    return hashlib.sha256(b"genre-lens/session/" + token.encode()).hexdigest()[:32]


class SessionStore:
    """Thread-safe {token: session data} with idle expiry, a record cap and byte caps."""

    def __init__(
        self,
        ttl_s: float = DEFAULT_TTL_S,
        max_sessions: int = DEFAULT_MAX_SESSIONS,
        max_bytes: int = DEFAULT_MAX_BYTES,
        max_session_bytes: int = DEFAULT_MAX_SESSION_BYTES,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.ttl_s, self.max_sessions = float(ttl_s), int(max_sessions)
        self.max_bytes, self.max_session_bytes = int(max_bytes), int(max_session_bytes)
        self._clock = clock
        self._records: dict[str, _Record] = {}
        self._lock = threading.Lock()

    def __len__(self) -> int:
        with self._lock:
            self._expire()
            return len(self._records)

    @property
    def nbytes(self) -> int:
        """Bytes held by all live records."""
        with self._lock:
            self._expire()
            return sum(r.data.nbytes for r in self._records.values())

    def create(self, owner: str = "") -> str:
        """Start an empty record for a new session; returns its token."""
        token = new_token()
        with self._lock:
            self._expire()
            self._records[token] = _Record(owner, SessionData(), self._clock())
            self._evict(keep=token)
        return token

    def load(self, token: object, owner: str = "") -> SessionData | None:
        """The session's data (a copy) if the token is live and belongs to this browser, else None."""
        if not is_token(token):
            return None
        with self._lock:
            self._expire()
            record = self._records.get(token)  # type: ignore[arg-type]
            if record is None or not secrets.compare_digest(record.owner, owner):
                return None
            record.last_seen = self._clock()
            return record.data.copy()

    def save(self, token: str, data: SessionData, owner: str = "") -> SessionData:
        """Replace the session's data (trimmed to the per-session cap); returns what was kept.

        Only call it with a token this session got from `create` or a successful `load`: a record
        that expired meanwhile is recreated for the same session, never for a token from a URL.
        """
        if not is_token(token):
            raise ValueError("not a session token")
        kept = self._trim(data.copy())
        with self._lock:
            self._expire()
            record = self._records.get(token)
            if record is not None and not secrets.compare_digest(record.owner, owner):
                raise PermissionError("this session token belongs to another browser")
            self._records[token] = _Record(owner, kept, self._clock())
            self._evict(keep=token)
        return kept.copy()

    def touch(self, token: object) -> bool:
        """Keep a live session from expiring; False when it is not (or no longer) stored."""
        if not is_token(token):
            return False
        with self._lock:
            self._expire()
            record = self._records.get(token)  # type: ignore[arg-type]
            if record is None:
                return False
            record.last_seen = self._clock()
            return True

    # ------------------------------------------------------------------ internals (lock held)
    def _expire(self) -> None:
        """Drop records idle for longer than the TTL."""
        now = self._clock()
        for token in [t for t, r in self._records.items() if now - r.last_seen > self.ttl_s]:
            del self._records[token]

    def _evict(self, keep: str) -> None:
        """Drop the longest-idle records (never `keep`) until both caps hold."""
        def over() -> bool:
            return len(self._records) > self.max_sessions or sum(
                r.data.nbytes for r in self._records.values()) > self.max_bytes

        while over():
            idle = sorted((r.last_seen, t) for t, r in self._records.items() if t != keep)
            if not idle:
                break
            del self._records[idle[0][1]]

    def _trim(self, data: SessionData) -> SessionData:
        """Fit one session into its cap: drop audio from the oldest tracks first, then the oldest tracks."""
        for sha in list(data.tracks):
            if data.nbytes <= self.max_session_bytes:
                break
            data.audio.pop(sha, None)
        for sha in list(data.tracks):
            if data.nbytes <= self.max_session_bytes or len(data.tracks) <= 1:
                break
            data.tracks.pop(sha)
            data.windows.pop(sha, None)
        if data.selected not in data.tracks:
            data.selected = next(reversed(data.tracks), None) if data.tracks else None
        return data
