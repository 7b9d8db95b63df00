"""Streamlit AppTest harness: the entry point, time-outs, a test bundle root, and what a page must show."""

from __future__ import annotations

import html
import re
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from tests.helpers.bundles import make_test_bundle
from tests.helpers.data import ROOT, SHARED

MAIN = str(ROOT / "app" / "main.py")

TIMEOUT = 120

CLIP = SHARED / "data" / "gtzan_mini" / "jazz" / "jazz.00000.flac"

@pytest.fixture(scope="module")
def bundle_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A checkpoints folder holding one random-weights bundle."""
    root = tmp_path_factory.mktemp("checkpoints")
    make_test_bundle(root)
    return root

def track_heading(at: AppTest) -> str | None:
    """The file name heading of the Analyze page's detail view, as the browser shows it (HTML decoded)."""
    for element in at.get("html"):
        body = element.proto.body
        if body.startswith("<h3"):
            return html.unescape(re.sub(r"<[^>]+>", "", body))
    return None

def no_exceptions(at: AppTest) -> None:
    """Fail with the app's own message when a page raised or showed a traceback."""
    assert not at.exception, [e.value for e in at.exception]
