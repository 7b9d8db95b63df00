"""The job queue on SQLite and PostgreSQL: one active retrain across threads and processes, atomic claims,
crashes and dead workers ending as failed jobs with a sentence, and progress that every reader sees.
`pytest -k postgres` runs the PostgreSQL half."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select, update

from app.jobs.worker import JobOutcome, Worker
from models.training.retrain import RetrainError
from tests.helpers.data import ROOT
from utils.feedback import FeedbackError, FeedbackStore
from utils.feedback.db import jobs
from utils.jobs import DONE, FAILED, QUEUED, RUNNING, JobBusyError, JobLostError, JobQueue

PARAMS = {"root": "/nowhere", "margin": 1.0}


def count_jobs(store: FeedbackStore) -> int:
    with store.engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(jobs)).scalar())


def test_simultaneous_requests_from_threads_make_one_job_and_one_clear_message(db_url: str) -> None:
    store = FeedbackStore(db_url)
    n = 8
    go = threading.Barrier(n)
    outcomes: list[object] = []

    def ask(k: int) -> None:
        go.wait()
        try:
            outcomes.append(JobQueue(store).enqueue("retrain", PARAMS, requested_by=f"session-{k}"))
        except JobBusyError as exc:
            outcomes.append(exc)

    threads = [threading.Thread(target=ask, args=(k,)) for k in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    made = [o for o in outcomes if not isinstance(o, JobBusyError)]
    refused = [o for o in outcomes if isinstance(o, JobBusyError)]
    assert len(made) == 1 and len(refused) == n - 1 and count_jobs(store) == 1
    assert all(e.job.id == made[0].id for e in refused)
    assert all("A retrain is already queued (requested " in str(e) and "no second one" in str(e) for e in refused)
    # once it runs, the message says so, with its start time and progress
    queue = JobQueue(store)
    job = queue.claim("w1")
    queue.report(job.id, "w1", 0.35, "Epoch 3/8")
    with pytest.raises(JobBusyError, match=r"already running \(started \d\d:\d\d:\d\d UTC, 35%: Epoch 3/8\)"):
        queue.enqueue("retrain", PARAMS)
    queue.finish(job.id, "w1", result={}, message="done")
    assert queue.enqueue("retrain", PARAMS).state == QUEUED  # the slot is free again
    assert count_jobs(store) == 2


ASKER = """
import os, sys, time
sys.path.insert(0, {root!r})
from utils.feedback import FeedbackError, FeedbackStore
from utils.jobs import JobBusyError, JobQueue
url, go, who = sys.argv[1], sys.argv[2], sys.argv[3]
store = FeedbackStore(url)
while not os.path.exists(go):
    time.sleep(0.002)
try:
    print("created", JobQueue(store).enqueue("retrain", {{"root": "/nowhere"}}, requested_by=who).id)
except JobBusyError as exc:
    print("busy", exc.job.id, exc)
"""


def test_simultaneous_requests_from_processes_make_one_job(db_url: str, tmp_path: Path) -> None:
    FeedbackStore(db_url).close()  # the schema exists; the processes race on the request alone
    script, go = tmp_path / "ask.py", tmp_path / "go"
    script.write_text(ASKER.format(root=str(ROOT)))
    procs = [subprocess.Popen([sys.executable, str(script), db_url, str(go), f"proc{k}"], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for k in range(4)]
    time.sleep(1.5)
    go.touch()
    outputs = [p.communicate(timeout=60) for p in procs]
    assert all(p.returncode == 0 for p in procs), [err for _, err in outputs]
    lines = [out.strip().splitlines()[-1] for out, _ in outputs]
    assert sum(line.startswith("created") for line in lines) == 1, lines
    busy = [line for line in lines if line.startswith("busy")]
    assert len(busy) == 3 and all("A retrain is already queued" in line for line in busy)
    assert len({line.split()[1] for line in lines}) == 1  # everyone names the same job
    assert count_jobs(FeedbackStore(db_url)) == 1


def test_a_queued_job_is_claimed_by_exactly_one_of_many_workers(db_url: str) -> None:
    store = FeedbackStore(db_url)
    job = JobQueue(store).enqueue("retrain", PARAMS)
    n = 8
    go = threading.Barrier(n)
    claims: list[object] = []

    def claim(k: int) -> None:
        queue = JobQueue(FeedbackStore(db_url))  # a pool of its own, like another process
        go.wait()
        claims.append(queue.claim(f"worker-{k}"))

    threads = [threading.Thread(target=claim, args=(k,)) for k in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    won = [c for c in claims if c is not None]
    assert len(won) == 1 and won[0].id == job.id and won[0].state == RUNNING
    assert JobQueue(store).get(job.id).worker == won[0].worker
    with pytest.raises(JobLostError):  # a loser cannot report on (or finish) the winner's job
        JobQueue(store).report(job.id, "worker-nobody", 0.5, "hijack")


def test_a_crash_marks_the_job_failed_with_one_sentence_and_frees_the_slot(db_url: str, caplog) -> None:
    store = FeedbackStore(db_url)
    queue = JobQueue(store)

    def explode(_store, _job, progress):
        progress(0.2, "Training")
        raise RuntimeError("CUDA went away\nTraceback (most recent call last): ...")

    job = queue.enqueue("retrain", PARAMS)
    ended = Worker(queue, {"retrain": explode}).run_one()
    assert ended.id == job.id and ended.state == FAILED and ended.finished_at is not None
    assert ended.message == ("The retrain failed unexpectedly (RuntimeError); the details are in the server log. "
                             "Nothing was promoted.")
    assert "Traceback" not in ended.message and "CUDA went away" in caplog.text  # the log has the details

    def refuse(_store, _job, _progress):
        raise RetrainError("No new corrections since the last retrain; add corrections first")

    queue.enqueue("retrain", PARAMS)  # the failed job no longer blocks a new one
    ended = Worker(queue, {"retrain": refuse}).run_one()
    assert ended.state == FAILED
    assert ended.message == "No new corrections since the last retrain; add corrections first."


def test_ctrl_c_marks_the_job_failed_without_a_traceback(db_url: str, caplog) -> None:
    """Ctrl-C during `retrain` printed the KeyboardInterrupt's whole traceback above "interrupted"."""
    queue = JobQueue(FeedbackStore(db_url))

    def interrupted(_store, _job, progress):
        progress(0.2, "Training")
        raise KeyboardInterrupt

    job = queue.enqueue("retrain", PARAMS)
    with pytest.raises(KeyboardInterrupt):  # the command still stops
        Worker(queue, {"retrain": interrupted}).run_one()
    assert queue.get(job.id).state == FAILED
    assert "interrupted" in caplog.text and "Traceback" not in caplog.text


def test_a_dead_workers_job_is_failed_once_its_heartbeat_is_stale(db_url: str) -> None:
    store = FeedbackStore(db_url)
    queue = JobQueue(store, stale_after_s=60)
    job = queue.enqueue("retrain", PARAMS)
    queue.claim("worker-that-dies")
    with pytest.raises(JobBusyError, match="already running"):
        queue.enqueue("retrain", PARAMS)  # a fresh heartbeat: it is alive
    with store.engine.begin() as conn:  # the worker died two minutes ago
        conn.execute(update(jobs).where(jobs.c.id == job.id).values(
            heartbeat_at=datetime.now(UTC) - timedelta(seconds=120)))
    again = queue.enqueue("retrain", PARAMS)  # the stale job no longer wedges the queue
    dead = queue.get(job.id)
    assert dead.state == FAILED and "stopped responding" in dead.message and "start it again" in dead.message
    assert again.id != job.id and again.state == QUEUED
    with pytest.raises(JobLostError):  # if it was only slow, it learns that its job was taken away
        queue.heartbeat(job.id, "worker-that-dies")
    assert queue.recover_stale() == []


def test_a_look_at_the_queue_fails_a_dead_workers_job(db_url: str) -> None:
    store = FeedbackStore(db_url)
    queue = JobQueue(store, stale_after_s=60)
    job = queue.enqueue("retrain", PARAMS)
    queue.claim("worker-that-dies")
    assert queue.history("retrain")[0].state == RUNNING  # alive: left alone
    with store.engine.begin() as conn:
        conn.execute(update(jobs).where(jobs.c.id == job.id).values(
            heartbeat_at=datetime.now(UTC) - timedelta(seconds=120)))
    listed = queue.history("retrain")  # `jobs list`: no longer "running 92%" forever
    assert listed[0].id == job.id and listed[0].state == FAILED and "stopped responding" in listed[0].message


def test_a_worker_whose_job_went_stale_stops_working_on_it(db_url: str) -> None:
    store = FeedbackStore(db_url)
    queue = JobQueue(store, stale_after_s=60)
    job = queue.enqueue("retrain", PARAMS)
    later: list[str] = []

    def slow(_store, j, progress):
        with store.engine.begin() as conn:  # meanwhile another reader found its heartbeat stale
            conn.execute(update(jobs).where(jobs.c.id == j.id).values(
                heartbeat_at=datetime.now(UTC) - timedelta(seconds=300)))
        queue.recover_stale()
        progress(0.5, "still going")  # throttled: written by the beat thread, which finds the job gone
        time.sleep(0.8)
        progress(0.6, "still going")  # raises: the job is no longer ours
        later.append("kept working")
        return JobOutcome({}, "done")

    ended = Worker(queue, {"retrain": slow}).run_one()
    assert later == [] and ended.id == job.id and ended.state == FAILED and "stopped responding" in ended.message


def test_a_job_that_went_stale_after_its_last_step_records_its_real_outcome(db_url: str) -> None:
    """A retrain that promoted its version and then lost its job must not read "failed" while CURRENT names it."""
    store = FeedbackStore(db_url)
    queue = JobQueue(store, stale_after_s=60)
    job = queue.enqueue("retrain", PARAMS)

    def promoted_then_slow(_store, j, progress):
        progress(0.5, "training")
        with store.engine.begin() as conn:  # the version is published and CURRENT set; then the heartbeat ages
            conn.execute(update(jobs).where(jobs.c.id == j.id).values(
                heartbeat_at=datetime.now(UTC) - timedelta(seconds=300)))
        assert [s.id for s in queue.recover_stale()] == [j.id]
        progress(1.0, "base-r1 is now current")  # the last word: no work is left to stop, so it does not raise
        return JobOutcome({"version": "base-r1"}, "base-r1 is now current", result_version="base-r1")

    ended = Worker(queue, {"retrain": promoted_then_slow}).run_one()
    assert ended.id == job.id and ended.state == DONE and ended.result == {"version": "base-r1"}
    assert ended.result_version == "base-r1" and ended.progress == 1.0
    assert ended.message.startswith("base-r1 is now current") and "reported as not responding" in ended.message
    assert queue.get(job.id).state == DONE
    # Only the worker that held it may do this, and only once.
    assert queue.finish_late(job.id, "someone-else", result={}, message="x") is None
    assert queue.finish_late(job.id, ended.worker, result={}, message="x") is None


def test_progress_is_visible_to_a_second_reader_while_the_job_runs(db_url: str) -> None:
    store = FeedbackStore(db_url)
    queue = JobQueue(store)
    reported, release = threading.Event(), threading.Event()

    def train(_store, _job, progress):
        progress(0.0, "Loading the current model")
        time.sleep(0.3)  # progress writes are throttled to one per 0.25 s
        progress(0.4, "Epoch 3/8: validation accuracy 71.0%")
        reported.set()
        assert release.wait(30)
        return JobOutcome({"version": "base-r1"}, "base-r1 is now current", result_version="base-r1",
                          parent_version="base")

    job = queue.enqueue("retrain", PARAMS, requested_by="session-a", parent_version="base")
    worker = Worker(queue, {"retrain": train}, heartbeat_s=0.1).start()
    try:
        assert reported.wait(30)
        reader = JobQueue(FeedbackStore(db_url))  # another process's view: its own connections
        deadline = time.monotonic() + 2  # written at once or, throttled, by the beat thread within 0.25 s
        while (seen := reader.latest("retrain")).progress < 0.4 and time.monotonic() < deadline:
            time.sleep(0.02)
        assert (seen.id, seen.state, seen.progress) == (job.id, RUNNING, pytest.approx(0.4))
        assert seen.message == "Epoch 3/8: validation accuracy 71.0%" and seen.requested_by == "session-a"
        beat = seen.heartbeat_at
        time.sleep(0.4)
        assert reader.get(job.id).heartbeat_at > beat  # the heartbeat thread keeps it alive
        release.set()
        deadline = time.monotonic() + 30
        while reader.get(job.id).state == RUNNING and time.monotonic() < deadline:
            time.sleep(0.05)
        done = reader.get(job.id)
        assert done.state == DONE and done.progress == 1.0 and done.result == {"version": "base-r1"}
        assert (done.parent_version, done.result_version, done.message) == ("base", "base-r1", "base-r1 is now current")
        assert done.started_at <= done.finished_at
    finally:
        release.set()
        worker.stop()
    assert not worker.alive


def test_the_worker_command_runs_queued_jobs_once(db_url: str, capsys) -> None:
    from app.cli.main import main

    store = FeedbackStore(db_url)
    job = JobQueue(store).enqueue("retrain", {"root": "/nowhere/at/all", "margin": 1.0})
    assert main(["worker", "--once", "--db", db_url]) == 2  # the job failed: no model under that root
    err = capsys.readouterr().err
    assert f"job #{job.id} (retrain) failed: No trained model found under /nowhere/at/all." in err
    assert JobQueue(store).get(job.id).state == FAILED and "Traceback" not in err
    assert main(["worker", "--once", "--db", db_url]) == 0  # an empty queue: nothing to do
    assert count_jobs(store) == 1


def test_the_worker_refuses_a_database_that_does_not_exist(tmp_path: Path, capsys) -> None:
    """`worker --db` with a mistyped path created a new, empty database and served it in silence."""
    from app.cli.main import main

    missing = tmp_path / "typo.sqlite3"
    assert main(["worker", "--once", "--db", f"sqlite:///{missing}"]) == 2
    assert "typo.sqlite3" in capsys.readouterr().err and not missing.exists()


def test_a_queued_job_can_be_cancelled_but_a_running_one_cannot(db_url: str) -> None:
    queue = JobQueue(FeedbackStore(db_url))
    job = queue.enqueue("retrain", PARAMS)
    gone = queue.cancel(job.id)
    assert gone.state == FAILED and gone.message == "Cancelled before it started."
    running = queue.enqueue("retrain", PARAMS)  # the slot is free
    queue.claim("w1")
    with pytest.raises(FeedbackError, match="cannot be cancelled"):
        queue.cancel(running.id)
    assert queue.get(running.id).state == RUNNING and queue.claim("w2") is None
    with pytest.raises(FeedbackError, match="There is no job #999"):  # not "not waiting to start any more"
        queue.cancel(999)


def test_the_command_line_lists_and_cancels_a_queued_job(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """A job queued with --no-wait while no worker ran could only be withdrawn from the page."""
    from app.cli.main import main

    db = f"sqlite:///{tmp_path / 'fb.sqlite3'}"
    FeedbackStore(db).close()  # `jobs list` reads an existing database; it no longer creates a mistyped one
    assert main(["jobs", "list", "--db", db]) == 0 and "no jobs" in capsys.readouterr().out
    job = JobQueue(FeedbackStore(db)).enqueue("retrain", PARAMS)
    assert main(["jobs", "list", "--db", db]) == 0
    assert capsys.readouterr().out.startswith(f"#{job.id} retrain queued 0%")
    assert main(["jobs", "cancel", str(job.id), "--db", db]) == 0 and "cancelled" in capsys.readouterr().out
    assert JobQueue(FeedbackStore(db)).get(job.id).state == FAILED  # and the slot is free for the next retrain
    assert main(["jobs", "cancel", str(job.id), "--db", db]) == 2  # ended: nothing to withdraw
    assert "cannot be cancelled" in capsys.readouterr().err


def test_a_request_that_lost_to_a_job_ending_meanwhile_queues_its_own(db_url: str, monkeypatch) -> None:
    """On PostgreSQL the holder can end between a lost insert and the look that names it: ask again."""
    import utils.jobs as jobs_mod

    real = jobs_mod.insert_if_absent
    calls: list[int] = []

    def lose_once(*args, **kwargs):
        calls.append(1)
        return False if len(calls) == 1 else real(*args, **kwargs)  # lost to a job that is gone by the look

    monkeypatch.setattr(jobs_mod, "insert_if_absent", lose_once)
    job = JobQueue(FeedbackStore(db_url)).enqueue("retrain", PARAMS)
    assert len(calls) == 2 and job.state == QUEUED
    with pytest.raises(FeedbackError, match="1-64 letters"):
        JobQueue(FeedbackStore(db_url)).enqueue("retrain", PARAMS, requested_by="x" * 65)


def test_a_database_hiccup_on_a_progress_line_does_not_fail_the_job(db_url: str, monkeypatch) -> None:
    store = FeedbackStore(db_url)
    queue = JobQueue(store)
    queue.enqueue("retrain", PARAMS)
    real = queue.report
    failures: list[int] = []

    def flaky(*args, **kwargs):
        if not failures:
            failures.append(1)
            raise FeedbackError("The feedback database is busy.")
        return real(*args, **kwargs)

    monkeypatch.setattr(queue, "report", flaky)

    def work(_store, _job, progress):
        progress(0.0, "Loading")  # written at once: this is the write that hiccups
        return JobOutcome({}, "done")

    ended = Worker(queue, {"retrain": work}).run_one()
    assert failures == [1] and ended.state == DONE, ended.message
