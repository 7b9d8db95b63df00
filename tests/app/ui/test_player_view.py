"""The Analyze page with the linked player (#17), through Streamlit's AppTest: first-run example,
the component and its arguments, "Play this window", the saliency overlay, and every fallback."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from app.ui.player import view as player_view
from tests.helpers.apptest import MAIN, TIMEOUT, no_exceptions

PLAYER_NAME = "app.ui.player.linked_player"


@pytest.fixture
def example_app(bundle_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AppTest:
    """The app on the random-weights test bundle, after the first-run example was analysed."""
    monkeypatch.setenv("GENRE_LENS_CHECKPOINTS", str(bundle_root))
    monkeypatch.setenv("GENRE_LENS_DEVICE", "cpu")
    monkeypatch.setenv("GENRE_LENS_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("GENRE_LENS_PLAYER", raising=False)
    at = AppTest.from_file(MAIN, default_timeout=TIMEOUT).run()
    assert any("New here?" in m.value for m in at.markdown), "first-run help"
    at.button(key="gl.try_example").click().run()
    no_exceptions(at)
    assert not at.error, [e.value for e in at.error]
    return at


def player_of(at: AppTest) -> tuple[dict, dict[str, int]] | None:
    """(meta, {byte argument: length}) of the linked player on the page, None when there is none."""
    for element in at.get("component_instance"):
        proto = element.proto
        if proto.component_name == PLAYER_NAME:
            return json.loads(proto.json_args)["meta"], {s.key: len(s.bytes) for s in proto.special_args}
    return None


def test_example_opens_in_the_linked_player(example_app: AppTest, tmp_path: Path) -> None:
    at = example_app
    (track,) = at.session_state["gl.tracks"].values()
    assert track.name == "genre-lens-example-loop.wav"
    (cached,) = (tmp_path / "cache" / "example").glob("*.wav")
    assert cached.read_bytes() == at.session_state["gl.audio"][track.sha256][0], "rendered into the cache once"
    found = player_of(at)
    assert found is not None
    meta, blobs = found
    assert meta["duration"] == pytest.approx(30.0, abs=0.1) and len(meta["windows"]) == len(track.windows)
    assert len(meta["slices"]) == len(track.slice_starts_s) and blobs["audio"] > 1_000_000
    assert meta["selected"] == at.session_state["gl.windows"][track.sha256]
    assert not at.get("audio"), "the player holds the audio; no second player in the summary"
    titles = [json.loads(c.proto.spec)["layout"].get("title", {}).get("text", "") for c in at.get("plotly_chart")]
    assert len(titles) == 3 and not any("slice" in t.lower() and "Every" in t for t in titles)
    assert any(t.label == "Static charts" for t in at.toggle)


def test_play_this_window_asks_the_player(example_app: AppTest) -> None:
    at = example_app
    at.button(key=next(k for k in at.session_state if str(k).startswith("play-window-"))).click().run()
    meta, _ = player_of(at)
    w = meta["windows"][meta["selected"]]
    assert meta["play"] == {"id": 1, "start": w["start"], "end": w["end"]}
    at.button(key=next(k for k in at.session_state if str(k).startswith("play-window-"))).click().run()
    assert player_of(at)[0]["play"]["id"] == 2, "every click is a new request"


def test_saliency_overlay_goes_into_the_player(example_app: AppTest) -> None:
    at = example_app
    next(t for t in at.toggle if t.label == "Show the saliency map").set_value(True).run()
    no_exceptions(at)
    meta, blobs = player_of(at)
    assert meta["overlay"]["part"] == "for" and blobs["overlay"] == meta["spec"]["mels"] * meta["spec"]["frames"]


def test_static_switch_and_setting_draw_the_static_charts(example_app: AppTest,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    at = example_app
    next(t for t in at.toggle if t.label == "Static charts").set_value(True).run()
    no_exceptions(at)
    assert player_of(at) is None
    titles = [str(json.loads(c.proto.spec)["layout"].get("title")) for c in at.get("plotly_chart")]
    assert len(titles) == 6 and any("Every 5 s slice" in t for t in titles)
    assert len(at.get("audio")) == 1
    at.button(key=next(k for k in at.session_state if str(k).startswith("play-window-"))).click().run()
    assert len(at.get("audio")) == 2, "the fallback's 'Play this window' cues an audio element to the window"
    cued = at.get("audio")[-1].proto
    w = at.session_state["gl.tracks"][next(iter(at.session_state["gl.tracks"]))].windows[
        at.session_state["gl.static_play"][next(iter(at.session_state["gl.tracks"]))]]
    assert cued.start_time == int(w.start_s) and cued.autoplay

    monkeypatch.setenv("GENRE_LENS_PLAYER", "static")
    next(t for t in at.toggle if t.label == "Static charts").set_value(False).run()
    assert player_of(at) is None and not any(t.label == "Static charts" for t in at.toggle)


def test_a_player_that_raises_falls_back_for_the_session(example_app: AppTest, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(*args, **kwargs):
        raise RuntimeError("component registry unavailable")

    monkeypatch.setattr(player_view, "linked_player", broken)
    at = example_app
    at.run()
    no_exceptions(at)
    assert player_of(at) is None
    assert any("could not be shown" in c.value for c in at.caption)
    assert len(at.get("audio")) == 1 and len(at.get("plotly_chart")) == 6
    at.run()  # the next run skips the player at once, and the summary has the audio again
    assert len(at.get("audio")) == 1 and not any("could not be shown" in c.value for c in at.caption)


def test_explore_offers_listen_for_a_placed_upload(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from tests.helpers.analyses import upload_from_table_track
    from tests.helpers.bundles import make_test_bundle
    from tests.helpers.data import synthetic_table
    from utils.settings import REFERENCE_ENV
    from utils.tables import PUBLISHED_MUSICNN_META

    make_test_bundle(tmp_path / "ck")
    table = synthetic_table(n_per_genre=4, dim=50, seed=1)
    table.meta = dict(PUBLISHED_MUSICNN_META)
    table.save(tmp_path / "ref.npz")
    monkeypatch.setenv("GENRE_LENS_CHECKPOINTS", str(tmp_path / "ck"))
    monkeypatch.setenv(REFERENCE_ENV, str(tmp_path / "ref.npz"))
    at = AppTest.from_file(MAIN, default_timeout=60).run()
    sha = "f" * 64
    at.session_state["gl.tracks"] = {sha: upload_from_table_track(table.tracks()[0], table.embedder_id)}
    at.session_state["gl.audio"] = {sha: (b"RIFF-not-really-audio", "audio/wav")}
    at.switch_page("../pages/explore.py").run()
    no_exceptions(at)
    assert any(m.value == "**Listen**" for m in at.markdown)
    assert len(at.get("audio")) == 1
