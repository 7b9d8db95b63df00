"""A not-music (or uncertain) verdict carried through every view of an analysis, not only its heading.

Pure builders only (sentences, figures, tables): a tone's "classical 100%" must never read as confidence.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from app.analysis import Analysis
from app.ui import charts, window_charts, window_text
from app.ui.chart_style import FORCED_NOTE, FORCED_OPACITY, FORCED_SCALE
from app.ui.compare_table import breakable_name, compare_html
from app.ui.player.payload import FORCED_FILL, player_args
from app.ui.slices import slice_strip
from app.ui.track_charts import slice_strip_figure
from app.ui.track_table import genres_at, track_table
from models.trust import load_trust
from models.verdict import GENRE, NOT_MUSIC, UNCERTAIN
from tests.helpers.analyses import fake_analysis
from utils.constants import GENRES

C = len(GENRES)
CHECKPOINTS = Path(__file__).resolve().parents[3] / "models" / "checkpoints"


def not_music(seed: int = 3, name: str = "sine.wav") -> Analysis:
    """A fake analysis the not-music detector rejects (far beyond its distance threshold)."""
    return replace(fake_analysis(seed=seed, name=name), novelty=9.0, novelty_threshold=1.0)


def uncertain(seed: int = 4, name: str = "quiet.wav") -> Analysis:
    """Music whose genres all stay under the threshold."""
    a = fake_analysis(seed=seed, name=name)
    return replace(a, probabilities=np.full(C, 0.2), threshold=0.5)


def forced_window(equal: bool) -> tuple:
    """A window that says classical 100 % everywhere, like a 440 Hz tone does."""
    w = fake_analysis().windows[0]
    w.probabilities = np.zeros(C)
    w.probabilities[GENRES.index("classical")] = 1.0
    w.slice_probabilities = np.tile(w.probabilities, (3, 1))
    w.attention = np.full(3, 1 / 3) if equal else np.array([0.2, 0.7, 0.1])
    return w


# ------------------------------------------------------------------------------------ the window sentence
@pytest.mark.parametrize("equal", [True, False])
def test_not_music_window_sentence_names_the_forced_pick_without_confidence(equal: bool) -> None:
    text = window_text.explain_window(forced_window(equal), list(GENRES), NOT_MUSIC, 0.05)
    assert "not music" in text and "forced to choose" in text and "classical" in text
    assert "100%" not in text and "verdict" not in text and "sounds most like" not in text
    if equal:
        assert "%" not in text


def test_uncertain_window_sentence_says_closest_never_verdict() -> None:
    w = forced_window(True)
    w.probabilities = np.full(C, 0.1)
    w.probabilities[GENRES.index("jazz")] = 0.3
    text = window_text.explain_window(w, list(GENRES), UNCERTAIN, 0.5)
    assert "closest genre, jazz (30%" in text and "not sure" in text and "verdict" not in text


def test_genre_window_under_the_threshold_is_closest_not_verdict() -> None:
    w = forced_window(False)
    w.probabilities = np.full(C, 0.1)
    w.probabilities[GENRES.index("rock")] = 0.42
    assert "under the 50% threshold" in window_text.explain_window(w, list(GENRES), GENRE, 0.5)
    w.probabilities[GENRES.index("rock")] = 0.9
    assert "the window's verdict of rock (90%)" in window_text.explain_window(w, list(GENRES), GENRE, 0.5)


# ------------------------------------------------------------------------------------------- figures
def test_slice_strip_of_a_not_music_track_is_faded_and_has_no_percentages() -> None:
    a = not_music()
    fig = slice_strip_figure(a, slice_strip(a), 0)
    bar = fig.data[0]
    assert set(bar.marker.opacity) == {FORCED_OPACITY}
    assert bar.text and not any("%" in t for t in bar.text)
    assert "forced" in fig.layout.title.text and "not music" in fig.layout.title.text
    music = fake_analysis()
    assert any("%" in t for t in slice_strip_figure(music, slice_strip(music), 0).data[0].text)


def test_window_charts_say_forced_and_drop_the_confidence_colours() -> None:
    w = forced_window(False)
    heat = window_charts.slice_heatmap(w, list(GENRES), forced=True)
    assert "forced" in heat.layout.title.text and FORCED_NOTE in heat.layout.title.text
    assert [list(c) for c in heat.data[0].colorscale] == FORCED_SCALE
    att = window_charts.attention_bars(w, list(GENRES), forced=True)
    assert att.data[0].marker.opacity == FORCED_OPACITY and FORCED_NOTE in att.layout.title.text
    plain = window_charts.slice_heatmap(w, list(GENRES))
    assert "forced" not in plain.layout.title.text and "(%)" in plain.layout.title.text


def test_timeline_of_a_not_music_track_is_faded_and_labelled() -> None:
    a = not_music()
    fig = charts.window_timeline(a, ["jazz", "rock"], 0, "lines", a.threshold, forced=True)
    assert {t.opacity for t in fig.data} == {FORCED_OPACITY}
    assert fig.layout.yaxis.title.text == "forced pick"
    assert FORCED_NOTE in fig.layout.xaxis.title.text
    plain = charts.window_timeline(a, ["jazz", "rock"], 0, "lines", a.threshold)
    assert {t.opacity for t in plain.data} == {None} and plain.layout.yaxis.title.text == "probability"


def test_compare_heatmap_marks_not_music_and_uncertain_rows() -> None:
    tracks = [not_music(name="sine_440.wav"), uncertain(), fake_analysis(seed=5, name="song.flac"),
              not_music(seed=6, name="x" * 60 + ".wav")]
    fig = charts.compare_heatmap(tracks)
    ticks = list(fig.layout.yaxis.ticktext)
    assert ticks[0] == "sine_440.wav (not music)" and ticks[1] == "quiet.wav (not sure)"
    assert ticks[2] == "song.flac" and ticks[3].endswith("… (not music)") and len(ticks[3]) <= 32
    veils = [s for s in fig.layout.shapes if s.type == "rect"]
    assert sorted((s.y0, s.y1) for s in veils) == [(-0.5, 0.5), (2.5, 3.5)]  # the two not-music rows only
    assert all(s.xref == "x domain" and s.x0 == 0 and s.x1 == 1 for s in veils)


def test_compare_table_verdict_fits_a_column() -> None:
    row = charts.compare_table([not_music()], 0.5).iloc[0]
    top = not_music().ranking[0][0]
    assert row["verdict"] == f"Not music (forced pick: {top})" and row["top genre"] == "—"
    row = charts.compare_table([uncertain()], 0.5).iloc[0]
    assert row["verdict"].startswith("Not sure: closest") and row["genres above threshold"] == "none"


def test_genre_bars_labels_never_sit_on_the_threshold_line() -> None:
    probs = np.array([0.9, 0.03, 0.0, 0.49, 0.2, 0.06, 0.01, 0.0, 0.0, 0.0])
    fig = charts.genre_bars(list(GENRES), probs, threshold=0.05)
    bar = fig.data[0]
    moved = {a.y: a.text for a in fig.layout.annotations if a.x == 0.05 and a.xanchor == "left"}
    for name, value, position in zip(bar.y, bar.x, bar.textposition, strict=True):
        if 0.05 - charts.LABEL_AXIS_WIDTH < value < 0.05:  # its label would straddle the dashed line
            assert position == "none" and moved[name] == f"{100 * value:.0f}%"
        else:
            assert position == "outside" and name not in moved
    assert moved[GENRES[1]] == "3%"


def test_forced_genre_bars_title_wraps_instead_of_clipping() -> None:
    fig = charts.genre_bars(list(GENRES), np.linspace(0, 1, C), 0.05, forced=True)
    head, _, note = fig.layout.title.text.partition("<br>")
    assert "forced to choose" in head and len(head) <= 24 and "not confidences" in note
    assert set(fig.data[0].marker.opacity) == {FORCED_OPACITY}


# -------------------------------------------------------------------------------- metrics test tracks
def test_genres_above_threshold_lists_only_genres_at_or_above_it() -> None:
    track = {"track_id": "blues.00001", "true": "blues", "predicted": "blues", "confidence": 0.4673,
             "correct": True, "predicted_genres": ["blues"],  # the report's fallback to the top genre
             "probabilities": {"blues": 0.4673, "jazz": 0.4495, "rock": 0.01}}
    assert genres_at(track, 0.5) == "none"
    assert genres_at(track, 0.45) == "blues"
    assert genres_at(track, 0.05) == "blues, jazz"
    legacy = {k: v for k, v in track.items() if k != "probabilities"}
    assert genres_at(legacy, 0.5) == "none" and genres_at(legacy, 0.4) == "blues"


@pytest.mark.parametrize("version", sorted(p.parent.name for p in CHECKPOINTS.glob("*/metrics.json")))
def test_every_shipped_version_lists_genres_only_at_its_threshold(version: str) -> None:
    folder = CHECKPOINTS / version
    metrics = json.loads((folder / "metrics.json").read_text())
    threshold = load_trust(folder).threshold
    table = track_table(metrics, threshold)
    by_id = {t["track_id"]: t for t in metrics["tracks"]}
    for tid, listed in zip(table["track"], table["genres above threshold"], strict=True):
        probs = by_id[tid]["probabilities"]
        names = [] if listed == "none" else listed.split(", ")
        assert all(probs[g] >= threshold for g in names), (tid, listed)
        assert sorted(names) == sorted(g for g, p in probs.items() if p >= threshold)


# ------------------------------------------------------------------------------------ phone compare table
def test_phone_table_breaks_names_at_dots_not_mid_word() -> None:
    assert breakable_name("blues.00000.flac") == "blues<wbr>.00000<wbr>.flac"
    assert breakable_name("my_take-2.wav") == "my_<wbr>take-<wbr>2<wbr>.wav"
    assert breakable_name("a <b> & 'c'.wav") == "a &lt;b&gt; &amp; &#x27;c&#x27;.wav"  # spaces: words break alone
    html_out = compare_html(charts.compare_table([fake_analysis(name="blues.00000.flac")], 0.5))
    assert "blues<wbr>.00000<wbr>.flac" in html_out and "<script" not in html_out


def test_linked_player_of_a_not_music_track_is_told_to_grey_its_strip() -> None:
    meta, _ = player_args(not_music(), 0)
    json.dumps(meta, allow_nan=False)
    assert meta["forced"] == {"opacity": FORCED_OPACITY, "fill": FORCED_FILL}
    assert "rgba" in FORCED_FILL and "," not in FORCED_FILL.split("(")[0], "a CSS colour the canvas accepts"
    assert player_args(fake_analysis(), 0)[0]["forced"] is None, "music keeps its genre colours"
    assert player_args(uncertain(), 0)[0]["forced"] is None, "not sure is still music: its picks are real"
