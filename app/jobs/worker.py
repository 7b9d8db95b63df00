"""The worker that runs queued jobs outside any Streamlit request. No Streamlit here.

One `Worker` claims a job atomically (utils/jobs.py), runs its kind's runner with a progress callback,
and ends the job done (with its result) or failed (with one sentence, never a traceback; the traceback
goes to the log). While a runner works, a heartbeat thread tells the database the worker is alive, so a
worker that dies leaves a job that the next reader marks failed instead of a queue stuck forever.
A runner's progress call raises JobLostError once its job was taken away, except the last one (fraction
1.0): a runner reports 1.0 only when nothing is left to stop, and its outcome is then recorded even so.

It runs as a daemon thread of the Streamlit server (app/ui/retrain_views.py starts one per server
process), as `python -m app worker`, or inside `python -m app retrain`, which claims its own job when
no other worker has; the database decides which of them runs a job, so any mix of them is safe.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from models.classifier.bundle import CheckpointError
from utils.feedback import FeedbackStore
from utils.jobs import DONE, STALE_AFTER_S, Job, JobLostError, JobQueue

log = logging.getLogger("genre_lens.worker")
Progress = Callable[[float, str], None]
HEARTBEAT_S = 10.0
PROGRESS_EVERY_S = 0.25  # progress writes are throttled to one per this; the latest is written within it


@dataclass
class JobOutcome:
    """What a runner returns: the result to store, a one-line message and the version it produced."""

    result: dict[str, Any]
    message: str
    result_version: str | None = None
    parent_version: str | None = None


Runner = Callable[[FeedbackStore, Job, Progress], JobOutcome]

USER_ERRORS: tuple[type[BaseException], ...] = (ValueError, FileNotFoundError, CheckpointError)  # said as they are


def failure_sentence(job: Job, exc: BaseException) -> str:
    """One sentence about why a job failed: the message of an error a user can fix, else its type only."""
    if isinstance(exc, USER_ERRORS):
        text = (str(exc).strip().splitlines() or [""])[0]
        if text:
            return text if text.endswith((".", "!", "?")) else text + "."
    if isinstance(exc, KeyboardInterrupt):
        return f"The {job.kind} was interrupted before it finished; start it again."
    return (f"The {job.kind} failed unexpectedly ({type(exc).__name__}); the details are in the server log. "
            "Nothing was promoted.")


def worker_name() -> str:
    """host:pid:random, unique per Worker object, recorded on the jobs it claims."""
    return f"{socket.gethostname()[:80]}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


@dataclass
class Worker:
    """Claims and runs jobs of the kinds it has runners for."""

    queue: JobQueue
    runners: Mapping[str, Runner]
    name: str = field(default_factory=worker_name)
    poll_s: float = 1.0
    heartbeat_s: float = HEARTBEAT_S

    def __post_init__(self) -> None:
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # ---------------------------------------------------------------- one job
    def run_one(self, job_id: int | None = None, progress: Progress | None = None) -> Job | None:
        """Claim one queued job (or exactly `job_id`) and run it to its end; None when there was none to claim."""
        for kind in self.runners:
            job = self.queue.claim(self.name, kind=kind, job_id=job_id)
            if job is not None:
                return self.execute(job, progress)
        return None

    def execute(self, job: Job, progress: Progress | None = None) -> Job:
        """Run a job this worker has claimed; returns it as it ended (done or failed)."""
        lost, stopped = threading.Event(), threading.Event()
        lock = threading.Lock()
        pending: list[tuple[float, str]] = []  # progress not written yet (throttled), flushed by the beat thread
        last_write = [time.monotonic(), time.monotonic()]  # of progress, of anything (a heartbeat)

        def write(fraction: float | None = None, message: str = "") -> None:
            if fraction is None:
                self.queue.heartbeat(job.id, self.name)
            else:
                self.queue.report(job.id, self.name, fraction, message)
                last_write[0] = time.monotonic()
            last_write[1] = time.monotonic()

        def beat() -> None:  # flushes throttled progress within PROGRESS_EVERY_S, else a heartbeat every heartbeat_s
            while not stopped.wait(min(PROGRESS_EVERY_S, self.heartbeat_s)):
                try:
                    with lock:  # writes happen under the lock, so an older message never lands after a newer one
                        item = pending.pop() if pending else None
                        pending.clear()
                        if item is not None:
                            write(*item)
                        elif time.monotonic() - last_write[1] >= self.heartbeat_s:
                            write()
                except JobLostError:
                    lost.set()
                    return
                except Exception:  # the database hiccuped: try again at the next beat
                    log.warning("heartbeat of job #%s failed", job.id, exc_info=True)

        def report(fraction: float, message: str) -> None:
            final = fraction >= 1.0  # nothing is left to stop: the outcome is recorded by finish or finish_late
            if lost.is_set() and not final:
                raise JobLostError(f"Job #{job.id} was taken away from this worker.")
            if progress is not None:
                progress(fraction, message)
            with lock:
                if time.monotonic() - last_write[0] < PROGRESS_EVERY_S and fraction > 0.0:
                    pending.append((fraction, message))
                    return
                pending.clear()
                try:
                    write(fraction, message)
                except JobLostError:
                    lost.set()
                    if not final:
                        raise
                except Exception:  # the database hiccuped: the heartbeat thread writes it at its next beat, and
                    # the job goes on (a lost progress line must not fail minutes of training)
                    log.warning("progress of job #%s could not be written; retrying", job.id, exc_info=True)
                    pending.append((fraction, message))

        heart = threading.Thread(target=beat, name=f"heartbeat-{job.id}", daemon=True)
        heart.start()
        try:
            outcome = self.runners[job.kind](self.queue.store, job, report)
        except BaseException as exc:
            stopped.set()
            if isinstance(exc, JobLostError) or lost.is_set():
                log.warning("job #%s was marked failed while running (stale heartbeat); its work was dropped", job.id)
                return self.queue.get(job.id) or job
            if isinstance(exc, KeyboardInterrupt):  # Ctrl-C: the user knows why; no traceback for it
                log.warning("job #%s (%s) was interrupted", job.id, job.kind)
            elif not isinstance(exc, USER_ERRORS):
                log.error("job #%s (%s) failed", job.id, job.kind, exc_info=exc)
            ended = self._fail_quietly(job, failure_sentence(job, exc))
            if not isinstance(exc, Exception):  # KeyboardInterrupt, SystemExit: the job is marked, then stop
                raise
            return ended
        finally:
            stopped.set()
            heart.join(timeout=PROGRESS_EVERY_S + 5)
        ended = dict(result=outcome.result, message=outcome.message, result_version=outcome.result_version,
                     parent_version=outcome.parent_version)
        try:
            return self.queue.finish(job.id, self.name, **ended)
        except JobLostError:  # its work is done (a retrain may be promoted already): record that, not "failed"
            log.warning("job #%s finished after it had been marked failed as stale", job.id)
            return self.queue.finish_late(job.id, self.name, **ended) or self.queue.get(job.id) or job

    def _fail_quietly(self, job: Job, sentence: str) -> Job:
        """Mark a job failed; if even that fails (database gone), log it; the stale check fails it later."""
        try:
            return self.queue.fail(job.id, self.name, sentence)
        except Exception:
            log.error("could not mark job #%s failed", job.id, exc_info=True)
            return job

    # ---------------------------------------------------------------- the loop
    def serve(self, once: bool = False) -> int:
        """Run queued jobs until stopped (`once`: until the queue is empty); returns how many ended done."""
        done = 0
        while not self._stop.is_set():
            try:
                job = self.run_one()
            except Exception:  # the database is unreachable for a moment: keep serving
                log.warning("worker %s could not poll the job queue", self.name, exc_info=True)
                job = None
            if job is not None:
                done += job.state == DONE
                continue
            if once:
                break
            self._stop.wait(self.poll_s)
        return done

    def start(self) -> Worker:
        """Serve in a daemon thread of this process."""
        if self._thread is None or not self._thread.is_alive():
            self._stop.clear()
            self._thread = threading.Thread(target=self.serve, name=f"genre-lens-worker-{self.name}", daemon=True)
            self._thread.start()
        return self

    def stop(self, timeout: float | None = 5.0) -> None:
        """Stop polling (a job in progress runs to its end); waits up to `timeout` for the thread."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)

    @property
    def alive(self) -> bool:
        """Whether the serving thread runs."""
        return self._thread is not None and self._thread.is_alive()


__all__ = ["HEARTBEAT_S", "STALE_AFTER_S", "JobOutcome", "Runner", "Worker", "failure_sentence"]
