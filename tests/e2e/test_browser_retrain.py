"""A retrain in a real browser: "Retrain now" queues a job, the page follows its progress by itself
(the `st.fragment(run_every=...)` poll), a reload mid-run shows the same progress, and the result
appears when the job ends, all without a click.

The server runs with GENRE_LENS_WORKER=off and the worker is this test's (the real retrain on the small
synthetic world of tests/helpers/retrain.py, paused half-way until the reload has been checked), so the
test decides when the job moves on. Needs Chromium at /usr/bin/chromium. Screenshots go to test-artifacts/.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from app.jobs.worker import Worker
from models.classifier.bundle import current_version, update_card
from tests.helpers.browser import ARTIFACTS, CHROMIUM, CHROMIUM_ARGS, needs_browser, shoot, streamlit_server
from tests.helpers.retrain import add_correction, fresh_root, paused_retrain
from utils.feedback import FeedbackStore
from utils.jobs import JobQueue

pytestmark = pytest.mark.browser
TIMEOUT_MS = 30_000


@pytest.fixture
def retrain_server(world: dict, tmp_path: Path) -> Iterator[dict]:
    """`streamlit run` on a checkpoints copy whose card names this test's tables, and a database with corrections."""
    needs_browser()
    root = fresh_root(world, tmp_path)
    world["table"].save(tmp_path / "train.npz")
    world["test"].save(tmp_path / "test.npz")  # beside the training table: where the reported numbers come from
    update_card(root / "base", lambda card: card.training.__setitem__("data", str(tmp_path / "train.npz")))
    db = f"sqlite:///{tmp_path / 'fb.sqlite3'}"
    store = FeedbackStore(db)
    for k, (e, s) in enumerate(world["tracks"][:3]):
        add_correction(store, e, s, world["target"], "base", k)
    env = {**os.environ, "GENRE_LENS_DEVICE": "cpu", "PYTHONUNBUFFERED": "1", "GENRE_LENS_CHECKPOINTS": str(root),
           "GENRE_LENS_DB_URL": db, "GENRE_LENS_WORKER": "off"}
    with streamlit_server(env, ARTIFACTS / "server-retrain.log") as (url, _):
        yield {"url": url, "db": db, "root": root}
    assert "Traceback" not in (ARTIFACTS / "server-retrain.log").read_text(errors="replace")


def test_the_page_follows_a_retrain_by_itself_and_a_reload_shows_its_progress(retrain_server: dict) -> None:
    from playwright.sync_api import expect, sync_playwright

    reached, release = threading.Event(), threading.Event()

    paused = paused_retrain(reached, release, wait_s=120)

    worker = None
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_context(viewport={"width": 1440, "height": 1000}).new_page()
            page.goto(f"{retrain_server['url']}/feedback", wait_until="domcontentloaded")
            main = page.locator("[data-testid=stMain]")
            expect(main.get_by_text("3 not used by any version yet")).to_be_visible(timeout=TIMEOUT_MS)
            main.get_by_role("button", name="Retrain now").click()
            expect(main.get_by_text("Queued (job #1, asked for by you")).to_be_visible(timeout=TIMEOUT_MS)

            worker = Worker(JobQueue(FeedbackStore(retrain_server["db"])), {"retrain": paused}).start()
            assert reached.wait(60)
            running = main.get_by_text("5% · Training on the base table + 2 corrections")
            expect(running).to_be_visible(timeout=TIMEOUT_MS)  # no click: the fragment polled the job
            expect(main.get_by_role("button", name="Retrain now")).to_be_disabled()
            page.reload(wait_until="domcontentloaded")
            expect(running).to_be_visible(timeout=TIMEOUT_MS)  # state from the database, not the session
            expect(main.get_by_text("It runs on the server: you may leave or reload this page")).to_be_visible()
            shoot(page, "retrain-running-after-reload")

            release.set()
            expect(main.get_by_text("Promoted: base-r1 is now the current model.")).to_be_visible(timeout=90_000)
            expect(main.get_by_text("Current model: base-r1.", exact=False)).to_be_visible(timeout=TIMEOUT_MS)
            shoot(page, "retrain-done")
        finally:
            release.set()
            if worker is not None:
                worker.stop()
            browser.close()
    assert current_version(retrain_server["root"]) == "base-r1"
