"""Roles: the admin token gate (constant-time check, lock-outs) and the Feedback page with and without a token."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

from app.ui import admin_view
from app.ui.session_store import public_id
from models.classifier.bundle import update_card
from tests.helpers.analyses import fake_analysis
from tests.helpers.bundles import make_test_bundle
from tests.helpers.data import ROOT
from utils import admin as admin_mod
from utils import settings
from utils.admin import AdminGate, token_from_env
from utils.feedback import FeedbackStore
from utils.settings import ADMIN_TOKEN_ENV

TOKEN = "correct-horse-battery-staple"
PAGE = str(ROOT / "pages" / "feedback.py")


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


# ------------------------------------------------------------------------------------ the gate
def test_no_token_means_everyone_is_the_admin(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ADMIN_TOKEN_ENV, "   ")
    assert token_from_env() is None
    gate = AdminGate(None)
    assert not gate.enabled and gate.attempt("s", "anything").granted
    monkeypatch.setenv(ADMIN_TOKEN_ENV, f" {TOKEN} ")
    assert token_from_env() == TOKEN


def test_the_right_token_unlocks_and_is_compared_in_constant_time(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple[bytes, bytes]] = []
    real = admin_mod.hmac.compare_digest
    monkeypatch.setattr(admin_mod.hmac, "compare_digest", lambda a, b: calls.append((a, b)) or real(a, b))
    gate = AdminGate(TOKEN)
    assert gate.enabled and not gate.weak
    assert not gate.attempt("s", "x").granted and not gate.attempt("s", TOKEN + "x").granted
    assert gate.attempt("s", TOKEN).granted and gate.attempt("s", f"  {TOKEN}\n").granted
    assert len(calls) == 4 and all(len(a) == len(b) == 32 for a, b in calls), "fixed-length digests compared"
    assert AdminGate("short").weak


def test_repeated_failures_lock_a_session_out() -> None:
    clock = Clock()
    gate = AdminGate(TOKEN, max_failures=3, lockout_s=60, clock=clock)
    messages = [gate.attempt("s", "wrong").message for _ in range(3)]
    assert "2 more tries" in messages[0] and "1 more try" in messages[1] and "Locked" in messages[2]
    refused = gate.attempt("s", TOKEN)
    assert not refused.granted and refused.retry_after_s > 0, "not even the right token while locked"
    assert gate.retry_after("s") == pytest.approx(60) and gate.retry_after("other") == 0
    assert gate.attempt("other", TOKEN).granted, "the lock-out is per session"
    clock.now += 61
    assert gate.attempt("s", TOKEN).granted


def test_expired_lock_outs_are_forgotten() -> None:
    """Every locked-out session kept an entry for the life of the server."""
    clock = Clock()
    gate = AdminGate(TOKEN, max_failures=1, lockout_s=60, global_max_failures=1000, clock=clock)
    for k in range(50):
        gate.attempt(f"s{k}", "wrong")
    assert len(gate._locked_until) == 50
    clock.now += 61
    assert gate.retry_after("s0") == 0 and not gate._locked_until


def test_many_sessions_guessing_a_short_token_are_limited_together() -> None:
    clock, short = Clock(), "fourteen-chars"
    gate = AdminGate(short, max_failures=5, global_max_failures=6, global_window_s=120, clock=clock)
    for k in range(6):  # a new browser session per guess escapes the per-session limit...
        assert not gate.attempt(f"guesser-{k}", "guess").granted
    assert not gate.attempt("fresh", short).granted and gate.retry_after("fresh") > 0  # ...not the global one
    clock.now += 121
    assert gate.attempt("fresh", short).granted


def test_nobody_can_lock_the_admin_out_of_a_long_token_or_with_empty_tries() -> None:
    """20 wrong tries from throwaway sessions locked everyone out for 5 minutes, the admin included, and
    an empty click on Unlock counted as a wrong try."""
    clock = Clock()
    gate = AdminGate(TOKEN, max_failures=5, global_max_failures=6, global_window_s=120, clock=clock)
    for k in range(50):
        assert not gate.attempt(f"guesser-{k}", "guess").granted
    assert gate.retry_after("admin") == 0 and gate.attempt("admin", TOKEN).granted
    for _ in range(10):
        empty = gate.attempt("clicker", "  ")
        assert not empty.granted and empty.message == "Type the admin token first."
    assert gate.retry_after("clicker") == 0 and "4 more tries" in gate.attempt("clicker", "wrong").message


# ------------------------------------------------------------------------------------ the page
@pytest.fixture
def world(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> FeedbackStore:
    """A test bundle (with the embedder geometry a correction needs), a database with two others' rows."""
    folder = make_test_bundle(tmp_path / "ckpt")
    update_card(folder, lambda card: card.embedder.__setitem__("settings", {"hop_seconds": 0.976,
                                                                            "frame_seconds": 2.992}))
    url = f"sqlite:///{tmp_path / 'fb.sqlite3'}"
    monkeypatch.setenv("GENRE_LENS_CHECKPOINTS", str(tmp_path / "ckpt"))
    monkeypatch.setenv(settings.DB_URL_ENV, url)
    monkeypatch.delenv(ADMIN_TOKEN_ENV, raising=False)
    admin_view._gate.clear()  # failure counters are server-wide: start each test clean
    store = FeedbackStore(url)
    for k, session in enumerate(("someone-else", None)):
        store.add(audio_sha256=f"{k + 100:064x}", file_name=f"other-{k}.wav", model_id="m@1",
                  model_version="test-random-weights", embedder_id="musicnn-msd/taggram/v1",
                  probabilities=np.full(10, 0.1), genres=["rock"], session_id=session)
    return store


def open_page(track_name: str = "mine.wav") -> AppTest:
    """The Feedback page with one analysed track in the session."""
    a = fake_analysis(seed=7, name=track_name)
    a.model = {"id": "test@1", "version": "test-random-weights", "embedder": "musicnn-msd/taggram/v1"}
    at = AppTest.from_file(PAGE, default_timeout=60)
    at.session_state["gl.tracks"] = {a.sha256: a}
    return at.run()


def labels(at: AppTest) -> list[str]:
    return [b.label for b in at.button]


def submit(at: AppTest, genres=("jazz",), note: str = "") -> AppTest:
    at.multiselect[0].set_value(list(genres))
    if note:
        at.text_area[0].input(note)
    next(b for b in at.button if b.label == "Submit correction").click()
    return at.run()


def corrections_shown(at: AppTest) -> list[str]:
    frames = [d.value for d in at.dataframe if "corrected to" in d.value]
    return list(frames[-1]["file"]) if frames else []


def test_without_a_token_one_local_user_may_do_everything(world: FeedbackStore) -> None:
    at = open_page()
    assert not at.exception, at.exception
    assert any("No admin token is set" in c.value and "single-user" in c.value for c in at.caption)
    # a `make run` shared by mistake: other sessions' corrections (and their file names) stay hidden
    assert corrections_shown(at) == [], "others' corrections were listed without a token"
    at = submit(at, note="mine")
    assert corrections_shown(at) == ["mine.wav"]
    assert any("feedback list" in c.value for c in at.caption)  # where the local user sees them all
    mine = next(c.id for c in world.list() if c.file_name == "mine.wav")
    at.selectbox(key="gl.fb.delete_pick").set_value(mine).run()
    assert "Delete…" in labels(at)
    # the admin gets the retrain section; this bundle's base tables are not on disk, so it points to the CLI
    assert "Retrain now" not in labels(at)
    assert any("retraining runs from the command line" in w.value for w in at.warning)


def test_a_double_submit_shows_the_success_too(world: FeedbackStore) -> None:
    at = submit(open_page(), note="twice")
    assert any("Stored correction #" in s.value for s in at.success)
    next(b for b in at.button if b.label == "Submit correction").click()
    at.run()
    assert any("Stored correction #" in s.value for s in at.success), "the second rerun keeps the success"
    assert any("already stored" in i.value for i in at.info)
    assert world.count() == 3


@pytest.mark.parametrize("source", ["env", "secrets"])
def test_with_a_token_others_only_correct_and_see_their_own(
    world: FeedbackStore, monkeypatch: pytest.MonkeyPatch, source: str,
) -> None:
    if source == "env":
        monkeypatch.setenv(ADMIN_TOKEN_ENV, TOKEN)
        at = open_page("*mine* <i>.wav")
    else:
        a = fake_analysis(seed=7, name="*mine* <i>.wav")
        a.model = {"id": "test@1", "version": "test-random-weights", "embedder": "musicnn-msd/taggram/v1"}
        at = AppTest.from_file(PAGE, default_timeout=60)
        at.secrets["admin_token"] = TOKEN
        at.session_state["gl.tracks"] = {a.sha256: a}
        at.run()
    assert not at.exception, at.exception
    assert corrections_shown(at) == [], "nobody else's corrections, not even their file names"
    assert "Delete…" not in labels(at) and "Retrain now" not in labels(at)
    assert any("for the admin" in c.value for c in at.caption)
    at = submit(at)  # everyone may still correct
    assert any("Stored correction #" in s.value for s in at.success)
    mine = [c for c in world.list() if c.file_name == "*mine* <i>.wav"]
    assert len(mine) == 1 and mine[0].session_id == public_id(at.session_state["gl.session"])
    assert corrections_shown(at) == ["*mine* <i>.wav"]
    assert world.count() == 3, "nothing deleted"
    # their own correction they may take back (nobody else's is even offered)
    picker = at.selectbox(key="gl.fb.delete_pick")
    assert picker.options == ["—", f"#{mine[0].id} *mine* <i>.wav"]
    picker.set_value(mine[0].id).run()
    next(b for b in at.button if b.label == "Delete…").click()
    at.run()
    next(b for b in at.button if b.label == "Yes, delete it").click()
    at.run()
    assert not at.exception, at.exception
    assert world.get(mine[0].id) is None and world.count() == 2, "only their own went"
    assert corrections_shown(at) == []


def test_a_user_cannot_delete_a_correction_a_model_trained_on(world: FeedbackStore, monkeypatch) -> None:
    monkeypatch.setenv(ADMIN_TOKEN_ENV, TOKEN)
    at = submit(open_page())
    mine = next(c for c in world.list() if c.file_name == "mine.wav")
    world.mark_used("v-next", [mine])
    at.run()
    assert corrections_shown(at) == ["mine.wav"]
    assert "Delete…" not in labels(at), "a used correction is not offered"
    assert any("admin only" in c.value for c in at.caption)
    assert world.get(mine.id) is not None


def test_the_admin_unlocks_sees_everything_and_locks_again(world: FeedbackStore, monkeypatch) -> None:
    monkeypatch.setenv(ADMIN_TOKEN_ENV, TOKEN)
    at = open_page()
    at.text_input[0].input("not it")
    next(b for b in at.button if b.label == "Unlock").click()
    at.run()
    assert any("Wrong token" in e.value for e in at.error) and "Delete…" not in labels(at)
    at.text_input[0].input(TOKEN)
    next(b for b in at.button if b.label == "Unlock").click()
    at.run()
    assert not at.exception, at.exception
    assert any("Admin unlocked" in s.value for s in at.success)
    assert corrections_shown(at) == ["other-0.wav", "other-1.wav"]
    table = next(d.value for d in at.dataframe if "corrected to" in d.value)
    assert list(table["session"]) == ["someone-", "local"]  # who made each one (opaque id prefix)
    assert list(table.columns[:5]) == ["id", "file", "corrected to", "model said", "used by"], "first at 400 px"
    victim = world.list()[0].id
    at.selectbox(key="gl.fb.delete_pick").set_value(victim).run()
    next(b for b in at.button if b.label == "Delete…").click()
    at.run()
    next(b for b in at.button if b.label == "Yes, delete it").click()
    at.run()
    assert world.get(victim) is None
    # the admin gets the retrain section; this bundle's base tables are not on disk, so it points to the CLI
    assert "Retrain now" not in labels(at)
    assert any("retraining runs from the command line" in w.value for w in at.warning)
    next(b for b in at.button if b.label == "Lock").click()
    at.run()
    assert "Delete…" not in labels(at) and "Unlock" in labels(at)


def test_locking_drops_a_pending_delete_of_someone_elses_correction(world: FeedbackStore, monkeypatch) -> None:
    monkeypatch.setenv(ADMIN_TOKEN_ENV, TOKEN)
    at = submit(open_page())  # this user has a correction of their own, so the delete controls stay
    at.text_input[0].input(TOKEN)
    next(b for b in at.button if b.label == "Unlock").click()
    at.run()
    theirs = next(c.id for c in world.list() if c.file_name == "other-0.wav")
    at.selectbox(key="gl.fb.delete_pick").set_value(theirs).run()
    next(b for b in at.button if b.label == "Delete…").click()
    at.run()
    assert any(f"Delete correction #{theirs}?" in w.value for w in at.warning)
    next(b for b in at.button if b.label == "Lock").click()
    at.run()
    assert not at.exception, at.exception
    assert not any(f"#{theirs}" in w.value for w in at.warning), "a locked user was asked about another's correction"
    assert "Yes, delete it" not in labels(at) and world.get(theirs) is not None


def test_the_page_locks_out_after_repeated_wrong_tokens(world: FeedbackStore, monkeypatch) -> None:
    monkeypatch.setenv(ADMIN_TOKEN_ENV, TOKEN)
    at = open_page()
    for _ in range(admin_mod.MAX_FAILURES):
        at.text_input[0].input("guess")
        next(b for b in at.button if b.label == "Unlock").click()
        at.run()
    assert any("Locked for 5 minutes" in e.value for e in at.error)
    at.run()
    assert any("paused" in w.value for w in at.warning)
    assert at.text_input[0].disabled and next(b for b in at.button if b.label == "Unlock").disabled
    assert not admin_view.gate().attempt(public_id(at.session_state["gl.session"]), TOKEN).granted
