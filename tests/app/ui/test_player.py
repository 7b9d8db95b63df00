"""The linked player's pure parts (#17): slice strip, window under a time, payload, example audio,
the phone Compare table and the static strip figure. No Streamlit, no browser."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from app.analysis import Analysis, WindowResult
from app.ui import player
from app.ui.compare_table import compare_html
from app.ui.player.payload import Overlay, PlayRequest, player_args, quantise_db, quantise_signed
from app.ui.slices import slice_strip, window_at
from app.ui.track_charts import slice_strip_figure
from tests.helpers.analyses import fake_analysis
from utils.constants import GENRES, SLICE_S
from utils.example_audio import EXAMPLE_RATE, EXAMPLE_SECONDS, example_bytes, example_wav, synthesize_example
from utils.spectrogram import DisplaySpectrogram
from utils.windows import plan_windows

C = len(GENRES)


def planned_analysis(duration: float, seed: int = 0) -> Analysis:
    """An Analysis on the engine's real window plan (end-aligned tail window included)."""
    rng = np.random.default_rng(seed)
    plan = plan_windows(duration)
    windows = [WindowResult(i, float(s), float(s) + 15.0, rng.uniform(size=C), rng.dirichlet(np.ones(3)),
                            plan.slice_starts[plan.window_slices[i]], rng.uniform(size=(3, C)))
               for i, s in enumerate(plan.window_starts)]
    frames = 50
    spec = DisplaySpectrogram(rng.uniform(-80, 0, (96, frames)).astype(np.float32),
                              np.linspace(0, duration, frames, dtype=np.float32),
                              np.linspace(0, 11025, 96, dtype=np.float32))
    return Analysis("x.wav", f"{seed:064x}", list(GENRES), rng.uniform(size=C), 0.5, windows, plan.slice_starts,
                    spec, duration, {"duration_s": duration}, {}, [], {}, {"id": "test"})


def test_slice_strip_averages_each_slice_over_the_windows_holding_it() -> None:
    a = fake_analysis(30.0)  # windows at 0, 5, 10, 15; slices at 0..25
    strip = slice_strip(a)
    assert len(strip) == 6 and list(strip.coverage) == [1, 2, 3, 3, 2, 1]
    # the 10-15 s slice is slice 3 of window 0, slice 2 of window 1 and slice 1 of window 2
    views = [a.windows[0].slice_probabilities[2], a.windows[1].slice_probabilities[1],
             a.windows[2].slice_probabilities[0]]
    np.testing.assert_allclose(strip.probabilities[2], np.mean(views, axis=0))
    np.testing.assert_allclose(strip.attention[2], np.mean([a.windows[k].attention[2 - k] for k in range(3)]))
    assert list(strip.top) == [int(np.argmax(p)) for p in strip.probabilities]
    # a click on a slice selects the window in which it is the middle slice, where there is one
    assert list(strip.windows) == [0, 0, 1, 2, 3, 3]


def test_window_at_prefers_the_window_centred_nearest() -> None:
    a = fake_analysis(30.0)
    assert window_at(a, 0.0) == 0
    assert window_at(a, 12.4) == 1
    assert window_at(a, 20.2) == 3 and window_at(a, 19.8) == 2  # 20 s sits in windows 2-4; nearest centre wins
    assert window_at(a, 29.99) == 3
    assert window_at(a, 45.0) == 3, "past the end: the nearest window, never nothing"


@pytest.mark.parametrize("duration", [15.0, 33.0, 61.7, 600.0])
def test_slice_strip_covers_the_whole_track(duration: float) -> None:
    a = planned_analysis(duration)
    strip = slice_strip(a)
    assert len(strip) == len(a.slice_starts_s)
    assert (strip.coverage >= 1).all(), "every slice is in some window"
    assert strip.starts_s[0] == 0.0 and strip.ends_s.max() == pytest.approx(duration, abs=SLICE_S / 2)
    assert np.all(strip.starts_s[1:] <= strip.ends_s[:-1] + 1e-9), "no gaps"
    for s, w in zip(strip.starts_s, strip.windows, strict=True):  # the target window holds the slice
        assert a.windows[w].start_s <= s + SLICE_S / 2 <= a.windows[w].end_s


def test_player_args_are_json_and_compact_bytes() -> None:
    a = fake_analysis(30.0)
    meta, data = player_args(a, 2, ["jazz", "rock"], stacked=False, play=PlayRequest(3, 10.0, 25.0),
                             audio_mime="audio/flac")
    json.dumps(meta, allow_nan=False)
    assert meta["selected"] == 2 and meta["duration"] == 30.0 and meta["mime"] == "audio/flac"
    assert meta["play"] == {"id": 3, "start": 10.0, "end": 25.0}
    assert [s["name"] for s in meta["series"]] == ["jazz", "rock"]
    assert len(meta["slices"]) == 6 and [s["window"] for s in meta["slices"]] == [0, 0, 1, 2, 3, 3]
    assert len(data["spec"]) == meta["spec"]["mels"] * meta["spec"]["frames"] == 96 * 120
    assert meta["overlay"] is None and data["overlay"] is None
    assert meta["spec"]["t0"] == 0.0 and meta["spec"]["t1"] > 29.9


def test_stacked_series_are_shares_of_all_ten_genres() -> None:
    a = fake_analysis(30.0)
    meta, _ = player_args(a, 0, ["jazz"], stacked=True)
    assert [s["name"] for s in meta["series"]] == ["jazz", "other 9 genres"]
    total = np.sum([s["values"] for s in meta["series"]], axis=0)
    np.testing.assert_allclose(total, 1.0, atol=1e-3)


def test_overlay_travels_as_one_byte_per_cell() -> None:
    a = fake_analysis(30.0)
    sal = np.random.default_rng(0).normal(size=a.spectrogram.db.shape)
    meta, data = player_args(a, 0, overlay=Overlay(sal, a.spectrogram, "jazz", "both", 0.6))
    assert meta["overlay"]["part"] == "both" and meta["overlay"]["opacity"] == 0.6
    assert len(data["overlay"]) == sal.size
    assert quantise_signed(np.array([-1.0, 0.0, 1.0]), signed=True) == bytes([0, 128, 255])
    assert quantise_signed(np.array([0.0, 0.5, 2.0]), signed=False) == bytes([0, 128, 255])
    assert quantise_db(np.array([-120.0, -80.0, -40.0, 0.0])) == bytes([0, 0, 128, 255])


def test_example_is_deterministic_music_like_and_cached(tmp_path: Path) -> None:
    y = synthesize_example()
    assert y.dtype == np.float32 and len(y) == int(EXAMPLE_SECONDS * EXAMPLE_RATE)
    np.testing.assert_array_equal(y, synthesize_example())
    assert 0.85 < np.max(np.abs(y)) <= 0.9
    spectrum = np.abs(np.fft.rfft(y))
    freqs = np.fft.rfftfreq(len(y), 1 / EXAMPLE_RATE)
    low, high = spectrum[(freqs > 30) & (freqs < 150)].sum(), spectrum[(freqs > 4000)].sum()
    assert low > 0.05 * spectrum.sum() and high > 0.01 * spectrum.sum(), "bass and hats are both there"
    path = example_wav(tmp_path / "example")
    assert path.read_bytes() == example_bytes()
    stamp = path.stat().st_mtime_ns
    assert example_wav(tmp_path / "example").stat().st_mtime_ns == stamp, "rendered once"
    assert not list((tmp_path / "example").glob("*.tmp"))


def test_compare_html_escapes_names_and_hides_wide_columns_on_phones() -> None:
    from app.ui.charts import compare_table

    hostile = "bob <img src=x onerror=alert(1)> & 'co'.wav"
    html_out = compare_html(compare_table([fake_analysis(30.0, name=hostile), fake_analysis(20.0, 1)], 0.5))
    assert "<img" not in html_out and "&lt;img src=x onerror=alert(1)&gt; &amp; &#x27;co&#x27;.wav" in html_out
    assert html_out.count("<tr>") == 3
    assert 'class="wide">genres above threshold' in html_out and "@media (max-width: 640px)" in html_out


def test_static_strip_figure_lines_up_with_the_track() -> None:
    a = fake_analysis(30.0)
    strip = slice_strip(a)
    fig = slice_strip_figure(a, strip, selected=1)
    bar = fig.data[0]
    assert len(bar.base) == 6 and list(bar.x) == [5.0] * 6
    assert [int(c[0]) for c in bar.customdata] == list(strip.windows)
    assert list(fig.layout.xaxis.range) == [0, 30.0]
    (shape,) = fig.layout.shapes
    assert (shape.x0, shape.x1) == (5.0, 20.0)


def test_player_can_be_switched_off_and_needs_its_front_end(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(player.PLAYER_ENV, raising=False)
    assert player.available()
    assert not player.available(tmp_path), "no index.html/player.js: no player"
    for value in ("static", "OFF", "0"):
        monkeypatch.setenv(player.PLAYER_ENV, value)
        assert not player.available()
