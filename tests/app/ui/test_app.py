"""The Streamlit pages under AppTest: every page renders, uploads are analysed, bad files are explained.

AppTest (Streamlit 1.67) drives `st.file_uploader` directly (`at.file_uploader[0].upload(...)`), so
the real upload path runs: bytes -> engine -> session -> charts. The engine is real (MusiCNN
embedder) but its classifier has random weights: these tests check plumbing, not predictions, and
the bundle says so in its version name and notes.
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from streamlit.testing.v1 import AppTest

from models.classifier.bundle import ModelCard, save_bundle
from models.classifier.parallel_cnn import ClassifierConfig, ParallelCNN
from tests.helpers.apptest import CLIP, MAIN, TIMEOUT, no_exceptions, track_heading
from tests.helpers.bundles import make_test_bundle
from tests.helpers.data import ROOT, synth_music, wav_bytes
from utils.constants import GENRES


@pytest.fixture
def app(bundle_root: Path, monkeypatch: pytest.MonkeyPatch) -> AppTest:
    """The app pointed at the test bundle, on CPU."""
    monkeypatch.setenv("GENRE_LENS_CHECKPOINTS", str(bundle_root))
    monkeypatch.setenv("GENRE_LENS_DEVICE", "cpu")
    return AppTest.from_file(MAIN, default_timeout=TIMEOUT)


def clip() -> tuple[str, bytes]:
    """A real GTZAN clip when ../shared is here, else a generated 20 s one."""
    if CLIP.exists():
        return CLIP.name, CLIP.read_bytes()
    return "synth.wav", wav_bytes(synth_music(), 22050)


def test_every_page_renders(app: AppTest) -> None:
    app.run()
    no_exceptions(app)
    assert app.title[0].value == "Analyze"
    assert app.file_uploader, "the home page offers an upload"
    assert len(app.sidebar.slider) == 1
    pages = sorted(p.name for p in (ROOT / "pages").glob("*.py") if not p.name.startswith("_"))
    assert {"analyze.py", "metrics.py"} <= set(pages)
    for page in [*pages, "analyze.py"]:  # every page in pages/, then back to the first
        app.switch_page(f"../pages/{page}").run()
        no_exceptions(app)
        assert not app.error, [e.value for e in app.error]


def test_metrics_page_shows_numbers_and_filters(app: AppTest) -> None:
    app.run()
    app.switch_page("../pages/metrics.py").run()
    no_exceptions(app)
    assert [m.label for m in app.metric][:3] == ["Created", "Embedder", "Training tracks"]
    assert any(m.label == "Accuracy" for m in app.metric)
    assert "On everyday audio" in [h.value for h in app.subheader]  # the bench's record, or how to make one
    keys = {c.proto.id for c in app.get("plotly_chart")}
    assert len(keys) >= 5  # comparison, confusion, per-genre, reliability, curves
    app.segmented_control(key="tracks-outcome").set_value("Wrong").run()
    no_exceptions(app)
    wrong = app.dataframe[-1].value
    assert len(wrong) and not wrong["correct"].any()


def test_upload_shows_summary_timeline_spectrogram_and_attention(app: AppTest, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GENRE_LENS_PLAYER", "static")  # static charts (the player: test_player_view.py)
    app.run()
    name, data = clip()
    app.file_uploader[0].upload(name, data, "audio/flac").run()
    no_exceptions(app)
    assert not app.error, [e.value for e in app.error]
    assert track_heading(app) == name
    headings = [m.value for m in app.markdown if m.value.startswith("#### ")]
    assert re.match(r"#### (Sounds like |Not sure · |Not music · )", headings[0]), headings  # the verdict first
    charts = {c.proto.id: c for c in app.get("plotly_chart")}
    assert len(charts) == 6  # genre bars, timeline, spectrogram, slice strip, attention, slice heatmap
    figures = [json.loads(c.proto.spec) for c in charts.values()]
    types = sorted(t["type"] for f in figures for t in f["data"])
    assert types.count("heatmap") == 2 and types.count("bar") == 3
    assert any("drove this window" in i.value or "slices equally" in i.value for i in app.info)
    assert len(app.get("download_button")) == 2
    assert len(app.get("audio")) == 1
    # moving to another window re-renders the explanation for that window
    slider = app.select_slider(key=next(k for k in app.session_state if str(k).startswith("window-")))
    slider.set_value(0).run()
    no_exceptions(app)
    assert any("Window 1 · 0–15 s" in m.value for m in app.markdown)


def test_a_batch_cut_short_by_a_page_switch_resumes_on_return(app: AppTest) -> None:
    """What an interrupted batch leaves queued (its chips are gone: the uploader comes back empty)."""
    from app.ui.upload_jobs import Job

    name, data = clip()
    app.session_state["gl.queue"] = {hashlib.sha256(data).hexdigest(): Job("left-" + name, data, "audio/flac",
                                                                          "a-chip-that-is-gone")}
    app.run()
    no_exceptions(app)
    assert [a.name for a in app.session_state["gl.tracks"].values()] == ["left-" + name]
    assert any(i.value.startswith("Analysed 1 file left from before you switched pages") for i in app.info)
    assert not any(i.value.startswith("Analysing") for i in app.info), "said as done once it is"
    assert app.session_state["gl.queue"] == {}, "done: nothing waits any more"
    app.run()
    assert not any("left from before" in i.value for i in app.info), "said once"


def test_a_resumed_batch_says_which_of_its_files_failed(app: AppTest) -> None:
    """"Analysed 2 files left from before" was said when one of the two had failed."""
    from app.ui.upload_jobs import Job

    name, data = clip()
    app.session_state["gl.queue"] = {
        hashlib.sha256(data).hexdigest(): Job(name, data, "audio/flac", "gone-1"),
        hashlib.sha256(b"junk").hexdigest(): Job("junk.wav", b"junk", "audio/wav", "gone-2"),
    }
    app.run()
    no_exceptions(app)
    assert any(i.value.startswith("Analysed 1 of 2 files left from before you switched pages; 1 could not be "
                                  "analysed (see below)") for i in app.info), [i.value for i in app.info]
    assert said(app, "junk.wav")


def said(app: AppTest, name: str) -> bool:
    """Whether an error line names this file (names are markdown-escaped there)."""
    return any(name in e.value.replace("\\", "") for e in app.error)


def test_an_error_outlives_the_page_switch_that_empties_the_upload_box(app: AppTest) -> None:
    """A file that failed before a page switch appeared nowhere afterwards: no error, no track."""
    from app.ui import upload_jobs

    app.run()
    name, data = clip()
    app.file_uploader[0].upload("broken.wav", b"not audio at all").upload(name, data).run()
    assert said(app, "broken.wav")
    assert list(app.session_state[upload_jobs.FAILED_KEY].values()) == ["broken.wav"]
    app.switch_page("../pages/metrics.py").run()
    app.switch_page("../pages/analyze.py").run()
    no_exceptions(app)
    assert not app.file_uploader[0].value
    assert said(app, "broken.wav"), "still said after the switch"
    app.button(key="gl.dismiss_failures").click().run()
    no_exceptions(app)
    assert not said(app, "broken.wav"), "dismissed"
    assert len(app.session_state["gl.tracks"]) == 1, "and not analysed again"


def test_a_short_clip_says_its_window_is_the_clip_repeated(app: AppTest) -> None:
    """A 4 s clip's window text spoke of "the 10–15 s slice" as if the song went on there."""
    app.run()
    app.file_uploader[0].upload("short.wav", wav_bytes(synth_music(4.0, seed=5), 22050)).run()
    no_exceptions(app)
    assert any("only 4.0 s long and was repeated to fill the window" in c.value for c in app.caption), \
        [c.value for c in app.caption]


def test_a_batch_too_large_to_queue_says_to_stay(app: AppTest, monkeypatch: pytest.MonkeyPatch) -> None:
    from app.ui import upload_jobs

    first, second = (wav_bytes(synth_music(16.0, seed=s), 22050) for s in (3, 4))
    monkeypatch.setattr(upload_jobs, "QUEUE_MAX_BYTES", len(first))  # room for one file's bytes only
    app.run()
    app.file_uploader[0].upload("one.wav", first).upload("two.wav", second).run()
    no_exceptions(app)
    assert len(app.session_state["gl.tracks"]) == 2, "both analysed all the same"
    assert any("stay on this page until it finishes, or 1 file will need uploading again" in c.value
               for c in app.caption)
    assert app.session_state["gl.queue"] == {}


def test_duplicate_upload_is_not_reanalysed_and_survives_page_switch(app: AppTest) -> None:
    app.run()
    name, data = clip()
    app.file_uploader[0].upload(name, data).upload("copy-" + name, data).run()
    no_exceptions(app)
    tracks = app.session_state["gl.tracks"]
    assert len(tracks) == 1, "the same bytes under another name are one track"
    assert any("has the same audio as" in i.value and "copy" in i.value for i in app.info), "the second name was lost"
    window_key = next(k for k in app.session_state if str(k).startswith("window-"))
    app.select_slider(key=window_key).set_value(1).run()
    app.switch_page("../pages/metrics.py").run()
    app.switch_page("../pages/analyze.py").run()
    no_exceptions(app)
    assert len(app.session_state["gl.tracks"]) == 1
    assert track_heading(app) == name
    assert app.select_slider(key=window_key).value == 1, "the selected window survives a page switch"


def test_a_direction_override_in_a_name_does_not_reverse_its_error(app: AppTest) -> None:
    """A U+202E in a bad file's name reversed the rest of its error sentence; a byte-identical twin of the
    failed file was said to be "shown once, under that name", though nothing was shown."""
    app.run()
    app.file_uploader[0].upload("bad \u202eVAW.exe.wav", b"").upload("twin.wav", b"").run()
    no_exceptions(app)
    errors = [e.value for e in app.error]
    assert len(errors) == 1 and "\u202e" not in errors[0] and "VAW.exe.wav" in errors[0].replace("\\", ""), errors
    notes = [i.value.replace("\\", "") for i in app.info]
    assert any("twin.wav has the same bytes as bad VAW.exe.wav, which could not be analysed" in n for n in notes), notes
    assert not any("shown once" in n for n in notes), notes


def test_threshold_changes_the_genres_listed(app: AppTest) -> None:
    app.run()
    app.file_uploader[0].upload("song.wav", wav_bytes(synth_music(16.0, seed=3), 22050)).run()
    a = next(iter(app.session_state["gl.tracks"].values()))
    app.sidebar.slider[0].set_value(0.05).run()
    no_exceptions(app)
    chips = next(m.value for m in app.markdown if "border-radius:999px" in m.value)
    assert chips.count("<span") == sum(p >= 0.05 for p in a.probabilities)
    app.sidebar.slider[0].set_value(0.95).run()
    above = sum(p >= 0.95 for p in a.probabilities)
    chips = [m.value for m in app.markdown if "border-radius:999px" in m.value]
    assert sum(c.count("<span") for c in chips) == above  # no chip for a genre below the threshold
    heading = next(m.value for m in app.markdown if m.value.startswith("#### "))
    assert heading.startswith("#### Sounds like" if above else ("#### Not sure", "#### Not music")), heading


def test_model_picker_switches_version_and_reanalyses(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    make_test_bundle(tmp_path, version="older")
    make_test_bundle(tmp_path, version="newer")
    (tmp_path / "CURRENT").write_text("newer\n")
    monkeypatch.setenv("GENRE_LENS_CHECKPOINTS", str(tmp_path))
    at = AppTest.from_file(MAIN, default_timeout=TIMEOUT).run()
    picker = at.sidebar.selectbox[0]
    assert picker.label == "Model version" and picker.value == "newer"
    at.file_uploader[0].upload("song.wav", wav_bytes(synth_music(16.0, seed=4), 22050)).run()
    assert next(iter(at.session_state["gl.tracks"].values())).model["version"] == "newer"
    at.sidebar.selectbox[0].set_value("older").run()
    no_exceptions(at)
    assert next(iter(at.session_state["gl.tracks"].values())).model["version"] == "older"
    at.switch_page("../pages/metrics.py").run()
    assert at.selectbox[0].value == "older"


def test_the_threshold_follows_the_model_unless_the_user_set_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """Each model's default threshold is chosen on its own valid tracks; switching kept the old model's."""
    for version, threshold in (("older", 0.35), ("newer", 0.05)):
        folder = make_test_bundle(tmp_path, version=version)
        (folder / "trust.json").write_text(json.dumps({"threshold": threshold}))
    (tmp_path / "CURRENT").write_text("newer\n")
    monkeypatch.setenv("GENRE_LENS_CHECKPOINTS", str(tmp_path))
    at = AppTest.from_file(MAIN, default_timeout=TIMEOUT).run()
    assert at.sidebar.slider[0].value == 0.05
    at.sidebar.selectbox[0].set_value("older").run()
    assert at.sidebar.slider[0].value == 0.35  # left at the default: it follows the model
    at.sidebar.slider[0].set_value(0.5).run()
    at.sidebar.selectbox[0].set_value("newer").run()
    no_exceptions(at)
    assert at.sidebar.slider[0].value == 0.5  # set by the user: it stays

    # a session open while a retrain promotes another version follows it, as a new session would
    folder = make_test_bundle(tmp_path, version="promoted")
    (folder / "trust.json").write_text(json.dumps({"threshold": 0.2}))
    follower = AppTest.from_file(MAIN, default_timeout=TIMEOUT).run()
    assert follower.sidebar.slider[0].value == 0.05
    (tmp_path / "CURRENT").write_text("promoted\n")
    follower.run()
    no_exceptions(follower)
    assert follower.sidebar.slider[0].value == 0.2, "kept the old model's default after a promotion"
    at.run()
    assert at.sidebar.slider[0].value == 0.5, "a threshold the user set survives a promotion too"


def test_bad_file_gets_a_sentence_and_good_files_still_run(app: AppTest) -> None:
    app.run()
    rng = np.random.default_rng(1)
    good = wav_bytes(synth_music(16.0), 22050)
    app.file_uploader[0].upload("noise.wav", rng.bytes(4096), "audio/wav").upload("good.wav", good, "audio/wav").run()
    no_exceptions(app)
    errors = [e.value for e in app.error]
    assert len(errors) == 1 and errors[0].startswith("**noise\\.wav**:")  # the name escaped, shown literally
    assert "Traceback" not in errors[0]
    assert track_heading(app) == "good.wav"


def test_compare_table_with_two_tracks(app: AppTest) -> None:
    app.run()
    first = wav_bytes(synth_music(16.0, seed=1), 22050)
    second = wav_bytes(synth_music(16.0, seed=2), 22050)
    app.file_uploader[0].upload("a.wav", first).upload("b.wav", second).run()
    no_exceptions(app)
    table = app.dataframe[0].value
    assert list(table["track"]) == ["a.wav", "b.wav"]
    assert any(s.label == "Show details for" for s in app.selectbox)


def test_no_model_explains_what_to_do(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GENRE_LENS_CHECKPOINTS", str(tmp_path))
    at = AppTest.from_file(MAIN, default_timeout=TIMEOUT).run()
    no_exceptions(at)
    assert "No trained model" in at.error[0].value
    assert any("python -m app train" in m.value for m in at.markdown)
    at.switch_page("../pages/metrics.py").run()
    no_exceptions(at)
    assert "No trained model" in at.info[0].value


def test_bundle_without_metrics_says_so(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    make_test_bundle(tmp_path, version="unevaluated", metrics=False)
    monkeypatch.setenv("GENRE_LENS_CHECKPOINTS", str(tmp_path))
    at = AppTest.from_file(MAIN, default_timeout=TIMEOUT).run()
    at.switch_page("../pages/metrics.py").run()
    no_exceptions(at)
    assert any("has not been evaluated yet" in i.value for i in at.info)


def test_broken_bundle_is_reported_not_raised(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    folder = make_test_bundle(tmp_path, version="tampered")
    (folder / "model.pt").write_bytes(b"not the weights the card describes")
    monkeypatch.setenv("GENRE_LENS_CHECKPOINTS", str(tmp_path))
    at = AppTest.from_file(MAIN, default_timeout=TIMEOUT).run()
    no_exceptions(at)
    assert "could not be loaded" in at.error[0].value
    assert str(tmp_path) not in at.error[0].value, "no server paths on the page"


def test_engine_cache_follows_promotion_and_rewritten_weights(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from app.ui import state

    monkeypatch.setenv("GENRE_LENS_CHECKPOINTS", str(tmp_path))
    monkeypatch.setenv("GENRE_LENS_DEVICE", "cpu")
    make_test_bundle(tmp_path, version="a", metrics=False)
    make_test_bundle(tmp_path, version="b", metrics=False)
    (tmp_path / "CURRENT").write_text("a\n")
    first = state.get_engine()
    assert first.card.version == "a" and state.get_engine() is first
    (tmp_path / "CURRENT").write_text("b\n")  # promotion: picked up without a restart
    promoted = state.get_engine()
    assert promoted.card.version == "b"
    torch.manual_seed(7)
    card = ModelCard(version="b", labels=list(GENRES), classifier={}, embedder=promoted.card.embedder)
    save_bundle(ParallelCNN(ClassifierConfig(input_dim=50)), card, tmp_path)  # retrained in place
    rewritten = state.get_engine()
    assert rewritten is not promoted and rewritten.model_id != promoted.model_id
    (tmp_path / "b" / "trust.json").write_text(json.dumps({"threshold": 0.35}))  # `app trust`, in place
    trusted = state.get_engine()
    assert trusted is not rewritten and trusted.trust.threshold == 0.35, "the old threshold stayed in use"


def test_an_unusable_device_setting_is_said_in_its_own_words(app: AppTest, monkeypatch) -> None:
    monkeypatch.setenv("GENRE_LENS_DEVICE", "cuda:7")
    app.run()
    no_exceptions(app)
    errors = [e.value.replace("\\", "") for e in app.error]  # markdown-escaped, drawn literally
    assert any("'cuda:7' was asked for" in e for e in errors), errors  # not "something went wrong"


def test_the_feedback_pickers_verdicts_use_the_sidebar_threshold(bundle_root: Path, monkeypatch) -> None:
    from tests.helpers.analyses import fake_analysis

    monkeypatch.setenv("GENRE_LENS_CHECKPOINTS", str(bundle_root))
    tracks = {}
    for seed, name in ((1, "a.wav"), (2, "b.wav")):
        a = fake_analysis(seed=seed, name=name)
        a.probabilities = np.full(len(GENRES), 0.1)
        a.probabilities[0] = 0.4  # under the engine's 0.5, over the sidebar's 0.3
        tracks[a.sha256] = a
    at = AppTest.from_file(str(ROOT / "pages" / "feedback.py"), default_timeout=TIMEOUT)
    at.session_state["gl.tracks"] = tracks
    at.session_state["threshold"] = 0.3
    at.run()
    no_exceptions(at)
    labels = [o for s in at.selectbox if s.label == "Track" for o in s.options]
    assert labels and all(f"Sounds like {GENRES[0]}" in o for o in labels), labels


def test_feedback_upload_reports_a_bad_file_once_and_hides_the_cache(app: AppTest, monkeypatch) -> None:
    """The Feedback uploader re-decoded a failing file on every rerun and showed the engine's raw
    progress, whose "Done (cached)" told a user that someone else had analysed the same bytes."""
    from app.engine import Engine

    calls: list[str | None] = []
    shown: list[str] = []
    real = Engine.analyze

    def spy(self, source, filename=None, progress=None):
        calls.append(filename)
        return real(self, source, filename, lambda f, m: (progress(f, m), shown.append(m)))

    monkeypatch.setattr(Engine, "analyze", spy)
    monkeypatch.setattr("app.ui.upload_jobs.public_progress", lambda m: shown.append(f"public:{m}") or "Done")
    app.run()
    app.switch_page("../pages/feedback.py").run()
    app.file_uploader[0].upload("broken.wav", b"RIFF....WAVEnot really", "audio/wav").run()
    no_exceptions(app)
    assert len(app.error) == 1 and app.error[0].value.startswith("**broken\\.wav**: ")
    app.run()
    assert calls == ["broken.wav"] and len(app.error) == 1  # recorded once, shown again, not decoded again
    app.file_uploader[0].upload("good.wav", wav_bytes(synth_music(16.0, seed=30), 22050), "audio/wav").run()
    no_exceptions(app)
    assert calls[-1] == "good.wav" and any("good.wav" in str(o) for o in app.selectbox[0].options)
    assert any(m.startswith("public:") for m in shown)  # every progress line went through public_progress
    # a browser sends `"` in a file name as %22 (form-data encoding); the page showed the %22
    app.file_uploader[0].upload("say %22hi%22.wav", wav_bytes(synth_music(16.0, seed=31), 22050), "audio/wav").run()
    no_exceptions(app)
    assert calls[-1] == 'say "hi".wav' and any('say "hi".wav' in str(o) for o in app.selectbox[0].options)


def test_public_progress_never_says_cached() -> None:
    from app.ui.upload_jobs import public_progress

    assert public_progress("Done (cached)") == public_progress("Done") == "Done"
    assert public_progress("Decoding audio") == "Decoding audio"
