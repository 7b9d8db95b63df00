"""A cap on how many uploads are decoded and analysed at once: a burst of long files queues instead of
exhausting memory, and waits first come, first served instead of racing for the inference lock.

Decoding a 10-minute 44.1 kHz upload holds the mono signal (kept at 48 kHz at most, whatever the
file's rate and channel count), its concatenation and the resampled copy (about 0.3 GB at the peak),
and what it produces (samples, slices, embeddings, the display spectrogram) lives until its analysis
is done; a saliency map re-decodes, so it takes a slot too. Measured with `bench/bench_load.py
--long-files 20`, twenty such uploads decoding at once took the server to 9 GB, where a small
machine's out-of-memory killer takes the app down for everyone; and because the engine's inference
lock is not fair, some of them waited far longer than others. Inference is serialised anyway, so
more than two analyses in flight (one embedding, one decoding) buys nothing. At most
`GENRE_LENS_MAX_ANALYSES` (default 2) run at once; the others wait in arrival order and are told
that they are queued and how many are ahead. No Streamlit here: the engine passes its progress callback.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager

from utils import settings

RECHECK_S = 0.5  # a waiter re-reads its place this often (and is told when it changed)


def queued_message(ahead: int, running: int) -> str:
    """What a waiting user reads."""
    others = f"{ahead} more {'is' if ahead == 1 else 'are'} waiting ahead of it" if ahead else "it is next"
    return (f"Busy, queued: {running} other upload{'s are' if running != 1 else ' is'} being analysed and {others}; "
            "it starts by itself.")


class AnalysisGate:
    """At most `slots` holders at a time, admitted first come, first served."""

    def __init__(self, slots: int) -> None:
        if slots < 1:
            raise ValueError("an analysis gate needs at least one slot")
        self.slots = slots
        self._cond = threading.Condition()
        self._running = 0
        self._queue: deque[object] = deque()
        self.peak_running = 0  # most holders seen at once (tests and diagnostics)

    @property
    def running(self) -> int:
        return self._running

    @property
    def waiting(self) -> int:
        return len(self._queue)

    def _admit(self, me: object) -> bool:
        """Take a slot when one is free and `me` is first in line (call with the lock held)."""
        if self._running >= self.slots or self._queue[0] is not me:
            return False
        self._queue.popleft()
        self._running += 1
        self.peak_running = max(self.peak_running, self._running)
        self._cond.notify_all()  # the next in line may fit a free slot too
        return True

    @contextmanager
    def slot(self, on_wait: Callable[[str], None] | None = None) -> Iterator[None]:
        """Hold one slot for the `with` body; while waiting, `on_wait(message)` is called outside the lock."""
        me, told = object(), None
        with self._cond:
            self._queue.append(me)
        try:
            while True:
                with self._cond:
                    if self._admit(me):
                        break
                    message = queued_message(self._queue.index(me), self._running)
                if on_wait is not None and message != told:
                    on_wait(message)  # a UI call: never under the lock, and it may raise (a rerun)
                    told = message
                with self._cond:  # checked again under the lock, so no release is missed before waiting
                    if self._admit(me):
                        break
                    self._cond.wait(RECHECK_S)
        except BaseException:
            with self._cond:
                if me in self._queue:
                    self._queue.remove(me)
                    self._cond.notify_all()
            raise
        try:
            yield
        finally:
            with self._cond:
                self._running -= 1
                self._cond.notify_all()


_gate: AnalysisGate | None = None
_gate_lock = threading.Lock()


def max_analyses() -> int:
    """$GENRE_LENS_MAX_ANALYSES when it is a positive integer, else the default."""
    return settings.load().max_analyses


def analysis_gate() -> AnalysisGate:
    """The process-wide gate every engine shares (one server, one memory budget)."""
    global _gate
    with _gate_lock:
        if _gate is None:
            _gate = AnalysisGate(max_analyses())
        return _gate


def analysis_slot(on_wait: Callable[[str], None] | None = None) -> AbstractContextManager[None]:
    """`with analysis_slot(notify): decode and analyse` on the process-wide gate."""
    return analysis_gate().slot(on_wait)
