"""The feedback store on SQLite and PostgreSQL: validation, idempotency, deletes, embeddings, export, the CLI, the page.

Concurrency and migrations are in tests/utils/feedback/test_feedback_db.py.
"""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest

from models.classifier.bundle import read_card
from models.training.retrain import default_tables
from tests.helpers.data import ROOT
from tests.helpers.feedback import EMBEDDER, sha, submit
from tests.helpers.retrain import FRAME, HOP, random_bundle
from utils import settings
from utils.feedback import MAX_NOTE_CHARS, FeedbackError, FeedbackStore, SliceEmbeddings, idempotency_key


@pytest.fixture
def store(db_url: str) -> FeedbackStore:
    """An empty store on each backend (SQLite file, PostgreSQL database)."""
    s = FeedbackStore(db_url)
    yield s
    s.close()


# ------------------------------------------------------------------------------------ store basics
def test_sqlite_defaults_wal_and_settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(settings.DB_URL_ENV, raising=False)
    monkeypatch.setenv(settings.DATA_DIR_ENV, str(tmp_path / "data"))
    s = FeedbackStore()
    assert s.location.endswith("data/feedback.sqlite3") and (tmp_path / "data" / "feedback.sqlite3").is_file()
    with s.engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
        assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() >= 5000
    monkeypatch.setenv(settings.DB_URL_ENV, f"sqlite:///{tmp_path / 'other.db'}")
    assert FeedbackStore().location.endswith("other.db")


def test_unusable_database_url_is_a_clear_error_without_the_password() -> None:
    with pytest.raises(FeedbackError) as err:
        FeedbackStore("postgresql+psycopg://user:s3cret@127.0.0.1:1/feedback")
    assert "s3cret" not in str(err.value) and "127.0.0.1" in str(err.value)
    with pytest.raises(FeedbackError, match="not a usable database URL"):
        FeedbackStore("not a url")
    with pytest.raises(FeedbackError, match="check its host and port") as err:  # was int()'s ValueError
        FeedbackStore("postgresql://user:s3cret@localhost:notaport/feedback")
    assert "s3cret" not in str(err.value)


def test_same_submission_twice_is_stored_once(store: FeedbackStore) -> None:
    first = submit(store, note="double click")
    again = submit(store, note="double click")
    assert first.created and not again.created
    assert again.correction == first.correction and store.count() == 1
    assert submit(store, note="another note").created and store.count() == 2
    keyed = submit(store, audio="b", key="my-key")
    assert submit(store, audio="b", key="my-key").correction.id == keyed.correction.id
    with pytest.raises(FeedbackError, match="already used for a different correction"):
        submit(store, audio="c", key="my-key")
    assert store.count() == 3
    assert first.correction.idempotency_key == idempotency_key(sha("a"), ["jazz"], "double click", None)


def test_embeddings_are_stored_once_per_audio_and_round_trip(store: FeedbackStore) -> None:
    a = submit(store, genres=["jazz"])
    submit(store, genres=["blues", "jazz"])
    stored = store.embeddings(sha("a"), EMBEDDER)
    assert stored is not None and stored.embeddings.shape == (6, 3, 50) and stored.embeddings.dtype == np.float32
    np.testing.assert_array_equal(stored.embeddings,
                                  np.random.default_rng(1).normal(0, 1, (6, 3, 50)).astype(np.float32))
    np.testing.assert_allclose(stored.slice_starts, np.arange(6) * 5.0)
    assert (stored.hop_seconds, stored.frame_seconds) == (HOP, FRAME)
    with store.engine.connect() as conn:
        assert conn.exec_driver_sql("SELECT count(*) FROM slice_embeddings").scalar() == 1
    store.delete(a.correction.id)  # still used by the other correction: kept
    assert store.embeddings(sha("a"), EMBEDDER) is not None
    store.delete(store.list()[0].id)  # last user gone: the embeddings go too
    assert store.embeddings(sha("a"), EMBEDDER) is None and store.count() == 0

    # a 10-minute track of 512-d OpenL3 frames (120 slices x 50 frames, 12 MB): a BLOB / BYTEA, bit-exact
    big = np.random.default_rng(7).normal(0, 1, (120, 50, 512)).astype(np.float32)
    big[0, 0, :3] = [np.float32(1e-45), np.float32(-0.0), np.finfo(np.float32).max]  # subnormal, -0, max
    openl3 = "openl3/mel128/music/512"
    store.add(audio_sha256=sha("long"), file_name="long.flac", model_id="o@1", model_version="o", embedder_id=openl3,
              probabilities=np.full(10, 0.1), genres="rock",
              embeddings=SliceEmbeddings(sha("long"), openl3, big, np.arange(120) * 5.0, 0.1, 1.0))
    back = store.embeddings(sha("long"), openl3)
    assert back.embeddings.tobytes() == big.tobytes() and back.embeddings.shape == big.shape
    assert back.slice_starts[-1] == 595.0 and (back.hop_seconds, back.frame_seconds) == (0.1, 1.0)


def test_fields_validation_and_hostile_input(store: FeedbackStore) -> None:
    with pytest.raises(FeedbackError, match="Unknown genre 'polka'"):
        submit(store, genres=["jazz", "polka"])
    with pytest.raises(FeedbackError, match="at least one genre"):
        submit(store, genres=[])
    with pytest.raises(FeedbackError, match=f"{MAX_NOTE_CHARS + 1} characters"):
        submit(store, note="x" * (MAX_NOTE_CHARS + 1))
    with pytest.raises(FeedbackError, match="control characters"):
        submit(store, note="bell \x07 and \x1b[31m escape")
    with pytest.raises(FeedbackError, match="text-direction controls"):
        submit(store, note="says \u202eLTR\u202c here")  # drawn reversed to whoever reads it
    with pytest.raises(FeedbackError, match="window"):
        submit(store, window=-5)
    with pytest.raises(FeedbackError, match="idempotency key contains control characters"):
        submit(store, key="nul\x00inside")  # PostgreSQL text cannot hold it: a clear error, not a driver one
    assert store.count() == 0
    assert submit(store, audio="max", note="y" * MAX_NOTE_CHARS).correction.note == "y" * MAX_NOTE_CHARS
    rtl = "\u05e9\u05dc\u05d5\u05dd \u200fjazz"  # Hebrew text and a plain right-to-left mark are just text
    assert submit(store, audio="rtl", note=rtl).correction.note == rtl

    hostile = "<script>alert('x')</script> **bold** [link](javascript:alert(1)) <img src=x onerror=alert(1)>\n" \
              "second line\twith tab; DROP TABLE corrections; --"
    c = submit(store, audio="h", name="../../x<script>.wav", note=hostile, genres=["Rock", "blues|ROCK"],
               window=10).correction
    back = store.get(c.id)
    assert back.note == hostile  # verbatim, as data
    assert back.file_name == "x<script>.wav" and "/" not in back.file_name and "\\" not in back.file_name
    assert back.genres == ("blues", "rock") and (back.window_start_s, back.window_end_s) == (10.0, 25.0)
    assert submit(store, audio="w", name="..\\..\\windows\\evil.wav").correction.file_name == "evil.wav"
    assert back.created_at.tzinfo is not None and abs(back.created_at - datetime.now(UTC)) < timedelta(minutes=5)
    assert json.loads(back.row()["probabilities"])["rock"] == pytest.approx(0.9)


def test_filters_usage_and_csv_export(store: FeedbackStore, tmp_path: Path) -> None:
    a = submit(store, audio="a", genres=["jazz", "blues"]).correction
    b = submit(store, audio="b", genres=["rock"], note="=HYPERLINK(\"http://evil\")").correction
    assert [c.id for c in store.list(genre="jazz")] == [a.id]
    assert [c.id for c in store.list(genre="blues")] == [a.id]
    assert store.list(genre="pop") == [] and len(store.list(model_version="base")) == 2
    assert store.list(model_version="other") == []
    now = datetime.now(UTC)
    assert len(store.list(since=now - timedelta(hours=1), until=now + timedelta(hours=1))) == 2
    assert store.list(since=now + timedelta(hours=1)) == []
    store.mark_used("base-r1", [a.id, b.id])
    store.mark_used("base-r1", [a.id])  # idempotent
    assert store.usage() == {a.id: ["base-r1"], b.id: ["base-r1"]}
    store.delete(b.id)
    assert store.usage() == {a.id: ["base-r1"]}
    with pytest.raises(FeedbackError, match="no correction #999"):
        store.delete(999)

    submit(store, audio="c", name="-cmd.wav", note="@SUM(A1)")
    out = tmp_path / "out" / "corrections.csv"
    assert store.export_csv(out) == 2
    rows = list(csv.DictReader(io.StringIO(out.read_text())))
    assert [r["genres"] for r in rows] == ["blues|jazz", "jazz"]
    assert rows[1]["note"] == "'@SUM(A1)" and rows[1]["file_name"] == "'-cmd.wav"  # no formula injection


@pytest.mark.parametrize("note", [" =1+1", "\u00a0=1+1", "\u200b=1+1", "\ufeff=1+1", "＝1+1", "\n=1+1"])
def test_csv_neutralises_formulas_behind_spaces_and_invisible_characters(note: str) -> None:
    """Only the first character was checked, so a space, a zero-width space or a full-width '=' got through."""
    from utils.feedback.export import csv_cell

    assert csv_cell(note) == "'" + note
    assert csv_cell("a plain note = fine") == "a plain note = fine" and csv_cell(None) == ""


def test_a_note_with_undecodable_bytes_is_refused_before_anything_runs(store: FeedbackStore) -> None:
    """A shell's stray \\xff arrives as a lone surrogate and failed only at the database, after the analysis."""
    with pytest.raises(FeedbackError, match="not valid text"):
        submit(store, audio="s", note="ok \udcff")


# ------------------------------------------------------------------------------------ CLI and page
@pytest.fixture(scope="module")
def bundle_and_wav(tmp_path_factory: pytest.TempPathFactory):
    """A random-init MusiCNN-taggram bundle (current under its root), a 20 s WAV and its analysis."""
    import soundfile as sf
    import torch

    from app.engine import Engine
    from tests.helpers.data import synth_music

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # small batches: one thread is faster, and fair to a busy machine
    tmp = tmp_path_factory.mktemp("fbcli")
    random_bundle(tmp / "ckpt")
    wav = tmp / "tune.wav"
    sf.write(wav, synth_music(seconds=20.0, sr=16000), 16000)
    analysis = Engine(checkpoint=tmp / "ckpt" / "random-v1").analyze(wav.read_bytes(), filename="../../x<script>.wav")
    yield tmp / "ckpt", wav, analysis
    torch.set_num_threads(threads)


def test_cli_round_trip(bundle_and_wav, db_url: str, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    from app.cli.main import main
    from models.training.retrain import window_tracks
    from utils.windows import windows_from_frames

    root, wav, analysis = bundle_and_wav
    db = ["--db", db_url]
    add = ["feedback", "add", str(wav), "--genre", "jazz", "--genre", "Blues", "--note", "<b>not bold</b>",
           "--root", str(root), *db]
    assert main(add) == 0
    assert "stored: #1 tune.wav: blues+jazz" in capsys.readouterr().out
    assert main(add) == 0
    assert "already stored" in capsys.readouterr().out
    assert main(["feedback", "add", str(wav), "--genre", "rock", "--window-start", "5", "--root", str(root), *db]) == 0
    capsys.readouterr()
    assert main(["feedback", "add", str(wav), "--genre", "rock", "--window-start", "3", "--root", str(root), *db]) == 2
    assert "no window starting at 3 s" in capsys.readouterr().err
    assert main(["feedback", "add", str(wav), "--genre", "polka", "--root", str(root), *db]) == 2
    assert "error: Unknown genre 'polka'" in capsys.readouterr().err

    assert main(["feedback", "list", "--json", *db]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [(r["id"], r["genres"], r["note"], r["window_start_s"]) for r in rows] == [
        (1, "blues|jazz", "<b>not bold</b>", None), (2, "rock", None, 5.0)]
    assert rows[0]["model_version"] == "random-v1" and rows[0]["file_name"] == "tune.wav"
    assert main(["feedback", "list", *db]) == 0
    assert "note: <b>not bold</b>" in capsys.readouterr().out
    out = tmp_path / "fb.csv"
    assert main(["feedback", "export", "--out", str(out), *db]) == 0
    assert len(list(csv.DictReader(out.open()))) == 2
    assert main(["feedback", "delete", "1", *db]) == 0
    assert main(["feedback", "delete", "1", *db]) == 2
    assert "error: There is no correction #1." in capsys.readouterr().err

    # what was stored is what the engine computed: the real embedder's slices rebuild its windows
    store = FeedbackStore(db[1])
    c = store.get(2)
    stored = store.embeddings(c.audio_sha256, c.embedder_id)
    np.testing.assert_array_equal(stored.embeddings, analysis.slice_embeddings)
    tracks, _ = window_tracks(c, stored)
    window = next(w for w in analysis.windows if w.start_s == 5.0)
    x, m = windows_from_frames(tracks[0].vectors, tracks[0].frame_start_s, stored.frame_seconds, np.array([0.0]),
                               stored.embeddings.shape[1])
    assert m.all() and len(tracks) == 1
    np.testing.assert_array_equal(x[0], analysis.slice_embeddings[[
        int(np.argmin(np.abs(analysis.slice_starts_s - s))) for s in window.slice_starts_s]])


def test_page_renders_stores_a_correction_and_escapes_text(
    bundle_and_wav, db_url: str, monkeypatch: pytest.MonkeyPatch,
) -> None:
    from streamlit.testing.v1 import AppTest

    root, _, analysis = bundle_and_wav
    url = db_url
    monkeypatch.setenv("GENRE_LENS_CHECKPOINTS", str(root))
    monkeypatch.setenv(settings.DB_URL_ENV, url)
    seed = FeedbackStore(url)
    submit(seed, audio="earlier", name="*not* markdown.wav", note="<script>alert(1)</script>")

    at = AppTest.from_file(str(ROOT / "pages" / "feedback.py"), default_timeout=60)
    at.session_state["gl.tracks"] = {analysis.sha256: analysis}
    at.run()
    assert not at.exception, at.exception
    assert [s.value for s in at.subheader] == ["Correct a prediction", "Stored corrections", "Retrain"]
    assert any("File: x<script>.wav" in t.value for t in at.text)  # shown as text, not markup
    assert not any("<script>" in m.value for m in at.markdown)
    assert not any(d.value.get("file") is not None and "*not* markdown.wav" in d.value["file"].tolist()
                   for d in at.dataframe), "another session's correction was listed (no admin token)"

    at.multiselect[0].set_value(["jazz", "rock"])
    at.text_area[0].input("sounds like <b>jazz</b> to me")
    at.button[0].click()  # the form's submit button
    at.run()
    assert not at.exception, at.exception
    assert any("Stored correction" in s.value for s in at.success), [e.value for e in at.error]
    assert at.dataframe[-1].value["note"].tolist() == ["sounds like <b>jazz</b> to me"]  # a cell, not markup
    assert not any("<b>" in m.value for m in at.markdown)
    at.button[0].click()  # a second click stores nothing new
    at.run()
    assert any("already stored" in i.value for i in at.info)
    stored = [c for c in seed.list() if c.audio_sha256 == analysis.sha256]
    assert len(stored) == 1 and stored[0].genres == ("jazz", "rock")
    assert stored[0].note == "sounds like <b>jazz</b> to me" and stored[0].file_name == "x<script>.wav"
    assert seed.embeddings(analysis.sha256, analysis.model["embedder"]) is not None
    # no admin token: the local user is the admin. This card names no data, so its base tables are the taggram
    # tables of ../shared: where they are, the page offers the button; where not, it points to the CLI
    tables, _ = default_tables(read_card(root / "random-v1"))
    here = all(t.is_file() for t in tables)
    assert ("Retrain now" in [b.label for b in at.button]) == here
    assert any("retraining runs from the command line" in w.value for w in at.warning) == (not here)


def test_page_filters_and_deletes_with_confirmation(
    bundle_and_wav, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    from streamlit.testing.v1 import AppTest

    root, _, _ = bundle_and_wav
    url = f"sqlite:///{tmp_path / 'page.sqlite3'}"
    monkeypatch.setenv("GENRE_LENS_CHECKPOINTS", str(root))
    monkeypatch.setenv(settings.DB_URL_ENV, url)
    seed = FeedbackStore(url)
    a = submit(seed, audio="a", genres=["rock"], name="a.wav").correction
    b = submit(seed, audio="b", genres=["jazz"], name="b.wav").correction

    from app.ui.admin_view import _UNLOCKED, _fingerprint
    from utils.settings import ADMIN_TOKEN_ENV

    token = "a-long-enough-admin-token"
    monkeypatch.setenv(ADMIN_TOKEN_ENV, token)
    at = AppTest.from_file(str(ROOT / "pages" / "feedback.py"), default_timeout=60)
    at.session_state[_UNLOCKED] = _fingerprint(token)  # the admin, who sees and deletes every session's
    at.run()
    assert not at.exception, at.exception
    assert any("No analysed track" in i.value for i in at.info)  # nothing analysed in this session yet
    assert at.dataframe[-1].value["id"].tolist() == [a.id, b.id]
    next(s for s in at.selectbox if s.label == "Genre").set_value("jazz")
    at.run()
    assert at.dataframe[-1].value["id"].tolist() == [b.id]

    at.selectbox(key="gl.fb.delete_pick").set_value(b.id)
    at.run()
    next(x for x in at.button if x.label == "Delete…").click()
    at.run()
    assert any(f"Delete correction #{b.id}?" in w.value for w in at.warning) and seed.count() == 2
    next(x for x in at.button if x.label == "Yes, delete it").click()
    at.run()
    assert not at.exception, at.exception
    assert [c.id for c in seed.list()] == [a.id]


def test_a_genre_for_silent_audio_is_refused_and_not_music_is_said(
        bundle_and_wav, db_url: str, tmp_path: Path, capsys: pytest.CaptureFixture,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Silence was stored as "jazz (model said classical)", and a retrain would have learned it."""
    from dataclasses import replace

    import soundfile as sf

    from app.cli.main import main
    from app.engine import Engine

    root, _, _ = bundle_and_wav
    db = ["--db", db_url, "--root", str(root)]
    silent = tmp_path / "silence.wav"
    sf.write(silent, np.zeros(16000 * 20, dtype=np.float32), 16000)
    assert main(["feedback", "add", str(silent), "--genre", "jazz", *db]) == 2
    assert "silence.wav is silent, so there is no music in it to learn a genre from" in capsys.readouterr().err
    # mostly silence: the whole of it is refused, the window where the music is is taken
    mostly = tmp_path / "intro.wav"
    y = np.zeros(16000 * 20, dtype=np.float32)
    y[: 16000 * 1] = 0.3 * np.sin(np.arange(16000) * 2 * np.pi * 440 / 16000)
    sf.write(mostly, y, 16000)
    assert main(["feedback", "add", str(mostly), "--genre", "jazz", *db]) == 2
    assert "intro.wav is 95% silence" in capsys.readouterr().err
    assert main(["feedback", "add", str(mostly), "--genre", "jazz", "--window-start", "0", *db]) == 0
    capsys.readouterr()

    real = Engine.analyze  # a bundle with a detector that calls it not music: the CLI says so, not its forced pick
    monkeypatch.setattr(Engine, "analyze", lambda self, *a, **k: replace(real(self, *a, **k), novelty=9.0,
                                                                          novelty_threshold=1.0))
    assert main(["feedback", "add", str(silent), "--genre", "not_music", *db]) == 0
    out = capsys.readouterr().out
    stored = [c for c in FeedbackStore(db_url).list() if c.not_music]
    assert len(stored) == 1 and f"silence.wav: not music (model said not music; closest {stored[0].predicted})" in out
