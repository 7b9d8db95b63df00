"""The Feedback page's retrain job: the server's worker thread, "Retrain now", and the live job status.

Streamlit glue over app/jobs/retrain.py and utils/jobs.py. The button only queues a job; the worker
thread of this server process (one per process and database, started on first use unless
GENRE_LENS_WORKER=off) runs it outside every request. The status is read from the database on every
run, and polled by a fragment while the job is active, so a reload, another tab or another admin
sees the same progress, and the result (promoted or why not) once it is done.
"""

from __future__ import annotations

import logging
import math
from typing import Any

import pandas as pd
import streamlit as st

from app.jobs.retrain import KIND, RUNNERS, request_retrain
from app.jobs.worker import Worker
from app.ui import state
from app.ui.feedback_views import _open_store, store
from utils.feedback.db import FeedbackError, default_url
from utils.jobs import DONE, FAILED, QUEUED, Job, JobBusyError, JobQueue, clock
from utils.text import md_escape, plural

log = logging.getLogger("genre_lens.retrain_views")
from utils import settings  # noqa: E402
from utils.settings import WORKER_ENV  # noqa: E402

POLL_S = 1.0  # seconds between looks at an active job
IDLE_POLL_S = 5.0  # ... and at the queue while nothing runs (another admin may start a retrain)
_DRAWN = "gl.fb.drawn_job"  # (job id, active) of the latest job when this session's page was drawn


def _stop(worker: Worker) -> None:
    worker.stop(timeout=0)


@st.cache_resource(show_spinner=False, on_release=_stop)
def _server_worker(url: str) -> Worker:
    """One worker thread per server process and database; the database decides which process runs a job."""
    return Worker(JobQueue(_open_store(url)), RUNNERS, poll_s=POLL_S).start()


def worker_enabled() -> bool:
    """Whether this server runs jobs itself ($GENRE_LENS_WORKER=off: a `python -m app worker` does)."""
    return settings.load().worker


def ensure_worker() -> Worker | None:
    """Start (or restart) this server's worker thread; None when switched off or the database is unusable."""
    if not worker_enabled():
        return None
    try:
        worker = _server_worker(default_url())
    except FeedbackError:  # the page says what is wrong with the database; the worker simply waits for it
        log.warning("no job worker: the feedback database cannot be opened", exc_info=True)
        return None
    if not worker.alive:
        worker.start()
    return worker


def _who(job: Job) -> str:
    """Who asked, without saying anything about other sessions but that they exist."""
    if job.requested_by is None:
        return "the command line"
    return "you" if job.requested_by == state.session_id() else "another session"


def show_result(r: dict[str, Any] | None) -> None:
    """New version next to the current one: accuracy, the decision and why."""
    if not r:
        return
    judged = f"accuracy on {r.get('judged_on', 'validation')}"
    if math.isfinite(r["new_accuracy"]):  # NaN: nothing could be held out; the reason says what decided
        st.dataframe(pd.DataFrame([
            {"model": r["version"], "role": "new", judged: round(r["new_accuracy"], 4)},
            {"model": r["parent_version"], "role": "current before", judged: round(r["current_accuracy"], 4)},
        ]), hide_index=True)
    if r["promoted"]:
        st.success(f"Promoted: {md_escape(r['version'])} is now the current model.")
    else:
        st.warning("Not promoted: the current model stays; the new version remains selectable in the sidebar.")
    st.text(r["reason"])
    st.text(f"{plural(len(r['correction_ids']), 'correction')} used, weight {r['correction_weight']:.2f} each.")
    for line in r.get("skipped", []) + r.get("warnings", []):
        st.text(f"Note: {line}")


def show_job(job: Job | None) -> None:
    """A job as the database has it: progress while active, the result or the failure afterwards."""
    if job is None:
        return
    if job.state == QUEUED:
        st.progress(0.0, text=md_escape(f"Queued (job #{job.id}, asked for by {_who(job)} at {clock(job.created_at)}):"
                                        " waiting for the worker"))
        if not worker_enabled():
            st.caption(f"This server runs no worker (${WORKER_ENV}=off): `python -m app worker` runs the job.")
        if st.button("Cancel this retrain", key=f"gl.fb.cancel.{job.id}"):
            try:
                JobQueue(store()).cancel(job.id)
            except FeedbackError as exc:  # a worker started it meanwhile
                st.warning(md_escape(exc))
            st.rerun(scope="app")
    elif job.active:
        st.progress(job.progress, text=md_escape(f"{job.progress:.0%} · {job.message}"))
        st.caption(f"Retraining (job #{job.id}), asked for by {_who(job)}, started {clock(job.started_at)}. "
                   "It runs on the server: you may leave or reload this page.")
    elif job.state == DONE:
        st.caption(f"Last retrain: job #{job.id}, asked for by {_who(job)}, finished {clock(job.finished_at)}.")
        show_result(job.result)
    elif job.state == FAILED:
        st.error(md_escape(f"The last retrain (job #{job.id}, {clock(job.finished_at)}) failed: {job.message}"))


def _seen(job: Job | None) -> tuple[int, bool] | None:
    """What the page was drawn for: which job, and whether it was active."""
    return None if job is None else (job.id, job.active)


def _status() -> None:
    """The latest job; when it is not the one the page was drawn with (it ended, or another session started
    one), rerun the whole page so the button, the counts and the sidebar's versions follow."""
    try:  # this fragment reruns on its own, outside the page's error handling
        job = JobQueue(store()).latest(KIND)
    except FeedbackError as exc:  # a busy or unreachable database: say so, and look again at the next poll
        st.caption(f"The retrain's status could not be read just now ({md_escape(exc)}); trying again.")
        return
    show_job(job)
    if _seen(job) != st.session_state.get(_DRAWN):
        st.rerun(scope="app")


def job_panel(params: dict[str, Any], can_start: bool) -> None:
    """'Retrain now' (queues a job, or says which one is already active) and the job's live status."""
    ensure_worker()
    latest = JobQueue(store()).latest(KIND)
    busy = latest is not None and latest.active
    if st.button("Retrain now", type="primary", disabled=busy or not can_start):
        try:
            request_retrain(store(), params, requested_by=state.session_id() or None)
            st.rerun()  # draw the page again with the job (and the button disabled)
        except JobBusyError as exc:  # another tab or admin was quicker
            st.warning(md_escape(exc))
            latest = JobQueue(store()).latest(KIND)
    st.session_state[_DRAWN] = _seen(latest)
    st.fragment(_status, run_every=POLL_S if latest is not None and latest.active else IDLE_POLL_S)()
