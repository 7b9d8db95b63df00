"""The job queue of background work (retraining) in the feedback database. No Streamlit here.

A job is a row of the `jobs` table (schema v4, utils/feedback/db.py): queued -> running -> done or
failed, with its progress (0-1), a message, its parameters, the parent and resulting model version,
the opaque id of the session that asked (NULL: the command line) and timestamps. Every change is its
own committed transaction, so any reader in any process sees the progress as it happens, and a page
reload shows the job exactly as the database has it.

Two database mechanisms keep at most one job of a kind active across sessions and processes:
- enqueueing inserts with `active_slot = kind`, a UNIQUE column that is NULL once the job ended: a
  second request while one is queued or running hits the constraint (ON CONFLICT DO NOTHING) and gets
  `JobBusyError` naming the job that holds the slot;
- claiming is a conditional UPDATE (`... WHERE id = ? AND state = 'queued'`): of two workers, the
  database lets exactly one change the row (PostgreSQL re-checks the condition after the row lock).
A running job's worker writes a heartbeat; a job whose heartbeat is older than `STALE_AFTER_S` (its
worker died) is marked failed by the next enqueue, claim or status read, so the queue never wedges.
Times are the workers' clocks in UTC: workers on several machines need their clocks in sync (NTP).
"""

from __future__ import annotations

import json
from contextlib import suppress
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.engine import Connection, RowMapping

from utils.feedback import FeedbackStore
from utils.feedback.db import FeedbackError, insert_if_absent, jobs, read, write_transaction
from utils.feedback.records import validate_session

QUEUED, RUNNING, DONE, FAILED = "queued", "running", "done", "failed"
ACTIVE = (QUEUED, RUNNING)
STALE_AFTER_S = 120.0  # a running job without a heartbeat for this long has lost its worker
MAX_MESSAGE_CHARS = 500


def _utc(dt: datetime | None) -> datetime | None:
    """Aware UTC datetime (SQLite hands back naive values that were stored as UTC)."""
    if dt is None:
        return None
    return dt.replace(tzinfo=UTC) if dt.tzinfo is None else dt.astimezone(UTC)


def _now() -> datetime:
    return datetime.now(UTC)


def clock(dt: datetime | None) -> str:
    """A time for messages: HH:MM:SS UTC, with the date when it is not today."""
    if dt is None:
        return "?"
    today = _now().date() == dt.date()
    return dt.strftime("%H:%M:%S UTC" if today else "%Y-%m-%d %H:%M UTC")


@dataclass(frozen=True)
class Job:
    """One job as the database has it."""

    id: int
    kind: str
    state: str
    progress: float
    message: str
    params: dict[str, Any]
    parent_version: str | None
    result_version: str | None
    result: dict[str, Any] | None
    requested_by: str | None
    worker: str | None
    created_at: datetime
    started_at: datetime | None
    heartbeat_at: datetime | None
    finished_at: datetime | None

    @property
    def active(self) -> bool:
        """Queued or running."""
        return self.state in ACTIVE

    def busy_message(self) -> str:
        """What a second request is told while this job holds the slot."""
        if self.state == RUNNING:
            return (f"A {self.kind} is already running (started {clock(self.started_at)}, {self.progress:.0%}: "
                    f"{self.message}); no second one was queued.")
        return (f"A {self.kind} is already queued (requested {clock(self.created_at)}) and starts as soon as the "
                "worker is free; no second one was queued.")


class JobBusyError(FeedbackError):
    """A job of this kind is already queued or running; `job` is that job."""

    def __init__(self, job: Job) -> None:
        super().__init__(job.busy_message())
        self.job = job


class JobLostError(RuntimeError):
    """The job is no longer this worker's (it was marked failed as stale); the worker must stop working on it."""


def _job(r: RowMapping) -> Job:
    """Row to Job."""
    return Job(
        id=int(r["id"]), kind=r["kind"], state=r["state"], progress=float(r["progress"]), message=r["message"],
        params=json.loads(r["params"]), parent_version=r["parent_version"], result_version=r["result_version"],
        result=json.loads(r["result"]) if r["result"] else None, requested_by=r["requested_by"], worker=r["worker"],
        created_at=_utc(r["created_at"]), started_at=_utc(r["started_at"]), heartbeat_at=_utc(r["heartbeat_at"]),
        finished_at=_utc(r["finished_at"]),
    )


def _short(message: str) -> str:
    """A message fit for the column and the UI: one line, bounded."""
    line = " ".join(str(message or "").split())
    return line if len(line) <= MAX_MESSAGE_CHARS else line[: MAX_MESSAGE_CHARS - 1] + "…"


class JobQueue:
    """Jobs in the feedback database of `store` (SQLite or PostgreSQL)."""

    def __init__(self, store: FeedbackStore, stale_after_s: float = STALE_AFTER_S) -> None:
        self.store = store
        self.engine = store.engine
        self.stale_after_s = float(stale_after_s)

    # ---------------------------------------------------------------- requests
    def enqueue(self, kind: str, params: dict[str, Any], *, requested_by: str | None = None,
                parent_version: str | None = None, message: str = "Waiting for the worker") -> Job:
        """Queue a job, or raise JobBusyError (creating nothing) when one of this kind is queued or running."""
        payload = json.dumps(params, sort_keys=True)
        requested_by = validate_session(requested_by)  # an opaque session id, like a correction's

        def work(conn: Connection) -> tuple[Job, bool]:
            self._fail_stale(conn)
            values = dict(kind=kind, state=QUEUED, active_slot=kind, progress=0.0, message=_short(message),
                          params=payload, parent_version=parent_version, requested_by=requested_by,
                          created_at=_now())
            for _ in range(3):  # the holder may end between our lost insert and the look (PostgreSQL, READ COMMITTED)
                created = insert_if_absent(conn, jobs, values, unique=("active_slot",))  # loses a race quietly
                holder = conn.execute(select(jobs).where(jobs.c.active_slot == kind)).mappings().first()
                if holder is not None:
                    return _job(holder), created
            raise FeedbackError("The job queue kept changing under this request; ask again.")

        job, created = write_transaction(self.engine, work)
        if not created:
            raise JobBusyError(job)
        return job

    # ---------------------------------------------------------------- the worker's side
    def claim(self, worker: str, kind: str | None = None, job_id: int | None = None) -> Job | None:
        """Take the oldest queued job (of `kind`, or exactly `job_id`) for `worker`; None when there is none
        or another worker took it first."""

        def work(conn: Connection) -> Job | None:
            self._fail_stale(conn)
            q = select(jobs.c.id).where(jobs.c.state == QUEUED)
            if kind is not None:
                q = q.where(jobs.c.kind == kind)
            if job_id is not None:
                q = q.where(jobs.c.id == int(job_id))
            candidate = conn.execute(q.order_by(jobs.c.id).limit(1)).scalar()
            if candidate is None:
                return None
            now = _now()
            won = conn.execute(update(jobs).where(jobs.c.id == candidate, jobs.c.state == QUEUED).values(
                state=RUNNING, worker=worker[:200], started_at=now, heartbeat_at=now, message="Starting")).rowcount
            return self._get(conn, candidate) if won == 1 else None

        return write_transaction(self.engine, work)

    def report(self, job_id: int, worker: str, progress: float, message: str) -> None:
        """Store progress (and a heartbeat); raises JobLostError when the job is no longer this worker's."""
        self._update_running(job_id, worker, progress=min(1.0, max(0.0, float(progress))), message=_short(message))

    def heartbeat(self, job_id: int, worker: str) -> None:
        """Say the worker is alive; raises JobLostError when the job is no longer this worker's."""
        self._update_running(job_id, worker)

    def finish(self, job_id: int, worker: str, *, result: dict[str, Any], message: str,
               result_version: str | None = None, parent_version: str | None = None) -> Job:
        """Mark the job done with its result; raises JobLostError when it was no longer this worker's."""
        values: dict[str, Any] = dict(state=DONE, active_slot=None, progress=1.0, message=_short(message),
                                      result=json.dumps(result), result_version=result_version)
        if parent_version is not None:
            values["parent_version"] = parent_version
        return self._end(job_id, worker, values)

    def finish_late(self, job_id: int, worker: str, *, result: dict[str, Any], message: str,
                    result_version: str | None = None, parent_version: str | None = None) -> Job | None:
        """Record the real outcome of a job the stale check failed while `worker` was still finishing it.

        Its work is done (a retrain may already have published and promoted its version), so "failed: stopped
        responding" would be false. None when it is not such a job (ended otherwise, or another worker's).
        """
        late = f"{message} (It finished after it had been reported as not responding.)"
        values: dict[str, Any] = dict(state=DONE, progress=1.0, result=json.dumps(result),
                                      result_version=result_version, message=_short(late))
        if parent_version is not None:
            values["parent_version"] = parent_version

        def work(conn: Connection) -> Job | None:
            q = update(jobs).where(jobs.c.id == int(job_id), jobs.c.state == FAILED, jobs.c.worker == worker[:200],
                                   jobs.c.result.is_(None))
            if conn.execute(q.values(finished_at=_now(), **values)).rowcount != 1:
                return None
            return self._get(conn, job_id)

        return write_transaction(self.engine, work)

    def fail(self, job_id: int, worker: str | None, message: str) -> Job:
        """Mark the job failed with one sentence (`worker` None: whoever holds it, e.g. a queued job)."""
        return self._end(job_id, worker, dict(state=FAILED, active_slot=None, message=_short(message)))

    def cancel(self, job_id: int) -> Job:
        """Withdraw a job that no worker has started (say, the server runs no worker); FeedbackError otherwise."""

        def work(conn: Connection) -> tuple[bool, Job | None]:
            done = conn.execute(update(jobs).where(jobs.c.id == int(job_id), jobs.c.state == QUEUED).values(
                state=FAILED, active_slot=None, message="Cancelled before it started.", finished_at=_now())).rowcount
            return done == 1, self._get(conn, job_id)

        cancelled, job = write_transaction(self.engine, work)
        if job is None:
            raise FeedbackError(f"There is no job #{job_id}; `jobs list` shows the jobs there are.")
        if not cancelled:
            raise FeedbackError(f"Job #{job_id} is not waiting to start any more, so it cannot be cancelled.")
        return job

    # ---------------------------------------------------------------- reads
    def get(self, job_id: int) -> Job | None:
        """One job by id (stale running jobs are failed first)."""
        return write_transaction(self.engine, lambda conn: (self._fail_stale(conn), self._get(conn, job_id))[1])

    def latest(self, kind: str) -> Job | None:
        """The newest job of a kind, whatever its state (what the Feedback page shows after a reload)."""

        def work(conn: Connection) -> Job | None:
            self._fail_stale(conn)
            row = conn.execute(select(jobs).where(jobs.c.kind == kind).order_by(jobs.c.id.desc()).limit(1))
            found = row.mappings().first()
            return _job(found) if found else None

        return write_transaction(self.engine, work)

    def history(self, kind: str, limit: int = 20) -> list[Job]:
        """The newest jobs of a kind, newest first; a dead worker's job reads failed, as `get` and `latest` show it.

        A read-only database is listed as it is: nothing can be marked there.
        """
        with suppress(FeedbackError):  # read-only: a listing must still work (anything else: the next write says)
            self.recover_stale()
        rows = read(self.engine, lambda c: c.execute(select(jobs).where(jobs.c.kind == kind).order_by(
            jobs.c.id.desc()).limit(limit)).mappings().all())
        return [_job(r) for r in rows]

    def recover_stale(self) -> list[Job]:
        """Mark running jobs whose worker stopped sending heartbeats failed; returns them."""
        return write_transaction(self.engine, self._fail_stale)

    # ---------------------------------------------------------------- internals
    @staticmethod
    def _get(conn: Connection, job_id: int) -> Job | None:
        row = conn.execute(select(jobs).where(jobs.c.id == int(job_id))).mappings().first()
        return _job(row) if row else None

    def _fail_stale(self, conn: Connection) -> list[Job]:
        """Inside a write transaction: running jobs with an old heartbeat become failed, with a sentence."""
        cutoff = _now() - timedelta(seconds=self.stale_after_s)
        stale = conn.execute(select(jobs).where(jobs.c.state == RUNNING, jobs.c.heartbeat_at < cutoff)).mappings().all()
        out = []
        for r in stale:
            message = (f"The worker running this {r['kind']} stopped responding (last heartbeat "
                       f"{clock(_utc(r['heartbeat_at']))}), so it was marked failed; start it again.")
            done = conn.execute(update(jobs).where(jobs.c.id == r["id"], jobs.c.state == RUNNING,
                                                   jobs.c.heartbeat_at < cutoff).values(
                state=FAILED, active_slot=None, message=message, finished_at=_now())).rowcount
            if done == 1:
                out.append(self._get(conn, r["id"]))
        return out

    def _update_running(self, job_id: int, worker: str, **values: Any) -> None:
        def work(conn: Connection) -> int:
            return conn.execute(update(jobs).where(jobs.c.id == int(job_id), jobs.c.state == RUNNING,
                                                   jobs.c.worker == worker[:200]).values(
                heartbeat_at=_now(), **values)).rowcount

        if write_transaction(self.engine, work) != 1:
            raise JobLostError(f"Job #{job_id} is no longer run by this worker.")

    def _end(self, job_id: int, worker: str | None, values: dict[str, Any]) -> Job:
        def work(conn: Connection) -> Job | None:
            q = update(jobs).where(jobs.c.id == int(job_id), jobs.c.state.in_(ACTIVE))
            if worker is not None:
                q = q.where(jobs.c.worker == worker[:200])
            if conn.execute(q.values(finished_at=_now(), heartbeat_at=_now(), **values)).rowcount != 1:
                return None
            return self._get(conn, job_id)

        job = write_transaction(self.engine, work)
        if job is None:
            raise JobLostError(f"Job #{job_id} had already ended or is run by another worker.")
        return job
