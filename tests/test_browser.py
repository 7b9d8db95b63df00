"""End to end in a real browser: `streamlit run`, upload through the page, visit every page.

Needs Debian's Chromium at /usr/bin/chromium (Playwright cannot download browsers here). Uses the
installed model when models/checkpoints has one, else a random-weights test bundle (plumbing only).
Screenshots and the server log go to test-artifacts/ for a human to look at.
"""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from models.classifier.bundle import DEFAULT_ROOT, current_version
from tests.conftest import ROOT, synth_music, wav_bytes
from tests.test_app import CLIP, make_test_bundle

pytestmark = pytest.mark.browser
CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = ROOT / "test-artifacts"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
START_TIMEOUT_S = 40
ANALYSIS_TIMEOUT_MS = 60_000
VERDICT = re.compile(r"^(Sounds like |Not sure · |Not music · )")


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_healthy(url: str, proc: subprocess.Popen, timeout_s: float) -> None:
    """Poll Streamlit's health endpoint until it answers, the server dies, or time runs out."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"streamlit exited with status {proc.returncode}; see {ARTIFACTS / 'server.log'}")
        try:
            with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            time.sleep(0.3)
    raise TimeoutError(f"streamlit did not become healthy within {timeout_s:.0f} s")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A `streamlit run app/main.py` on a free local port; always terminated afterwards."""
    if not CHROMIUM.exists():
        pytest.skip("needs Chromium at /usr/bin/chromium (apt-get install chromium)")
    pytest.importorskip("playwright.sync_api", reason="needs the playwright Python package")
    env = {**os.environ, "GENRE_LENS_DEVICE": "cpu", "PYTHONUNBUFFERED": "1"}
    if current_version(DEFAULT_ROOT) is None:
        root = tmp_path_factory.mktemp("checkpoints")
        make_test_bundle(root)
        env["GENRE_LENS_CHECKPOINTS"] = str(root)
    ARTIFACTS.mkdir(exist_ok=True)
    port = free_port()
    cmd = [
        sys.executable,
        "-m",
        "streamlit",
        "run",
        "app/main.py",
        "--server.port",
        str(port),
        "--server.address",
        "127.0.0.1",
        "--server.headless",
        "true",
        "--server.fileWatcherType",
        "none",
        "--browser.gatherUsageStats",
        "false",
    ]
    with open(ARTIFACTS / "server.log", "wb") as log:
        proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            url = f"http://127.0.0.1:{port}"
            wait_healthy(url, proc, START_TIMEOUT_S)
            yield url
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=5)


def shoot(page, name: str) -> Path:
    """Screenshot the whole app: grow the viewport to the main area's height (it scrolls internally)."""
    height = page.evaluate("(document.querySelector('[data-testid=stMain]') || document.body).scrollHeight")
    page.set_viewport_size({"width": 1440, "height": max(900, min(int(height) + 40, 7000))})
    page.wait_for_timeout(800)  # let plotly re-layout at the new size
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


def test_upload_and_visit_every_page(server: str, tmp_path: Path) -> None:
    from playwright.sync_api import expect, sync_playwright

    clips = [CLIP, CLIP.parent.parent / "metal" / "metal.00000.flac"]
    if not all(c.exists() for c in clips):
        clips = [tmp_path / "synth-1.wav", tmp_path / "synth-2.wav"]
        for seed, c in enumerate(clips):
            c.write_bytes(wav_bytes(synth_music(seed=seed), 22050))
    bad = tmp_path / "broken.wav"
    bad.write_bytes(np.random.default_rng(0).bytes(4096))
    console_errors: list[str] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1440, "height": 900})
            page.on("console", lambda m: console_errors.append(m.text) if m.type == "error" else None)
            page.goto(server, wait_until="domcontentloaded")
            expect(page.get_by_role("heading", name="Analyze")).to_be_visible(timeout=30_000)
            uploader = page.locator("[data-testid=stFileUploader] input[type=file]")
            expect(uploader).to_have_count(1, timeout=30_000)  # shown once the model has loaded
            shoot(page, "01-analyze-empty")

            uploader.set_input_files([*map(str, clips), str(bad)])
            expect(page.get_by_role("heading", name=VERDICT)).to_be_visible(timeout=ANALYSIS_TIMEOUT_MS)
            # bars, attention, slice heatmap + the comparison; the linked player draws the rest (#17)
            expect(page.locator(".js-plotly-plot")).to_have_count(4, timeout=30_000)
            expect(page.locator("iframe[data-testid=stCustomComponentV1]")).to_have_count(1)
            expect(page.get_by_text("broken.wav", exact=False).first).to_be_visible()
            assert page.locator("[data-testid=stException]").count() == 0
            shoot(page, "02-analyze-results")

            links = page.locator("[data-testid=stSidebarNavLink]")
            titles = [t.strip().splitlines()[-1].strip() for t in links.all_inner_texts()]  # drop the icon ligature
            assert "Metrics" in titles, titles
            for i, title in enumerate(titles):
                if title == "Analyze":
                    continue
                page.set_viewport_size({"width": 1440, "height": 900})
                links.nth(i).click()
                expect(page.get_by_role("heading", name=title).first).to_be_visible(timeout=30_000)
                page.wait_for_load_state("networkidle")
                page.wait_for_timeout(1500)
                assert page.locator("[data-testid=stException]").count() == 0, title
                shoot(page, f"03-{title.lower()}")

            page.set_viewport_size({"width": 1440, "height": 900})
            links.nth(titles.index("Analyze")).click()
            expect(page.get_by_role("heading", name=VERDICT)).to_be_visible(timeout=30_000)
            expect(page.locator(".js-plotly-plot")).to_have_count(4, timeout=30_000)
            shoot(page, "04-analyze-after-switch")
        finally:
            browser.close()
    (ARTIFACTS / "console-errors.txt").write_text("\n".join(console_errors))
