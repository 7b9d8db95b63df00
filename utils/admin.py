"""Who may change the model for everyone: the admin token check, with lock-outs. No Streamlit here.

With a token configured, deleting corrections, retraining and promoting need it; everyone may
still submit corrections. The token is compared in constant time (both sides hashed first, so not
even its length leaks). Failures are limited twice: a session is locked out for `lockout_s` after
`max_failures` wrong tries, and, for a token shorter than `STRONG_TOKEN_CHARS`, all sessions together
get at most `global_max_failures` wrong tries per `global_window_s` (a new browser session is free to
make, so a per-session limit alone would not stop guessing a short token). The shared limit lets anyone
keep the admin locked out by guessing, so a long token, which no guessing rate can find, goes without
it. An empty submission is not a guess and counts for nothing. Without a token the app is a local
single-user tool and everything is allowed.
"""

from __future__ import annotations

import hashlib
import hmac
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from utils import settings

STRONG_TOKEN_CHARS = 20  # e.g. secrets.token_urlsafe(16): 22 characters, 128 random bits
MAX_FAILURES = 5
LOCKOUT_S = 300.0
GLOBAL_MAX_FAILURES = 20
GLOBAL_WINDOW_S = 300.0


def token_from_env() -> str | None:
    """The admin token from $GENRE_LENS_ADMIN_TOKEN (None when unset or blank)."""
    return settings.load().admin_token


def _digest(value: str) -> bytes:
    """Fixed-length digest, so the comparison takes the same time whatever was typed."""
    return hashlib.sha256(value.encode("utf-8", "surrogatepass")).digest()


@dataclass(frozen=True)
class Attempt:
    """The outcome of one unlock attempt: granted, or why not and what to tell the user."""

    granted: bool
    message: str
    retry_after_s: float = 0.0


class AdminGate:
    """Checks admin unlock attempts against one token; shared by every session of a server."""

    def __init__(
        self,
        token: str | None,
        max_failures: int = MAX_FAILURES,
        lockout_s: float = LOCKOUT_S,
        global_max_failures: int = GLOBAL_MAX_FAILURES,
        global_window_s: float = GLOBAL_WINDOW_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        token = (token or "").strip()
        self._digest = _digest(token) if token else None
        self._token_len = len(token)
        self.max_failures, self.lockout_s = int(max_failures), float(lockout_s)
        self.global_max_failures, self.global_window_s = int(global_max_failures), float(global_window_s)
        self._clock = clock
        self._lock = threading.Lock()
        self._failures: dict[str, int] = {}  # session -> wrong tries since its last lock-out
        self._locked_until: dict[str, float] = {}
        self._recent: deque[float] = deque()  # times of wrong tries, all sessions

    @property
    def enabled(self) -> bool:
        """Whether a token is configured (otherwise everyone is the admin)."""
        return self._digest is not None

    @property
    def weak(self) -> bool:
        """Whether the configured token is short enough to need the shared limit (and its lock-out risk)."""
        return self._digest is not None and self._token_len < STRONG_TOKEN_CHARS

    def retry_after(self, session: str) -> float:
        """Seconds until this session may try again (0 when it may now)."""
        with self._lock:
            return self._wait(session, self._clock())

    def attempt(self, session: str, supplied: str | None) -> Attempt:
        """Check a typed token for a session, counting failures and enforcing the lock-outs."""
        if self._digest is None:
            return Attempt(True, "No admin token is set: everyone may do everything.")
        with self._lock:
            now = self._clock()
            wait = self._wait(session, now)
            if wait > 0:
                return Attempt(False, f"Too many wrong tokens. Try again in {_minutes(wait)}.", wait)
            if not (supplied or "").strip():
                return Attempt(False, "Type the admin token first.")
            if hmac.compare_digest(_digest((supplied or "").strip()), self._digest):
                self._failures.pop(session, None)
                return Attempt(True, "Admin unlocked for this browser session.")
            self._recent.append(now)
            count = self._failures.get(session, 0) + 1
            if count >= self.max_failures:
                self._failures.pop(session, None)
                self._locked_until[session] = now + self.lockout_s
                return Attempt(False, f"Wrong token. Locked for {_minutes(self.lockout_s)}.", self.lockout_s)
            self._failures[session] = count
            left = self.max_failures - count
            return Attempt(False, f"Wrong token; {left} more tr{'y' if left == 1 else 'ies'} before a lock-out.")

    def _wait(self, session: str, now: float) -> float:
        """Lock-out time left for a session, or for everyone after too many recent failures (lock held)."""
        while self._recent and now - self._recent[0] > self.global_window_s:
            self._recent.popleft()
        for expired in [s for s, until in self._locked_until.items() if until <= now]:
            del self._locked_until[expired]  # one entry per locked-out session would otherwise stay forever
        waits = [self._locked_until.get(session, 0.0) - now]
        if len(self._recent) >= self.global_max_failures and self._token_len < STRONG_TOKEN_CHARS:
            waits.append(self._recent[0] + self.global_window_s - now)
        return max(0.0, *waits)


def _minutes(seconds: float) -> str:
    """'5 minutes', '1 minute', '40 seconds'."""
    if seconds < 60:
        return f"{max(1, round(seconds))} seconds"
    minutes = max(1, round(seconds / 60))
    return f"{minutes} minute{'s' if minutes != 1 else ''}"
