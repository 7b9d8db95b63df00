"""Retraining as a job: its parameters, the runner a worker calls, and the request both UIs make. No Streamlit.

"Retrain now" (pages/feedback.py via app/ui/retrain_views.py) and `python -m app retrain` do the same
thing: check the inputs, then `request_retrain`, which queues one "retrain" job or raises
`JobBusyError` ("a retrain is already running (started …)") when one is queued or running anywhere.
A worker (app/jobs/worker.py) then runs `run_retrain`, which is `models.training.retrain.retrain` itself with
the tables the current model names: the real path, whoever asked. Parameters are plain JSON (paths
as strings), so a job queued by one process can be run by another.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import models.training.retrain as retrain_module
from app.jobs.worker import JobOutcome, Progress, Runner, Worker
from models.classifier.bundle import current_version, read_card, resolve_bundle
from utils.feedback import FeedbackStore, trainable
from utils.jobs import ACTIVE, Job, JobQueue
from utils.tables import load_table, load_tables

KIND = "retrain"


@dataclass(frozen=True)
class RetrainInputs:
    """The tables a retrain reads, resolved and checked."""

    tables: list[Path]
    valid: Path | None
    test: Path | None  # None: no reported test numbers (the table is not on this machine)


def retrain_params(root: Path, *, margin: float = 1.0, force: bool = False, tables: list[Path] | None = None,
                   valid: Path | None = None, test: Path | None = None, weight: float | None = None,
                   epochs: int | None = None, seed: int | None = None) -> dict[str, Any]:
    """A job's parameters as JSON-friendly values (None: the current model's defaults)."""
    def absolute(path: Path | None) -> str | None:  # a worker may run in another folder than the one queuing
        return str(Path(path).resolve()) if path else None

    return {"root": absolute(root), "margin": float(margin), "force": bool(force),
            "tables": [absolute(p) for p in tables] if tables else None, "valid": absolute(valid),
            "test": absolute(test), "weight": weight, "epochs": epochs, "seed": seed}


def resolve_inputs(params: dict[str, Any]) -> RetrainInputs:
    """The tables of a retrain: given ones, else the current model's; RetrainError when one is missing."""
    card = read_card(resolve_bundle(None, Path(params["root"])))
    default_train, default_valid = retrain_module.default_tables(card)
    tables = [Path(p) for p in params.get("tables") or []] or default_train
    for path in tables:
        if not path.is_file():
            raise retrain_module.RetrainError(
                f"No base training table at {path}; pass --table PATH (the current model was trained on "
                f"{card.training.get('data')}).")
    valid = Path(params["valid"]) if params.get("valid") else default_valid
    if valid is not None and not valid.is_file():
        raise retrain_module.RetrainError(f"No validation table at {valid}; pass --valid PATH.")
    if params.get("test"):  # asked for: a typo must not drop the test numbers without a word
        test: Path | None = Path(params["test"])
        if not test.exists():
            raise retrain_module.RetrainError(f"No test table at {test}; check --test PATH.")
    else:  # the current model's own test table, when it lies beside its training table (optional)
        test = retrain_module.test_table_of(card)
        test = test if test.is_file() else None
    return RetrainInputs(tables, valid, test)


def run_retrain(store: FeedbackStore, job: Job, progress: Progress) -> JobOutcome:
    """The runner of "retrain" jobs: `models.training.retrain.retrain` on the resolved tables, progress passed on."""
    params = job.params
    root = Path(params["root"])
    inputs = resolve_inputs(params)
    card = read_card(resolve_bundle(None, root))
    cfg = retrain_module.parent_config(card, epochs=params["epochs"]) if params.get("epochs") else None
    progress(0.0, "Loading the training tables")
    result = retrain_module.retrain(
        store, load_tables(inputs.tables), load_table(inputs.valid) if inputs.valid else None,
        test=load_table(inputs.test) if inputs.test else None, root=root, margin=float(params.get("margin", 1.0)),
        force=bool(params.get("force")), weight=params.get("weight"), cfg=cfg, seed=params.get("seed"),
        progress=progress)
    return JobOutcome(result=result.to_dict(), message=result.reason, result_version=result.version,
                      parent_version=result.parent_version)


RUNNERS: dict[str, Runner] = {KIND: run_retrain}


def check_new_corrections(store: FeedbackStore, params: dict[str, Any]) -> int:
    """How many stored genre corrections no version used yet; RetrainError when none and the request is not forced."""
    card = read_card(resolve_bundle(None, Path(params["root"])))
    used = store.usage()
    new = [c for c in trainable(store.list(), str(card.embedder.get("id"))) if c.id not in used]
    if not new and not params.get("force"):
        raise retrain_module.RetrainError("No new corrections since the last retrain (all stored ones are used "
                                          "already); add corrections first or force a retrain.")
    return len(new)


def request_retrain(store: FeedbackStore, params: dict[str, Any], requested_by: str | None = None) -> Job:
    """Queue a retrain; raises JobBusyError (queuing nothing) while another is queued or running."""
    return JobQueue(store).enqueue(KIND, params, requested_by=requested_by,
                                   parent_version=current_version(Path(params["root"])))


def run_or_follow(store: FeedbackStore, job: Job, on_progress: Progress, poll_s: float = 0.5,
                  runners: dict[str, Runner] | None = None) -> Job:
    """Run `job` here when no other worker has claimed it, else follow it; returns it as it ended.

    `on_progress(fraction, message)` is called as the job advances (the CLI prints a line).
    """
    queue = JobQueue(store)
    shown: list[tuple[float, str]] = []
    ended = Worker(queue, runners or RUNNERS).run_one(job_id=job.id, progress=on_progress)
    if ended is not None:
        return ended
    while True:  # another worker (the app's, or `python -m app worker`) took it: follow it in the database
        current = queue.get(job.id)
        if current is None:
            raise retrain_module.RetrainError(f"Job #{job.id} disappeared from the database.")
        if (current.progress, current.message) not in shown[-1:]:
            shown.append((current.progress, current.message))
            on_progress(current.progress, current.message)
        if current.state not in ACTIVE:
            return current
        time.sleep(poll_s)
