"""Retraining as a job, end to end on the small synthetic world of tests/helpers/retrain.py: the Feedback page
queues it and the server's worker thread runs the real retrain; a reload mid-run shows its progress; the
CLI queues, refuses a second request and `worker --once` runs it; a bundle is never visible half-written."""

from __future__ import annotations

import re
import threading
import time
from pathlib import Path

import pytest

import models.training.retrain as retrain_module
from app.jobs.worker import Worker
from models.classifier.bundle import current_version, list_versions
from tests.helpers.retrain import add_correction, corrected_world, fast_and_fair, fresh_root, paused_retrain  # noqa: F401  (fixtures)
from utils.feedback import FeedbackStore
from utils.jobs import DONE, RUNNING, JobQueue

pytestmark = pytest.mark.usefixtures("fast_and_fair")


@pytest.fixture
def page_env(world: dict, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """A checkpoints copy, a database with 3 corrections, and the page pointed at both (tiny training recipe)."""
    root, db, store = corrected_world(world, tmp_path, 3)
    monkeypatch.setenv("GENRE_LENS_CHECKPOINTS", str(root))
    monkeypatch.setenv("GENRE_LENS_DB_URL", db)
    monkeypatch.setattr(retrain_module, "default_tables", lambda card: ([tmp_path / "train.npz"], None))
    monkeypatch.setattr(retrain_module, "test_table_of", lambda card: tmp_path / "test.npz")
    real = retrain_module.retrain
    monkeypatch.setattr(retrain_module, "retrain", lambda *a, **k: real(*a, **{**k, "cfg": world["cfg"]}))
    yield {"root": root, "db": db, "store": store}
    import streamlit as st

    st.cache_resource.clear()  # stops the server worker thread a page started (on_release)
    deadline = time.monotonic() + 10
    while any(t.name.startswith("genre-lens-worker") for t in threading.enumerate()) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not any(t.name.startswith("genre-lens-worker") for t in threading.enumerate())


def feedback_page():
    from streamlit.testing.v1 import AppTest

    from tests.helpers.data import ROOT

    at = AppTest.from_file(str(ROOT / "pages" / "feedback.py"), default_timeout=120)
    at.run()
    assert not at.exception, at.exception
    return at


def rerun_until(at, done, timeout: float = 120.0):
    """Rerun the page (what the fragment's polling does) until `done(at)`."""
    deadline = time.monotonic() + timeout
    while not done(at):
        assert time.monotonic() < deadline, "the page never showed the expected state"
        time.sleep(0.3)
        at.run()
    return at


def unescape(text: str) -> str:
    """Markdown escapes removed (job messages are shown as literal text)."""
    return re.sub(r"\\(.)", r"\1", text)


def bars(at) -> list[str]:
    """The progress bars' texts."""
    return [unescape(p.proto.text) for p in at.get("progress")]


def test_feedback_page_queues_the_retrain_and_its_worker_runs_it(page_env: dict, monkeypatch) -> None:
    monkeypatch.setenv("GENRE_LENS_WORKER", "on")  # the server's own worker thread (the suite turns it off)
    at = feedback_page()
    assert any("3 not used by any version yet" in t.value for t in at.text)
    next(b for b in at.button if b.label == "Retrain now").click()
    at.run()
    assert not at.exception, at.exception
    rerun_until(at, lambda a: any("Promoted" in s.value for s in a.success))
    assert not at.error, [e.value for e in at.error]
    table = at.dataframe[-1].value
    assert table["model"].tolist() == ["base-r1", "base"] and "accuracy on 1 held-out correction" in table
    assert any("never decides a promotion" in c.value for c in at.caption)
    assert any("is now current" in t.value for t in at.text)
    assert current_version(page_env["root"]) == "base-r1"
    job = JobQueue(page_env["store"]).latest("retrain")
    assert job.state == DONE and job.result_version == "base-r1" and job.parent_version == "base"
    assert job.requested_by and any(f"job #{job.id}, asked for by you" in c.value for c in at.caption)
    assert any("3 corrections apply to it; 1 not used" in t.value for t in at.text)  # the page reran at the end


def test_a_reload_during_a_retrain_shows_its_progress(page_env: dict, monkeypatch: pytest.MonkeyPatch) -> None:
    """The worker here is the test's (the server's is off), running the real retrain paused half-way."""
    monkeypatch.setenv("GENRE_LENS_WORKER", "off")
    first = feedback_page()
    next(b for b in first.button if b.label == "Retrain now").click()
    first.run()
    assert any(t.startswith("Queued (job #1, asked for by you") for t in bars(first)), bars(first)
    assert any("GENRE_LENS_WORKER=off" in c.value for c in first.caption)

    reached, release = threading.Event(), threading.Event()

    paused = paused_retrain(reached, release, wait_s=60)

    worker = Worker(JobQueue(FeedbackStore(page_env["db"])), {"retrain": paused}, heartbeat_s=0.2).start()
    try:
        assert reached.wait(60)
        queue, deadline = JobQueue(page_env["store"]), time.monotonic() + 30
        while queue.latest("retrain").progress < 0.05 and time.monotonic() < deadline:
            time.sleep(0.05)  # the throttled progress write lands within 0.25 s (later on a loaded machine)
        reloaded = feedback_page()  # a reload: a new session, nothing in session_state
        assert "5% · Training on the base table + 2 corrections" in bars(reloaded), bars(reloaded)
        assert any("asked for by another session, started" in c.value and "reload this page" in c.value
                   for c in reloaded.caption)
        button = next(b for b in reloaded.button if b.label == "Retrain now")
        assert button.disabled  # one retrain at a time
        assert JobQueue(page_env["store"]).latest("retrain").state == RUNNING
        assert list_versions(page_env["root"]) == ["base"]  # nothing of the new version is visible yet
        release.set()
        rerun_until(reloaded, lambda a: any("Promoted" in s.value for s in a.success))
        assert current_version(page_env["root"]) == "base-r1" and not bars(reloaded)
        first.run()  # the tab that asked shows the same result
        assert any("Promoted" in s.value for s in first.success)
    finally:
        release.set()
        worker.stop()


def test_the_cli_queues_refuses_a_second_request_and_the_worker_runs_it(world: dict, tmp_path: Path,
                                                                         capsys: pytest.CaptureFixture) -> None:
    from app.cli.main import main

    root, db, store = corrected_world(world, tmp_path, 2)
    args = ["retrain", "--table", str(tmp_path / "train.npz"), "--test", str(tmp_path / "test.npz"), "--root",
            str(root), "--db", db, "--epochs", "3"]
    assert main([*args, "--no-wait"]) == 0
    assert "queued retrain job #1" in capsys.readouterr().out
    assert main(args) == 2
    assert "error: A retrain is already queued (requested " in capsys.readouterr().err
    assert main(["worker", "--once", "--db", db]) == 0
    err = capsys.readouterr().err
    assert "job #1 (retrain) done: base-r1 is now current" in err, err
    job = JobQueue(store).get(1)
    assert job.state == DONE and job.result["correction_ids"] and current_version(root) == "base-r1"
    assert main(args) == 0  # the held-out correction is still new: run here, with a progress line
    out, err = capsys.readouterr()
    assert "retrain job #2" in err and "[  5%] Training on the base table + 2 corrections" in err
    assert "base-r2 is now current" in out and current_version(root) == "base-r2"
    assert main(args) == 2 and "No new corrections" in capsys.readouterr().err  # refused before queueing
    assert [j.id for j in JobQueue(store).history("retrain")] == [2, 1]


def test_a_bundle_is_invisible_until_complete_and_a_crash_leaves_nothing(
    world: dict, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    root = fresh_root(world, tmp_path)
    store = FeedbackStore(f"sqlite:///{tmp_path / 'fb.sqlite3'}")
    for k, (e, s) in enumerate(world["tracks"][:3]):
        add_correction(store, e, s, world["target"], "base", k)
    seen: list[tuple[str, list[str], bool, bool]] = []

    def watch(fraction: float, message: str) -> None:
        if fraction >= 0.82:  # the bundle is being written, judged and evaluated
            seen.append((message, list_versions(root), (root / "base-r1").exists(),
                         (root / ".base-r1.partial" / "card.json").is_file()))

    res = retrain_module.retrain(store, world["table"], None, test=world["test"], root=root, cfg=world["cfg"],
                                 progress=watch)
    assert [m for m, *_ in seen][:2] == ["Judging base-r1 against base on held-out corrections",
                                         "Promoting base-r1; recording its test metrics (for reporting only)"]
    assert all(versions == ["base"] and not final and staged for _, versions, final, staged in seen[:-1])
    assert res.folder == root / "base-r1" and (res.folder / "metrics.json").is_file()
    assert not (root / ".base-r1.partial").exists() and current_version(root) == "base-r1"

    for k, (e, s) in enumerate(world["tracks"][3:5]):  # two more corrections, then a crash while evaluating
        add_correction(store, e, s, world["target"], "base", 10 + k)
    usage = store.usage()

    def crash(*a, **k):
        raise OSError("disk full")

    monkeypatch.setattr(retrain_module, "evaluate_and_record", crash)
    with pytest.raises(OSError, match="disk full"):
        retrain_module.retrain(store, world["table"], None, test=world["test"], root=root, cfg=world["cfg"])
    assert sorted(p.name for p in root.iterdir()) == ["CURRENT", "base", "base-r1"]  # no base-r2, no staging
    assert current_version(root) == "base-r1" and store.usage() == usage  # nothing marked used by a ghost


def test_a_queued_retrain_can_be_cancelled_from_the_page(page_env: dict, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GENRE_LENS_WORKER", "off")  # nothing will ever run it: the admin withdraws it
    at = feedback_page()
    next(b for b in at.button if b.label == "Retrain now").click()
    at.run()
    assert next(b for b in at.button if b.label == "Retrain now").disabled
    next(b for b in at.button if b.label == "Cancel this retrain").click()
    at.run()
    assert not at.exception, at.exception
    assert any("failed: Cancelled before it started." in unescape(e.value) for e in at.error)
    assert not next(b for b in at.button if b.label == "Retrain now").disabled  # free to ask again
    assert JobQueue(page_env["store"]).latest("retrain").state == "failed"
