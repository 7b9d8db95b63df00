"""Test fixtures shared by the suite: paths to ../shared and small generated audio."""

from __future__ import annotations

from pathlib import Path

import pytest
import soundfile as sf
import torch

# fixtures that several test modules use by name (factories live in tests/helpers, fixtures are registered here)
from tests.helpers.apptest import bundle_root  # noqa: F401
from tests.helpers.browser import server  # noqa: F401
from tests.helpers.data import synth_music
from tests.helpers.engines import random_engine  # noqa: F401
from tests.helpers.postgres import db_url, postgres_server, postgres_url  # noqa: F401
from tests.helpers.retrain import world  # noqa: F401

torch.set_num_threads(2)








@pytest.fixture
def music_wav(tmp_path: Path) -> Path:
    """A 20 s synthetic 22.05 kHz WAV on disk."""
    path = tmp_path / "synth.wav"
    sf.write(path, synth_music(), 22050)
    return path




@pytest.fixture(autouse=True)
def _isolated_feedback_db(tmp_path_factory, monkeypatch):
    """Never let a test write the developer's feedback database under data/."""
    data = tmp_path_factory.mktemp("data")
    monkeypatch.setenv("GENRE_LENS_DATA", str(data))
    monkeypatch.delenv("GENRE_LENS_DB_URL", raising=False)
    monkeypatch.setenv("GENRE_LENS_WORKER", "off")  # no job-worker thread per page test; tests of it switch it on
