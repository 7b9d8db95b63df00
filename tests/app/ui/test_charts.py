"""The plotly figure builders, without Streamlit: shapes, colours and the edge cases pages hit."""

from __future__ import annotations

import itertools
import re
from dataclasses import replace

import numpy as np
import plotly.graph_objects as go
import pytest

from app.ui import chart_style, charts, window_charts, window_text
from app.ui.compare_table import compare_html
from tests.helpers.analyses import fake_analysis
from tests.helpers.bundles import synthetic_metrics
from utils.constants import GENRES

C = len(GENRES)
# Streamlit's plotly theme replaces these colours in the browser (see charts.MAGMA).
THEME_PLACEHOLDER = re.compile(r'"#0000[0-4][0-9]"', re.IGNORECASE)


def shapes_of(fig: go.Figure) -> list:
    """Layout shapes (lines, rectangles) of a figure."""
    return list(fig.layout.shapes or [])


def test_every_genre_has_a_distinct_colour() -> None:
    assert set(chart_style.GENRE_COLORS) == set(GENRES)
    assert len(set(chart_style.GENRE_COLORS.values())) == C
    assert charts.genre_color("polka") not in chart_style.GENRE_COLORS.values()


def test_genre_bars_sorted_with_threshold_and_faded_losers() -> None:
    probs = np.linspace(0.05, 0.95, C)
    fig = charts.genre_bars(list(GENRES), probs, threshold=0.5)
    bar = fig.data[0]
    assert list(bar.y)[-1] == GENRES[-1]  # best genre drawn last = on top
    assert list(bar.marker.color) == [charts.genre_color(g) for g in bar.y]
    assert [o == 1.0 for o in bar.marker.opacity] == [v >= 0.5 for v in bar.x]
    assert any(s.x0 == 0.5 for s in shapes_of(fig))


@pytest.mark.parametrize("mode", ["lines", "share"])
def test_window_timeline_plots_chosen_genres_at_window_centres(mode: str) -> None:
    a = fake_analysis()
    fig = charts.window_timeline(a, ["jazz", "rock"], selected=1, mode=mode, threshold=0.5)
    assert [t.name for t in fig.data][:2] == ["jazz", "rock"]
    assert list(fig.data[0].x) == [7.5, 12.5, 17.5, 22.5]
    assert fig.data[1].line.color == chart_style.GENRE_COLORS["rock"]
    rect = [s for s in shapes_of(fig) if s.type == "rect"]
    assert (rect[0].x0, rect[0].x1) == (5.0, 20.0)
    if mode == "share":  # shares of all ten genres, never of the chosen ones only
        probs = a.window_probabilities
        jazz = 100 * probs[:, GENRES.index("jazz")] / probs.sum(axis=1)
        np.testing.assert_allclose(fig.data[0].y, jazz)
        assert fig.data[2].name == "other 8 genres" and not fig.data[0].groupnorm
        np.testing.assert_allclose(np.sum([t.y for t in fig.data], axis=0), 100.0)
        assert "all ten" in fig.layout.yaxis.title.text


def test_window_timeline_defaults_to_the_top_three() -> None:
    a = fake_analysis()
    fig = charts.window_timeline(a)
    assert [t.name for t in fig.data] == [g for g, _ in a.ranking[:3]]


def test_spectrogram_marks_slices_and_highlights_the_window() -> None:
    a = fake_analysis()
    fig = charts.spectrogram(a, selected=2)
    heat = fig.data[0]
    assert heat.z.shape == (96, 120)
    lines = [s.x0 for s in shapes_of(fig) if s.type == "line"]
    assert sorted(lines) == [5.0, 10.0, 15.0, 20.0, 25.0]
    outline = [s for s in shapes_of(fig) if s.type == "rect" and s.line.color == charts.ACCENT]
    assert (outline[0].x0, outline[0].x1) == (10.0, 25.0)
    assert len(fig.layout.annotations) == 3  # one attention label per slice
    ticks = list(fig.layout.yaxis.ticktext)
    assert ticks[0] == "250" and "8k" in ticks  # Hz labels on mel-spaced rows


def test_spectrogram_without_selection_and_single_window() -> None:
    a = fake_analysis(duration=15.0)
    fig = charts.spectrogram(a)
    assert not fig.layout.annotations
    assert len(a.windows) == 1
    timeline = charts.window_timeline(a, selected=0)
    assert [len(t.x) for t in timeline.data] == [1, 1, 1]  # top three genres, one point each: the one window
    assert tuple(timeline.layout.xaxis.range) == (0, 15.0)


@pytest.mark.parametrize("duration", [30.0, 120.0, 600.0])
def test_slice_labels_never_overlap(duration: float) -> None:
    a = fake_analysis(duration=duration)
    fig = charts.spectrogram(a, selected=len(a.windows) // 2)
    notes = sorted(fig.layout.annotations, key=lambda n: n.x)
    px_per_s = charts.PLOT_WIDTH_PX / duration
    spans = [(n.x * px_per_s - len(n.text) * charts.LABEL_CHAR_PX / 2,
              n.x * px_per_s + len(n.text) * charts.LABEL_CHAR_PX / 2) for n in notes]
    assert all(left[1] <= right[0] for left, right in itertools.pairwise(spans)), [n.text for n in notes]
    w = a.windows[len(a.windows) // 2]
    for att in w.attention:  # every slice's attention is still said
        assert any(f"{att:.0%}" in n.text for n in notes)
    if duration == 30.0:
        assert [n.text.split(":")[0] for n in notes] == ["slice 1", "slice 2", "slice 3"]
    if duration == 600.0:
        assert len(notes) == 1


def test_probability_heatmaps_have_percent_colour_bars() -> None:
    a = fake_analysis()
    for fig in (charts.compare_heatmap([a]), window_charts.slice_heatmap(a.windows[0], a.labels)):
        assert "(%)" in fig.layout.title.text and fig.data[0].colorbar.tickformat == ".0%"


def test_hostile_names_are_plotly_text_not_markup() -> None:
    name = "bob <b>&amp; 'co' <img src=x onerror=alert(1)>.flac"
    fig = charts.compare_heatmap([fake_analysis(seed=1, name=name), fake_analysis(seed=2, name=name)])
    ticks = list(fig.layout.yaxis.ticktext)
    assert len(ticks) == 2 and list(fig.data[0].y) == [0, 1]  # two rows although the names are equal
    assert "<" not in ticks[0] and "&amp;amp;" in ticks[0] and "&lt;img" in ticks[0]


def test_long_track_draws_only_the_selected_windows_slice_lines() -> None:
    a = fake_analysis(duration=600.0)
    lines = [s.x0 for s in shapes_of(charts.spectrogram(a, selected=10)) if s.type == "line"]
    assert lines == [55.0, 60.0]
    assert not [s for s in shapes_of(charts.spectrogram(a)) if s.type == "line"]


def test_attention_and_slice_heatmap_describe_one_window() -> None:
    w = fake_analysis().windows[0]
    att = window_charts.attention_bars(w, list(GENRES))
    assert np.allclose(att.data[0].y, w.attention)
    tops = [GENRES[int(np.argmax(p))] for p in w.slice_probabilities]
    assert list(att.data[0].marker.color) == [charts.genre_color(g) for g in tops]
    heat = window_charts.slice_heatmap(w, list(GENRES))
    assert np.asarray(heat.data[0].z).shape == (3, C)
    assert list(heat.data[0].x) == list(GENRES)


def test_explanation_names_the_most_attended_slice() -> None:
    w = fake_analysis().windows[0]
    w.attention = np.array([0.2, 0.7, 0.1])
    w.slice_probabilities = np.full((3, C), 0.1)
    w.slice_probabilities[1, GENRES.index("jazz")] = 0.9
    w.probabilities = np.full(C, 0.1)
    w.probabilities[GENRES.index("jazz")] = 0.8
    text = window_text.explain_window(w, list(GENRES))
    assert text.startswith(f"The {w.start_s + 5:.0f}–{w.start_s + 10:.0f} s slice drove this window")
    assert "70%" in text and "jazz (90%)" in text and "agreeing with" in text


def test_equal_attention_is_not_called_a_slice_driving_the_window() -> None:
    w = fake_analysis().windows[0]
    w.attention = np.full(3, 1 / 3)  # the linear heads of v3-v5: every slice weighs the same
    w.probabilities = np.full(C, 0.1)
    w.probabilities[GENRES.index("metal")] = 0.8
    w.slice_probabilities = np.full((3, C), 0.1)
    w.slice_probabilities[:, GENRES.index("metal")] = [0.5, 0.3, 0.95]
    text = window_text.explain_window(w, list(GENRES))
    assert "drove" not in text and text.startswith("This model weighs the window's 3 slices equally (33% each).")
    assert f"The {w.start_s + 10:.0f}–{w.start_s + 15:.0f} s slice sounds most like" in text
    assert "metal (80%): 95% on its own" in text
    assert "equal" in window_charts.attention_bars(w, list(GENRES)).layout.title.text
    w.attention = np.array([0.2, 0.7, 0.1])
    assert "equal" not in window_charts.attention_bars(w, list(GENRES)).layout.title.text


def test_compare_table_and_heatmap() -> None:
    tracks = [fake_analysis(seed=1, name="a.wav"), fake_analysis(seed=2, name="b" * 50 + ".wav")]
    table = charts.compare_table(tracks, threshold=0.5)
    assert list(table["track"]) == ["a.wav", "b" * 50 + ".wav"]
    assert table.loc[0, "top genre"] == tracks[0].top_genre
    fig = charts.compare_heatmap(tracks)
    assert np.asarray(fig.data[0].z).shape == (2, C)
    assert all(len(n) <= 31 for n in fig.layout.yaxis.ticktext)
    assert list(fig.layout.xaxis.ticktext) == list(GENRES)  # on a phone plotly dropped every other genre
    assert charts.compare_table([], 0.5).empty
    noise = replace(fake_analysis(seed=3, name="noise.wav"), novelty=9.0, novelty_threshold=1.0)
    row = charts.compare_table([noise], 0.5).iloc[0]
    assert row["verdict"].startswith("Not music") and row["top genre"] == "—" and np.isnan(row["confidence"])
    assert '<span class="num">—</span>' in compare_html(charts.compare_table([noise], 0.5))  # no 99 % bar for noise
    empty = charts.compare_heatmap([])
    assert np.asarray(empty.data[0].z).shape == (0, C) and list(empty.data[0].x) == list(GENRES)


@pytest.mark.parametrize("normalise", [False, True])
def test_confusion_matrix_counts_or_rows(normalise: bool) -> None:
    m = synthetic_metrics()
    fig = charts.confusion_matrix(m["confusion_matrix"], m["labels"], normalise=normalise)
    z = np.asarray(fig.data[0].z, dtype=float)
    if normalise:
        assert np.allclose(z.sum(1), 1.0)
    else:
        assert z.sum() == m["n_tracks"]


def test_confusion_matrix_with_an_empty_row() -> None:
    fig = charts.confusion_matrix([[0, 0], [1, 3]], ["a", "b"], normalise=True)
    assert np.allclose(np.asarray(fig.data[0].z), [[0, 0], [0.25, 0.75]])


def test_metric_figures_from_a_real_format_report() -> None:
    m = synthetic_metrics()
    bars = charts.per_genre_bars(m["per_genre"])
    assert [t.name for t in bars.data] == ["precision", "recall", "F1"]
    assert list(bars.data[2].y) == [m["per_genre"][g]["f1"] for g in GENRES]
    rel = charts.reliability_diagram(m["reliability"], m["ece"])
    assert f"{m['ece']:.3f}" in rel.layout.title.text
    assert len(rel.data[0].x) == sum(b["count"] > 0 for b in m["reliability"])
    curves = charts.training_curves([{"epoch": 1, "train_loss": 1.0, "val_loss": 1.1, "val_accuracy": 0.5},
                                     {"epoch": 2, "train_loss": 0.5, "val_loss": 0.8, "val_accuracy": 0.7}], 2)
    assert [t.name for t in curves.data] == ["train loss", "validation loss", "validation accuracy"]
    members = [{"epoch": 1, "train_loss": 1.0, "val_accuracy": 0.4, "member": 1},
               {"epoch": 2, "train_loss": 0.6, "val_accuracy": 0.6, "member": 1},
               {"epoch": 1, "train_loss": 2.0, "val_accuracy": 0.6, "member": 2}]
    ens = charts.training_curves(members, 1, [2, 1])
    assert list(ens.data[0].x) == [1, 2] and list(ens.data[0].y) == [1.5, 0.6]  # member means per epoch
    assert list(ens.data[1].y) == [0.5, 0.6] and list(ens.data[-1].x) == [2, 1]  # kept epochs as ticks
    assert "median kept: epoch 1" in ens.layout.annotations[0].text
    comp = charts.accuracy_comparison([("ours", 0.8, "ours"), ("ref", 0.7, "reference")])
    assert list(comp.data[0].y) == ["ref", "ours"] and comp.data[0].marker.color[1] == charts.ACCENT


def test_no_chart_uses_streamlit_theme_placeholder_colours() -> None:
    a = fake_analysis()
    m = synthetic_metrics()
    figures = [charts.genre_bars(a.labels, a.probabilities, 0.5), charts.window_timeline(a, selected=0),
               charts.spectrogram(a, 0), window_charts.attention_bars(a.windows[0], a.labels),
               window_charts.slice_heatmap(a.windows[0], a.labels), charts.compare_heatmap([a]),
               charts.confusion_matrix(m["confusion_matrix"], m["labels"]), charts.per_genre_bars(m["per_genre"]),
               charts.reliability_diagram(m["reliability"], m["ece"]), charts.training_curves([], None)]
    for fig in figures:
        fig.layout.template = None  # importing streamlit installs its own template, which uses them on purpose
        assert not THEME_PLACEHOLDER.search(fig.to_json())


def test_titles_and_legends_do_not_overlap() -> None:
    m = synthetic_metrics()
    fig = charts.reliability_diagram(m["reliability"], m["ece"])
    assert fig.layout.margin.t >= 70 and fig.layout.title.yanchor == "top"


def test_a_padded_clip_shades_its_repeat_on_every_static_track_chart() -> None:
    """A 4.5 s clip's charts ran to 15 s with the repeat drawn as if it were more audio."""
    from app.ui.slices import slice_strip
    from app.ui.track_charts import slice_strip_figure

    short = fake_analysis(duration=15.0, seed=4)
    short.source = {"duration_s": 4.5, "padded": True}
    full = fake_analysis(duration=30.0, seed=5)
    for draw in (lambda a: charts.window_timeline(a, None, 0, "lines", 0.5), lambda a: charts.spectrogram(a, 0),
                 lambda a: slice_strip_figure(a, slice_strip(a), 0)):
        shaded = [s for s in draw(short).layout.shapes if s.fillcolor == "rgba(14,17,23,0.62)"]
        assert len(shaded) == 1 and (shaded[0].x0, shaded[0].x1) == (4.5, 15.0)
        assert any("repeated to fill 15 s" in (a.text or "") for a in draw(short).layout.annotations)
        assert not [s for s in draw(full).layout.shapes if s.fillcolor == "rgba(14,17,23,0.62)"]
