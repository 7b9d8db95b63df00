"""A real Streamlit server and Chromium for browser tests (skipped where either is missing)."""

from __future__ import annotations

import contextlib
import os
import re
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from models.classifier.bundle import DEFAULT_ROOT, current_version
from tests.helpers.bundles import make_test_bundle
from tests.helpers.data import ROOT

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

def free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]

def wait_healthy(url: str, proc: subprocess.Popen, timeout_s: float, log_path: Path) -> None:
    """Poll Streamlit's health endpoint until it answers, the server dies, or time runs out."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            tail = log_path.read_text(errors="replace")[-2000:] if log_path.exists() else ""
            raise RuntimeError(f"streamlit exited with status {proc.returncode}; {log_path}:\n{tail}")
        try:
            with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            time.sleep(0.3)
    raise TimeoutError(f"streamlit did not become healthy within {timeout_s:.0f} s; see {log_path}")


@contextlib.contextmanager
def streamlit_server(env: dict[str, str], log_path: Path, timeout_s: float = START_TIMEOUT_S) -> Iterator[
        tuple[str, subprocess.Popen]]:
    """`streamlit run app/main.py` on a free 127.0.0.1 port with `env`; yields (url, process); always stopped.

    The browser tests and bench/bench_load.py start their servers here.
    """
    port = free_port()
    cmd = [sys.executable, "-m", "streamlit", "run", "app/main.py", "--server.port", str(port), "--server.address",
           "127.0.0.1", "--server.headless", "true", "--server.fileWatcherType", "none",
           "--browser.gatherUsageStats", "false"]
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        url = f"http://127.0.0.1:{port}"
        wait_healthy(url, proc, timeout_s, log_path)
        yield url, proc
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)


def needs_browser() -> None:
    """Skip with a reason where Chromium or Playwright is missing."""
    if not CHROMIUM.exists():
        pytest.skip("needs Chromium at /usr/bin/chromium (apt-get install chromium)")
    pytest.importorskip("playwright.sync_api", reason="needs the playwright Python package")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The app on the bundled model (or a test bundle where none is current), for one test module."""
    needs_browser()
    env = {**os.environ, "GENRE_LENS_DEVICE": "cpu", "PYTHONUNBUFFERED": "1"}
    if current_version(DEFAULT_ROOT) is None:
        root = tmp_path_factory.mktemp("checkpoints")
        make_test_bundle(root)
        env["GENRE_LENS_CHECKPOINTS"] = str(root)
    with streamlit_server(env, ARTIFACTS / "server.log") as (url, _):
        yield url


def shoot(page, name: str) -> Path:
    """Screenshot the whole app: grow the viewport to the main area's height (it scrolls internally)."""
    height = page.evaluate("(document.querySelector('[data-testid=stMain]') || document.body).scrollHeight")
    page.set_viewport_size({"width": 1440, "height": max(900, min(int(height) + 40, 7000))})
    page.wait_for_timeout(800)  # let plotly re-layout at the new size
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


ANALYSIS_TIMEOUT_MS = 60_000
VERDICT = re.compile(r"^(Sounds like |Not sure · |Not music · )")  # the Analysis page's first heading
