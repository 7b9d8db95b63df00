"""The Feedback page's own uploader: bytes this session already analysed under another name say so."""

from __future__ import annotations

import hashlib
from dataclasses import replace
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from app.analysis import Analysis
from app.ui.upload_jobs import known_audio_note
from tests.helpers.analyses import fake_analysis
from tests.helpers.bundles import make_test_bundle
from tests.helpers.data import ROOT, synth_music, wav_bytes
from utils import settings


@pytest.fixture
def page_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A test bundle as the current model and a SQLite feedback store, both under tmp_path."""
    make_test_bundle(tmp_path / "ckpt")
    monkeypatch.setenv("GENRE_LENS_CHECKPOINTS", str(tmp_path / "ckpt"))
    monkeypatch.setenv(settings.DB_URL_ENV, f"sqlite:///{tmp_path / 'fb.sqlite3'}")


def test_the_note_names_both_files_and_stays_quiet_for_the_same_name() -> None:
    note = known_audio_note("feedback_name.flac", "analyze_name.flac")
    assert note is not None and "feedback_name.flac" in note and "analyze_name.flac" in note
    assert known_audio_note("same.flac", "same.flac") is None


def test_twin_notes_show_names_safely_and_know_a_failed_first() -> None:
    from app.ui.upload_jobs import same_audio_notes

    held = {"f1": ("abc", "a\u202e.wav"), "f2": ("abc", "b%22.wav"), "f3": (None, "c.wav"), "f4": ("def", "d.wav")}
    assert same_audio_notes(held) == ['b".wav has the same audio as a.wav, so it is shown once, under that name.']
    assert same_audio_notes(held, {"f1"}) == [
        'b".wav has the same bytes as a.wav, which could not be analysed (see the error above).']


def test_a_second_name_for_analysed_bytes_is_not_silently_dropped(page_env: None) -> None:
    data = wav_bytes(synth_music(3.0), 22050)
    a = replace(fake_analysis(seed=2, name="analyze_name.wav"), sha256=hashlib.sha256(data).hexdigest())
    at = AppTest.from_file(str(ROOT / "pages" / "feedback.py"), default_timeout=60)
    at.session_state["gl.tracks"] = {a.sha256: a}
    at.run()
    at.file_uploader[0].upload("feedback_name.wav", data, "audio/wav").run()
    assert not at.exception, at.exception
    shown = [i.value.replace("\\", "") for i in at.info]  # markdown-escaped, drawn literally
    assert any("feedback_name.wav has the same audio as analyze_name.wav" in i for i in shown), shown
    assert len(at.session_state["gl.tracks"]) == 1, "analysed once"


def test_the_uploaders_take_every_type_the_decoder_and_the_cli_take() -> None:
    from app.ui.upload_jobs import ACCEPTED, MIME, mime_of
    from utils.constants import AUDIO_EXTENSIONS

    assert {f".{t}" for t in ACCEPTED} == AUDIO_EXTENSIONS, "an .opus, .aac or .aiff file was refused at the door"
    assert set(MIME) == set(ACCEPTED) and mime_of("x.AIF", None) == "audio/aiff"


def older_models_track(data: bytes, name: str) -> tuple[AppTest, Analysis]:
    """The Feedback page run once with a session track (and its audio) that an older model analysed."""
    old = replace(fake_analysis(seed=2, name=name), sha256=hashlib.sha256(data).hexdigest(),
                  model={"id": "an-older-model", "version": "old-v1"})
    at = AppTest.from_file(str(ROOT / "pages" / "feedback.py"), default_timeout=60)
    at.session_state["gl.tracks"] = {old.sha256: old}
    at.session_state["gl.audio"] = {old.sha256: (data, "audio/wav")}
    return at.run(), old


def test_a_track_analysed_before_a_promotion_is_shown_as_the_current_model_sees_it(page_env: None) -> None:
    """After a promotion the Feedback page showed (and a correction recorded) the old model's answer."""
    at, old = older_models_track(wav_bytes(synth_music(16.0), 22050), "kept.wav")
    assert not at.exception, at.exception
    fresh = at.session_state["gl.tracks"][old.sha256]
    assert fresh.model["id"] != "an-older-model" and fresh.name == "kept.wav"
    assert any(f"Model: {fresh.model['version']}" in t.value for t in at.text)

    at.session_state["gl.tracks"] = {old.sha256: old}  # its audio too large to keep: said, not hidden
    at.session_state["gl.audio"] = {}
    at.run()
    assert any("Analysed with old-v1; the current model is" in c.value.replace("\\", "") for c in at.caption)


def test_a_file_left_by_a_page_switch_is_analysed_on_return(page_env: None) -> None:
    """A file dropped on Feedback and left mid-analysis by a page switch was gone on return, without a word."""
    from app.ui.upload_jobs import Job

    data = wav_bytes(synth_music(16.0, seed=5), 22050)
    sha = hashlib.sha256(data).hexdigest()
    at = AppTest.from_file(str(ROOT / "pages" / "feedback.py"), default_timeout=60)
    at.session_state["gl.queue"] = {sha: Job("left.wav", data, "audio/wav", "a-chip-that-is-gone", sha)}
    at.run()
    assert not at.exception, at.exception
    assert [a.name for a in at.session_state["gl.tracks"].values()] == ["left.wav"]
    assert any(i.value.startswith("Analysed 1 file left from before you switched pages") for i in at.info)
    assert at.session_state["gl.queue"] == {}
    assert at.selectbox(key="gl.fb.pick_track").value == sha, "offered for correction"


def test_a_failed_second_analysis_is_said_once_and_not_retried(page_env: None, monkeypatch: pytest.MonkeyPatch) -> None:
    """A track whose new analysis failed was decoded again at every rerun of the page, its error never shown."""
    from app.engine import Engine

    calls: list[str] = []
    real = Engine.analyze
    monkeypatch.setattr(Engine, "analyze", lambda self, *a, **k: (calls.append("x"), real(self, *a, **k))[1])
    at, _ = older_models_track(b"RIFF\x00\x00\x00\x00WAVEnot audio any more", "broken.wav")
    assert not at.exception, at.exception
    shown = [e.value.replace("\\", "") for e in at.error]
    assert len(calls) == 1 and any("broken.wav" in e for e in shown), shown
    at.run()
    assert len(calls) == 1, "tried once, not at every rerun"
    assert any("broken.wav" in e.value.replace("\\", "") for e in at.error)
