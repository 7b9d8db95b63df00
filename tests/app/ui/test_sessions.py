"""Sessions never see each other's data: the per-session store, reloads, chips, "Clear all", names as text.

Unit tests of `app.ui.session_store` (no Streamlit) and AppTest runs of the real pages; two AppTest
instances in one process share the server-wide caches exactly like two browser tabs of one server.
The real-browser version of the same checks is tests/e2e/test_browser_sessions.py.
"""

from __future__ import annotations

import binascii
import dataclasses
from pathlib import Path

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

from app.ui import charts
from app.ui.session_store import SessionData, SessionStore, browser_key, is_token, public_id
from tests.helpers.analyses import fake_analysis
from tests.helpers.apptest import MAIN, TIMEOUT, no_exceptions, track_heading
from tests.helpers.bundles import make_test_bundle
from tests.helpers.data import synth_music, wav_bytes
from utils.text import heading_html, md_escape, plotly_text

HOSTILE = "bob <b>&amp; 'co' <img src=x onerror=alert(1)>.flac"
MARKDOWNY = "alice *private* _demo_ `x` [l](e) :smile: $x$ &amp;.flac"


class Clock:
    """A hand-moved monotonic clock."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


# ------------------------------------------------------------------------------------ the store
def data_with(*analyses, audio: bytes = b"") -> SessionData:
    d = SessionData()
    for a in analyses:
        d.tracks[a.sha256] = a
        if audio:
            d.audio[a.sha256] = (audio, "audio/wav")
    d.selected = analyses[-1].sha256 if analyses else None
    return d


def test_tokens_are_random_and_records_are_private_to_their_token() -> None:
    store = SessionStore()
    a, b = store.create(), store.create()
    assert a != b and is_token(a) and is_token(b) and len(a) >= 32
    shared = fake_analysis(seed=1)  # the same bytes (sha) in both sessions, under their own names
    store.save(a, data_with(dataclasses.replace(shared, name="alice.flac")))
    store.save(b, data_with(dataclasses.replace(shared, name="bob.flac")))
    assert store.load(a).tracks[shared.sha256].name == "alice.flac"
    assert store.load(b).tracks[shared.sha256].name == "bob.flac"
    assert shared.name == "song.wav", "the shared analysis is never mutated"
    assert store.load(shared.sha256) is None, "a hash opens nothing"
    assert store.load("x" * 40) is None and store.load("../../etc") is None and store.load(None) is None


def test_loaded_data_is_a_copy() -> None:
    store = SessionStore()
    token = store.create()
    store.save(token, data_with(fake_analysis(seed=1)))
    loaded = store.load(token)
    loaded.tracks.clear()
    assert len(store.load(token).tracks) == 1


def test_records_expire_after_idle_time_and_touch_keeps_them() -> None:
    clock = Clock()
    store = SessionStore(ttl_s=60, clock=clock)
    busy, idle = store.create(), store.create()
    for _ in range(3):
        clock.now += 40
        assert store.touch(busy)
    assert store.load(busy) is not None
    assert store.load(idle) is None and not store.touch(idle)
    assert len(store) == 1


def test_records_are_bound_to_their_browser() -> None:
    store = SessionStore()
    token = store.create(owner="browser-a")
    store.save(token, data_with(fake_analysis(seed=1)), owner="browser-a")
    assert store.load(token, owner="browser-a") is not None
    assert store.load(token, owner="browser-b") is None, "a copied link alone does not open a session"
    assert store.load(token) is None
    with pytest.raises(PermissionError):
        store.save(token, SessionData(), owner="browser-b")


def test_caps_drop_audio_first_then_old_tracks_then_idle_sessions() -> None:
    clock = Clock()
    one = fake_analysis(seed=1)
    size = SessionData(tracks={one.sha256: one}).nbytes
    store = SessionStore(max_session_bytes=3 * size + 1000, max_bytes=7 * size, max_sessions=3, clock=clock)
    token = store.create()
    tracks = [fake_analysis(seed=k) for k in range(1, 6)]
    kept = store.save(token, data_with(*tracks, audio=b"\0" * size))
    assert kept.nbytes <= store.max_session_bytes
    assert not kept.audio and list(kept.tracks) == [t.sha256 for t in tracks[-3:]], "newest tracks stay"
    assert kept.selected == tracks[-1].sha256
    others = []
    for _ in range(4):
        clock.now += 1
        others.append(store.create())
        store.save(others[-1], data_with(fake_analysis(seed=9)))
    assert len(store) <= 3 and store.nbytes <= store.max_bytes
    assert store.load(others[-1]) is not None and store.load(token) is None, "the longest idle went first"


def test_browser_key_reads_the_xsrf_secret_under_its_mask() -> None:
    token = bytes(range(16))

    def cookie(mask: bytes) -> str:
        masked = bytes(b ^ mask[i % 4] for i, b in enumerate(token))
        return f"2|{binascii.hexlify(mask).decode()}|{binascii.hexlify(masked).decode()}|1700000000"

    first, second = browser_key(cookie(b"\x01\x02\x03\x04")), browser_key(cookie(b"\xaa\xbb\xcc\xdd"))
    assert first == second != "" and token.hex() not in first  # re-masked cookie, same browser
    assert browser_key(binascii.hexlify(token).decode()) == first  # v1 cookies: the token itself
    assert browser_key(None) == browser_key("") == browser_key("2|zz|zz|1") == ""
    other = bytes(range(1, 17))
    assert browser_key(binascii.hexlify(other).decode()) != first


def test_public_id_is_stable_and_not_the_token() -> None:
    token = SessionStore().create()
    assert public_id(token) == public_id(token) and token not in public_id(token) and len(public_id(token)) == 32


# ------------------------------------------------------------------------------------ text
def test_text_helpers_keep_every_character() -> None:
    import html
    import re

    assert html.unescape(re.sub(r"<[^>]+>", "", heading_html(HOSTILE))) == HOSTILE
    assert "<b>" not in heading_html(HOSTILE) and "<img" not in heading_html(HOSTILE)
    assert html.unescape(plotly_text(HOSTILE)) == HOSTILE and "<" not in plotly_text(HOSTILE)
    escaped = md_escape(MARKDOWNY)
    assert re.sub(r"\\(.)", r"\1", escaped) == MARKDOWNY and "\\*private\\*" in escaped
    assert "*" not in re.sub(r"\\.", "", escaped)


def test_compare_heatmap_draws_hostile_names_literally() -> None:
    import html

    fig = charts.compare_heatmap([fake_analysis(seed=1, name="a&b <i>.wav")])
    assert html.unescape(fig.layout.yaxis.ticktext[0]) == "a&b <i>.wav"


# ------------------------------------------------------------------------------------ pages
@pytest.fixture(scope="module")
def bundle_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("checkpoints")
    make_test_bundle(root)
    return root


@pytest.fixture
def new_app(bundle_root: Path, monkeypatch: pytest.MonkeyPatch):
    """A factory of fresh app sessions (one AppTest each) pointed at the test bundle."""
    monkeypatch.setenv("GENRE_LENS_CHECKPOINTS", str(bundle_root))
    monkeypatch.setenv("GENRE_LENS_DEVICE", "cpu")
    return lambda: AppTest.from_file(MAIN, default_timeout=TIMEOUT)


def song(seed: int, seconds: float = 16.0) -> bytes:
    return wav_bytes(synth_music(seconds, seed=seed), 22050)


def names_shown(at: AppTest) -> set[str]:
    """Every place the Analyze page writes track names: heading, picker, Compare table and heatmap."""
    import html
    import json

    shown = {track_heading(at)}
    for box in at.selectbox:
        if box.label == "Show details for":
            shown |= set(box.options)  # the labels the user sees
    for frame in at.dataframe:
        if "track" in frame.value:
            shown |= set(frame.value["track"])
    for chart in at.get("plotly_chart"):
        spec = json.loads(chart.proto.spec)
        if "Genre probabilities per track" in str(spec["layout"].get("title")):
            shown |= {html.unescape(t) for t in spec["layout"]["yaxis"]["ticktext"]}
    return shown - {None}


def test_two_sessions_with_the_same_bytes_see_only_their_own_names(new_app) -> None:
    alice, bob = new_app(), new_app()
    alice.run()
    bob.run()
    data = song(1)
    alice.file_uploader[0].upload(MARKDOWNY, data).upload("other.wav", song(2)).run()
    bob.file_uploader[0].upload(HOSTILE, data).upload("b2.wav", song(3)).run()
    no_exceptions(alice)
    no_exceptions(bob)
    alice.selectbox(key="gl.pick_track").set_value(next(iter(alice.session_state["gl.tracks"]))).run()
    bob.selectbox(key="gl.pick_track").set_value(next(iter(bob.session_state["gl.tracks"]))).run()
    assert track_heading(alice) == MARKDOWNY and track_heading(bob) == HOSTILE
    assert MARKDOWNY in names_shown(alice) and HOSTILE not in names_shown(alice)
    assert HOSTILE in names_shown(bob) and MARKDOWNY not in names_shown(bob)
    assert set(bob.dataframe[0].value["track"]) == {HOSTILE, "b2.wav"}
    assert alice.session_state["gl.session"] != bob.session_state["gl.session"]


def test_a_reload_of_the_same_session_gets_its_results_back(new_app) -> None:
    first = new_app()
    first.run()
    first.file_uploader[0].upload("keep.wav", song(4)).upload("also.wav", song(5, 25.0)).run()
    token = first.session_state["gl.session"]
    assert first.query_params["s"] == token
    window_key = next(k for k in first.session_state if str(k).startswith("window-"))
    first.select_slider(key=window_key).set_value(1).run()

    reloaded = new_app()  # a new Streamlit session, same URL
    reloaded.query_params["s"] = token
    reloaded.run()
    no_exceptions(reloaded)
    assert [a.name for a in reloaded.session_state["gl.tracks"].values()] == ["keep.wav", "also.wav"]
    assert reloaded.session_state["gl.session"] == token
    assert reloaded.select_slider(key=window_key).value == 1, "the window choice came back too"
    assert any(b.label == "Forget this track" for b in reloaded.button), "no chip holds it after a reload"

    stranger = new_app()  # a made-up token is never adopted, and opens nothing
    stranger.query_params["s"] = "A" * 32
    stranger.run()
    assert stranger.session_state["gl.session"] != "A" * 32 and not stranger.session_state["gl.tracks"]
    assert stranger.query_params["s"] == stranger.session_state["gl.session"]


def test_removing_the_chips_removes_their_results(new_app) -> None:
    at = new_app()
    at.run()
    at.file_uploader[0].upload("gone.wav", song(6)).run()
    assert len(at.session_state["gl.tracks"]) == 1
    at.file_uploader[0].clear().run()
    no_exceptions(at)
    assert not at.session_state["gl.tracks"], "the chip's × removed its result"
    assert not at.get("plotly_chart")
    token = at.session_state["gl.session"]
    again = new_app()
    again.query_params["s"] = token
    again.run()
    assert not again.session_state["gl.tracks"], "and a reload does not bring it back"


def test_a_page_switch_keeps_results_and_clear_all_removes_them(new_app) -> None:
    at = new_app()
    at.run()
    at.file_uploader[0].upload("one.wav", song(7)).upload("two.wav", song(8)).run()
    at.switch_page("../pages/metrics.py").run()
    at.switch_page("../pages/analyze.py").run()
    no_exceptions(at)
    assert len(at.session_state["gl.tracks"]) == 2, "an uploader emptied by a page switch removes nothing"
    next(b for b in at.button if b.label == "Forget this track").click().run()
    assert len(at.session_state["gl.tracks"]) == 1
    at.button(key="gl.clear_all").click().run()
    no_exceptions(at)
    assert not at.session_state["gl.tracks"] and not at.get("plotly_chart")
    at.file_uploader[0].upload("three.wav", song(9)).run()  # a fresh uploader still works
    assert [a.name for a in at.session_state["gl.tracks"].values()] == ["three.wav"]


def test_every_pick_shows_the_picked_track(new_app) -> None:
    at = new_app()
    at.run()
    names = ["p1.wav", "p2.wav", "p3.wav"]
    for k, name in enumerate(names):
        at.file_uploader[0].upload(name, song(10 + k))
    at.run()
    shas = list(at.session_state["gl.tracks"])
    for index in (1, 2, 0, 2):
        at.selectbox(key="gl.pick_track").set_value(shas[index]).run()
        assert track_heading(at) == names[index]
        assert at.selectbox(key="gl.pick_track").value == shas[index]


def test_cached_analysis_is_not_renamed_for_other_sessions(new_app) -> None:
    first, second = new_app(), new_app()
    first.run()
    second.run()
    data = song(11)
    first.file_uploader[0].upload("first.wav", data).run()
    second.file_uploader[0].upload("second.wav", data).run()
    a = next(iter(first.session_state["gl.tracks"].values()))
    b = next(iter(second.session_state["gl.tracks"].values()))
    assert (a.name, b.name) == ("first.wav", "second.wav") and a is not b
    assert np.shares_memory(a.probabilities, b.probabilities), "model outputs are shared, names are not"
