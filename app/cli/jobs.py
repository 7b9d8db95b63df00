"""`python -m app worker [--once]`: run queued jobs (retraining) in a process of their own; `python -m app
jobs [list | cancel ID]`: see the queue, and withdraw a job no worker has started (the page can too).

Registered by app/cli/main.py. The Streamlit server runs a worker thread of its own (unless
GENRE_LENS_WORKER=off); a separate worker is for setups that want training apart from the web
server. Any number of workers may run: each job is claimed by exactly one.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time

from sqlalchemy.exc import DBAPIError

from app.cli.common import number_in
from utils.feedback import FeedbackStore
from utils.text import terminal_text


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the `worker` command."""
    p = subparsers.add_parser("worker", help="run queued background jobs (retraining) until stopped")
    p.add_argument("--once", action="store_true", help="run the queued jobs, then exit (exit 2 if one failed)")
    p.add_argument("--poll", type=number_in(float, 0.1, 3600), default=2.0,
                   help="seconds between looks at an empty queue (default 2)")
    p.add_argument("--db", default=None, metavar="URL",
                   help="SQLAlchemy database URL (default: $GENRE_LENS_DB_URL or data/feedback.sqlite3)")
    p.set_defaults(handler=worker)
    jobs = subparsers.add_parser("jobs", help="list background jobs, or cancel one that has not started")
    sub = jobs.add_subparsers(dest="jobs_command", required=True)
    for name, handler, helptext in (("list", list_jobs, "the newest retrain jobs, one line each"),
                                    ("cancel", cancel_job, "withdraw a queued job that no worker has started")):
        q = sub.add_parser(name, help=helptext)
        if name == "cancel":
            q.add_argument("id", type=number_in(int, 1, 2**63 - 1))
        q.add_argument("--db", default=None, metavar="URL",
                       help="SQLAlchemy database URL (default: $GENRE_LENS_DB_URL or data/feedback.sqlite3)")
        q.set_defaults(handler=handler)


def list_jobs(args: argparse.Namespace) -> int:
    """`jobs list`: newest first, with state, progress and message."""
    from app.jobs.retrain import KIND
    from utils.jobs import JobQueue, clock

    history = JobQueue(FeedbackStore(args.db, create=args.db is None)).history(KIND)
    if not history:
        print("no jobs")
    for job in history:
        print(f"#{job.id} {job.kind} {job.state} {job.progress:.0%} (queued {clock(job.created_at)}): "
              f"{terminal_text(job.message)}")
    return 0


def cancel_job(args: argparse.Namespace) -> int:
    """`jobs cancel ID`: only a job still waiting for a worker; FeedbackError (one line) otherwise."""
    from utils.jobs import JobQueue

    job = JobQueue(FeedbackStore(args.db, create=args.db is None)).cancel(args.id)
    print(f"job #{job.id} cancelled")
    return 0


def worker(args: argparse.Namespace) -> int:
    """Serve the job queue; each job's start and end is one line on stderr."""
    from app.jobs.retrain import RUNNERS
    from app.jobs.worker import Worker
    from utils.jobs import DONE, JobQueue

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    store = FeedbackStore(args.db, create=args.db is None)  # a mistyped --db would be served empty, forever
    queue = JobQueue(store)
    for job in queue.recover_stale():
        print(f"job #{job.id}: {job.message}", file=sys.stderr)
    w = Worker(queue, RUNNERS)
    print(f"worker {w.name} serving {store.location}", file=sys.stderr)
    failed = 0
    while True:
        try:
            ended = w.run_one()
        except DBAPIError as exc:  # the server is away for a moment: say so and keep serving
            if args.once:
                raise
            print(f"worker: the job queue is unreachable ({str(exc.orig).splitlines()[0]}); retrying", file=sys.stderr)
            ended = None
            time.sleep(max(0.1, args.poll))
            continue
        if ended is not None:
            failed += ended.state != DONE
            print(f"job #{ended.id} ({ended.kind}) {ended.state}: {ended.message}", file=sys.stderr)
            continue
        if args.once:
            break
        time.sleep(max(0.1, args.poll))
    return 2 if failed else 0
