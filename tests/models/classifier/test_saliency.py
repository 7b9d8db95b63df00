"""Saliency: the maths on the display grid, and the real MusiCNN + a random-weights classifier end to end.

The end-to-end tests use audio that is silent except where we put sound, so we know where the
evidence must be: gradient × input gives exactly zero to silent log-mel bins, and a window's
probability has zero gradient outside its 15 s. They check that the gradient reaches the
spectrogram through the whole model and lands at the right place on the display grid.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from app.engine import Engine
from app.explain import Saliency, explain
from app.ui.explain_charts import normalised_saliency, saliency_overlay, saliency_sentence, time_profile
from models.classifier.bundle import ModelCard, save_bundle
from models.classifier.parallel_cnn import ClassifierConfig, ParallelCNN
from models.classifier.predict import combine_windows
from models.classifier.saliency import SaliencyError, combine_windows_torch, logmel_saliency, to_display_grid
from tests.helpers.data import synth_music, wav_bytes
from utils.audio import load_audio
from utils.constants import GENRES
from utils.spectrogram import display_spectrogram

SR = 16000


@pytest.fixture(scope="module")
def engine(tmp_path_factory: pytest.TempPathFactory) -> Engine:
    """The real MusiCNN embedder with a random-weights classifier (plumbing, not predictions)."""
    torch.manual_seed(0)
    card = ModelCard(version="saliency-random", labels=list(GENRES), classifier={},
                     embedder={"name": "musicnn-msd", "id": "musicnn-msd/taggram/v1", "options": {"output": "taggram"}},
                     notes="Random weights for tests.")
    root = tmp_path_factory.mktemp("checkpoints")
    save_bundle(ParallelCNN(ClassifierConfig(input_dim=50)), card, root)
    return Engine(checkpoint=str(root / card.version), device="cpu")


def sound_in(spans: list[tuple[float, float]], seconds: float = 20.0) -> bytes:
    """A WAV that is digital silence except for music in the given spans (seconds)."""
    music = synth_music(seconds, SR, seed=1)
    y = np.zeros_like(music)
    for a, b in spans:
        y[int(a * SR) : int(b * SR)] = music[int(a * SR) : int(b * SR)]
    return wav_bytes(y, SR)


def mass_between(sal: Saliency, a: float, b: float) -> float:
    """Share of |saliency| in display columns whose centre lies in [a, b] s."""
    t = sal.spectrogram.times_s
    mag = np.abs(sal.map).sum(axis=0)
    return float(mag[(t >= a) & (t <= b)].sum() / mag.sum())


def test_combine_windows_torch_matches_the_engine() -> None:
    p = np.random.default_rng(0).uniform(size=(5, 10))
    assert np.allclose(combine_windows_torch(torch.from_numpy(p)).numpy(), combine_windows(p))


def test_display_grid_puts_attribution_at_its_time_and_mel_row() -> None:
    spec = display_spectrogram(np.zeros(10 * SR, np.float32), SR)
    attribution = np.zeros((2, 313, 96), np.float32)
    attribution[1, 100, 40] = 1.0  # slice starting at 5 s, frame 100 -> 5 + 100 * 256 / 16000 = 6.6 s
    grid = to_display_grid(attribution, np.array([0.0, 5.0]), spec.times_s, spec.freqs_hz)
    assert grid.shape == spec.db.shape
    row, col = np.unravel_index(np.argmax(grid), grid.shape)
    assert row == 40  # same mel scale on both grids: rows map one to one
    assert abs(spec.times_s[col] - 6.6) <= np.diff(spec.times_s).max()
    assert grid.sum() == pytest.approx(1.0 / max(1, round(np.diff(spec.times_s)[0] * SR / 256)), rel=1e-5)


def test_saliency_has_the_spectrogram_shape_and_finds_the_only_sound(engine: Engine) -> None:
    audio = sound_in([(8.0, 13.0)], seconds=15.0)  # crosses the 10 s slice boundary
    analysis = engine.analyze(audio, filename="burst.wav")
    sal = explain(engine, analysis, audio=audio)
    assert sal.map.shape == analysis.spectrogram.db.shape
    assert np.isfinite(sal.map).all() and np.abs(sal.map).sum() > 0
    assert mass_between(sal, 7.9, 13.1) > 0.99
    assert sal.genre == analysis.top_genre
    assert sal.probability == pytest.approx(analysis.probabilities[GENRES.index(sal.genre)], abs=1e-5)
    assert sal.method == "gradient × input" and sal.seconds > 0


def test_window_saliency_ignores_sound_outside_the_window(engine: Engine) -> None:
    audio = sound_in([(2.0, 4.0), (16.0, 19.0)])
    decoded = load_audio(audio, SR, pad_to_s=15.0)
    whole = explain(engine, decoded, "jazz")
    first = explain(engine, decoded, "jazz", window=0)  # window 0 is 0-15 s
    assert mass_between(whole, 15.9, 19.1) > 0.05 and mass_between(whole, 1.9, 4.1) > 0.05
    assert mass_between(first, 1.9, 4.1) > 0.999
    assert first.window == 0 and "window 1" in first.label


def test_chunked_backward_equals_one_pass(engine: Engine) -> None:
    y = synth_music(6.0, SR, seed=2).reshape(2, -1)  # two 3 s slices: one patch each
    mel = engine.embedder.frontend(torch.from_numpy(y))[:, :187]
    slices = np.array([[0, 1, 1]])
    one, p1 = logmel_saliency(engine.embedder.model, engine.model, mel, slices, 3)
    chunked, p2 = logmel_saliency(engine.embedder.model, engine.model, mel, slices, 3, max_patches=3)
    assert p1 == pytest.approx(p2, abs=1e-6)
    assert np.allclose(one, chunked, atol=1e-6 * np.abs(one).max())


def test_an_ensembles_window_saliency_is_its_members_mean(engine: Engine) -> None:
    """Its window probability is the members' mean, so by linearity its gradient is theirs averaged."""
    from models.classifier.ensemble import GenreEnsemble

    torch.manual_seed(1)
    members = [engine.model, ParallelCNN(ClassifierConfig(input_dim=50)).eval()]
    ensemble = GenreEnsemble(members).eval()
    y = synth_music(6.0, SR, seed=2).reshape(2, -1)
    mel = engine.embedder.frontend(torch.from_numpy(y))[:, :187]
    slices = np.array([[0, 1, 1]])
    got, p = logmel_saliency(engine.embedder.model, ensemble, mel, slices, 4, window=0)
    each = [logmel_saliency(engine.embedder.model, m, mel, slices, 4, window=0) for m in members]
    assert p == pytest.approx(np.mean([q for _, q in each]), abs=1e-6)
    assert np.allclose(got, np.mean([s for s, _ in each], axis=0), atol=1e-5 * np.abs(got).max())


def test_explaining_needs_the_analysed_audio_and_a_known_genre(engine: Engine) -> None:
    audio = sound_in([(0.0, 15.0)], seconds=15.0)
    analysis = engine.analyze(audio, filename="a.wav")
    with pytest.raises(SaliencyError, match="not kept"):
        explain(engine, analysis)
    with pytest.raises(SaliencyError, match="not the audio"):
        explain(engine, analysis, audio=sound_in([(1.0, 15.0)], seconds=15.0))
    with pytest.raises(SaliencyError, match="Unknown genre"):
        explain(engine, analysis, "polka", audio=audio)


def fake_saliency(seconds: float = 20.0) -> Saliency:
    """A saliency with evidence for the genre at 12-15 s, 500-2000 Hz, and against it at 2 s."""
    spec = display_spectrogram(synth_music(seconds, SR), SR)
    m = np.zeros_like(spec.db)
    rows = (spec.freqs_hz >= 500) & (spec.freqs_hz <= 2000)
    m[np.ix_(rows, (spec.times_s >= 12) & (spec.times_s <= 15))] = 1.0
    m[:, np.argmin(np.abs(spec.times_s - 2))] = -3.0
    return Saliency(m, spec, "rock", 0.8, None, "gradient × input", 1.0)


def test_overlay_and_sentence() -> None:
    sal = fake_saliency()
    fig = saliency_overlay(sal, opacity=0.4, part="for", duration_s=20.0, window=(5.0, 20.0))
    spec_trace, overlay = fig.data
    assert np.asarray(overlay.z).shape == np.asarray(spec_trace.z).shape == sal.map.shape
    assert overlay.opacity == 0.4 and np.asarray(overlay.z).min() >= 0
    assert np.asarray(saliency_overlay(sal, part="both").data[1].z).min() < 0
    assert normalised_saliency(sal.map, "against").max() == 1.0
    assert time_profile(sal.map).sum() == pytest.approx(1.0)
    sentence = saliency_sentence(sal)
    assert sentence.startswith("The 12–15 s stretch holds") and "for rock, mostly between" in sentence
    assert "evidence against" in saliency_sentence(sal, "against")
    with pytest.raises(ValueError):
        normalised_saliency(sal.map, "sideways")


def _saliency_view_script() -> None:
    """AppTest script: analyse a short clip, switch the saliency on, render both explain views."""
    import streamlit as st

    from app.ui import explain_views, state
    from tests.helpers.data import synth_music, wav_bytes

    state.init_session()
    data = wav_bytes(synth_music(15.0, 16000), 16000)
    if not state.analysed_tracks():
        state.add_track(state.get_engine().analyze(data, filename="s.wav"), data)
    a = state.selected_track()
    st.session_state.setdefault(f"sal-on-{a.sha256[:16]}", True)
    explain_views.render_saliency(a, 0)
    explain_views.render_nearest(a)


def test_saliency_and_nearest_views_render(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from streamlit.testing.v1 import AppTest

    from tests.helpers.bundles import make_test_bundle
    from tests.helpers.data import synthetic_table
    from utils.settings import REFERENCE_ENV
    from utils.tables import PUBLISHED_MUSICNN_META

    make_test_bundle(tmp_path / "ck")
    table = synthetic_table(n_per_genre=3, dim=50)
    table.meta = dict(PUBLISHED_MUSICNN_META)
    table.save(tmp_path / "ref.npz")
    monkeypatch.setenv("GENRE_LENS_CHECKPOINTS", str(tmp_path / "ck"))
    monkeypatch.setenv("GENRE_LENS_DEVICE", "cpu")
    monkeypatch.setenv(REFERENCE_ENV, str(tmp_path / "ref.npz"))
    at = AppTest.from_function(_saliency_view_script, default_timeout=120).run()
    assert not at.exception, [e.value for e in at.exception]
    assert len(at.get("plotly_chart")) == 1 and len(at.dataframe) == 1
    assert any("stretch holds" in c.value for c in at.caption)
    sha = next(iter(at.session_state["gl.tracks"]))[:16]
    at.segmented_control(key=f"sal-part-{sha}").set_value("both").run()
    assert not at.exception and any("evidence about" in c.value for c in at.caption)


def test_saliency_waits_for_a_slot_of_the_analysis_gate(engine: Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    """A saliency map re-decodes the upload and runs gradients; it bypassed the memory cap analyses obey."""
    import threading
    import time

    from utils import analysis_gate

    gate = analysis_gate.AnalysisGate(1)
    monkeypatch.setattr(analysis_gate, "_gate", gate)
    audio = sound_in([(2.0, 12.0)], seconds=15.0)
    analysis = engine.analyze(audio, filename="gated.wav")
    done: list[Saliency] = []
    with gate.slot():  # another upload holds the only slot
        worker = threading.Thread(target=lambda: done.append(explain(engine, analysis, audio=audio)), daemon=True)
        worker.start()
        time.sleep(1.0)
        assert not done and gate.running == 1  # queued behind it, not decoding beside it
    worker.join(60)
    assert done and done[0].map.shape == analysis.spectrogram.db.shape
